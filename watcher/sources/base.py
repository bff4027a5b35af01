"""What a source is, for poll: find what is new for a subscription since its saved state, and
fetch full records by id. Each kind of subscription has one, listed in sources/kinds.py."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol, runtime_checkable

from watcher.identity import ItemKey
from watcher.models import Article, PollState, TrialState
from watcher.sources.pubmed_xml import DeletionSink, ErrorSink
from watcher.subscriptions import Subscription


@dataclass(frozen=True)
class CitationLink:
    """A paper tied to a followed one (issue 27): it cites it, or PubMed finds it similar."""

    kind: str  # "cites" | "similar"
    followed: int  # the followed paper's PMID
    pmid: int  # the citing or similar paper's
    score: int | None = None  # PubMed's similarity score, when asked for (neighbor_score)


@dataclass(frozen=True)
class Discovery:
    """What a source found for one subscription, not yet committed."""

    items: list[ItemKey]  # stable keys: pmid:123, doi:10.…
    label: str  # how it was found, kept on each match: esearch | rss
    window_end: date | None = None
    etag: str | None = None
    last_modified: str | None = None
    # Whole records, when the search's answer carries them (Europe PMC, ClinicalTrials.gov):
    # poll stores them (new or revised) instead of fetching them again.
    records: tuple[Article, ...] = ()
    # Studies as the registry gave them (ClinicalTrials.gov), diffed by poll against the store.
    trials: tuple[TrialState, ...] = ()
    # Records of the answer that could not be read, each told in one line (already logged).
    skipped: tuple[str, ...] = ()
    # A `cites`/`similar` subscription's links as they stand now (sources/following.py): poll
    # announces the papers of the links it has not seen before and keeps them all as seen.
    links: tuple[CitationLink, ...] = ()


class Records(Protocol):
    """Full records by id; one fetcher may serve several sources (PubMed's search and RSS both
    fetch through efetch), so poll fetches an id once however many sources found it."""

    batch_size: int

    def fetch_items(
        self,
        keys: Sequence[ItemKey],
        on_error: ErrorSink | None = None,
        on_deleted: DeletionSink | None = None,
    ) -> Iterator[Article]:
        """The records of `keys` it holds; a record that cannot be read is told to `on_error`,
        one its source says it deleted (PubMed's DeleteCitation) to `on_deleted`."""
        ...


class Source(Protocol):
    records: Records

    def host(self, sub: Subscription) -> str:
        """The host a subscription's finding asks: one that never answers is not asked again
        in the same poll."""
        ...

    def find(self, sub: Subscription, state: PollState | None, now: datetime) -> Discovery: ...


@runtime_checkable
class History(Protocol):
    """A source that can also list everything in a past date window (for `watcher backfill`)."""

    def find_window(self, sub: Subscription, start: date, end: date) -> list[ItemKey]: ...


@runtime_checkable
class Counting(Protocol):
    """A source that can say how many records a query matches in one request (`check --online`)."""

    def count(self, query: str) -> int: ...
