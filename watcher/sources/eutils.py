"""The only code that speaks HTTP to NCBI: rate limit, retries, timeouts, response checks.

E-utilities reference: https://www.ncbi.nlm.nih.gov/books/NBK25499/
Usage rules (tool, email, 3 or 10 requests/s): https://www.ncbi.nlm.nih.gov/books/NBK25497/
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import threading
import time
import zoneinfo
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from lxml import etree

from watcher import __version__
from watcher.config import NCBI_RATE_WITH_KEY, NCBI_RATE_WITHOUT_KEY, NcbiConfig
from watcher.errors import QueryError, ResponseTooLarge, SourceError, Unreachable
from watcher.models import Article, SearchResult
from watcher.redact import redact, register_secret
from watcher.sources.pubmed_xml import ErrorSink, XmlError, parse_articles

log = logging.getLogger(__name__)

T = TypeVar("T")

# PubMed's esearch returns at most the first 9,999 PMIDs of a result ('retstart' cannot be larger
# than 9998); larger windows are split by date. https://www.ncbi.nlm.nih.gov/books/NBK25499/
ESEARCH_CAP = 9999
# Above this many ids a GET URL gets too long for NCBI's servers; POST is recommended.
_POST_ABOVE = 200
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
# PubMed's earliest records; an open-ended window starts here when it must be split.
_EPOCH = date(1781, 1, 1)
# NCBI stamps records with US Eastern dates; a window in UTC would miss an evening's records.
NCBI_ZONE = zoneinfo.ZoneInfo("America/New_York")


def ncbi_today(now: datetime) -> date:
    """The day it is at NCBI when it is `now` (an aware datetime)."""
    return now.astimezone(NCBI_ZONE).date()


# Bodies are read in pieces of this size, so a body past the size limit is never held whole.
_READ_CHUNK = 1 << 16
# A batch holding unreadable records is halved until each is alone; the halving may cost at most
# this many times 2·log2(batch) extra requests (enough to isolate this many bad records).
_ISOLATE_AT_MOST = 4
# Typical efetch XML is ~10 KB per record (median of the real records in the shared corpus), so a
# 10,000-record batch (efetch's cap) is ~100 MB; a larger efetch answer is split, not lost.
DEFAULT_MAX_RESPONSE_MB = 128
# A date range of one date type, inclusive: ("crdt", first day, last day).
DateRange = tuple[str, date, date]


class RetryableError(SourceError):
    """A response worth asking for again (429, 5xx, an error page, a cut-off body)."""

    def __init__(
        self, message: str, retry_after: float | None = None, connection: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.connection = connection  # the host did not answer at all


class UnreadableRecords(SourceError):
    """A complete efetch answer that the XML parser refuses (invalid UTF-8, an entity bomb,
    nesting past libxml2's limit): asking again gives the same bytes, so it is not retried;
    the batch is split instead to find the record at fault."""


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class RateLimiter:
    """At most `rate` request starts in any sliding window of `period` seconds, across threads.

    The window is a little longer than NCBI's second so that network jitter between our clock and
    theirs never lets a fourth request land inside one of their seconds.
    """

    def __init__(
        self,
        rate: float,
        period: float = 1.05,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.slots = max(1, int(rate)) if rate >= 1 else 1
        self.period = period if rate >= 1 else period / rate
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def wait(self) -> None:
        with self._lock:
            while True:
                now = self._clock()
                while self._starts and now - self._starts[0] >= self.period:
                    self._starts.popleft()
                if len(self._starts) < self.slots:
                    self._starts.append(now)
                    return
                self._sleep(self.period - (now - self._starts[0]))


@dataclass
class Counters:
    """What this client spent: tests assert budgets on it, logs report it."""

    requests: int = 0
    retries: int = 0
    isolation_requests: int = 0  # efetches spent splitting batches around unreadable records

    def count(self, endpoint: str) -> None:
        self.requests += 1


@dataclass(frozen=True)
class SearchPage:
    count: int
    pmids: list[int]
    webenv: str | None
    query_key: str | None
    query_translation: str | None
    errors: list[str]
    warnings: list[str]


@dataclass(frozen=True)
class FeedResponse:
    status: int  # 200 or 304
    body: bytes
    etag: str | None
    last_modified: str | None


class EUtils:
    """One per process: every request to NCBI goes through its session and its rate limiter."""

    def __init__(
        self,
        *,
        base_url: str,
        email: str,
        tool: str,
        api_key: str | None = None,
        rate: float | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        batch_size: int = 500,
        page_size: int = ESEARCH_CAP,
        backoff: float = 1.0,
        clock: Callable[[], datetime],
        max_response_mb: float = DEFAULT_MAX_RESPONSE_MB,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`clock` is the caller's (the poll's) clock: an open-ended window ends on NCBI's
        today by that clock, never by the machine's local date."""
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.identity = {"tool": tool, "email": email}
        if api_key:
            self.identity["api_key"] = api_key
            register_secret(api_key)  # kept out of every error line and log
        limit = NCBI_RATE_WITH_KEY if api_key else NCBI_RATE_WITHOUT_KEY
        self.limiter = RateLimiter(rate or limit, sleep=sleep)
        # (connect, read): a dead host fails fast, a slow efetch of 500 records may take a while.
        self.timeout = (min(10.0, timeout), timeout)
        self.retries = retries
        self.batch_size = batch_size
        self.page_size = min(page_size, ESEARCH_CAP)
        self.backoff = backoff
        self.max_response_mb = max_response_mb
        self.max_response_bytes = int(max_response_mb * 1024 * 1024)
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"pubmed-watcher/{__version__} ({email})"
        self.counters = Counters()
        self.sleep = sleep
        self.clock = clock

    @classmethod
    def from_config(
        cls,
        ncbi: NcbiConfig,
        *,
        clock: Callable[[], datetime],
        env: Mapping[str, str] = os.environ,
        **overrides: Any,
    ) -> EUtils:
        api_key = env.get(ncbi.api_key_env) if ncbi.api_key_env else None
        if ncbi.api_key_env and not api_key:
            log.warning(
                "ncbi.api_key_env names %s, which is not set: using the keyless limit",
                ncbi.api_key_env,
            )
        kwargs: dict[str, Any] = dict(
            base_url=ncbi.base_url,
            email=ncbi.email,
            tool=ncbi.tool,
            api_key=api_key,
            rate=ncbi.rate_limit,
            timeout=ncbi.timeout,
            retries=ncbi.retries,
            batch_size=ncbi.batch_size,
            clock=clock,
            max_response_mb=ncbi.max_response_mb,
        )
        kwargs.update(overrides)
        return cls(**kwargs)

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
        if indexed_since is not None and mindate is not None and maxdate is not None:
            ranges = [(datetype, mindate, maxdate), ("mhda", indexed_since, maxdate)]
            return self._search_ranges(term, ranges, ids)
        before = self.counters.requests
        first = self.esearch(term, mindate, maxdate, datetype, retmax=self.page_size if ids else 0)
        pmids = list(first.pmids)
        warnings = list(first.warnings)
        if ids and first.count > len(first.pmids):
            if first.count <= ESEARCH_CAP:
                pmids += self._pages(term, mindate, maxdate, datetype, first.count, len(pmids))
            else:
                # The first answer already covers a dated window: splitting starts from it.
                known = first if mindate and maxdate else None
                pmids = self._split(
                    term, mindate or _EPOCH, maxdate or self.today(), datetype, warnings, known
                )
        return SearchResult(
            count=first.count,
            pmids=list(dict.fromkeys(pmids)),
            query_translation=first.query_translation,
            errors=first.errors,
            warnings=warnings,
            requests=self.counters.requests - before,
        )

    def _search_ranges(self, term: str, ranges: list[DateRange], ids: bool) -> SearchResult:
        before = self.counters.requests
        combined = dated_term(term, ranges)
        first = self.esearch(combined, None, None, retmax=self.page_size if ids else 0)
        pmids = list(first.pmids)
        warnings = list(first.warnings)
        if ids and first.count > len(first.pmids):
            if first.count <= ESEARCH_CAP:
                pmids += self._pages(combined, None, None, "", first.count, len(pmids))
            else:
                pmids = self._split_ranges(term, ranges, warnings, first)
        return SearchResult(
            count=first.count,
            pmids=list(dict.fromkeys(pmids)),
            query_translation=first.query_translation,
            errors=first.errors,
            warnings=warnings,
            requests=self.counters.requests - before,
        )

    def _split_ranges(
        self,
        term: str,
        ranges: list[DateRange],
        warnings: list[str],
        page: SearchPage | None = None,
    ) -> list[int]:
        """As `_split`, for windows written in the term: each half keeps the part of every
        range that falls in it, so a record is in at least one half whichever date put it in."""
        combined = dated_term(term, ranges)
        if page is None:
            page = self.esearch(combined, None, None, retmax=self.page_size)
        if page.count <= ESEARCH_CAP:
            return page.pmids + self._pages(combined, None, None, "", page.count, len(page.pmids))
        lo, hi = min(r[1] for r in ranges), max(r[2] for r in ranges)
        if lo >= hi:
            warnings.append(
                f"{page.count} results on {lo:%Y/%m/%d} alone; PubMed returns only "
                f"the first {ESEARCH_CAP} of one day"
            )
            return page.pmids + self._pages(combined, None, None, "", ESEARCH_CAP, len(page.pmids))
        mid = lo + (hi - lo) // 2
        log.info("esearch window %s..%s holds %d results: splitting", lo, hi, page.count)
        out: list[int] = []
        for a, b in ((lo, mid), (mid + timedelta(days=1), hi)):
            part = [(t, max(x, a), min(y, b)) for t, x, y in ranges if x <= b and y >= a]
            if part:
                out += self._split_ranges(term, part, warnings)
        return out

    def _pages(
        self,
        term: str,
        mindate: date | None,
        maxdate: date | None,
        datetype: str,
        count: int,
        have: int,
    ) -> list[int]:
        out: list[int] = []
        for start in range(have, min(count, ESEARCH_CAP), self.page_size):
            page = self.esearch(
                term,
                mindate,
                maxdate,
                datetype,
                retstart=start,
                retmax=min(self.page_size, ESEARCH_CAP - start),
            )
            out += page.pmids
        return out

    def _split(
        self,
        term: str,
        lo: date,
        hi: date,
        datetype: str,
        warnings: list[str],
        page: SearchPage | None = None,
    ) -> list[int]:
        if page is None:
            page = self.esearch(term, lo, hi, datetype, retmax=self.page_size)
        if page.count <= ESEARCH_CAP:
            return page.pmids + self._pages(term, lo, hi, datetype, page.count, len(page.pmids))
        if lo >= hi:
            warnings.append(
                f"{page.count} results on {lo:%Y/%m/%d} alone; PubMed returns only "
                f"the first {ESEARCH_CAP} of one day"
            )
            return page.pmids + self._pages(term, lo, hi, datetype, ESEARCH_CAP, len(page.pmids))
        mid = lo + (hi - lo) // 2
        log.info("esearch window %s..%s holds %d results: splitting", lo, hi, page.count)
        return self._split(term, lo, mid, datetype, warnings) + self._split(
            term, mid + timedelta(days=1), hi, datetype, warnings
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
                mindate=f"{mindate or _EPOCH:%Y/%m/%d}",
                maxdate=f"{maxdate or self.today() + timedelta(days=1):%Y/%m/%d}",
            )
        if webenv:
            params["WebEnv"] = webenv
        return self._call("esearch.fcgi", params, parse_esearch, post=len(term) > 1500)

    # Fetching

    def fetch(self, pmids: Sequence[int], on_error: ErrorSink | None = None) -> Iterator[Article]:
        """Full records for `pmids`, batch_size per request (POSTed when the list is long).

        A record no parser may read, or an answer over the size limit, does not hold back the
        rest of its batch: see _isolate. The records left out are reported to `on_error`.
        """
        ids = list(dict.fromkeys(pmids))
        for i in range(0, len(ids), self.batch_size):
            batch = ids[i : i + self.batch_size]
            try:
                articles = self._fetch_batch(batch, on_error)
            except (UnreadableRecords, ResponseTooLarge) as exc:
                yield from self._isolate(batch, exc, on_error)
            else:
                yield from articles

    def _fetch_batch(self, batch: Sequence[int], on_error: ErrorSink | None) -> list[Article]:
        params = {
            "db": "pubmed",
            "id": ",".join(map(str, batch)),
            "rettype": "abstract",
            "retmode": "xml",
        }
        return self._call(
            "efetch.fcgi", params, _efetch_parser(on_error), post=len(batch) > _POST_ABOVE
        )

    def _isolate(
        self, batch: Sequence[int], first: SourceError, on_error: ErrorSink | None
    ) -> Iterator[Article]:
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
            self._left_out(batch[0], first, on_error)
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
                articles = self._fetch_batch(part, on_error)
            except (UnreadableRecords, ResponseTooLarge) as exc:
                if len(part) > 1:
                    stack += _halves(part)
                    continue
                bad.append(part[0])
                self._left_out(part[0], exc, on_error)
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

    # Feeds (PubMed RSS lives on NCBI's servers too, so it shares the limiter)

    def get_feed(self, url: str, etag: str | None, last_modified: str | None) -> FeedResponse:
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified

        def attempt() -> FeedResponse:
            resp = self._send("GET", url, None, headers, endpoint="rss")
            if resp.status == 304:
                return FeedResponse(304, b"", etag, last_modified)
            _raise_for_status(resp, url)
            # An HTML error page or a JSON error under 200 is a hiccup, as for E-utilities.
            _check_body(resp.body)
            return FeedResponse(
                200, resp.body, resp.headers.get("ETag"), resp.headers.get("Last-Modified")
            )

        return self._retrying(url, attempt)

    # The request loop

    def _call(
        self, endpoint: str, params: dict[str, Any], parse: Callable[[bytes], T], post: bool = False
    ) -> T:
        data = {**params, **self.identity}
        url = self.base_url + endpoint

        def attempt() -> T:
            resp = self._send("POST" if post else "GET", url, data, {}, endpoint=endpoint)
            _raise_for_status(resp, url)
            body = resp.body
            _check_body(body)
            error = ncbi_error(body)
            if error is not None:
                _raise_query_error(error)
            try:
                return parse(body)
            except XmlError as exc:  # a cut-off or garbled body: NCBI sends those under load
                raise RetryableError(str(exc)) from None

        return self._retrying(url, attempt)

    def _send(
        self,
        method: str,
        url: str,
        data: dict[str, Any] | None,
        headers: dict[str, str],
        endpoint: str,
    ) -> _Answer:
        self.limiter.wait()
        self.counters.count(endpoint)
        try:
            # Streamed, so that the size limit is enforced while reading, not after.
            if method == "POST":
                resp = self.session.post(
                    url, data=data, headers=headers, timeout=self.timeout, stream=True
                )
            else:
                resp = self.session.get(
                    url, params=data, headers=headers, timeout=self.timeout, stream=True
                )
            with resp:  # hands the connection back to the pool, or closes it mid-body
                return _Answer(resp.status_code, resp.headers, self._read_body(resp, url))
        except requests.Timeout:
            raise RetryableError(
                f"no answer from {_host(url)} within {self.timeout[1]:g}s",
                connection=True,
            ) from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
            # A body shorter than its Content-Length (urllib3's IncompleteRead) or garbled in
            # transit: the connection broke mid-answer, which asking again usually mends.
            raise RetryableError("the answer was cut off in transit") from None
        except requests.ConnectionError as exc:
            raise RetryableError(
                f"cannot connect to {_host(url)} ({_reason(exc)})", connection=True
            ) from None
        except requests.RequestException as exc:
            raise SourceError(f"request to {_bare(url)} failed: {_short(exc)}") from None

    def _read_body(self, resp: requests.Response, url: str) -> bytes:
        limit = self.max_response_bytes
        too_large = ResponseTooLarge(
            f"{_endpoint(url)}: the answer is larger than {self.max_response_mb:g} MB "
            "(the limit is [ncbi] max_response_mb)"
        )
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_content(_READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    def _retrying(self, url: str, attempt: Callable[[], T]) -> T:
        for n in range(self.retries + 1):
            try:
                return attempt()
            except RetryableError as exc:
                if n == self.retries:
                    kind = Unreachable if exc.connection else SourceError
                    raise kind(f"{_endpoint(url)}: gave up after {n + 1} tries: {exc}") from None
                delay = exc.retry_after
                if delay is None:
                    # Exponential backoff with full jitter, so parallel clients spread out.
                    delay = min(60.0, self.backoff * 2**n) * (0.5 + random.random() / 2)
                self.counters.retries += 1
                log.warning(
                    "%s: %s; retry %d/%d in %.1fs", _endpoint(url), exc, n + 1, self.retries, delay
                )
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def dated_term(term: str, ranges: Sequence[DateRange]) -> str:
    """`term` limited to records whose date of any of `ranges`' types falls in its range.

    E-utilities' datetype takes one date type, so a window over two (creation date OR MeSH
    date) is written in the term with PubMed's range syntax, "2026/11/01"[crdt] :
    "2026/11/16"[crdt] (https://pubmed.ncbi.nlm.nih.gov/help/#searching-by-date).
    """
    windows = " OR ".join(f'("{lo:%Y/%m/%d}"[{t}] : "{hi:%Y/%m/%d}"[{t}])' for t, lo, hi in ranges)
    return f"({term}) AND ({windows})"


def _efetch_parser(on_error: ErrorSink | None) -> Callable[[bytes], list[Article]]:
    def parse(body: bytes) -> list[Article]:
        if b"<PubmedArticleSet" not in body[:2000] and b"<MedlineCitationSet" not in body[:2000]:
            raise XmlError(f"efetch answered with something else: {_snippet(body[:120])}")
        try:
            return list(parse_articles(body, on_error))
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


def _raise_for_status(resp: _Answer, url: str) -> None:
    if resp.status in _RETRY_STATUS:
        raise RetryableError(
            f"HTTP {resp.status} {_snippet(resp.body)}",
            _retry_after(resp.headers.get("Retry-After")),
        )
    if resp.status >= 400:
        raise SourceError(f"HTTP {resp.status} from {_endpoint(url)}: {_snippet(resp.body)}")


def _check_body(body: bytes) -> None:
    """NCBI sometimes answers 200 with a JSON rate-limit error or an HTML error page."""
    head = body[:512].lstrip()
    if head.startswith(b"{") and b'"error"' in head:
        try:
            message = json.loads(body).get("error", "")
        except ValueError:
            message = _snippet(body)
        raise RetryableError(f"NCBI error: {message}")
    lower = head[:200].lower()
    if lower.startswith((b"<!doctype html", b"<html")):
        raise RetryableError(f"an HTML page instead of data: {_snippet(body)}")
    if not head:
        raise RetryableError("an empty body")


_WHOLE_ERROR = re.compile(rb"<(e\w+Result)>\s*<ERROR>(.*?)</ERROR>\s*</\1>", re.S)


def ncbi_error(body: bytes) -> str | None:
    """The message of an E-utilities answer that is only an error, in any utility's XML
    (<eSearchResult><ERROR>…) or JSON ({"esearchresult": {"ERROR": …}}); else None."""
    head = body[:4096].lstrip()
    if head.startswith(b"{"):
        try:
            data = json.loads(body)
        except ValueError:
            return None
        inner = next((v for k, v in data.items() if k.endswith("result")), data)
        if isinstance(inner, dict) and "ERROR" in inner and len(inner) == 1:
            return str(inner["ERROR"])
        return None
    m = _WHOLE_ERROR.search(head)
    return " ".join(m.group(2).decode("utf-8", "replace").split()) if m else None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def parse_esearch(body: bytes) -> SearchPage:
    """An esearch answer, XML or JSON, old DTD or new. An <ERROR> is a QueryError."""
    if body.lstrip().startswith(b"{"):
        return _parse_esearch_json(body)
    try:
        root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise XmlError(f"malformed esearch XML: {exc}") from None
    error = root.findtext("ERROR") if root.tag != "ERROR" else root.text
    if root.tag not in ("eSearchResult", "ERROR"):
        raise XmlError(f"esearch answered with <{root.tag}>")
    if error and root.find("Count") is None:
        _raise_query_error(error)
    errors = [f"{e.tag}: {e.text}" for e in root.iterfind("ErrorList/*") if e.text]
    warnings = [f"{w.tag}: {w.text}" for w in root.iterfind("WarningList/*") if w.text]
    return SearchPage(
        count=int(root.findtext("Count") or 0),
        pmids=[int(i.text) for i in root.iterfind("IdList/Id") if i.text],
        webenv=root.findtext("WebEnv"),
        query_key=root.findtext("QueryKey"),
        query_translation=root.findtext("QueryTranslation"),
        errors=errors,
        warnings=warnings,
    )


def _parse_esearch_json(body: bytes) -> SearchPage:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise XmlError(f"malformed esearch JSON: {exc}") from None
    result = data.get("esearchresult", data)
    if "ERROR" in result and "count" not in result:
        _raise_query_error(str(result["ERROR"]))
    errors = [
        f"{k}: {', '.join(map(str, v))}" for k, v in (result.get("errorlist") or {}).items() if v
    ]
    warnings = [
        f"{k}: {', '.join(map(str, v))}" for k, v in (result.get("warninglist") or {}).items() if v
    ]
    return SearchPage(
        count=int(result.get("count", 0)),
        pmids=[int(i) for i in result.get("idlist", [])],
        webenv=result.get("webenv"),
        query_key=result.get("querykey"),
        query_translation=result.get("querytranslation"),
        errors=errors,
        warnings=warnings,
    )


def _raise_query_error(message: str) -> None:
    text = " ".join(message.split())
    # Backend hiccups come as <ERROR> too; they pass when asked again.
    if any(s in text.lower() for s in ("temporarily", "try again", "timed out", "unavailable")):
        raise RetryableError(f"NCBI: {text}")
    raise QueryError(f"NCBI rejected the search: {text}")


def _endpoint(url: str) -> str:
    """The utility (esearch.fcgi) or the feed's last path segment: never the query string,
    which holds the API key."""
    parts = urlsplit(url)
    return parts.path.rstrip("/").rsplit("/", 1)[-1] or _host(url)


def _host(url: str) -> str:
    """host[:port], without the user:password@ a feed URL may carry."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def _bare(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{_host(url)}{parts.path}"


def _snippet(body: bytes) -> str:
    """The start of a body for an error line; NCBI echoes a rejected API key in it."""
    text = " ".join(body[:160].decode("utf-8", "replace").split())
    return redact(text) + ("…" if len(body) > 160 else "")


def _reason(exc: Exception) -> str:
    """The innermost cause of a requests connection error, without the URL it repeats."""
    text = str(exc)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "Temporary failure in name resolution",
        "Connection reset",
        "Network is unreachable",
        "Remote end closed connection",
        "No route to host",
    ):
        if marker in text:
            return marker.lower()
    return redact(text.rsplit(":", 1)[-1].strip(" ')\"")[:80]) or type(exc).__name__


def _short(exc: Exception) -> str:
    """requests' message without the URL it quotes (with its query string) nor the cause."""
    return redact(str(exc).split("(Caused by")[0].strip())[:200]
