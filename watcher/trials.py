"""What changed in a ClinicalTrials.gov study between two of its states, as a reader says it.
Pure: the store keeps the states, the digest shows the changes."""

from __future__ import annotations

from collections.abc import Sequence

from watcher.models import TrialChange, TrialState

# Statuses as a reader says them (statusModule.overallStatus's enumeration).
STATUS_WORDS = {
    "NOT_YET_RECRUITING": "Not yet recruiting",
    "RECRUITING": "Recruiting",
    "ENROLLING_BY_INVITATION": "Enrolling by invitation",
    "ACTIVE_NOT_RECRUITING": "Active, not recruiting",
    "SUSPENDED": "Suspended",
    "TERMINATED": "Terminated",
    "COMPLETED": "Completed",
    "WITHDRAWN": "Withdrawn",
    "UNKNOWN": "Unknown status",
}
# The statuses a sponsor must say why of (statusModule.whyStopped: "a brief explanation of the
# reason(s) why such clinical study was stopped", for these three).
STOPPED = frozenset({"SUSPENDED", "TERMINATED", "WITHDRAWN"})
# designModule.phases' enumeration as the registry's pages say it; a study of two phases lists
# both (PHASE1, PHASE2), shown "Phase 1/2".
PHASE_WORDS = {
    "EARLY_PHASE1": "Early Phase 1",
    "PHASE1": "Phase 1",
    "PHASE2": "Phase 2",
    "PHASE3": "Phase 3",
    "PHASE4": "Phase 4",
    "NA": "Phase N/A",  # "Not Applicable": a trial of a device or behaviour has no phase
}
ENROLLMENT_CHANGE = 0.10  # a change of enrolment by more than this share is news


def status_words(status: str | None) -> str:
    return STATUS_WORDS.get(status or "", (status or "no status").replace("_", " ").capitalize())


def stopped_words(state: TrialState) -> str:
    """The status, with why it stopped where the sponsor said: "Terminated: slow accrual"."""
    said = status_words(state.status)
    if state.status in STOPPED and state.why_stopped:
        return f"{said}: {state.why_stopped}"
    return said


def phase_words(phases: Sequence[str] | None) -> str | None:
    """ "Phase 2", "Phase 1/2" (PHASE1 and PHASE2), "Early Phase 1"; None when none is given."""
    if not phases:
        return None
    numbers = [p.removeprefix("PHASE") for p in phases]
    if all(p.startswith("PHASE") and n.isdigit() for p, n in zip(phases, numbers, strict=True)):
        return "Phase " + "/".join(numbers)
    return "/".join(PHASE_WORDS.get(p, p.replace("_", " ").capitalize()) for p in phases)


def enrollment_words(state: TrialState) -> str | None:
    """ "enrolment 76 (actual)", "enrolment 120 (estimated)"; None when no count is given."""
    if state.enrollment is None:
        return None
    return f"enrolment {state.enrollment}{_kind(state)}"


def _kind(state: TrialState) -> str:
    return f" ({state.enrollment_type.lower()})" if state.enrollment_type else ""


def trial_changes(old: TrialState, new: TrialState) -> list[TrialChange]:
    """The differences a reader cares about; an update that changed none of them (only its
    LastUpdatePostDate, or a field not listed here) gives none. A field the kept state does not
    know (kept before the field was read) is no change."""
    out: list[tuple[str, str]] = []
    if old.status != new.status:
        out.append(("status", f"{status_words(old.status)} → {stopped_words(new)}"))
    if old.phases and new.phases and old.phases != new.phases:
        out.append(("phase", f"{phase_words(old.phases)} → {phase_words(new.phases)}"))
    if new.results_posted and not old.results_posted:
        out.append(("results", f"results first posted {new.results_posted}"))
    if old.primary_completion != new.primary_completion and new.primary_completion:
        was = old.primary_completion or "not given"
        out.append(("completion", f"primary completion moved {was} → {new.primary_completion}"))
    if _enrollment_moved(old.enrollment, new.enrollment):
        out.append(("enrolment", f"enrolment {old.enrollment} → {new.enrollment}{_kind(new)}"))
    added = [a for a in new.arms if a not in old.arms]
    if added:
        out.append(("arms", "new arms: " + "; ".join(added)))
    return [TrialChange(new.nct, new.title, what, kind) for kind, what in out]


def _enrollment_moved(old: int | None, new: int | None) -> bool:
    if old is None or new is None:
        return False
    return abs(new - old) > ENROLLMENT_CHANGE * max(old, 1)
