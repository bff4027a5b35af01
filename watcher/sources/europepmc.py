"""A Europe PMC search subscription (https://europepmc.org/RestfulWebService): preprints by
default (SRC:PPR), any source when the query names one. The search's `core` answer carries the
whole record, so what it finds is stored as it comes, without a second fetch.

One search per poll over a window of first-index or update dates that reaches back behind the
last one (as PubMed's); pages follow cursorMark/nextCursorMark, up to 1,000 records each.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from watcher.errors import RecordError
from watcher.identity import ItemKey, key, split
from watcher.models import AbstractSection, Article, Author, PollState, Subscription
from watcher.sources.base import Discovery
from watcher.sources.endpoints import EUROPEPMC_BASE_URL, EUROPEPMC_RATE
from watcher.sources.http import Answer, Http
from watcher.sources.json_api import JsonApi, following, json_object, listed, skipped, total
from watcher.sources.json_fields import JsonObject, number, obj, objects, text, texts, token
from watcher.sources.pubmed_xml import DeletionSink, ErrorSink

log = logging.getLogger(__name__)

PAGE_SIZE = 1000  # the search's largest pageSize
_SRC = re.compile(r"\bSRC\s*:", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]+>")
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
    if article.pmid is not None:
        return f"pmid:{article.pmid}"
    return key("ppr", article.ppr) if article.ppr else key("doi", article.doi or "")


def _json(answer: Answer) -> dict[str, Any]:
    return json_object(answer, "Europe PMC")


def parse_record(r: object) -> Article:
    """A `core` result → Article. A field of the wrong type reads as absent; a record that is
    not an object, or has neither a PPR id, a PMID nor a DOI, raises RecordError."""
    if not isinstance(r, dict):
        raise RecordError("not a JSON object")
    source = text(r, "source") or ""
    pmid = number(r, "pmid", limit=MAX_PMID) or None
    ppr = token(r, "id") if source == "PPR" else None
    doi = token(r, "doi", limit=255)
    if pmid is None and ppr is None and doi is None:
        raise RecordError("no PPR id, PMID or DOI to know it by")
    journal = obj(r, "journalInfo", "journal")
    first = text(r, "firstPublicationDate")
    published = _published_as(r) if ppr else None
    abstract = _text(text(r, "abstractText"))
    return Article(
        pmid=pmid,
        title=_text(text(r, "title")),
        version=number(r, "versionNumber", limit=MAX_VERSION) or 1,
        doi=doi,
        pmcid=token(r, "pmcid", limit=32),
        abstract=(AbstractSection(None, abstract),) if abstract else (),
        authors=tuple(_author(a) for a in objects(r, "authorList", "author")),
        journal=None if ppr else text(journal, "title"),
        journal_iso=None if ppr else text(journal, "isoabbreviation"),
        pub_date=first or None,
        pub_year=number(r, "pubYear", limit=9999),
        epub_date=_date(first),
        language=text(r, "language"),
        publication_types=tuple(texts(r, "pubTypeList", "pubType")),
        keywords=tuple(texts(r, "keywordList", "keyword")),
        ppr=ppr,
        preprint_server=text(r, "bookOrReportDetails", "publisher") if ppr else None,
        published_pmid=published[0] if published else None,
        published_in=published[1] if published else None,
    )


def _published_as(r: JsonObject) -> tuple[int, str | None] | None:
    """The journal version Europe PMC links a preprint to: a commentCorrection of type
    "Preprint of" naming a MED (PubMed) record by PMID, with its citation as `reference`."""
    for c in objects(r, "commentCorrectionList", "commentCorrection"):
        if (text(c, "type") or "").lower() == "preprint of" and text(c, "source") == "MED":
            pmid = number(c, "id", limit=MAX_PMID)
            if pmid:
                return pmid, text(c, "reference")
    return None


def _author(a: JsonObject) -> Author:
    collective = text(a, "collectiveName")
    if collective:
        return Author(collective_name=collective)
    last = text(a, "lastName") or text(a, "fullName")
    return Author(last, text(a, "firstName"), text(a, "initials"))


def _label(record: object) -> str:
    """How a record is named in a line about it, whatever it holds."""
    return f"id {token(record, 'id', limit=80) or token(record, 'doi', limit=80) or '?'}"


def _text(value: str | None) -> str:
    """Markup gone, one line."""
    return " ".join(_TAGS.sub("", value or "").split())


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value or "")
    except ValueError:
        return None
