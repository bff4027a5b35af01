"""A faithful fake of NCBI E-utilities and PubMed RSS, served over a real socket on 127.0.0.1.

What it imitates (https://www.ncbi.nlm.nih.gov/books/NBK25499/):
- esearch (XML and JSON): PubMed's term syntax read against each record's XML fields
  (tests/fakes/query.py), date windows (datetype crdt/edat/mhda with mindate/maxdate, or date
  ranges in the term such as "2026/11/01"[mhda] : "2026/11/16"[mhda]), retstart/retmax paging, the 9,999 cap ('retstart' cannot be larger than
  9998), usehistory=y with WebEnv/QueryKey, PhraseNotFound in an ErrorList, QueryTranslation.
- efetch: by id (GET or POST) and by WebEnv/query_key, PubmedArticleSet XML, with a
  DeleteCitation naming the records deleted from PubMed (`deleted`).
- esummary: DocSum XML for ids.
- elink, PubMed to PubMed (tests/fakes/elink.py): citing papers, references and similar articles
  from `graph` (tests/fakes/citations.py), by-id and merged link sets, neighbor_score, and
  neighbor_history onto the same history server esearch, efetch and esummary read; esearch with
  WebEnv and query_key searches within a stored set, as NCBI's does.
- PubMed RSS: /rss/search/<id>/ with pubmed:N guids, dc:identifier pmid:/doi:, links whose
  tracking query changes on every fetch, ETag and Last-Modified with 304 answers.
- Rate limiting: more than `rate_limit` requests (`rate_limit_with_key` with an api_key) in any
  sliding second, counted per API key or, without one, per client address as NCBI counts them,
  gets HTTP 429 with NCBI's JSON body; every answer carries X-RateLimit-Limit and
  X-RateLimit-Remaining, as NCBI's do. Every arrival's time is kept (`arrivals`, `peak`).
- A GET whose URL is longer than `max_url` (when set) gets HTTP 414, as a front end does.
- Faults on demand: 5xx, HTML error pages, truncated bodies, empty bodies, slow answers, JSON
  errors under 200, <ERROR> bodies, an expired WebEnv (the history server's "Unable to obtain
  query #1"), dropped connections, bodies shorter than their Content-Length, chunked bodies (no
  Content-Length at all), and for feeds malformed XML and items that carry no PMID.
- A hook on demand (`on_request`): called with each request's endpoint before it is answered,
  for a test to act on the world at a chosen moment (between efetch batches, say).
- Revised records on demand (`revise`): a record served differently from a moment on, as a
  paper is when PubMed links its retraction, erratum or journal version to it.
- Poisoned records on demand, per PMID (`poison`): an entity bomb, invalid UTF-8, nesting past
  libxml2's depth limit, or a title of any size (generated here, never stored in the repo).
It counts every request it serves so tests can assert request budgets.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from . import elink
from .citations import CitationGraph
from .jsonapi import LoopbackServer, serve
from .query import Indexed, compile_term, index

ESEARCH_CAP = 9999
RATE_LIMIT_BODY = (
    '{{"error":"API rate limit exceeded","api-key":"{ip}","count":"{count}","limit":"{limit}"}}'
)
RETSTART_ERROR = (
    "Search Backend failed: Exception:\n'retstart' cannot be larger than 9998. For PubMed, "
    "ESearch can only retrieve the first 9,999 records matching the query. To obtain more than "
    "9,999 PubMed records, consider using EDirect that contains additional logic to batch PubMed "
    "search results automatically so that an arbitrary number can be retrieved. For details see "
    "https://www.ncbi.nlm.nih.gov/books/NBK25499/"
)
# NCBI's answer (HTTP 400) to an api_key it does not know; it quotes the key back.
INVALID_KEY_BODY = (
    '{{"error":"API key invalid","api-key":"{key}","type":"invalid","status":"unknown"}}'
)
# What E-utilities answers, under HTTP 200, when its history server no longer holds a search
# (WebEnv expired, or the server lost it under load): shape and DOCTYPE (with NCBI's own
# "eEfetchResult" typo) as NCBI sends them for efetch; esearch answers its own root.
EXPIRED_WEBENV = (
    '<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE eEfetchResult PUBLIC "-//NLM//DTD efetch '
    '20131226//EN" "https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20131226/efetch.dtd">\n'
    "<{root}>\n\t<ERROR>Unable to obtain query #1</ERROR>\n</{root}>\n"
)
HTML_ERROR = (
    b"<!DOCTYPE html><html><head><title>Service unavailable</title></head><body>"
    b"<h1>NCBI</h1><p>The service is temporarily unavailable.</p></body></html>"
)
ARTICLE_SET_HEAD = (
    b'<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, '
    b'1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
    b"<PubmedArticleSet>\n"
)


@dataclass
class FakeRecord:
    pmid: int
    xml: bytes  # one <PubmedArticle> or <PubmedBookArticle>
    edat: date
    crdt: date
    text: str  # lowercased searchable text: title, abstract, MeSH, keywords
    title: str = ""
    doi: str | None = None
    # MeSH date: when MeSH headings were added (PubStatus "medline"); until then PubMed sets it
    # to the Entrez date.
    mhda: date | None = None
    _index: Indexed | None = field(default=None, repr=False, compare=False)

    def indexed(self) -> Indexed:
        """The record's searchable fields, read once from its XML."""
        if self._index is None:
            dates = {"crdt": self.crdt, "edat": self.edat, "mhda": self.mhda or self.edat}
            self._index = index(self.xml, self.text, dates)
        return self._index


@dataclass
class Fault:
    kind: str
    times: int = 1
    delay: float = 0.0
    retry_after: str | None = None
    message: str = ""


@dataclass(frozen=True)
class Poison:
    kind: str  # entity_bomb | bad_utf8 | deep | huge_title
    size: int = 0  # depth for deep, bytes for huge_title


# The classic "billion laughs": ten levels of ten references each.
_LAUGHS = '<!ENTITY lol0 "lol">' + "".join(
    f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
)


@dataclass
class Served:
    endpoint: str
    method: str
    params: dict[str, str]
    status: int
    ids: tuple[str, ...] = ()  # every id= parameter, in order (elink's by-id links send several)


@dataclass
class FakeNCBI:
    rate_limit: float | None = None  # None: no enforcement
    rate_limit_with_key: float = 10.0
    retry_after: str | None = None  # sent with rate-limit 429s when set
    records: dict[int, FakeRecord] = field(default_factory=dict)
    feeds: dict[str, list[int]] = field(default_factory=dict)
    served: list[Served] = field(default_factory=list)
    too_many: int = 0
    api_keys: set[str] | None = None  # when set, any other api_key gets NCBI's 400
    # Found by esearch, left out of efetch answers (deleted or not yet released records).
    withheld: set[int] = field(default_factory=set)
    # Deleted from PubMed: efetch answers a DeleteCitation naming them, after the records
    # (pubmed_250101.dtd: PubmedArticleSet ((PubmedArticle | PubmedBookArticle)+,
    # DeleteCitation?); DeleteCitation (PMID+)).
    deleted: set[int] = field(default_factory=set)
    # Called with the endpoint ('esearch', 'efetch', …) of each request before it is answered.
    on_request: Callable[[str], None] | None = None
    # Who cites whom (PMC's part answers elink) and what PubMed finds similar.
    graph: CitationGraph = field(default_factory=CitationGraph)
    # How elink answers a well-formed PMID it has no record of: "empty", "zero", "omit" or
    # "error" (tests/fakes/elink.py says when NCBI answered each way).
    elink_unknown: str = "empty"
    # A GET request line longer than this gets 414 (None: no limit).
    max_url: int | None = None

    def __post_init__(self) -> None:
        self._faults: dict[str, deque[Fault]] = {}
        self.poisons: dict[int, Poison] = {}
        self._history: dict[str, list[list[int]]] = {}
        self._windows: dict[str, list[float]] = {}
        # Who (an API key, else the client's address) → when each request arrived, 429s too.
        self.arrivals: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self._server: LoopbackServer | None = None
        self.feed_fetches = 0

    # Setting up

    def add(self, records: Iterable[FakeRecord]) -> None:
        for r in records:
            self.records[r.pmid] = r

    def revise(self, record: FakeRecord) -> None:
        """Serve a revised version of a record it already serves, from the next request on, as
        PubMed does when a retraction, erratum or new version is linked to a paper."""
        assert record.pmid in self.records, f"PMID {record.pmid} was never added"
        with self._lock:
            self.records[record.pmid] = record

    def fault(self, endpoint: str, kind: str, times: int = 1, **opts: Any) -> None:
        """Make the next `times` requests to `endpoint` ('esearch', 'efetch', 'rss', '*') fail."""
        self._faults.setdefault(endpoint, deque()).append(Fault(kind, times, **opts))

    def clear_faults(self) -> None:
        """The fault is over: every request from now on is answered normally."""
        with self._lock:
            self._faults.clear()

    def poison(self, pmid: int, kind: str, size: int = 0) -> None:
        """Serve `pmid`'s record spoiled in a way no safe XML parser accepts (or, for
        huge_title, with a title of `size` bytes). The record must have been added."""
        assert kind in ("entity_bomb", "bad_utf8", "deep", "huge_title"), kind
        self.poisons[pmid] = Poison(kind, size)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/entrez/eutils/"

    def feed_url(self, feed_id: str) -> str:
        return (
            self.base_url.replace("/entrez/eutils/", f"/rss/search/{feed_id}/")
            + "?limit=100&utm_campaign=pubmed-2&fc=20261101000000"
        )

    def start(self) -> FakeNCBI:
        fake = self

        class Handler(_Handler):
            ncbi = fake

        self._server = serve(Handler)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    # Counting

    def count(self, endpoint: str | None = None) -> int:
        return sum(1 for s in self.served if endpoint is None or s.endpoint == endpoint)

    def reset_counts(self) -> None:
        self.served.clear()
        self.too_many = 0
        self.arrivals.clear()

    def peak(self, who: str | None = None, window: float = 1.0) -> int:
        """The most requests that arrived within any `window` seconds, from `who` (an API key
        or a client address) or from anyone."""
        times = sorted(
            t for k, ts in list(self.arrivals.items()) if who is None or k == who for t in ts
        )
        most, first = 0, 0
        for last, t in enumerate(times):
            while t - times[first] >= window:
                first += 1
            most = max(most, last - first + 1)
        return most

    # Behaviour

    def take_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            for key in (endpoint, "*"):
                queue = self._faults.get(key)
                if queue:
                    fault = queue[0]
                    fault.times -= 1
                    if fault.times <= 0:
                        queue.popleft()
                    return fault
        return None

    def over_limit(self, who: str, has_key: bool, now: float) -> tuple[bool, int, float]:
        """Sliding one-second window per key (or address), as NCBI enforces it; `now` is when
        the request arrived."""
        limit = self.rate_limit_with_key if has_key else self.rate_limit
        with self._lock:
            self.arrivals.setdefault(who, []).append(now)
            if limit is None:
                return False, 0, 0
            # Kept in order of arrival: two handler threads may reach this in the other order.
            window = self._windows.setdefault(who, [])
            while window and now - window[0] >= 2.0:
                window.pop(0)
            bisect.insort(window, now)
            n = bisect.bisect_right(window, now) - bisect.bisect_right(window, now - 1.0)
        return n > limit, n, limit

    def search(
        self,
        term: str,
        datetype: str,
        mindate: date | None,
        maxdate: date | None,
        within: set[int] | None = None,
    ) -> tuple[list[int], list[str]]:
        """PMIDs matching `term` in the window, newest first, and the phrases found nowhere.

        The term may carry its own date ranges ("2026/11/01"[crdt] : "2026/11/16"[crdt]); the
        datetype/mindate/maxdate window, when given, applies on top of them. With `within` (a set
        on the history server) only those records are searched, and an empty term takes them all.
        """
        query = compile_term(term)
        records = list(self.records.values())
        match = query.match
        if within is not None:
            records = [r for r in records if r.pmid in within]
            if not term.strip():
                match = _everything
        missing = [text for text, m in query.terms if not any(m(r.indexed()) for r in records)]
        hits = []
        for r in records:
            when = r.indexed().dates.get(datetype, r.edat)
            if (mindate and when < mindate) or (maxdate and when > maxdate):
                continue
            if match(r.indexed()):
                hits.append(r)
        hits.sort(key=lambda r: (r.edat, r.pmid), reverse=True)
        return [r.pmid for r in hits], missing

    def elink_known(self) -> set[int]:
        """The PMIDs elink has a record of: the fake's records and every linked PMID."""
        return set(self.records) | self.graph.linked()

    def remember(self, webenv: str | None, pmids: list[int]) -> tuple[str, int]:
        with self._lock:
            if not webenv or webenv not in self._history:
                webenv = f"MCID_{uuid.uuid4().hex[:24]}"
                self._history[webenv] = []
            self._history[webenv].append(pmids)
            return webenv, len(self._history[webenv])

    def recall(self, webenv: str, query_key: str) -> list[int] | None:
        queries = self._history.get(webenv)
        if not queries or not query_key.isdigit() or not 1 <= int(query_key) <= len(queries):
            return None
        return queries[int(query_key) - 1]


class _Handler(BaseHTTPRequestHandler):
    ncbi: FakeNCBI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    arrived = 0.0  # when the request line was read (set per request)
    id_values: list[str] = []  # noqa: RUF012 (set per request, never mutated)
    limit_headers: dict[str, str] = {}  # noqa: RUF012 (likewise)

    def parse_request(self) -> bool:
        # A request arrives when its request line has been read, before its headers are
        # parsed: the rate is counted from then, as close to the wire as this server can be.
        self.arrived = time.monotonic()
        return super().parse_request()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        multi = parse_qs(parts.query, keep_blank_values=True)
        self.id_values = multi.get("id", [])
        if self.ncbi.max_url is not None and len(self.path) > self.ncbi.max_url:
            endpoint = parts.path.rsplit("/", 1)[-1].removesuffix(".fcgi")
            body = b"<html><body><h1>414 Request-URI Too Long</h1></body></html>"
            return self.reply(endpoint, _flat(multi), 414, body, "text/html")
        self.handle_request(parts.path, _flat(multi))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        form = parse_qs(body, keep_blank_values=True)
        self.id_values = query.get("id", []) + form.get("id", [])
        params = _flat(query)
        params.update(_flat(form))
        self.handle_request(parts.path, params)

    def handle_request(self, path: str, params: dict[str, str]) -> None:
        ncbi = self.ncbi
        if path.startswith("/rss/search/"):
            endpoint = "rss"
        else:
            endpoint = path.rsplit("/", 1)[-1].removesuffix(".fcgi")
        if ncbi.on_request is not None:
            ncbi.on_request(endpoint)
        key = params.get("api_key")
        if key is not None and ncbi.api_keys is not None and key not in ncbi.api_keys:
            body = INVALID_KEY_BODY.format(key=key).encode()
            return self.reply(endpoint, params, 400, body, "application/json")
        who = key if key is not None else self.client_address[0]
        limited, count, limit = ncbi.over_limit(who, key is not None, self.arrived)
        self.limit_headers = (
            {
                "X-RateLimit-Limit": str(int(limit)),
                "X-RateLimit-Remaining": str(max(0, int(limit) - count)),
            }
            if limit
            else {}
        )
        if limited:
            ncbi.too_many += 1
            body = RATE_LIMIT_BODY.format(ip=self.client_address[0], count=count, limit=int(limit))
            headers = {"Retry-After": ncbi.retry_after} if ncbi.retry_after else {}
            return self.reply(endpoint, params, 429, body.encode(), "application/json", headers)
        fault = ncbi.take_fault(endpoint)
        if fault is not None:
            if fault.kind == "reset":
                ncbi.served.append(Served(endpoint, self.command, params, 0))
                self.close_connection = True
                self.connection.close()
                return
            if fault.kind == "short":
                # Promise more than is sent, then hang up: urllib3's IncompleteRead.
                ncbi.served.append(Served(endpoint, self.command, params, 200))
                self.send_response(200)
                self.send_header("Content-Type", "text/xml; charset=UTF-8")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b'<?xml version="1.0" ?>\n<eSearchResult><Count>1')
                self.wfile.flush()
                self.close_connection = True
                self.connection.close()
                return
            if fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault.kind.startswith("status:"):
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                status = int(fault.kind[7:])
                return self.reply(endpoint, params, status, HTML_ERROR, "text/html", headers)
            elif fault.kind == "html":
                return self.reply(endpoint, params, 200, HTML_ERROR, "text/html")
            elif fault.kind == "ratelimit":
                body = RATE_LIMIT_BODY.format(ip=self.client_address[0], count=4, limit=3)
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return self.reply(endpoint, params, 429, body.encode(), "application/json", headers)
            elif fault.kind == "ratelimit200":
                body = RATE_LIMIT_BODY.format(ip=self.client_address[0], count=4, limit=3)
                return self.reply(endpoint, params, 200, body.encode(), "application/json")
            elif fault.kind == "error" and endpoint == "elink":
                json_mode = params.get("retmode") == "json"
                _, body, ctype, _ = elink.render_error(fault.message or elink.OUTAGE, json_mode)
                return self.reply(endpoint, params, 200, body, ctype)
            elif fault.kind == "error":
                body = _error_xml("eSearchResult", fault.message or "Invalid query")
                return self.reply(endpoint, params, 200, body, "text/xml")
            elif fault.kind == "empty":
                return self.reply(endpoint, params, 200, b"", "text/xml")
            elif fault.kind == "errorlist":
                # Nothing found, the term "not found" (biopython's esearch8.xml shape): what a
                # backend that lost its index for a moment answers.
                words = re.findall(r"[A-Za-z]\w+", params.get("term", ""))
                body = _empty_search(fault.message or (words[0] if words else "term"))
                return self.reply(endpoint, params, 200, body, "text/xml")
            elif fault.kind == "expired_webenv":
                roots = {"efetch": "eFetchResult", "elink": "eLinkResult"}
                root = roots.get(endpoint, "eSearchResult")
                body = EXPIRED_WEBENV.format(root=root).encode()
                return self.reply(endpoint, params, 200, body, "text/xml")
        handler = {
            "esearch": self.esearch,
            "efetch": self.efetch,
            "esummary": self.esummary,
            "elink": self.elink,
            "rss": self.rss,
        }.get(endpoint)
        if handler is None:
            return self.reply(endpoint, params, 404, b"not found", "text/plain")
        status, body, ctype, headers = handler(path, params)
        if fault is not None and fault.kind == "truncated":
            body = body[: max(1, len(body) // 2)]
        elif fault is not None and fault.kind == "malformed":
            # Well-formed no more, yet whole: the first closing tag after the middle is dropped.
            mid = body.find(b"</", len(body) // 2)
            body = body[:mid] + body[body.find(b">", mid) + 1 :] if mid > 0 else body + b"<"
        elif fault is not None and fault.kind == "noid" and endpoint == "rss":
            # The feed as a site that is not PubMed would write it: no pubmed: guid, no pmid:
            # identifier, links elsewhere; a different body, so a different ETag.
            body = _without_pmids(body)
            headers = {**headers, "ETag": headers.get("ETag", "").rstrip('"') + '-noid"'}
        chunked = fault is not None and fault.kind == "chunked"
        self.reply(endpoint, params, status, body, ctype, headers, chunked=chunked)

    def reply(
        self,
        endpoint: str,
        params: dict[str, str],
        status: int,
        body: bytes,
        ctype: str,
        headers: dict[str, str] | None = None,
        *,
        chunked: bool = False,
    ) -> None:
        self.ncbi.served.append(
            Served(endpoint, self.command, params, status, tuple(self.id_values))
        )
        self.send_response(status)
        self.send_header("Content-Type", f"{ctype}; charset=UTF-8")
        for k, v in self.limit_headers.items():
            self.send_header(k, v)
        if chunked:  # no Content-Length: the client learns the size only by reading
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            if not chunked:
                self.wfile.write(body)
                return
            for i in range(0, len(body), 1 << 16):
                piece = body[i : i + (1 << 16)]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client stopped reading (a size limit): fine
            self.close_connection = True

    def esearch(self, path: str, p: dict[str, str]) -> tuple[int, bytes, str, dict[str, str]]:
        json_mode = p.get("retmode") == "json"
        if p.get("db", "pubmed") != "pubmed":
            return (
                200,
                _error_xml("eSearchResult", "Invalid db name specified: " + p["db"]),
                "text/xml",
                {},
            )
        term = p.get("term", "")
        retstart, retmax = int(p.get("retstart") or 0), int(p.get("retmax") or 20)
        if retstart > ESEARCH_CAP - 1:
            return 200, _error_xml("eSearchResult", RETSTART_ERROR), "text/xml", {}
        mindate, maxdate = _day(p.get("mindate")), _day(p.get("maxdate"))
        if not (mindate and maxdate):  # NCBI ignores a window unless both bounds are given
            mindate = maxdate = None
        within = None
        if p.get("WebEnv") and p.get("query_key"):
            # "ESearch will find the intersection of the set specified by query_key and the set
            # retrieved by the query in term" (NBK25499, ESearch's query_key).
            stored = self.ncbi.recall(p["WebEnv"], p["query_key"])
            if stored is None:
                body = EXPIRED_WEBENV.format(root="eSearchResult").encode()
                return 200, body, "text/xml", {}
            within = set(stored)
        pmids, missing = self.ncbi.search(
            term, p.get("datetype", "edat"), mindate, maxdate, within=within
        )
        webenv, key = (None, 0)
        if p.get("usehistory") == "y":
            webenv, key = self.ncbi.remember(p.get("WebEnv"), pmids)
        page = pmids[retstart : min(retstart + retmax, ESEARCH_CAP)]
        translation = " ".join(term.split())
        if json_mode:
            result: dict[str, Any] = {
                "count": str(len(pmids)),
                "retmax": str(len(page)),
                "retstart": str(retstart),
                "idlist": [str(i) for i in page],
                "translationset": [],
                "querytranslation": translation,
            }
            if webenv:
                result.update(querykey=str(key), webenv=webenv)
            if missing:
                result["errorlist"] = {"phrasesnotfound": missing, "fieldsnotfound": []}
            body = json.dumps(
                {"header": {"type": "esearch", "version": "0.3"}, "esearchresult": result}
            ).encode()
            return 200, body, "application/json", {}
        parts = [
            f"<Count>{len(pmids)}</Count><RetMax>{len(page)}</RetMax>"
            f"<RetStart>{retstart}</RetStart>"
        ]
        if webenv:
            parts.append(f"<QueryKey>{key}</QueryKey><WebEnv>{webenv}</WebEnv>")
        parts.append("<IdList>" + "".join(f"<Id>{i}</Id>" for i in page) + "</IdList>")
        parts.append(f"<TranslationSet/><QueryTranslation>{escape(translation)}</QueryTranslation>")
        if missing:
            parts.append(
                "<ErrorList>"
                + "".join(f"<PhraseNotFound>{escape(m)}</PhraseNotFound>" for m in missing)
                + "</ErrorList>"
            )
            parts.append(
                "<WarningList><OutputMessage>No items found.</OutputMessage></WarningList>"
            )
        body = (
            '<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE eSearchResult PUBLIC '
            '"-//NLM//DTD esearch 20060628//EN" '
            '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">\n'
            f"<eSearchResult>{''.join(parts)}</eSearchResult>\n"
        )
        return 200, body.encode(), "text/xml", {}

    def _ids(self, p: dict[str, str]) -> list[int] | None:
        if p.get("WebEnv") and p.get("query_key"):
            found = self.ncbi.recall(p["WebEnv"], p["query_key"])
            if found is None:
                return None
            start, count = int(p.get("retstart") or 0), int(p.get("retmax") or 20)
            return found[start : start + count]
        return [int(i) for i in re.split(r"[,\s]+", p.get("id", "")) if i.isdigit()]

    def efetch(self, path: str, p: dict[str, str]) -> tuple[int, bytes, str, dict[str, str]]:
        ids = self._ids(p)
        if ids is None:
            return 200, _error_xml("eFetchResult", "Unable to obtain query #1"), "text/xml", {}
        records = []
        head = ARTICLE_SET_HEAD
        gone = [i for i in ids if i in self.ncbi.deleted]
        for i in ids:
            if i not in self.ncbi.records or i in self.ncbi.withheld or i in self.ncbi.deleted:
                continue
            xml = self.ncbi.records[i].xml
            poison = self.ncbi.poisons.get(i)
            if poison is not None:
                xml = _spoil(xml, poison)
                if poison.kind == "entity_bomb":
                    # The declarations go in the document's internal subset, as a hostile
                    # server would send them; the record only refers to them.
                    head = head.replace(
                        b'pubmed_250101.dtd">', f'pubmed_250101.dtd" [{_LAUGHS}]>'.encode()
                    )
            records.append(xml)
        if gone:
            pmids = "".join(f'<PMID Version="1">{i}</PMID>\n' for i in gone)
            records.append(f"<DeleteCitation>\n{pmids}</DeleteCitation>".encode())
        body = head + b"\n".join(records) + b"\n</PubmedArticleSet>\n"
        return 200, body, "text/xml", {}

    def elink(self, path: str, p: dict[str, str]) -> tuple[int, bytes, str, dict[str, str]]:
        return elink.answer(self.ncbi, p, self.id_values)

    def esummary(self, path: str, p: dict[str, str]) -> tuple[int, bytes, str, dict[str, str]]:
        ids = self._ids(p)
        if not ids:
            return 200, _error_xml("eSummaryResult", "Empty id list - nothing todo"), "text/xml", {}
        docs = []
        for i in ids:
            r = self.ncbi.records.get(i)
            if r is None:
                docs.append(f"<ERROR>UID={i}: cannot get document summary</ERROR>")
                continue
            docs.append(
                f'<DocSum><Id>{i}</Id><Item Name="EPubDate" Type="String">{r.edat:%Y %b %d}'
                f'</Item><Item Name="Title" Type="String">{escape(r.title)}</Item>'
                f'<Item Name="DOI" Type="String">{escape(r.doi or "")}</Item></DocSum>'
            )
        body = '<?xml version="1.0" ?>\n<eSummaryResult>' + "".join(docs) + "</eSummaryResult>"
        return 200, body.encode(), "text/xml", {}

    def rss(self, path: str, p: dict[str, str]) -> tuple[int, bytes, str, dict[str, str]]:
        feed_id = path.strip("/").split("/")[-1]
        pmids = self.ncbi.feeds.get(feed_id)
        if pmids is None:
            return 404, b"<html><body>Feed not found</body></html>", "text/html", {}
        limit = int(p.get("limit") or 15)
        shown = pmids[:limit]
        etag = '"' + hashlib.sha1(",".join(map(str, shown)).encode()).hexdigest()[:16] + '"'
        stamp = datetime(2026, 1, 1, tzinfo=UTC).timestamp() + sum(shown) % 100000
        last_modified = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(stamp))
        headers = {"ETag": etag, "Last-Modified": last_modified}
        if self.headers.get("If-None-Match") == etag:
            return 304, b"", "application/rss+xml", headers
        self.ncbi.feed_fetches += 1
        body = render_feed(
            feed_id,
            [self.ncbi.records[i] for i in shown if i in self.ncbi.records],
            self.ncbi.feed_fetches,
        )
        return 200, body, "application/rss+xml", headers


def render_feed(feed_id: str, records: list[FakeRecord], fetch_no: int) -> bytes:
    """A feed in the schema pubmed.ncbi.nlm.nih.gov serves; `fc` in links changes per fetch."""
    fc = f"2026110{fetch_no % 10}{fetch_no:06d}"
    items = []
    for r in records:
        link = (
            f"https://pubmed.ncbi.nlm.nih.gov/{r.pmid}/?utm_source=Other&amp;utm_medium=rss"
            f"&amp;utm_campaign=pubmed-2&amp;utm_content={feed_id}&amp;fc={fc}"
            f"&amp;ff={fc}&amp;v=2.18.0"
        )
        doi = f"\n      <dc:identifier>doi:{escape(r.doi)}</dc:identifier>" if r.doi else ""
        items.append(f"""    <item>
      <title>{escape(r.title)}</title>
      <link>{link}</link>
      <description>&lt;p&gt;{escape(escape(r.title))}&lt;/p&gt;</description>
      <dc:creator>Fake A</dc:creator>
      <dc:date>{r.edat.isoformat()}</dc:date>
      <dc:source>Fake J</dc:source>
      <dc:identifier>pmid:{r.pmid}</dc:identifier>{doi}
      <guid isPermaLink="false">pubmed:{r.pmid}</guid>
    </item>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/" version="2.0">
  <channel>
    <title>pubmed: {escape(feed_id)}</title>
    <link>https://pubmed.ncbi.nlm.nih.gov/rss/search/{feed_id}/?limit=15&amp;utm_campaign=pubmed-2&amp;fc={fc}</link>
    <description>NCBI: db=pubmed; Term={escape(feed_id)}</description>
    <language>en</language>
    <docs>http://blogs.law.harvard.edu/tech/rss</docs>
    <ttl>120</ttl>
{chr(10).join(items)}
  </channel>
</rss>
""".encode()


def _everything(_record: Indexed) -> bool:
    return True


def _empty_search(phrase: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8" ?>\n<eSearchResult><Count>0</Count><RetMax>0</RetMax>'
        f"<RetStart>0</RetStart><IdList/><TranslationSet/><QueryTranslation>{escape(phrase)}"
        f"</QueryTranslation><ErrorList><PhraseNotFound>{escape(phrase)}</PhraseNotFound>"
        "</ErrorList><WarningList><OutputMessage>No items found.</OutputMessage></WarningList>"
        "</eSearchResult>\n"
    ).encode()


def _without_pmids(feed: bytes) -> bytes:
    feed = re.sub(rb"\s*<dc:identifier>pmid:\d+</dc:identifier>", b"", feed)
    feed = re.sub(rb"<guid[^>]*>pubmed:(\d+)</guid>", rb"<guid>urn:item:\1</guid>", feed)
    return feed.replace(b"https://pubmed.ncbi.nlm.nih.gov/", b"https://journal.example.org/a/")


def _spoil(xml: bytes, poison: Poison) -> bytes:
    title = {
        "entity_bomb": lambda: b"&lol9;",
        "bad_utf8": lambda: b"Invalid \xff\xfe UTF-8",
        "deep": lambda: b"<i>" * poison.size + b"deep" + b"</i>" * poison.size,
        "huge_title": lambda: b"T" * poison.size,
    }[poison.kind]()
    return re.sub(
        rb"<ArticleTitle>.*?</ArticleTitle>",
        lambda _m: b"<ArticleTitle>" + title + b"</ArticleTitle>",
        xml,
        count=1,
        flags=re.S,
    )


def _error_xml(root: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8" ?>\n<{root}><ERROR>{escape(message)}</ERROR>'
        f"</{root}>\n"
    ).encode()


def _flat(q: dict[str, list[str]]) -> dict[str, str]:
    return {k: v[-1] for k, v in q.items()}


def _day(text: str | None) -> date | None:
    if not text:
        return None
    parts = [int(x) for x in re.split(r"[/-]", text) if x.isdigit()]
    if not parts:
        return None
    return date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
