"""A fake ClinicalTrials.gov API v2 (https://clinicaltrials.gov/data-api/api) on 127.0.0.1:
GET /api/v2/studies with query.term, filter.advanced=AREA[LastUpdatePostDate]RANGE[a,b|MAX],
filter.ids, pageSize, pageToken/nextPageToken (absent on the last page) and countTotal.

query.term is matched as the watcher's tests write it: words or "phrases" joined by OR (AREA[…]
prefixes and parentheses ignored), case-insensitively against the study's JSON text. Studies are
returned whole (the real API trims them to `fields`; the watcher reads only those it asks for).
"""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .jsonapi import FakeJsonApi

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
) -> dict[str, Any]:
    """A study in API v2's JSON shape (protocolSection modules, hasResults)."""
    status_module: dict[str, Any] = {
        "overallStatus": status,
        "primaryCompletionDateStruct": {"date": primary_completion, "type": "ESTIMATED"},
        "lastUpdatePostDateStruct": {"date": updated, "type": "ACTUAL"},
    }
    if results:
        status_module["resultsFirstPostDateStruct"] = {"date": results, "type": "ACTUAL"}
    return {
        "protocolSection": {
            "identificationModule": {"nctId": nct, "briefTitle": title},
            "statusModule": status_module,
            "sponsorCollaboratorsModule": {"leadSponsor": {"name": "Example University"}},
            "conditionsModule": {"conditions": [condition]},
            "designModule": {"enrollmentInfo": {"count": enrollment, "type": "ESTIMATED"}},
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
        out: dict[str, Any] = {"studies": hits[start : start + size]}
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


def _nct(s: dict[str, Any]) -> str:
    return str(s["protocolSection"]["identificationModule"]["nctId"])


def _updated_in(s: dict[str, Any], lo: str, hi: str) -> bool:
    when = date.fromisoformat(
        s["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"]
    )
    return (lo == "MIN" or date.fromisoformat(lo) <= when) and (
        hi == "MAX" or when <= date.fromisoformat(hi)
    )
