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
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from watcher.errors import RecordError
from watcher.identity import ItemKey, key, split
from watcher.models import Article, PollState, TrialState
from watcher.redact import cap
from watcher.sources import clinicaltrials_classic as classic
from watcher.sources.base import Discovery
from watcher.sources.endpoints import CLINICALTRIALS_BASE_URL, CLINICALTRIALS_RATE
from watcher.sources.http import Answer, Http
from watcher.sources.json_api import JsonApi, following, json_object, listed, skipped, total
from watcher.sources.json_fields import JsonObject, number, obj, objects, text, texts, token
from watcher.sources.pubmed_xml import DeletionSink, ErrorSink
from watcher.subscriptions import Subscription
from watcher.trials import PHASE_WORDS, enrollment_words, phase_words, stopped_words

log = logging.getLogger(__name__)

PAGE_SIZE = 1000  # the API's largest pageSize
_NCT = re.compile(r"NCT\d{8}", re.IGNORECASE)
_DAY = re.compile(r"\d{4}-\d{2}(-\d{2})?")
# What a study may hold, within the store's bounds (store.MAX_TITLE, MAX_TEXT): a study's state
# is kept whole as JSON and its title and arms are written into digests.
MAX_TITLE = 2_000
MAX_TEXT = 1_000
MAX_STATUS = 64
MAX_ARMS = 1_000
MAX_ENROLLMENT = 10**9
MAX_TOKEN = 32  # an enumeration's value: PHASE2, ACTUAL
_TOKEN = re.compile(rf"[A-Z0-9_]{{1,{MAX_TOKEN}}}")
_PHASE_ORDER = {p: i for i, p in enumerate(PHASE_WORDS)}
FIELDS = ",".join(
    (
        "NCTId",
        "BriefTitle",
        "OverallStatus",
        "LastUpdatePostDate",
        "ResultsFirstPostDate",
        "PrimaryCompletionDate",
        "EnrollmentCount",
        "EnrollmentType",
        "Phase",
        "WhyStopped",
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
        errors: list[str] = []
        states = list(self.search(sub.trials, start, on_error=errors.append))
        return Discovery(
            [key("nct", s.nct) for s in states],
            "trials",
            window_end=today,
            records=tuple(announcement(s) for s in states),
            trials=tuple(states),
            skipped=tuple(errors),
        )

    def find_window(self, sub: Subscription, start: date, end: date) -> list[ItemKey]:
        assert sub.trials is not None
        return [key("nct", s.nct) for s in self.search(sub.trials, start, end)]

    def count(self, query: str) -> int:
        """How many studies `query` matches now (one request: pageSize=1, countTotal=true)."""
        answer = self.page({"query.term": query, "pageSize": "1", "countTotal": "true"})
        return total(answer, "totalCount", "ClinicalTrials.gov")

    def fetch_items(
        self,
        keys: Sequence[ItemKey],
        on_error: ErrorSink | None = None,
        on_deleted: DeletionSink | None = None,  # ClinicalTrials.gov's answers name no deletions
    ) -> Iterator[Article]:
        ids = [v for s, v in map(split, keys) if s == "nct"]
        if ids:
            params = {"filter.ids": ",".join(ids), "fields": FIELDS, "pageSize": str(PAGE_SIZE)}
            answer = self.page(params)
            for n, study in enumerate(listed(answer, "studies", "ClinicalTrials.gov"), 1):
                state = _read(study, n, on_error)
                if state is not None:
                    yield announcement(state)

    def search(
        self, query: str, start: date, end: date | None = None, on_error: ErrorSink | None = None
    ) -> Iterator[TrialState]:
        """The studies updated in the window, page by page; one that cannot be read is reported
        to `on_error` and skipped."""
        upto = end.isoformat() if end else "MAX"
        params = {
            "query.term": query,
            "filter.advanced": f"AREA[LastUpdatePostDate]RANGE[{start.isoformat()},{upto}]",
            "fields": FIELDS,
            "pageSize": str(self.page_size),
        }
        n = 0
        while True:
            answer = self.page(params)
            for study in listed(answer, "studies", "ClinicalTrials.gov"):
                n += 1
                state = _read(study, n, on_error)
                if state is not None:
                    yield state
            page_token = following(answer, "nextPageToken", "ClinicalTrials.gov")
            if page_token is None:
                return
            params = {**params, "pageToken": page_token}

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


def _read(study: object, n: int, on_error: ErrorSink | None) -> TrialState | None:
    try:
        return parse_study(study)
    except RecordError as exc:
        nct = token(study, "protocolSection", "identificationModule", "nctId", limit=40) or "?"
        skipped(f"ClinicalTrials.gov study {n} (NCT id {nct}) skipped: {exc}", on_error)
        return None


def parse_study(study: object) -> TrialState:
    """A study → its state. A field of the wrong type reads as absent, and every field is kept
    within the store's bounds; a study that is not an object, or has no NCT id, raises
    RecordError."""
    if not isinstance(study, dict):
        raise RecordError("not a JSON object")
    if classic.is_classic(study):
        # The classic API's shape (PascalCase modules), which answered until June 2024 and
        # lives on in saved answers: the same study, rewritten as API v2 writes it.
        study = classic.as_v2(study)
    p = obj(study, "protocolSection")
    nct = (text(p, "identificationModule", "nctId") or "").strip()
    if not _NCT.fullmatch(nct):
        raise RecordError(f"{cap(nct, 40)!r} is not an NCT id" if nct else "no NCT id")
    status = obj(p, "statusModule")
    design = obj(p, "designModule")
    arms = objects(p, "armsInterventionsModule", "armGroups")[:MAX_ARMS]
    return TrialState(
        nct=nct.upper(),
        title=cap(_line(text(p, "identificationModule", "briefTitle")) or nct, MAX_TITLE),
        status=_line(text(status, "overallStatus"))[:MAX_STATUS] or None,
        last_update=_day(status, "lastUpdatePostDateStruct"),
        results_posted=_day(status, "resultsFirstPostDateStruct"),
        primary_completion=_day(status, "primaryCompletionDateStruct"),
        enrollment=number(design, "enrollmentInfo", "count", limit=MAX_ENROLLMENT),
        arms=tuple(
            cap(label, MAX_TEXT) for label in (_line(text(a, "label")) for a in arms) if label
        ),
        phases=_phases(design),
        why_stopped=cap(_line(text(status, "whyStopped")), MAX_TEXT) or None,
        enrollment_type=(token(design, "enrollmentInfo", "type", limit=MAX_TOKEN) or "").upper()
        or None,
    )


def _phases(design: JsonObject) -> tuple[str, ...]:
    """designModule.phases in the registry's order (EARLY_PHASE1 … PHASE4, NA), each once."""
    found = {p.strip().upper() for p in texts(design, "phases")[:MAX_ARMS]}
    found = {p for p in found if _TOKEN.fullmatch(p)}
    return tuple(sorted(found, key=lambda p: (_PHASE_ORDER.get(p, len(_PHASE_ORDER)), p)))


def _line(value: str | None) -> str:
    return " ".join((value or "").split())


def _day(status: JsonObject, struct: str) -> str | None:
    """A date as the API writes it (2027-06 or 2027-06-30); anything else is no date."""
    day = (text(status, struct, "date") or "").strip()
    return day if _DAY.fullmatch(day) else None


def announcement(s: TrialState) -> Article:
    """The study as an item of a digest, the first time it is seen: "Phase 2 · Completed ·
    enrolment 76 (actual) · results posted"."""
    phase = phase_words(s.phases)
    facts = [phase, stopped_words(s), enrollment_words(s)]
    if s.results_posted:
        facts.append("results posted")
    return Article(
        pmid=None,
        title=s.title,
        journal="ClinicalTrials.gov",
        pub_date=" · ".join(f for f in facts if f),
        nct=s.nct,  # its link is the item's own: not listed again as a registry number
        phase=phase,
    )
