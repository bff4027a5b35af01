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

from watcher.identity import ItemKey, key, split
from watcher.models import AbstractSection, Article, Author, PollState, Subscription
from watcher.sources.base import Discovery
from watcher.sources.endpoints import EUROPEPMC_BASE_URL, EUROPEPMC_RATE
from watcher.sources.http import Answer, Http
from watcher.sources.json_api import JsonApi, json_object
from watcher.sources.pubmed_xml import ErrorSink

log = logging.getLogger(__name__)

PAGE_SIZE = 1000  # the search's largest pageSize
_SRC = re.compile(r"\bSRC\s*:", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]+>")


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
        found = list(self.search(windowed(sub.europepmc, start, today)))
        return Discovery(
            [own(a) for a in found], "europepmc", window_end=today, records=tuple(found)
        )

    def find_window(self, sub: Subscription, start: date, end: date) -> list[ItemKey]:
        assert sub.europepmc is not None
        return [own(a) for a in self.search(windowed(sub.europepmc, start, end))]

    def count(self, query: str) -> int:
        """How many records `query` matches now (one request, pageSize=1)."""
        answer = self.page(scoped(query), "*", 1)
        return int(answer.get("hitCount") or 0)

    def fetch_items(
        self, keys: Sequence[ItemKey], on_error: ErrorSink | None = None
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
            yield from self.search(" OR ".join(terms))

    def search(self, query: str) -> Iterator[Article]:
        cursor = "*"
        while True:
            answer = self.page(query, cursor, self.page_size)
            results = (answer.get("resultList") or {}).get("result") or []
            for record in results:
                article = parse_record(record)
                if article is not None:
                    yield article
            following = answer.get("nextCursorMark")
            # The last page gives back the cursor it was asked with (or none at all).
            if not results or not following or following == cursor:
                return
            cursor = str(following)

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


def parse_record(r: dict[str, Any]) -> Article | None:
    """A `core` result → Article; None for a record with neither a PPR id, a PMID nor a DOI."""
    source = str(r.get("source") or "")
    pmid = _int(r.get("pmid"))
    ppr = str(r["id"]) if source == "PPR" and r.get("id") else None
    doi = r.get("doi") or None
    if pmid is None and ppr is None and doi is None:
        return None
    book = r.get("bookOrReportDetails") or {}
    journal = ((r.get("journalInfo") or {}).get("journal")) or {}
    first = r.get("firstPublicationDate") or ""
    published = _published_as(r) if ppr else None
    return Article(
        pmid=pmid,
        title=_text(r.get("title")),
        version=_int(r.get("versionNumber")) or 1,
        doi=doi,
        pmcid=r.get("pmcid") or None,
        abstract=(AbstractSection(None, _text(r.get("abstractText"))),)
        if r.get("abstractText")
        else (),
        authors=tuple(_author(a) for a in ((r.get("authorList") or {}).get("author") or [])),
        journal=None if ppr else journal.get("title"),
        journal_iso=None if ppr else journal.get("isoabbreviation"),
        pub_date=first or None,
        pub_year=_int(r.get("pubYear")),
        epub_date=_date(first),
        language=r.get("language"),
        publication_types=tuple(((r.get("pubTypeList") or {}).get("pubType")) or ()),
        keywords=tuple(((r.get("keywordList") or {}).get("keyword")) or ()),
        ppr=ppr,
        preprint_server=book.get("publisher") if ppr else None,
        published_pmid=published[0] if published else None,
        published_in=published[1] if published else None,
    )


def _published_as(r: dict[str, Any]) -> tuple[int, str | None] | None:
    """The journal version Europe PMC links a preprint to: a commentCorrection of type
    "Preprint of" naming a MED (PubMed) record by PMID, with its citation as `reference`."""
    entries = (r.get("commentCorrectionList") or {}).get("commentCorrection") or []
    for c in entries:
        if str(c.get("type", "")).lower() == "preprint of" and c.get("source") == "MED":
            pmid = _int(c.get("id"))
            if pmid is not None:
                return pmid, c.get("reference")
    return None


def _author(a: dict[str, Any]) -> Author:
    if a.get("collectiveName"):
        return Author(collective_name=a["collectiveName"])
    return Author(a.get("lastName") or a.get("fullName"), a.get("firstName"), a.get("initials"))


def _text(value: Any) -> str:
    return " ".join(_TAGS.sub("", str(value or "")).split())


def _int(value: Any) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isdigit() else None


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None
