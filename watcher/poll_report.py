"""What a poll found and did: each subscription's answer before it is committed (Found), each
subscription's outcome, and the poll's report (what `watcher poll` prints and the log says)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from watcher.identity import ItemKey
from watcher.models import Article, JournalVersion, TrialState
from watcher.sources.base import CitationLink, Records
from watcher.subscriptions import Subscription


@dataclass
class Found:
    """What one subscription's source returned, not yet committed."""

    sub: Subscription
    items: list[ItemKey]
    deliver: bool
    source: str
    records: Records
    window_end: date | None = None
    etag: str | None = None
    last_modified: str | None = None
    requests: int = 0
    held: tuple[Article, ...] = ()  # whole records the search gave (no fetch needed)
    trials: tuple[TrialState, ...] = ()
    skipped: tuple[str, ...] = ()  # records of the search's answer that could not be read
    links: tuple[CitationLink, ...] = ()  # a `cites`/`similar` subscription's links now


@dataclass
class Outcome:
    name: str
    found: int = 0
    new_matches: int = 0
    requests: int = 0
    error: str | None = None
    changes: int = 0  # trial registry changes found


@dataclass
class PollReport:
    outcomes: list[Outcome] = field(default_factory=list)
    fetched: int = 0
    requests: int = 0
    seconds: float = 0.0
    record_errors: list[str] = field(default_factory=list)
    journal_versions: list[JournalVersion] = field(default_factory=list)
    changes: int = 0  # changes to delivered papers found: notices, journal versions of preprints
    deleted: list[ItemKey] = field(default_factory=list)  # matched records NCBI deleted
    # Left to another process searching them at the time, with who it is where known.
    skipped: list[tuple[Subscription, str]] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error]

    @property
    def new_matches(self) -> int:
        return sum(o.new_matches for o in self.outcomes)
