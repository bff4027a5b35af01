"""A Europe PMC search subscription (https://europepmc.org/RestfulWebService): preprints by
default (SRC:PPR), any source when the query names one. The search's `core` answer carries the
whole record, so what it finds is stored as it comes, without a second fetch.

One search per poll over a window of first-index or update dates that reaches back behind the
last one (as PubMed's); pages follow cursorMark/nextCursorMark, up to 1,000 records each.

A record is read into the Article a PubMed record of the same paper gives: its HTML title and
abstract as text and labelled sections (html_text.py), the journal issue it was printed in, MeSH,
chemicals, keywords, its links to notices and versions (commentCorrectionList, read as PubMed's
CommentsCorrections) and the trial numbers its abstract names.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from watcher.errors import RecordError
from watcher.identity import ItemKey, own_key, split
from watcher.models import Article, Author, Correction, MeshHeading, PollState
from watcher.sources.base import Discovery
from watcher.sources.endpoints import EUROPEPMC_BASE_URL, EUROPEPMC_RATE
from watcher.sources.html_text import abstract_sections, plain_text
from watcher.sources.http import Answer, Http
from watcher.sources.json_api import JsonApi, following, json_object, listed, skipped, total
from watcher.sources.json_fields import JsonObject, number, obj, objects, text, texts, token
from watcher.sources.pubmed_xml import DeletionSink, ErrorSink
from watcher.subscriptions import Subscription
from watcher.text.trial_numbers import find_ids, unique

log = logging.getLogger(__name__)

PAGE_SIZE = 1000  # the search's largest pageSize
_SRC = re.compile(r"\bSRC\s*:", re.IGNORECASE)
_PMCID = re.compile(r"PMC\d{1,12}", re.IGNORECASE)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MAX_PMID = 2**63 - 1  # the store's BigInteger
MAX_VERSION = 2**31 - 1  # its Integer


class EuropePmc(JsonApi):
    """The Europe PMC source; it is also its own record fetcher (by PPR id or DOI)."""

    def __init__(
        self,
        http: Http,
        base_url: str = EUROPEPMC_BASE_URL,
        *,
        overlap_days: int = 3,
        page_size: int = PAGE_SIZE,
        rate: float = EUROPEPMC_RATE,
    ) -> None:
        super().__init__(http, base_url, overlap_days=overlap_days, page_size=page_size, rate=rate)

    def find(self, sub: Subscription, state: PollState | None, now: datetime) -> Discovery:
        assert sub.europepmc is not None
        today = now.astimezone(UTC).date()
        start = self.window_start(sub, state, today)
        errors: list[str] = []
        found = list(self.search(windowed(sub.europepmc, start, today), errors.append))
        return Discovery(
            [own(a) for a in found],
            "europepmc",
            window_end=today,
            records=tuple(found),
            skipped=tuple(errors),
        )

    def find_window(self, sub: Subscription, start: date, end: date) -> list[ItemKey]:
        assert sub.europepmc is not None
        return [own(a) for a in self.search(windowed(sub.europepmc, start, end))]

    def count(self, query: str) -> int:
        """How many records `query` matches now (one request, pageSize=1)."""
        return total(self.page(scoped(query), "*", 1), "hitCount", "Europe PMC")

    def fetch_items(
        self,
        keys: Sequence[ItemKey],
        on_error: ErrorSink | None = None,
        on_deleted: DeletionSink | None = None,  # Europe PMC's answers name no deletions
    ) -> Iterator[Article]:
        terms = []
        for k in keys:
            scheme, value = split(k)
            if scheme == "ppr":
                terms.append(f"(EXT_ID:{value} AND SRC:PPR)")
            elif scheme == "doi":
                terms.append(f'DOI:"{value}"')
            elif scheme == "pmid":
                terms.append(f"(EXT_ID:{value} AND SRC:MED)")
            elif scheme == "pmcid":
                terms.append(f"(EXT_ID:{value} AND SRC:PMC)")
        if terms:
            yield from self.search(" OR ".join(terms), on_error)

    def search(self, query: str, on_error: ErrorSink | None = None) -> Iterator[Article]:
        """The records `query` finds, page by page; one that cannot be read is reported to
        `on_error` and skipped."""
        cursor = "*"
        n = 0
        while True:
            answer = self.page(query, cursor, self.page_size)
            results = listed(answer, "result", "Europe PMC", inside="resultList")
            for record in results:
                n += 1
                try:
                    yield parse_record(record)
                except RecordError as exc:
                    skipped(f"Europe PMC record {n} ({_label(record)}) skipped: {exc}", on_error)
            after = following(answer, "nextCursorMark", "Europe PMC")
            # The last page gives back the cursor it was asked with (or none at all).
            if not results or after is None or after == cursor:
                return
            cursor = after

    def page(self, query: str, cursor: str, size: int) -> dict[str, Any]:
        params = {
            "query": query,
            "format": "json",
            "resultType": "core",
            "pageSize": str(size),
            "cursorMark": cursor,
        }
        self._limit()
        return self.http.call(
            self.base_url + "search", _json, params=params, what="Europe PMC search"
        )


def scoped(query: str) -> str:
    """Preprints only, unless the query says which sources it wants."""
    return query if _SRC.search(query) else f"({query}) AND SRC:PPR"


def windowed(query: str, start: date, end: date) -> str:
    """`query` over records first indexed, or updated, between start and end: an update is how a
    preprint gains the link to its journal version."""
    a, b = start.isoformat(), end.isoformat()
    return f"{scoped(query)} AND (FIRST_IDATE:[{a} TO {b}] OR UPDATE_DATE:[{a} TO {b}])"


def own(article: Article) -> ItemKey:
    """The key a record is found under: its PMID, else its PPR id, DOI or PMCID."""
    return own_key(article)


def _json(answer: Answer) -> dict[str, Any]:
    return json_object(answer, "Europe PMC")


def parse_record(r: object) -> Article:
    """A `core` result → Article. A field of the wrong type reads as absent; a record that is
    not an object, or has neither a PPR id, a PMID, a DOI nor a PMCID, raises RecordError."""
    if not isinstance(r, dict):
        raise RecordError("not a JSON object")
    source = text(r, "source") or ""
    pmid = number(r, "pmid", limit=MAX_PMID) or None
    ppr = token(r, "id") if source == "PPR" else None
    doi = token(r, "doi", limit=255)
    pmcid = _pmcid(r, source)
    if pmid is None and ppr is None and doi is None and pmcid is None:
        raise RecordError("no PPR id, PMID, DOI or PMCID to know it by")
    issue = obj(r, "journalInfo")
    journal = obj(issue, "journal")
    links = objects(r, "commentCorrectionList", "commentCorrection")
    published = _published_as(links) if ppr else None
    abstract = abstract_sections(text(r, "abstractText"))
    chemicals = objects(r, "chemicalList", "chemical")  # ChemicalList's NameOfSubstance
    return Article(
        pmid=pmid,
        title=plain_text(text(r, "title")),
        version=number(r, "versionNumber", limit=MAX_VERSION) or 1,
        doi=doi,
        pmcid=pmcid,
        abstract=abstract,
        authors=tuple(_author(a) for a in objects(r, "authorList", "author")),
        journal=None if ppr else text(journal, "title"),
        journal_iso=None if ppr else text(journal, "isoabbreviation"),
        # The issue's date, not firstPublicationDate: the earliest of the print and electronic
        # dates (a preprint's is its posting day, which is all it has).
        pub_date=_issue_date(issue) or text(r, "firstPublicationDate"),
        pub_year=number(issue, "yearOfPublication", limit=9999) or number(r, "pubYear", limit=9999),
        epub_date=_date(text(r, "electronicPublicationDate"))
        or (_date(text(r, "firstPublicationDate")) if ppr else None),
        language=text(r, "language"),
        publication_types=tuple(texts(r, "pubTypeList", "pubType")),
        mesh=_mesh(r),
        keywords=tuple(k for k in map(plain_text, texts(r, "keywordList", "keyword")) if k),
        corrections=_corrections(links),
        # Trials named in the abstract, found as in PubMed's (the core result has no DataBankList).
        trial_ids=unique(find_ids("\n".join(s.text for s in abstract))),
        substances=unique(filter(None, (_line(text(c, "name")) for c in chemicals))),
        ppr=ppr,
        preprint_server=text(r, "bookOrReportDetails", "publisher") if ppr else None,
        published_pmid=published[0] if published else None,
        published_in=published[1] if published else None,
        preprints=() if ppr else _preprints(links),
        volume=_line(text(issue, "volume")) or None,
        issue=_line(text(issue, "issue")) or None,
        pages=_line(text(r, "pageInfo")) or None,
    )


def _issue_date(issue: JsonObject) -> str | None:
    """The journal issue's date as PubMed prints it ("2015 Aug", "2019 Spring"):
    dateOfPublication, else the year and month of printPublicationDate (whose day is 01 where
    the issue has none)."""
    printed = _line(text(issue, "dateOfPublication"))
    if printed:
        return printed
    day = _date(text(issue, "printPublicationDate"))
    return f"{day.year} {_MONTHS[day.month - 1]}" if day else None


def _pmcid(r: JsonObject, source: str) -> str | None:
    """The PMC record's id: `pmcid`, or the `id` of a result whose source is PMC."""
    found = token(r, "pmcid", limit=32) or (token(r, "id", limit=32) if source == "PMC" else None)
    return found.upper() if found and _PMCID.fullmatch(found) else None


# commentCorrectionList's types, worded as PubMed's abstract page words CommentsCorrections
# ("Erratum in", "Retraction of"), → PubMed's RefType
# (https://www.nlm.nih.gov/bsd/mms/medlineelements.html#cc): the ones the PubMed reader keeps
# (pubmed_lists._CORRECTION_TYPES). "Corrected and republished in" is RepublishedIn's wording.
REF_TYPES = {
    "comment on": "CommentOn",
    "erratum in": "ErratumIn",
    "erratum for": "ErratumFor",
    "retraction in": "RetractionIn",
    "retraction of": "RetractionOf",
    "update in": "UpdateIn",
    "update of": "UpdateOf",
    "expression of concern in": "ExpressionOfConcernIn",
    "expression of concern for": "ExpressionOfConcernFor",
    "republished in": "RepublishedIn",
    "republished from": "RepublishedFrom",
    "corrected and republished in": "RepublishedIn",
    "corrected and republished from": "RepublishedFrom",
}


def _corrections(links: list[JsonObject]) -> tuple[Correction, ...]:
    """The links PubMed's CommentsCorrections would hold, each naming its paper's PMID (when
    it is a PubMed record) and its citation."""
    out = []
    for c in links:
        kind = REF_TYPES.get(_line(text(c, "type")).lower())
        if kind is None:
            continue
        pmid = number(c, "id", limit=MAX_PMID) if text(c, "source") == "MED" else None
        out.append(
            Correction(kind, str(pmid) if pmid else None, _line(text(c, "reference")) or None)
        )
    return tuple(out)


def _published_as(links: list[JsonObject]) -> tuple[int, str | None] | None:
    """The journal version Europe PMC links a preprint to: a commentCorrection of type
    "Preprint of" naming a MED (PubMed) record by PMID, with its citation as `reference`."""
    for c in links:
        if _line(text(c, "type")).lower() == "preprint of" and text(c, "source") == "MED":
            pmid = number(c, "id", limit=MAX_PMID)
            if pmid:
                return pmid, text(c, "reference")
    return None


def _preprints(links: list[JsonObject]) -> tuple[str, ...]:
    """The preprints of a journal article: its "Preprint in" links to PPR records."""
    found = (
        token(c, "id")
        for c in links
        if _line(text(c, "type")).lower() == "preprint in" and text(c, "source") == "PPR"
    )
    return tuple(unique(p.upper() for p in found if p))


def _mesh(r: JsonObject) -> tuple[MeshHeading, ...]:
    """The headings, each major where NLM marked it or one of its qualifiers so (as PubMed's
    MajorTopicYN is read)."""
    out = []
    for h in objects(r, "meshHeadingList", "meshHeading"):
        name = _line(text(h, "descriptorName"))
        if not name:
            continue
        quals = objects(h, "meshQualifierList", "meshQualifier")
        major = any(text(x, "majorTopic_YN") == "Y" for x in (h, *quals))
        names = (_line(text(q, "qualifierName")) for q in quals)
        out.append(MeshHeading(name, major, tuple(q for q in names if q)))
    return tuple(out)


def _author(a: JsonObject) -> Author:
    collective = text(a, "collectiveName")
    if collective:
        return Author(collective_name=collective)
    last = text(a, "lastName") or text(a, "fullName")
    return Author(last, text(a, "firstName"), text(a, "initials"))


def _label(record: object) -> str:
    """How a record is named in a line about it, whatever it holds."""
    return f"id {token(record, 'id', limit=80) or token(record, 'doi', limit=80) or '?'}"


def _line(value: str | None) -> str:
    return " ".join((value or "").split())


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value or "")
    except ValueError:
        return None
