"""A PubMed RSS feed → the PMIDs it lists. The full records then come through efetch, so a feed's
paper is as complete as a search's. The HTTP part is the shared layer's (sources/http.py), so a
feed on an NCBI host counts against NCBI's rate limit like any E-utilities request.

PubMed's item links carry tracking parameters (utm_*, fc=…) that change on every fetch, so an item
is identified by its PMID, never by its URL.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import feedparser
from lxml import etree

from watcher.errors import FeedError
from watcher.identity import pmid_key
from watcher.models import PollState
from watcher.sources.base import Discovery, Records
from watcher.sources.eutils_answers import check_body
from watcher.sources.http import Http, RetryableError, endpoint
from watcher.subscriptions import Subscription

log = logging.getLogger(__name__)

_GUID = re.compile(r"^\s*pubmed:(\d+)\s*$", re.I)
_DC_PMID = re.compile(r"\bpmid:\s*(\d+)", re.I)
_LINK_PATH = re.compile(r"^/(\d+)/?$")
_DC_IDENTIFIER = "{http://purl.org/dc/elements/1.1/}identifier"
# A feed's root element opening and closing (RSS, Atom, RSS 1.0's rdf:RDF).
_FEED_START = re.compile(rb"<(?:rss|feed|rdf:RDF)[\s>]")
_FEED_END = re.compile(rb"</(?:rss|feed|rdf:RDF)>\s*$")


@dataclass(frozen=True)
class FeedResult:
    pmids: list[int]
    not_modified: bool
    etag: str | None
    last_modified: str | None
    title: str | None = None


def read_feed(
    http: Http, url: str, etag: str | None = None, last_modified: str | None = None
) -> FeedResult:
    """Fetch `url` (conditionally: an unchanged feed costs one 304) and extract its PMIDs."""
    # An HTML error page, a JSON error under 200 or a cut-off feed is a hiccup, as for
    # E-utilities.
    resp = http.get_conditional(
        url, etag, last_modified, check=check_feed, what=f"feed {endpoint(url)}"
    )
    if resp.status == 304:
        return FeedResult([], True, etag, last_modified)
    pmids, title, error = _read(resp.body, url)
    if error is None:
        return FeedResult(pmids, False, resp.etag, resp.last_modified, title)
    # Read leniently, a malformed feed may have lost items; its validators would make the next
    # poll a 304 that never brings them. Without them, the next poll reads it whole.
    log.warning(
        "feed %s is not well-formed XML (%s): read leniently, %d PMIDs; fetched whole again "
        "at the next poll",
        endpoint(url),
        error,
        len(pmids),
    )
    return FeedResult(pmids, False, None, None, title)


def check_feed(body: bytes) -> None:
    """What is worth asking for again: an error page (check_body), or a feed whose XML stops
    before the feed does (cut off in transit or by the server)."""
    check_body(body)
    if _FEED_START.search(body[:2048]) and not _FEED_END.search(body[-256:]):
        error = syntax_error(body)
        if error is not None:
            raise RetryableError(f"the feed was cut off ({error})")


def syntax_error(body: bytes) -> str | None:
    """Why `body` is not well-formed XML, or None when it is."""
    try:
        etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        return str(exc)
    return None


def parse_feed(body: bytes, url: str = "feed") -> tuple[list[int], str | None]:
    """The feed's PMIDs, in order and once each, and its title."""
    pmids, title, _ = _read(body, url)
    return pmids, title


def _read(body: bytes, url: str) -> tuple[list[int], str | None, str | None]:
    """parse_feed's PMIDs and title, and why the feed is not well-formed XML (None when it is)."""
    feed = feedparser.parse(body)
    version = feed.get("version") or ""
    if not version and not feed.entries:
        reason = getattr(feed.get("bozo_exception"), "getMessage", lambda: None)() or str(
            feed.get("bozo_exception") or "no RSS or Atom elements"
        )
        raise FeedError(f"{url} is not a feed: {reason}")
    identifiers, error = _all_dc_identifiers(body, len(feed.entries))
    pmids: dict[int, None] = {}
    without = 0
    for entry, ids in zip(feed.entries, identifiers, strict=True):
        pmid = entry_pmid(entry, ids)
        if pmid is not None:
            pmids[pmid] = None
        else:
            without += 1
    if without and not pmids:
        # Nothing here can be fetched from PubMed; taken as an empty feed, its validators would
        # hide the papers once the feed names them again (a 304).
        raise FeedError(
            f"{url}: none of its {without} items carries a PMID (a pubmed:N guid, a pmid:N "
            "dc:identifier or a PubMed link); is it a PubMed feed?"
        )
    if without:
        log.warning("%s: %d of %d items carry no PMID; skipped", url, without, len(feed.entries))
    return list(pmids), feed.feed.get("title"), error


def entry_pmid(entry: dict, identifiers: list[str]) -> int | None:  # type: ignore[type-arg]
    """guid `pubmed:N`, then dc:identifier `pmid:N`, then a link path `/N/` on a PubMed host."""
    m = _GUID.match(entry.get("id") or "")
    if m:
        return int(m.group(1))
    for value in [*identifiers, entry.get("dc_identifier") or ""]:
        m = _DC_PMID.search(value)
        if m:
            return int(m.group(1))
    link = entry.get("link") or ""
    parts = urlsplit(link)
    m = _LINK_PATH.match(parts.path)
    if m and parts.hostname and "pubmed" in parts.hostname:
        return int(m.group(1))
    return None


def _all_dc_identifiers(body: bytes, n_entries: int) -> tuple[list[list[str]], str | None]:
    """Every dc:identifier of every item (feedparser keeps only an item's last one, and PubMed
    writes two: pmid:… then doi:…), and the first XML syntax error the same parse met."""
    empty: list[list[str]] = [[] for _ in range(n_entries)]
    parser = etree.XMLParser(resolve_entities=False, no_network=True, recover=True)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        return empty, str(exc)
    errors = parser.error_log.filter_from_errors()
    error = (
        f"{errors[0].message}, line {errors[0].line}, column {errors[0].column}" if errors else None
    )
    if root is None:
        return empty, error or "no XML element"
    items = [[(x.text or "") for x in item.iter(_DC_IDENTIFIER)] for item in root.iter("item")]
    return (items if len(items) == n_entries else empty), error


class PubmedFeed:
    """A PubMed RSS subscription: the feed lists PMIDs (an unchanged feed costs one 304); the
    records then come through `records` (efetch)."""

    def __init__(self, http: Http, records: Records) -> None:
        self.http = http
        self.records = records

    def host(self, sub: Subscription) -> str:
        return urlsplit(sub.rss or "").netloc

    def find(self, sub: Subscription, state: PollState | None, now: datetime) -> Discovery:
        assert sub.rss is not None
        feed = read_feed(
            self.http,
            sub.rss,
            state.etag if state else None,
            state.last_modified if state else None,
        )
        items = [pmid_key(p) for p in feed.pmids]
        return Discovery(items, "rss", etag=feed.etag, last_modified=feed.last_modified)
