"""An esearch over any window. PubMed's esearch gives at most the first 9,999 PMIDs of a result,
so a window over that is halved by date until each half fits (a single day that still
overflows keeps its first 9,999 and says so); a window over two date types is written in the
term (dated_term). The client (eutils.EUtils) makes each request; these decide which.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Protocol

from watcher.models import SearchResult
from watcher.sources.eutils_answers import SearchPage
from watcher.sources.http import Counters

log = logging.getLogger(__name__)

# PubMed's esearch returns at most the first 9,999 PMIDs of a result ('retstart' cannot be larger
# than 9998); larger windows are split by date. https://www.ncbi.nlm.nih.gov/books/NBK25499/
ESEARCH_CAP = 9999
# PubMed's earliest records; an open-ended window starts here when it must be split.
EPOCH = date(1781, 1, 1)
# A date range of one date type, inclusive: ("crdt", first day, last day).
DateRange = tuple[str, date, date]


class Esearch(Protocol):
    """What the window splitting needs of the client (eutils.EUtils)."""

    page_size: int

    @property
    def counters(self) -> Counters: ...

    def today(self) -> date: ...

    def esearch(
        self,
        term: str,
        mindate: date | None,
        maxdate: date | None,
        datetype: str = "crdt",
        *,
        retstart: int = 0,
        retmax: int = ESEARCH_CAP,
        webenv: str | None = None,
    ) -> SearchPage: ...


def search(
    client: Esearch,
    term: str,
    mindate: date | None,
    maxdate: date | None,
    datetype: str = "crdt",
    *,
    ids: bool = True,
    indexed_since: date | None = None,
) -> SearchResult:
    """EUtils.search's work: see there."""
    if indexed_since is not None and mindate is not None and maxdate is not None:
        ranges = [(datetype, mindate, maxdate), ("mhda", indexed_since, maxdate)]
        return _search_ranges(client, term, ranges, ids)
    before = client.counters.requests
    first = client.esearch(term, mindate, maxdate, datetype, retmax=client.page_size if ids else 0)
    pmids = list(first.pmids)
    warnings = list(first.warnings)
    if ids and first.count > len(first.pmids):
        if first.count <= ESEARCH_CAP:
            pmids += _pages(client, term, mindate, maxdate, datetype, first.count, len(pmids))
        else:
            # The first answer already covers a dated window: splitting starts from it.
            known = first if mindate and maxdate else None
            pmids = _split(
                client, term, mindate or EPOCH, maxdate or client.today(), datetype, warnings, known
            )
    return _result(client, first, pmids, warnings, before)


def _search_ranges(client: Esearch, term: str, ranges: list[DateRange], ids: bool) -> SearchResult:
    before = client.counters.requests
    combined = dated_term(term, ranges)
    first = client.esearch(combined, None, None, retmax=client.page_size if ids else 0)
    pmids = list(first.pmids)
    warnings = list(first.warnings)
    if ids and first.count > len(first.pmids):
        if first.count <= ESEARCH_CAP:
            pmids += _pages(client, combined, None, None, "", first.count, len(pmids))
        else:
            pmids = _split_ranges(client, term, ranges, warnings, first)
    return _result(client, first, pmids, warnings, before)


def _result(
    client: Esearch, first: SearchPage, pmids: list[int], warnings: list[str], before: int
) -> SearchResult:
    """The whole search as one answer: the first page's translation and errors, every PMID
    once in the order found, and what it cost."""
    return SearchResult(
        count=first.count,
        pmids=list(dict.fromkeys(pmids)),
        query_translation=first.query_translation,
        errors=first.errors,
        warnings=warnings,
        requests=client.counters.requests - before,
    )


def _split_ranges(
    client: Esearch,
    term: str,
    ranges: list[DateRange],
    warnings: list[str],
    page: SearchPage | None = None,
) -> list[int]:
    """As `_split`, for windows written in the term: each half keeps the part of every
    range that falls in it, so a record is in at least one half whichever date put it in."""
    combined = dated_term(term, ranges)
    if page is None:
        page = client.esearch(combined, None, None, retmax=client.page_size)
    if page.count <= ESEARCH_CAP:
        return page.pmids + _pages(client, combined, None, None, "", page.count, len(page.pmids))
    lo, hi = min(r[1] for r in ranges), max(r[2] for r in ranges)
    if lo >= hi:
        warnings.append(
            f"{page.count} results on {lo:%Y/%m/%d} alone; PubMed returns only "
            f"the first {ESEARCH_CAP} of one day"
        )
        return page.pmids + _pages(client, combined, None, None, "", ESEARCH_CAP, len(page.pmids))
    mid = lo + (hi - lo) // 2
    log.info("esearch window %s..%s holds %d results: splitting", lo, hi, page.count)
    out: list[int] = []
    for a, b in ((lo, mid), (mid + timedelta(days=1), hi)):
        part = [(t, max(x, a), min(y, b)) for t, x, y in ranges if x <= b and y >= a]
        if part:
            out += _split_ranges(client, term, part, warnings)
    return out


def _pages(
    client: Esearch,
    term: str,
    mindate: date | None,
    maxdate: date | None,
    datetype: str,
    count: int,
    have: int,
) -> list[int]:
    out: list[int] = []
    for start in range(have, min(count, ESEARCH_CAP), client.page_size):
        page = client.esearch(
            term,
            mindate,
            maxdate,
            datetype,
            retstart=start,
            retmax=min(client.page_size, ESEARCH_CAP - start),
        )
        out += page.pmids
    return out


def _split(
    client: Esearch,
    term: str,
    lo: date,
    hi: date,
    datetype: str,
    warnings: list[str],
    page: SearchPage | None = None,
) -> list[int]:
    if page is None:
        page = client.esearch(term, lo, hi, datetype, retmax=client.page_size)
    if page.count <= ESEARCH_CAP:
        return page.pmids + _pages(client, term, lo, hi, datetype, page.count, len(page.pmids))
    if lo >= hi:
        warnings.append(
            f"{page.count} results on {lo:%Y/%m/%d} alone; PubMed returns only "
            f"the first {ESEARCH_CAP} of one day"
        )
        return page.pmids + _pages(client, term, lo, hi, datetype, ESEARCH_CAP, len(page.pmids))
    mid = lo + (hi - lo) // 2
    log.info("esearch window %s..%s holds %d results: splitting", lo, hi, page.count)
    return _split(client, term, lo, mid, datetype, warnings) + _split(
        client, term, mid + timedelta(days=1), hi, datetype, warnings
    )


def dated_term(term: str, ranges: Sequence[DateRange]) -> str:
    """`term` limited to records whose date of any of `ranges`' types falls in its range.

    E-utilities' datetype takes one date type, so a window over two (creation date OR MeSH
    date) is written in the term with PubMed's range syntax, "2026/11/01"[crdt] :
    "2026/11/16"[crdt] (https://pubmed.ncbi.nlm.nih.gov/help/#searching-by-date).
    """
    windows = " OR ".join(f'("{lo:%Y/%m/%d}"[{t}] : "{hi:%Y/%m/%d}"[{t}])' for t, lo, hi in ranges)
    return f"({term}) AND ({windows})"
