"""A fake ClinicalTrials.gov API v2 (https://clinicaltrials.gov/data-api/api) on 127.0.0.1:
GET /api/v2/studies with query.term, filter.advanced=AREA[LastUpdatePostDate]RANGE[a,b|MAX],
filter.ids, pageSize, pageToken/nextPageToken (absent on the last page) and countTotal.

query.term is matched as the watcher's tests write it: words or "phrases" joined by OR (AREA[…]
prefixes and parentheses ignored), case-insensitively against the study's JSON text. Studies are
returned trimmed to `fields`, as the real API returns them: each piece name (the API's names for
a study's leaves: NCTId, Phase, WhyStopped…; https://clinicaltrials.gov/data-api/about-api/study-data-structure)
keeps that leaf and the objects around it, so a field the watcher reads but does not ask for
is absent here too. A piece name the fake does not know is answered 400, so a misspelt one fails
a test instead of reading as absent. Without `fields`, studies are returned whole.

`real_study` gives a study saved from the real API (../shared/corpus/registries/).
"""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from .jsonapi import FakeJsonApi

REGISTRIES = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "registries"
# Piece name → the path of its leaf in a study (a list on the way is walked into, each entry).
PIECES = {
    "NCTId": "protocolSection.identificationModule.nctId",
    "BriefTitle": "protocolSection.identificationModule.briefTitle",
    "OverallStatus": "protocolSection.statusModule.overallStatus",
    "WhyStopped": "protocolSection.statusModule.whyStopped",
    "LastUpdatePostDate": "protocolSection.statusModule.lastUpdatePostDateStruct.date",
    "ResultsFirstPostDate": "protocolSection.statusModule.resultsFirstPostDateStruct.date",
    "PrimaryCompletionDate": "protocolSection.statusModule.primaryCompletionDateStruct.date",
    "Phase": "protocolSection.designModule.phases",
    "EnrollmentCount": "protocolSection.designModule.enrollmentInfo.count",
    "EnrollmentType": "protocolSection.designModule.enrollmentInfo.type",
    "ArmGroupLabel": "protocolSection.armsInterventionsModule.armGroups.label",
    "LeadSponsorName": "protocolSection.sponsorCollaboratorsModule.leadSponsor.name",
    "Condition": "protocolSection.conditionsModule.conditions",
    "HasResults": "hasResults",
}
_RANGE = re.compile(r"AREA\[LastUpdatePostDate\]RANGE\[([^,\]]+),([^\]]+)\]")


def study(
    nct: str,
    title: str,
    status: str,
    updated: str,
    *,
    enrollment: int = 100,
    arms: tuple[str, ...] = ("Drug", "Placebo"),
    primary_completion: str = "2027-06",
    results: str | None = None,
    condition: str = "Type 1 Diabetes",
    intervention: str = "Teplizumab",
    phases: tuple[str, ...] = ("PHASE2",),
    why_stopped: str | None = None,
    enrollment_type: str = "ESTIMATED",
) -> dict[str, Any]:
    """A study in API v2's JSON shape (protocolSection modules, hasResults)."""
    status_module: dict[str, Any] = {
        "overallStatus": status,
        "primaryCompletionDateStruct": {"date": primary_completion, "type": "ESTIMATED"},
        "lastUpdatePostDateStruct": {"date": updated, "type": "ACTUAL"},
    }
    if results:
        status_module["resultsFirstPostDateStruct"] = {"date": results, "type": "ACTUAL"}
    if why_stopped:
        status_module["whyStopped"] = why_stopped
    return {
        "protocolSection": {
            "identificationModule": {"nctId": nct, "briefTitle": title},
            "statusModule": status_module,
            "sponsorCollaboratorsModule": {"leadSponsor": {"name": "Example University"}},
            "conditionsModule": {"conditions": [condition]},
            "designModule": {
                "studyType": "INTERVENTIONAL",
                "phases": list(phases),
                "enrollmentInfo": {"count": enrollment, "type": enrollment_type},
            },
            "armsInterventionsModule": {
                "armGroups": [{"label": a, "type": "EXPERIMENTAL"} for a in arms],
                "interventions": [{"type": "DRUG", "name": intervention}],
            },
        },
        "hasResults": results is not None,
    }


@dataclass
class FakeClinicalTrials(FakeJsonApi):
    studies: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.root + "/api/v2/"

    def put(self, s: dict[str, Any]) -> None:
        """Add a study, or replace it (a new version posted)."""
        self.studies[s["protocolSection"]["identificationModule"]["nctId"]] = copy.deepcopy(s)

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, Any]:
        if not path.endswith("/studies"):
            return 404, {"message": "not found"}
        hits = self.matching(params)
        size = int(params.get("pageSize", "10"))
        start = int(base64.b64decode(params["pageToken"])) if "pageToken" in params else 0
        page = hits[start : start + size]
        if "fields" in params:
            pieces = params["fields"].split(",")
            unknown = [p for p in pieces if p not in PIECES]
            if unknown:
                return 400, {"message": f"unknown field(s): {', '.join(unknown)}"}
            page = [trimmed(s, [PIECES[p] for p in pieces]) for s in page]
        out: dict[str, Any] = {"studies": page}
        if start + size < len(hits):
            out["nextPageToken"] = base64.b64encode(str(start + size).encode()).decode()
        if params.get("countTotal") == "true":
            out["totalCount"] = len(hits)
        return 200, out

    def matching(self, params: dict[str, str]) -> list[dict[str, Any]]:
        studies = sorted(self.studies.values(), key=_nct)
        if "filter.ids" in params:
            ids = set(params["filter.ids"].split(","))
            return [s for s in studies if _nct(s) in ids]
        window = _RANGE.search(params.get("filter.advanced", ""))
        term = re.sub(r"AREA\[\w+\]", "", params.get("query.term", ""))
        terms = [t.strip(' ()"').lower() for t in re.split(r"\bOR\b|\bAND\b", term)]
        out = []
        for s in studies:
            if window and not _updated_in(s, window.group(1), window.group(2)):
                continue
            text = json.dumps(s).lower()
            if any(t and t in text for t in terms):
                out.append(s)
        return out


def real_study(nct: str, **changes: Any) -> dict[str, Any]:
    """The study saved from the real API (GET /studies/NCT…) in ../shared/corpus/registries/,
    with `changes` applied: each a piece name (see PIECES) and its new value, as a new version
    of the record posted by its sponsor would hold it."""
    s: dict[str, Any] = json.loads((REGISTRIES / f"ctgov-aact-{nct}.json").read_text())
    for piece, value in changes.items():
        *path, leaf = PIECES[piece].split(".")
        at = s
        for name in path:
            at = at.setdefault(name, {})
        at[leaf] = value
    return s


def trimmed(study: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """`study` with only the leaves at `paths` (and the objects and lists holding them)."""
    out: dict[str, Any] = {}
    for path in paths:
        _keep(study, out, path.split("."))
    return out


def _keep(source: Any, target: dict[str, Any], path: list[str]) -> None:
    if not isinstance(source, dict) or path[0] not in source:
        return
    value = source[path[0]]
    if len(path) == 1:
        target[path[0]] = copy.deepcopy(value)
    elif isinstance(value, dict):
        _keep(value, target.setdefault(path[0], {}), path[1:])
    elif isinstance(value, list):
        kept = target.setdefault(path[0], [{} for _ in value])
        for entry, into in zip(value, kept, strict=False):
            _keep(entry, into, path[1:])


def _nct(s: dict[str, Any]) -> str:
    return str(s["protocolSection"]["identificationModule"]["nctId"])


def _updated_in(s: dict[str, Any], lo: str, hi: str) -> bool:
    when = date.fromisoformat(
        s["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"]
    )
    return (lo == "MIN" or date.fromisoformat(lo) <= when) and (
        hi == "MAX" or when <= date.fromisoformat(hi)
    )
