"""The one HTTP layer every source uses: one session, a pace per host taken from a rate budget
(shared by every process on a store, watcher/rate.py), retries with backoff and Retry-After,
conditional GET, and requests' exceptions turned into ours.

Sources say what a usable answer is (a `check` that raises RetryableError for a body worth asking
for again); this module says how to ask. No source imports another.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests

from watcher.errors import ResponseTooLarge, SourceError, Unreachable
from watcher.rate import LocalBudget, Margin, Pace, RateBudget, budget_key, wait_for_slot
from watcher.redact import redact

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
# A polite pace for hosts nobody gave a limit for.
DEFAULT_RATE = 3.0
# Bodies are read in pieces of this size, so a body past the size limit is never held whole.
_READ_CHUNK = 1 << 16
# Typical efetch XML is ~10 KB per record (median of the real records in the shared corpus), so a
# 10,000-record batch (efetch's cap) is ~100 MB; a larger efetch answer is split, not lost.
DEFAULT_MAX_RESPONSE_MB = 128


class RetryableError(SourceError):
    """A response worth asking for again (429, 5xx, an error page, a cut-off body)."""

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        connection: bool = False,
        throttled: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.connection = connection  # the host did not answer at all
        self.throttled = throttled  # the host said we asked too fast (429, or its 200 twin)


@dataclass
class Counters:
    """What this client spent: tests assert budgets on it, logs report it."""

    requests: int = 0
    retries: int = 0
    isolation_requests: int = 0  # efetches spent splitting batches around unreadable records
    # A poll searches on several threads at once: what one search cost is its thread's count.
    _mine: threading.local = field(default_factory=threading.local, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, endpoint: str) -> None:
        with self._lock:
            self.requests += 1
        self._mine.requests = self.mine + 1

    @property
    def mine(self) -> int:
        """The requests made on the calling thread."""
        n: int = getattr(self._mine, "requests", 0)
        return n


@dataclass(frozen=True)
class Answer:
    """A response read whole (within the size limit), its connection already back in the pool."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class ConditionalResponse:
    status: int  # 200 or 304
    body: bytes
    etag: str | None
    last_modified: str | None


class Http:
    """One per process: every request of every source goes through its session, its per-host
    paces (slots taken from `budget`, which other processes on the store may share) and its
    retry loop."""

    def __init__(
        self,
        *,
        user_agent: str,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 1.0,
        rates: Mapping[str, float] | None = None,
        default_rate: float = DEFAULT_RATE,
        max_response_mb: float = DEFAULT_MAX_RESPONSE_MB,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        budget: RateBudget | None = None,
    ) -> None:
        # (connect, read): a dead host fails fast, a slow answer of 500 records may take a while.
        self.timeout = (min(10.0, timeout), timeout)
        self.retries = retries
        self.backoff = backoff
        self.max_response_mb = max_response_mb
        self.max_response_bytes = int(max_response_mb * 1024 * 1024)
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self.counters = Counters()
        self.sleep = sleep
        self.default_rate = default_rate
        self.budget = budget or LocalBudget()
        # Each host's budget key and rate; its pace is those with the key's current margin.
        self._paces: dict[str, tuple[str, float]] = {}
        self._margins: dict[str, Margin] = {}
        self._lock = threading.Lock()
        for host, rate in (rates or {}).items():
            self.set_rate(host, rate)

    def set_rate(self, host: str, rate: float, account: str | None = None) -> None:
        """Limit `host` (and, for a domain such as ncbi.nlm.nih.gov, every host under it) to
        `rate` requests per second, shared by every source that asks it and, through the
        budget, by every process on the store. `account` (an API key) is what the host counts
        on besides: its own budget, never written out in clear."""
        host = host.lower()
        with self._lock:
            self._paces[host] = (budget_key(host, account), rate)

    def limiter(self, url: str) -> Pace:
        """The pace of `url`'s host (its own, its domain's, or the polite default), spread over
        the period its margin stands at now."""
        with self._lock:
            key, rate = self._pace_of(url)
            return Pace.of(key, rate, self._margins.setdefault(key, Margin()).period)

    def _pace_of(self, url: str) -> tuple[str, float]:
        host = (urlsplit(url).hostname or "").lower()
        parts = host.split(".")
        for i in range(len(parts)):
            found = self._paces.get(".".join(parts[i:]))
            if found is not None:
                return found
        return self._paces.setdefault(host, (host, self.default_rate))

    def _answered(self, url: str, throttled: bool) -> None:
        """Tell the margin of `url`'s budget how the host took a request."""
        with self._lock:
            margin = self._margins.setdefault(self._pace_of(url)[0], Margin())
            if throttled:
                margin.throttled()
            else:
                margin.answered()

    def call(
        self,
        url: str,
        check: Callable[[Answer], T],
        *,
        params: Mapping[str, Any] | None = None,
        post: bool = False,
        headers: Mapping[str, str] | None = None,
        what: str | None = None,
    ) -> T:
        """GET (or POST) `url` until `check` accepts the answer or the retries run out. `what`
        names the request in errors and logs (default: the URL's last path segment)."""

        def attempt() -> T:
            resp = self.send("POST" if post else "GET", url, params, headers or {})
            raise_for_status(resp, url, what)
            return check(resp)

        return self.retrying(url, attempt, what)

    def get_conditional(
        self,
        url: str,
        etag: str | None,
        last_modified: str | None,
        check: Callable[[bytes], None] | None = None,
        what: str | None = None,
    ) -> ConditionalResponse:
        """GET `url` with If-None-Match / If-Modified-Since: an unchanged resource costs a 304."""
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified

        def attempt() -> ConditionalResponse:
            resp = self.send("GET", url, None, headers)
            if resp.status == 304:
                return ConditionalResponse(304, b"", etag, last_modified)
            raise_for_status(resp, url, what)
            if check is not None:
                check(resp.body)
            return ConditionalResponse(
                200, resp.body, resp.headers.get("ETag"), resp.headers.get("Last-Modified")
            )

        return self.retrying(url, attempt, what)

    def send(
        self,
        method: str,
        url: str,
        data: Mapping[str, Any] | None,
        headers: Mapping[str, str],
    ) -> Answer:
        # Built before the slot is taken (what requests' Session.request does, in two steps), so
        # that between the slot and the bytes on the wire there is as little as can be: every
        # millisecond there is one by which a busy machine can push this request into the
        # next request's second at the host.
        prepared = self.session.prepare_request(
            requests.Request(
                method,
                url,
                params=None if method == "POST" else data,
                data=data if method == "POST" else None,
                headers=dict(headers),
            )
        )
        # Streamed, so that the size limit is enforced while reading, not after.
        settings = self.session.merge_environment_settings(prepared.url, {}, True, None, None)
        wait_for_slot(self.budget, self.limiter(url), self.sleep)
        self.counters.count(endpoint(url))
        try:
            resp = self.session.send(prepared, timeout=self.timeout, **settings)
            with resp:  # hands the connection back to the pool, or closes it mid-body
                return Answer(resp.status_code, resp.headers, self._read_body(resp, url))
        except requests.Timeout:
            raise RetryableError(
                f"no answer from {host(url)} within {self.timeout[1]:g}s",
                connection=True,
            ) from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
            # A body shorter than its Content-Length (urllib3's IncompleteRead) or garbled in
            # transit: the connection broke mid-answer, which asking again usually mends.
            raise RetryableError("the answer was cut off in transit") from None
        except requests.ConnectionError as exc:
            raise RetryableError(
                f"cannot connect to {host(url)} ({_reason(exc)})", connection=True
            ) from None
        except requests.RequestException as exc:
            raise SourceError(f"request to {_bare(url)} failed: {_short(exc)}") from None

    def _read_body(self, resp: requests.Response, url: str) -> bytes:
        limit = self.max_response_bytes
        too_large = ResponseTooLarge(
            f"{endpoint(url)}: the answer is larger than {self.max_response_mb:g} MB "
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

    def retrying(self, url: str, attempt: Callable[[], T], what: str | None = None) -> T:
        name = what or endpoint(url)
        for n in range(self.retries + 1):
            try:
                result = attempt()
            except RetryableError as exc:
                if exc.throttled:
                    self._answered(url, throttled=True)
                if n == self.retries:
                    kind = Unreachable if exc.connection else SourceError
                    raise kind(f"{name}: gave up after {n + 1} tries: {exc}") from None
                delay = exc.retry_after
                if delay is None:
                    # Exponential backoff with full jitter, so parallel clients spread out.
                    delay = min(60.0, self.backoff * 2**n) * (0.5 + random.random() / 2)
                self.counters.retries += 1
                log.warning("%s: %s; retry %d/%d in %.1fs", name, exc, n + 1, self.retries, delay)
                self.sleep(delay)
            else:
                self._answered(url, throttled=False)
                return result
        raise AssertionError("unreachable")  # pragma: no cover


def raise_for_status(resp: Answer, url: str, what: str | None = None) -> None:
    if resp.status in RETRY_STATUS:
        raise RetryableError(
            f"HTTP {resp.status} {snippet(resp.body)}",
            _retry_after(resp.headers.get("Retry-After")),
            throttled=resp.status == 429,
        )
    if resp.status >= 400:
        raise SourceError(f"HTTP {resp.status} from {what or endpoint(url)}: {snippet(resp.body)}")


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


def endpoint(url: str) -> str:
    """The utility (esearch.fcgi) or the feed's last path segment: never the query string,
    which holds the API key."""
    parts = urlsplit(url)
    return parts.path.rstrip("/").rsplit("/", 1)[-1] or host(url)


def host(url: str) -> str:
    """host[:port], without the user:password@ a feed URL may carry."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def _bare(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{host(url)}{parts.path}"


def snippet(body: bytes) -> str:
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
