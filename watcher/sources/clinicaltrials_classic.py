"""A study in the classic ClinicalTrials.gov API's shape (`FullStudiesResponse`, APIVrs
1.01.x: PascalCase modules, lists wrapped in `…List` objects, words for enumerations, dates
as "March 27, 2014"), rewritten as the API v2 study the watcher reads. Pure.

The classic API answered until June 2024; its answers live on in saved files, exports and
mirrors (AACT's test data among them), and a study read from one is the same study. Only the
fields `clinicaltrials.parse_study` reads are carried over. Field names and value words:
https://clinicaltrials.gov/data-api/about-api/api-migration (classic → v2).
"""

from __future__ import annotations

import re
from datetime import datetime

from watcher.sources.json_fields import JsonObject, obj, objects, text, texts

# Classic words → API v2 enumerations where they are not the same word upper-cased.
_ENROLLMENT_TYPES = {"ANTICIPATED": "ESTIMATED"}  # v2 renamed it
_PHASES = {"NOT APPLICABLE": "NA", "N/A": "NA"}
_WORD = re.compile(r"[^A-Z0-9]+")


def is_classic(study: JsonObject) -> bool:
    return "FullStudiesResponse" in study or "Study" in study or "ProtocolSection" in study


def as_v2(study: JsonObject) -> JsonObject:
    """The first study of a classic answer (a FullStudiesResponse, one of its FullStudies, a
    Study or its sections) as an API v2 study of the fields the watcher reads."""
    full = objects(study, "FullStudiesResponse", "FullStudies")
    if full:
        study = full[0]
    if "Study" in study:
        study = obj(study, "Study")
    p = obj(study, "ProtocolSection")
    ident, status, design = (
        obj(p, m) for m in ("IdentificationModule", "StatusModule", "DesignModule")
    )
    enrollment = obj(design, "EnrollmentInfo")
    return {
        "protocolSection": {
            "identificationModule": {
                "nctId": text(ident, "NCTId"),
                "briefTitle": text(ident, "BriefTitle"),
            },
            "statusModule": {
                "overallStatus": _enum(text(status, "OverallStatus")),
                "whyStopped": text(status, "WhyStopped"),
                "lastUpdatePostDateStruct": _date(status, "LastUpdatePostDate"),
                "resultsFirstPostDateStruct": _date(status, "ResultsFirstPostDate"),
                "primaryCompletionDateStruct": _date(status, "PrimaryCompletionDate"),
            },
            "designModule": {
                "phases": [
                    _PHASES.get(w.upper(), _enum(w)) for w in texts(design, "PhaseList", "Phase")
                ],
                "enrollmentInfo": {
                    "count": text(enrollment, "EnrollmentCount"),
                    "type": _ENROLLMENT_TYPES.get(
                        (text(enrollment, "EnrollmentType") or "").upper(),
                        _enum(text(enrollment, "EnrollmentType")),
                    ),
                },
            },
            "armsInterventionsModule": {
                "armGroups": [
                    {"label": text(a, "ArmGroupLabel")}
                    for a in objects(p, "ArmsInterventionsModule", "ArmGroupList", "ArmGroup")
                ]
            },
        }
    }


def _enum(word: str | None) -> str | None:
    """ "Active, not recruiting" → ACTIVE_NOT_RECRUITING, "Phase 2" → PHASE2 (v2's spelling)."""
    if not word:
        return None
    upper = _WORD.sub("_", word.strip().upper()).strip("_")
    return re.sub(r"^(EARLY_)?PHASE_(\d)$", r"\1PHASE\2", upper)


def _date(status: JsonObject, name: str) -> dict[str, str] | None:
    """{"date": "2014-03-27"} from "March 27, 2014", {"date": "2009-01"} from "January 2009"."""
    written = (text(status, f"{name}Struct", name) or "").strip()
    for form, out in (("%B %d, %Y", "%Y-%m-%d"), ("%B %Y", "%Y-%m"), ("%Y-%m-%d", "%Y-%m-%d")):
        try:
            return {"date": datetime.strptime(written, form).strftime(out)}
        except ValueError:
            continue
    return None
