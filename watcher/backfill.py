"""`watcher backfill`: a query subscription's history loaded a year's slice at a time, each
slice committed with the subscription's backfill mark."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from watcher.config import Config
from watcher.poll_fetch import batches, fetch_and_store, unknown_items
from watcher.poll_locks import Claimer, unlocked
from watcher.sources.base import History, Records
from watcher.sources.eutils import ncbi_today
from watcher.sources.kinds import Sources
from watcher.store import Store
from watcher.subscriptions import Subscription

log = logging.getLogger(__name__)

BACKFILL_SLICE = timedelta(days=365)


@dataclass
class BackfillReport:
    subscription: str
    slices: int = 0
    found: int = 0
    fetched: int = 0
    new_matches: int = 0
    resumed_from: date | None = None
    busy: str | None = None  # left to the process searching it at the time: who it is


Progress = Callable[[str, int, int, int], None]  # name, slices done, slices total, records


def backfill(
    config: Config,
    store: Store,
    sources: Sources,
    now: datetime,
    since: date,
    *,
    subscriptions: Sequence[Subscription],
    deliver: bool = False,
    progress: Progress | None = None,
    claim: Claimer = unlocked,
) -> list[BackfillReport]:
    """Load a query subscription's history from `since`, a year's slice at a time, each
    subscription under its poll lock (`claim`; one held by another process is left, its
    report saying so).

    Each slice is committed with the subscription's backfill mark, so an interrupted backfill
    resumes after its last complete slice. Backfilled papers are known, not news, unless
    `deliver` is set.
    """
    reports = []
    for sub in subscriptions:
        source = sources[sub]
        if not isinstance(source, History):
            what = "a subscription following papers" if sub.follows else "an RSS feed"
            log.warning("%s: %s has no history to backfill; skipped", sub.name, what)
            continue
        with claim([sub]) as got:
            if got.busy:
                reports.append(BackfillReport(sub.name, busy=got.busy[0][1]))
                continue
            found = _backfill_one(sub, source, source.records, store, now, since, deliver, progress)
            reports.append(found)
    return reports


def _backfill_one(
    sub: Subscription,
    source: History,
    records: Records,
    store: Store,
    now: datetime,
    since: date,
    deliver: bool,
    progress: Progress | None,
) -> BackfillReport:
    state = store.polls.state(sub.name)
    start = since
    report = BackfillReport(sub.name)
    if state and state.backfill_done and state.backfill_done >= since:
        start = state.backfill_done + timedelta(days=1)
        report.resumed_from = start
    today = ncbi_today(now)
    slices = []
    lo = start
    while lo <= today:
        hi = min(today, lo + BACKFILL_SLICE - timedelta(days=1))
        slices.append((lo, hi))
        lo = hi + timedelta(days=1)
    for n, (lo, hi) in enumerate(slices, 1):
        items = source.find_window(sub, lo, hi)
        for batch in batches(unknown_items(store, items), records.batch_size):
            report.fetched += fetch_and_store(batch, store, records, now)[0]
        report.new_matches += store.polls.record_backfill(
            sub.name, items, deliver=deliver, now=now, done_through=hi
        )
        report.found += len(items)
        report.slices = n
        if progress is not None:
            progress(sub.name, n, len(slices), report.found)
    return report
