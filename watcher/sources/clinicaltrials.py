"""A ClinicalTrials.gov search subscription (API v2, https://clinicaltrials.gov/data-api/api):
`trials = "…"` is the registry's own search expression (query.term, as typed in its search
box: `AREA[InterventionName](teplizumab OR otelixizumab) AND AREA[Condition]"type 1 diabetes"`).

One search per poll over the studies whose LastUpdatePostDate falls in a window reaching back
behind the last one; pages follow pageToken/nextPageToken, up to 1,000 studies each, and only the
fields a digest and a diff need are asked for (fields=). A study is announced when first seen;
afterwards what changed is found by diffing against its kept state (see trial_changes).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from watcher.errors import SourceError
from watcher.identity import ItemKey, key, split
from watcher.models import Article, PollState, Subscription, TrialState
from watcher.sources.base import Discovery
from watcher.sources.endpoints import CLINICALTRIALS_BASE_URL, CLINICALTRIALS_RATE
from watcher.sources.http import Answer, Http
from watcher.sources.json_api import JsonApi, json_object
from watcher.sources.pubmed_xml import ErrorSink
from watcher.trials import status_words

log = logging.getLogger(__name__)

PAGE_SIZE = 1000  # the API's largest pageSize
FIELDS = ",".join(
    (
        "NCTId",
        "BriefTitle",
        "OverallStatus",
        "LastUpdatePostDate",
        "ResultsFirstPostDate",
        "PrimaryCompletionDate",
        "EnrollmentCount",
        "ArmGroupLabel",
        "LeadSponsorName",
        "HasResults",
    )
)


class ClinicalTrials(JsonApi):
    """The ClinicalTrials.gov source; it is also its own record fetcher (by NCT id)."""

    def __init__(
        self,
        http: Http,
        base_url: str = CLINICALTRIALS_BASE_URL,
        *,
        overlap_days: int = 3,
        page_size: int = PAGE_SIZE,
        rate: float = CLINICALTRIALS_RATE,
    ) -> None:
        super().__init__(http, base_url, overlap_days=overlap_days, page_size=page_size, rate=rate)

    def find(self, sub: Subscription, state: PollState | None, now: datetime) -> Discovery:
        assert sub.trials is not None
        today = now.astimezone(UTC).date()
        start = self.window_start(sub, state, today)
        states = list(self.search(sub.trials, start))
        return Discovery(
            [key("nct", s.nct) for s in states],
            "trials",
            window_end=today,
            records=tuple(announcement(s) for s in states),
            trials=tuple(states),
        )

    def find_window(self, sub: Subscription, start: date, end: date) -> list[ItemKey]:
        assert sub.trials is not None
        return [key("nct", s.nct) for s in self.search(sub.trials, start, end)]

    def count(self, query: str) -> int:
        """How many studies `query` matches now (one request: pageSize=1, countTotal=true)."""
        answer = self.page({"query.term": query, "pageSize": "1", "countTotal": "true"})
        return int(answer.get("totalCount") or 0)

    def fetch_items(
        self, keys: Sequence[ItemKey], on_error: ErrorSink | None = None
    ) -> Iterator[Article]:
        ids = [v for s, v in map(split, keys) if s == "nct"]
        if ids:
            params = {"filter.ids": ",".join(ids), "fields": FIELDS, "pageSize": str(PAGE_SIZE)}
            for study in self.page(params).get("studies") or []:
                yield announcement(parse_study(study))

    def search(self, query: str, start: date, end: date | None = None) -> Iterator[TrialState]:
        upto = end.isoformat() if end else "MAX"
        params = {
            "query.term": query,
            "filter.advanced": f"AREA[LastUpdatePostDate]RANGE[{start.isoformat()},{upto}]",
            "fields": FIELDS,
            "pageSize": str(self.page_size),
        }
        while True:
            answer = self.page(params)
            for study in answer.get("studies") or []:
                yield parse_study(study)
            token = answer.get("nextPageToken")
            if not token:
                return
            params = {**params, "pageToken": str(token)}

    def page(self, params: dict[str, str]) -> dict[str, Any]:
        self._limit()
        return self.http.call(
            self.base_url + "studies",
            _json,
            params={"format": "json", **params},
            what="ClinicalTrials.gov search",
        )


def _json(answer: Answer) -> dict[str, Any]:
    return json_object(answer, "ClinicalTrials.gov")


def parse_study(study: dict[str, Any]) -> TrialState:
    p = study.get("protocolSection") or {}
    ident = p.get("identificationModule") or {}
    status = p.get("statusModule") or {}
    design = p.get("designModule") or {}
    arms = (p.get("armsInterventionsModule") or {}).get("armGroups") or []
    nct = str(ident.get("nctId") or "")
    if not nct:
        raise SourceError("ClinicalTrials.gov gave a study without an NCT id")
    count = (design.get("enrollmentInfo") or {}).get("count")
    return TrialState(
        nct=nct.upper(),
        title=str(ident.get("briefTitle") or nct),
        status=status.get("overallStatus"),
        last_update=_day(status.get("lastUpdatePostDateStruct")),
        results_posted=_day(status.get("resultsFirstPostDateStruct")),
        primary_completion=_day(status.get("primaryCompletionDateStruct")),
        enrollment=int(count) if isinstance(count, int | float) else None,
        arms=tuple(str(a.get("label")) for a in arms if a.get("label")),
    )


def _day(struct: Any) -> str | None:
    return (struct or {}).get("date") if isinstance(struct, dict) else None


def announcement(s: TrialState) -> Article:
    """The study as an item of a digest, the first time it is seen."""
    facts = [status_words(s.status)]
    if s.enrollment is not None:
        facts.append(f"{s.enrollment} participants")
    if s.results_posted:
        facts.append("results posted")
    return Article(
        pmid=None,
        title=s.title,
        journal="ClinicalTrials.gov",
        pub_date=" · ".join(facts),
        nct=s.nct,  # its link is the item's own: not listed again as a registry number
    )
