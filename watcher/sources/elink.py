"""ELink, PubMed to PubMed: who cites a paper (`pubmed_pubmed_citedin`, from PubMed Central's
full texts) and PubMed's similar articles (`pubmed_pubmed`), asked by id so that each link stays
tied to the paper it starts from. What NCBI accepts and answers, with the saved real answers, is
docs/citations.md's account; this module asks through the E-utilities client's HTTP layer and
rate limit, and reads the answer.

ELink reference: https://www.ncbi.nlm.nih.gov/books/NBK25499/#chapter4.ELink
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from lxml import etree

from watcher.errors import SourceError
from watcher.sources.eutils import EUtils
from watcher.sources.eutils_answers import check_body
from watcher.sources.http import Answer, RetryableError, snippet

log = logging.getLogger(__name__)

CITEDIN = "pubmed_pubmed_citedin"
SIMILAR = "pubmed_pubmed"
# NCBI: "if more than about 200 UIDs are to be provided, the request should be made using the
# HTTP POST method"; each by-id `id=` costs ~13 characters of URL, so past 100 of them the GET
# would pass the ~2,000 characters the esearch client keeps its URLs under.
_POST_ABOVE = 100
# PubMed's score of a record against itself in scored answers (tests/fixtures/elink/).
SELF_SCORE = 2147483647
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@dataclass
class LinkSet:
    """One id's links: link name → linked PMIDs in NCBI's order, with their scores if given."""

    source: int
    links: dict[str, list[tuple[int, int | None]]] = field(default_factory=dict)


@dataclass
class LinkAnswer:
    """A by-id elink answer: the link set of each id NCBI answered for, and what it refused."""

    sets: dict[int, LinkSet]
    errors: list[str] = field(default_factory=list)  # an <ERROR> inside a LinkSet, per id


def elink(
    client: EUtils,
    ids: Sequence[int],
    *,
    linkname: str | None,
    scored: bool = False,
    window: tuple[date, date] | None = None,
) -> LinkAnswer:
    """One by-id elink for all of `ids` (one `id=` parameter each: one LinkSet per id).

    `linkname` None asks for every PubMed link name (citing and similar in one answer);
    `scored` asks `cmd=neighbor_score` (similar articles with their scores; NCBI ignores
    linkname and dates then). `window` keeps links to records whose Entrez date (`edat`, the
    date type ELink documents: `crdt` is ESearch's) falls in it, first and last day included.
    """
    params: dict[str, Any] = {
        "dbfrom": "pubmed",
        "db": "pubmed",
        "id": [str(i) for i in ids],
        "cmd": "neighbor_score" if scored else "neighbor",
        "retmode": "xml",
    }
    if linkname is not None and not scored:
        params["linkname"] = linkname
    if window is not None and not scored:
        params.update(
            datetype="edat", mindate=f"{window[0]:%Y/%m/%d}", maxdate=f"{window[1]:%Y/%m/%d}"
        )

    def check(resp: Answer) -> LinkAnswer:
        check_body(resp.body)
        return parse_elink(resp.body)

    return client.http.call(
        client.base_url + "elink.fcgi",
        check,
        params={**params, **client.identity},
        post=len(ids) > _POST_ABOVE,
    )


def parse_elink(body: bytes) -> LinkAnswer:
    """An eLinkResult read as docs/citations.md says a client must: each LinkSet matched to its
    id by its IdList (never by position); a LinkSet with no LinkSetDb, or with an
    `<Info>Empty result</Info>`, has no links; an id shown as 0 or absent has no LinkSet. A
    top-level <ERROR> (NCBI's outage answer, under HTTP 200) is a failed request, retried,
    never "no links"; an <ERROR> in one LinkSet concerns that id alone."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise RetryableError(f"elink's answer is not whole XML: {exc}") from None
    if root.tag != "eLinkResult":
        raise SourceError(f"elink answered with <{root.tag}>: {snippet(body)}")
    top_error = root.findtext("ERROR")
    linksets = root.findall("LinkSet")
    if top_error is not None and not linksets:
        raise RetryableError(f"elink: NCBI error: {' '.join(top_error.split())[:200]}")
    out = LinkAnswer({})
    for ls in linksets:
        error = ls.findtext("ERROR")
        if error is not None:
            out.errors.append(" ".join(error.split())[:200])
            continue
        ids = [int(t) for t in (i.text or "" for i in ls.iterfind("IdList/Id")) if t.isdigit()]
        if len(ids) != 1 or ids[0] == 0:
            continue  # a merged set (not asked) or an unknown id shown as 0: tied to nothing
        found = out.sets.setdefault(ids[0], LinkSet(ids[0]))
        for db in ls.iterfind("LinkSetDb"):
            name = (db.findtext("LinkName") or "").strip()
            links = found.links.setdefault(name, [])
            for link in db.iterfind("Link"):
                pmid = (link.findtext("Id") or "").strip()
                score = (link.findtext("Score") or "").strip()
                if pmid.isdigit() and int(pmid) != ids[0]:
                    links.append((int(pmid), int(score) if score.isdigit() else None))
    return out
