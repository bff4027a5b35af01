"""What an item is known by: a stable key `scheme:value` (pmid:123, doi:10.…, ppr:PPR123,
nct:NCT01234567, pmcid:PMC123), and the other identifiers recorded beside it, so that a paper
found by DOI and later by PMID, or a preprint and its journal version, are one item. A study's
change brought by one registry update is an item of its own, `trial-change:NCT…@DATE`. Pure.
"""

from __future__ import annotations

from collections.abc import Iterator

from watcher.models import Article

ItemKey = str  # "scheme:value"; see key() for the normal form
SCHEMES = ("pmid", "doi", "pmcid", "ppr", "nct")


def key(scheme: str, value: str | int) -> ItemKey:
    """The normal form: DOIs are case-insensitive (lower-cased); PMC, preprint and trial ids
    are written in capitals."""
    text = str(value).strip()
    if scheme == "doi":
        text = text.lower()
    elif scheme in ("pmcid", "ppr", "nct"):
        text = text.upper()
    return f"{scheme}:{text}"


def pmid_key(pmid: int) -> ItemKey:
    return f"pmid:{pmid}"


def split(item: ItemKey) -> tuple[str, str]:
    scheme, _, value = item.partition(":")
    return scheme, value


def pmid_of(item: ItemKey) -> int | None:
    scheme, value = split(item)
    return int(value) if scheme == "pmid" and value.isdigit() else None


def identifiers(article: Article) -> Iterator[ItemKey]:
    """Every identifier a record carries, its own key first (a PubMed record's PMID; for a
    preprint its PPR id, or its DOI), then the PubMed record of its journal version, or a
    journal article's preprints."""
    if article.pmid is not None:
        yield pmid_key(article.pmid)
    if article.nct:
        yield key("nct", article.nct)
    if article.ppr:
        yield key("ppr", article.ppr)
    if article.doi:
        yield key("doi", article.doi)
    if article.pmcid:
        yield key("pmcid", article.pmcid)
    if article.published_pmid is not None and article.pmid is None:
        yield pmid_key(article.published_pmid)
    for ppr in article.preprints:
        yield key("ppr", ppr)


def trial_change_key(nct: str, last_update: str | None) -> ItemKey:
    """The identity of a study's change (models.StudyUpdate): the study and the registry
    update that brought it."""
    return f"trial-change:{nct}@{last_update or ''}"


def is_trial_change(item: ItemKey) -> bool:
    return str(item).startswith("trial-change:")


def own_key(article: Article) -> ItemKey:
    """The key a record is stored under when no other item claims it."""
    return next(identifiers(article))
