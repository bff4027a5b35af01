"""PubMed through E-utilities: esearch (with its 9,999 cap split by date), efetch by id or from the
history server. HTTP itself (rate limit, retries, timeouts) is sources/http.py's; what the answers
mean is sources/eutils_answers.py's.

E-utilities reference: https://www.ncbi.nlm.nih.gov/books/NBK25499/
Usage rules (tool, email, 3 or 10 requests/s): https://www.ncbi.nlm.nih.gov/books/NBK25497/
"""

from __future__ import annotations

import logging
import math
import time
import zoneinfo
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote_plus, urlsplit

import requests

from watcher import __version__
from watcher.errors import ResponseTooLarge, SourceError
from watcher.identity import ItemKey, pmid_of
from watcher.models import Article, SearchResult
from watcher.rate import Pace, RateBudget
from watcher.redact import register_secret
from watcher.sources import esearch_windows
from watcher.sources.esearch_windows import EPOCH, ESEARCH_CAP
from watcher.sources.eutils_answers import (
    SearchPage,
    check_body,
    history_lost,
    ncbi_error,
    parse_esearch,
    raise_query_error,
)
from watcher.sources.http import (
    DEFAULT_MAX_RESPONSE_MB,
    Answer,
    Counters,
    Http,
    RetryableError,
    snippet,
)
from watcher.sources.pubmed_xml import DeletionSink, ErrorSink, XmlError, parse_articles

log = logging.getLogger(__name__)

T = TypeVar("T")

# Above this many ids a GET URL gets too long for NCBI's servers; POST is recommended.
_POST_ABOVE = 200
# A term longer than this once URL-encoded goes by POST, so a GET URL (with the other parameters
# and an API key, ~300 characters) stays under 2,000 characters. What servers limit is the URL,
# and encoding makes a librarian's term half as long again (every quote, bracket and space).
_GET_TERM_MAX = 1600
# NCBI's limit without an API key (https://www.ncbi.nlm.nih.gov/books/NBK25497/); the wiring
# passes the keyed one when a key is set.
_KEYLESS_RATE = 3.0
# Every NCBI host (E-utilities, PubMed's RSS) counts against the one limit.
NCBI_DOMAIN = "ncbi.nlm.nih.gov"
# NCBI stamps records with US Eastern dates; a window in UTC would miss an evening's records.
NCBI_ZONE = zoneinfo.ZoneInfo("America/New_York")


def ncbi_today(now: datetime) -> date:
    """The day it is at NCBI when it is `now` (an aware datetime)."""
    return now.astimezone(NCBI_ZONE).date()


# A batch holding unreadable records is halved until each is alone; the halving may cost at most
# this many times 2·log2(batch) extra requests (enough to isolate this many bad records).
_ISOLATE_AT_MOST = 4
# Where a fetch tells what it left out: records unreadable, PMIDs NCBI deleted.
Sinks = tuple[ErrorSink | None, DeletionSink | None]

__all__ = [
    "ESEARCH_CAP",
    "NCBI_ZONE",
    "Counters",
    "EUtils",
    "SearchPage",
    "ncbi_error",
    "ncbi_today",
    "parse_esearch",
]


class UnreadableRecords(SourceError):
    """A complete efetch answer that the XML parser refuses (invalid UTF-8, an entity bomb,
    nesting past libxml2's limit): asking again gives the same bytes, so it is not retried;
    the batch is split instead to find the record at fault."""


class EUtils:
    """One per process: every request to NCBI goes through the shared HTTP layer, under NCBI's
    rate limit."""

    def __init__(
        self,
        *,
        base_url: str,
        email: str,
        tool: str,
        api_key: str | None = None,
        rate: float = _KEYLESS_RATE,
        timeout: float = 30.0,
        retries: int = 5,
        batch_size: int = 500,
        page_size: int = ESEARCH_CAP,
        backoff: float = 1.0,
        max_response_mb: float = DEFAULT_MAX_RESPONSE_MB,
        clock: Callable[[], datetime],
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        http: Http | None = None,
        budget: RateBudget | None = None,
    ) -> None:
        """`clock` is the caller's (the poll's) clock: an open-ended window ends on NCBI's
        today by that clock, never by the machine's local date."""
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.identity = {"tool": tool, "email": email}
        if api_key:
            self.identity["api_key"] = api_key
            register_secret(api_key)  # kept out of every error line and log
        self.http = http or Http(
            user_agent=f"pubmed-watcher/{__version__} ({email})",
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_response_mb=max_response_mb,
            session=session,
            sleep=sleep,
            budget=budget,
        )
        host = urlsplit(self.base_url).hostname or ""
        # NCBI counts a key's requests, whoever sends them: with a key, the budget is the key's.
        self.http.set_rate(
            NCBI_DOMAIN if host.endswith(NCBI_DOMAIN) else host, rate, api_key or None
        )
        self.batch_size = batch_size
        self.page_size = min(page_size, ESEARCH_CAP)
        self.clock = clock

    @property
    def counters(self) -> Counters:
        return self.http.counters

    @property
    def sleep(self) -> Callable[[float], None]:
        return self.http.sleep

    @property
    def limiter(self) -> Pace:
        return self.http.limiter(self.base_url)

    def today(self) -> date:
        return ncbi_today(self.clock())

    # Searching

    def search(
        self,
        term: str,
        mindate: date | None,
        maxdate: date | None,
        datetype: str = "crdt",
        *,
        ids: bool = True,
        indexed_since: date | None = None,
    ) -> SearchResult:
        """Every PMID matching `term` in the date window (inclusive, NCBI's US Eastern days).

        Windows over ESEARCH_CAP results are halved by date until each fits; a single day that
        still overflows keeps its first 9,999 PMIDs and says so in the warnings.

        With `indexed_since`, records given MeSH headings from that day to `maxdate` are found
        too, whatever their creation date, in the same esearch (see `dated_term`).
        """
        return esearch_windows.search(
            self, term, mindate, maxdate, datetype, ids=ids, indexed_since=indexed_since
        )

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
    ) -> SearchPage:
        params: dict[str, Any] = {
            "db": "pubmed",
            "term": term,
            "usehistory": "y",
            "retstart": retstart,
            "retmax": retmax,
            "sort": "pub_date",
        }
        if mindate or maxdate:
            # E-utilities' own window parameters: both bounds are required and inclusive.
            params.update(
                datetype=datetype,
                mindate=f"{mindate or EPOCH:%Y/%m/%d}",
                maxdate=f"{maxdate or self.today() + timedelta(days=1):%Y/%m/%d}",
            )
        if webenv:
            params["WebEnv"] = webenv
        post = len(quote_plus(term)) > _GET_TERM_MAX
        return self._call("esearch.fcgi", params, parse_esearch, post=post)

    # Fetching

    def fetch(
        self,
        pmids: Sequence[int],
        on_error: ErrorSink | None = None,
        on_deleted: DeletionSink | None = None,
    ) -> Iterator[Article]:
        """Full records for `pmids`, batch_size per request (POSTed when the list is long).

        A record no parser may read, or an answer over the size limit, does not hold back the
        rest of its batch: see _isolate. The records left out are reported to `on_error`; the
        PMIDs NCBI deleted (a DeleteCitation in the answer) to `on_deleted`.
        """
        ids = list(dict.fromkeys(pmids))
        sinks = (on_error, on_deleted)
        for i in range(0, len(ids), self.batch_size):
            batch = ids[i : i + self.batch_size]
            try:
                articles = self._fetch_batch(batch, sinks)
            except (UnreadableRecords, ResponseTooLarge) as exc:
                yield from self._isolate(batch, exc, sinks)
            else:
                yield from articles

    def _fetch_batch(self, batch: Sequence[int], sinks: Sinks) -> list[Article]:
        params = {
            "db": "pubmed",
            "id": ",".join(map(str, batch)),
            "rettype": "abstract",
            "retmode": "xml",
        }
        return self._call(
            "efetch.fcgi", params, _efetch_parser(*sinks), post=len(batch) > _POST_ABOVE
        )

    def _isolate(self, batch: Sequence[int], first: SourceError, sinks: Sinks) -> Iterator[Article]:
        """Halve `batch` and fetch the halves, recursively, until each unreadable record is alone;
        the good records are delivered, each bad PMID is reported and left out. One bad record
        costs 2·log2(len(batch)) extra requests; past _ISOLATE_AT_MOST of them, give up."""
        budget = 2 * max(1, math.ceil(math.log2(len(batch)))) * _ISOLATE_AT_MOST
        log.warning(
            "efetch of %d records failed (%s): splitting the batch to find the bad records",
            len(batch),
            first,
        )
        extra = 0
        bad: list[int] = []
        # Depth first, left half first: records keep their order. A batch of one is the culprit.
        stack = _halves(batch) if len(batch) > 1 else []
        if not stack:
            self._left_out(batch[0], first, sinks[0])
            return
        while stack:
            part = stack.pop()
            if extra >= budget:
                raise SourceError(
                    f"efetch: {len(bad) + len(part) + sum(map(len, stack))} of {len(batch)} "
                    f"records unreadable or too large; gave up after {extra} extra requests"
                )
            extra += 1
            self.counters.isolation_requests += 1
            try:
                articles = self._fetch_batch(part, sinks)
            except (UnreadableRecords, ResponseTooLarge) as exc:
                if len(part) > 1:
                    stack += _halves(part)
                    continue
                bad.append(part[0])
                self._left_out(part[0], exc, sinks[0])
                continue
            yield from articles
        log.warning(
            "efetch: %d of %d records left out as unreadable (%s), found with %d extra requests",
            len(bad),
            len(batch),
            ", ".join(map(str, bad)),
            extra,
        )

    @staticmethod
    def _left_out(pmid: int, exc: SourceError, on_error: ErrorSink | None) -> None:
        message = f"PMID {pmid} skipped: its record cannot be read ({exc})"
        log.warning("%s", message)
        if on_error is not None:
            on_error(message)

    def fetch_items(
        self,
        keys: Sequence[ItemKey],
        on_error: ErrorSink | None = None,
        on_deleted: DeletionSink | None = None,
    ) -> Iterator[Article]:
        """Full records for items known by PMID (other keys are not PubMed's to fetch)."""
        return self.fetch([p for p in map(pmid_of, keys) if p is not None], on_error, on_deleted)

    def fetch_history(
        self, webenv: str, query_key: str, count: int, on_error: ErrorSink | None = None
    ) -> Iterator[Article]:
        """Full records of a search kept on NCBI's history server, batch_size per request."""
        for start in range(0, count, self.batch_size):
            params = {
                "db": "pubmed",
                "WebEnv": webenv,
                "query_key": query_key,
                "retstart": start,
                "retmax": self.batch_size,
                "rettype": "abstract",
                "retmode": "xml",
            }
            yield from self._call("efetch.fcgi", params, _efetch_parser(on_error))

    # The request loop

    def _call(
        self, endpoint: str, params: dict[str, Any], parse: Callable[[bytes], T], post: bool = False
    ) -> T:
        data = {**params, **self.identity}

        def check(resp: Answer) -> T:
            body = resp.body
            check_body(body)
            error = ncbi_error(body)
            if error is not None:
                if history_lost(error) and "WebEnv" not in params:
                    # A request that names no WebEnv lost nothing of ours: asked again, it
                    # makes a new history. (One that names an expired WebEnv cannot be mended.)
                    raise RetryableError(f"NCBI's history server failed: {error}")
                raise_query_error(error)
            try:
                return parse(body)
            except XmlError as exc:  # a cut-off or garbled body: NCBI sends those under load
                raise RetryableError(str(exc)) from None

        return self.http.call(self.base_url + endpoint, check, params=data, post=post)


def _efetch_parser(
    on_error: ErrorSink | None, on_deleted: DeletionSink | None = None
) -> Callable[[bytes], list[Article]]:
    def parse(body: bytes) -> list[Article]:
        if b"<PubmedArticleSet" not in body[:2000] and b"<MedlineCitationSet" not in body[:2000]:
            raise XmlError(f"efetch answered with something else: {snippet(body[:120])}")
        try:
            return list(parse_articles(body, on_error, on_deleted))
        except XmlError as exc:
            # A body that arrived whole and still fails holds a record no parser may read;
            # only a body without its closing tag was cut off and is worth asking for again.
            if body.rstrip().endswith((b"</PubmedArticleSet>", b"</MedlineCitationSet>")):
                raise UnreadableRecords(str(exc)) from None
            raise

    return parse


def _halves(batch: Sequence[int]) -> list[Sequence[int]]:
    mid = len(batch) // 2
    return [batch[mid:], batch[:mid]]
