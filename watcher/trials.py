"""What changed in a ClinicalTrials.gov study between two of its states, as a reader says it.
Pure: the store keeps the states, the digest shows the changes."""

from __future__ import annotations

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
ENROLLMENT_CHANGE = 0.10  # a change of enrolment by more than this share is news


def status_words(status: str | None) -> str:
    return STATUS_WORDS.get(status or "", (status or "no status").replace("_", " ").capitalize())


def trial_changes(old: TrialState, new: TrialState) -> list[TrialChange]:
    """The differences a reader cares about; an update that changed none of them (only its
    LastUpdatePostDate, or a field not listed here) gives none."""
    out = []
    if old.status != new.status:
        out.append(f"{status_words(old.status)} → {status_words(new.status)}")
    if new.results_posted and not old.results_posted:
        out.append(f"results first posted {new.results_posted}")
    if old.primary_completion != new.primary_completion and new.primary_completion:
        was = old.primary_completion or "not given"
        out.append(f"primary completion moved {was} → {new.primary_completion}")
    if _enrollment_moved(old.enrollment, new.enrollment):
        out.append(f"enrolment {old.enrollment} → {new.enrollment}")
    added = [a for a in new.arms if a not in old.arms]
    if added:
        out.append("new arms: " + "; ".join(added))
    return [TrialChange(new.nct, new.title, what) for what in out]


def _enrollment_moved(old: int | None, new: int | None) -> bool:
    if old is None or new is None:
        return False
    return abs(new - old) > ENROLLMENT_CHANGE * max(old, 1)
