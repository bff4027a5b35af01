"""One poll: each due subscription's search (or feed), then one efetch pass for the union of the
PMIDs the store lacks, then each subscription's matches and state committed together.

Spending: one esearch per subscription (its window covers creation and MeSH dates),
ceil(new PMIDs / batch size) efetch, each PMID fetched at most once per poll however many
subscriptions matched it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from watcher.config import Config
from watcher.errors import SourceError, Unreachable
from watcher.identity import ItemKey, identifiers
from watcher.models import PollState, Subscription
from watcher.schedule import next_poll_time
from watcher.sources.base import History, Records, Source
from watcher.sources.eutils import NCBI_ZONE, ncbi_today
from watcher.sources.registry import Sources
from watcher.store import Store

log = logging.getLogger(__name__)

__all__ = ["NCBI_ZONE", "ncbi_today"]  # where the daemon, tests and demos look for them

BACKFILL_SLICE = timedelta(days=365)


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


@dataclass
class Outcome:
    name: str
    found: int = 0
    new_matches: int = 0
    requests: int = 0
    error: str | None = None


@dataclass
class PollReport:
    outcomes: list[Outcome] = field(default_factory=list)
    fetched: int = 0
    requests: int = 0
    seconds: float = 0.0
    record_errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error]

    @property
    def new_matches(self) -> int:
        return sum(o.new_matches for o in self.outcomes)


def due_subscriptions(
    config: Config, states: dict[str, PollState], now: datetime
) -> list[Subscription]:
    due = []
    for sub in config.subscriptions:
        state = states.get(sub.name)
        if next_poll_time(sub.schedule, state.last_poll_at if state else None, now) <= now:
            due.append(sub)
    return due


def poll(
    config: Config,
    store: Store,
    sources: Sources,
    now: datetime,
    subscriptions: Sequence[Subscription] | None = None,
) -> PollReport:
    """Poll `subscriptions` (default: all) together. A failing one is recorded on its own row
    and does not stop the others; state advances only with committed results."""
    started = time.monotonic()
    requests_before = sources.requests
    subs = list(config.subscriptions if subscriptions is None else subscriptions)
    report = PollReport()
    found = _find_all(subs, store, sources, now, report)
    failed_items = _fetch_missing(found, store, now, report)
    for f in found:
        _commit(f, failed_items, store, now, report)
    report.requests = sources.requests - requests_before
    report.seconds = time.monotonic() - started
    log.info(
        "poll done: %d subscriptions, %d new matches, %d records fetched, %d requests "
        "in %.1fs, %d failed",
        len(subs),
        report.new_matches,
        report.fetched,
        report.requests,
        report.seconds,
        len(report.failed),
        extra={
            "fields": {
                "event": "poll_done",
                "requests": report.requests,
                "fetched": report.fetched,
                "failed": len(report.failed),
            }
        },
    )
    return report


def _find_all(
    subs: Sequence[Subscription],
    store: Store,
    sources: Sources,
    now: datetime,
    report: PollReport,
) -> list[Found]:
    """Each subscription's source asked what is new; failures recorded on their own rows."""
    states = store.poll_states()
    found: list[Found] = []
    # A host that never answered through all retries is not asked again in this poll: the
    # subscriptions behind it are recorded as failed at once instead of each waiting it out.
    down: dict[str, str] = {}
    for sub in subs:
        source = sources[sub]
        host = source.host(sub)
        if host in down:
            _fail(store, report, sub.name, down[host], now)
            continue
        try:
            found.append(_search(sub, states.get(sub.name), source, sources, now))
        except Unreachable as exc:
            down[host] = str(exc)
            _fail(store, report, sub.name, str(exc), now)
        except SourceError as exc:
            _fail(store, report, sub.name, str(exc), now)
    return found


def _commit(
    f: Found, failed_items: set[ItemKey], store: Store, now: datetime, report: PollReport
) -> None:
    """One subscription's matches and state, in one transaction; not while a record it would
    deliver could not be fetched."""
    blocked = failed_items.intersection(f.items) if f.deliver else set()
    if blocked:
        _fail(
            store,
            report,
            f.sub.name,
            f"{len(blocked)} records could not be fetched; retried next poll",
            now,
        )
        return
    new = store.commit_poll(
        f.sub.name,
        f.items,
        source=f.source,
        deliver=f.deliver,
        now=now,
        window_end=f.window_end,
        found=len(f.items),
        requests=f.requests,
        etag=f.etag,
        last_modified=f.last_modified,
    )
    report.outcomes.append(Outcome(f.sub.name, len(f.items), new, f.requests))
    log.info(
        "poll %s: %d found, %d new matches, %d requests (%s)",
        f.sub.name,
        len(f.items),
        new,
        f.requests,
        f.source,
        extra={
            "fields": {
                "event": "poll",
                "subscription": f.sub.name,
                "found": len(f.items),
                "new": new,
                "requests": f.requests,
            }
        },
    )


def _search(
    sub: Subscription,
    state: PollState | None,
    source: Source,
    sources: Sources,
    now: datetime,
) -> Found:
    fresh = state is None or (state.window_end is None and state.last_success_at is None)
    # lookback_days = 0: the first poll only records what exists as a baseline, to be mailed never.
    baseline = fresh and sub.schedule.lookback_days == 0
    before = sources.requests
    got = source.find(sub, state, now)
    return Found(
        sub,
        got.items,
        not baseline,
        "baseline" if baseline else got.label,
        source.records,
        window_end=got.window_end,
        etag=got.etag,
        last_modified=got.last_modified,
        requests=sources.requests - before,
    )


def _fetch_missing(
    found: list[Found], store: Store, now: datetime, report: PollReport
) -> set[ItemKey]:
    """Fetch, once each, the items some subscription will deliver that the store lacks.
    Returns the items whose batch failed."""
    # Sources that share a record fetcher (PubMed's search and RSS) share one pass of it.
    by_fetcher: dict[int, tuple[Records, dict[ItemKey, None]]] = {}
    for f in found:
        if f.deliver:
            by_fetcher.setdefault(id(f.records), (f.records, {}))[1].update(dict.fromkeys(f.items))
    failed: set[ItemKey] = set()
    for client, wanted in by_fetcher.values():
        for batch in _batches(_unknown(store, list(wanted)), client.batch_size):
            try:
                report.fetched += _fetch_and_store(
                    batch, store, client, now, report.record_errors.append
                )
            except SourceError as exc:
                log.error("efetch of %d records failed: %s", len(batch), exc)
                failed.update(batch)
    return failed


def _unknown(store: Store, items: Sequence[ItemKey]) -> list[ItemKey]:
    """`items` the store has no record of, in their order."""
    known = store.known_items(items)
    return [p for p in items if p not in known]


def _fetch_and_store(
    batch: Sequence[ItemKey],
    store: Store,
    client: Records,
    now: datetime,
    on_error: Callable[[str], None] | None = None,
) -> int:
    """One efetch of `batch`, stored; returns how many records came back."""
    articles = list(client.fetch_items(batch, on_error))
    store.upsert_articles(articles, now)
    absent = set(batch).difference(*(identifiers(a) for a in articles))
    if absent:
        # Withdrawn or not yet released records: esearch lists them, efetch returns nothing.
        log.warning(
            "efetch returned no record for %d items: %s",
            len(absent),
            ", ".join(sorted(absent)[:10]),
        )
    return len(articles)


def _fail(store: Store, report: PollReport, name: str, error: str, now: datetime) -> None:
    log.error(
        "poll %s failed: %s",
        name,
        error,
        extra={"fields": {"event": "poll_error", "subscription": name}},
    )
    store.record_poll_error(name, error, now)
    report.outcomes.append(Outcome(name, error=error))


def _batches(items: Sequence[ItemKey], size: int) -> list[Sequence[ItemKey]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@dataclass
class BackfillReport:
    subscription: str
    slices: int = 0
    found: int = 0
    fetched: int = 0
    new_matches: int = 0
    resumed_from: date | None = None


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
) -> list[BackfillReport]:
    """Load a query subscription's history from `since`, a year's slice at a time.

    Each slice is committed with the subscription's backfill mark, so an interrupted backfill
    resumes after its last complete slice. Backfilled papers are known, not news, unless
    `deliver` is set.
    """
    reports = []
    today = ncbi_today(now)
    for sub in subscriptions:
        source = sources[sub]
        if not isinstance(source, History):
            log.warning("%s: an RSS feed has no history to backfill; skipped", sub.name)
            continue
        state = store.poll_state(sub.name)
        start = since
        report = BackfillReport(sub.name)
        if state and state.backfill_done and state.backfill_done >= since:
            start = state.backfill_done + timedelta(days=1)
            report.resumed_from = start
        slices = []
        lo = start
        while lo <= today:
            hi = min(today, lo + BACKFILL_SLICE - timedelta(days=1))
            slices.append((lo, hi))
            lo = hi + timedelta(days=1)
        for n, (lo, hi) in enumerate(slices, 1):
            items = source.find_window(sub, lo, hi)
            records = source.records
            for batch in _batches(_unknown(store, items), records.batch_size):
                report.fetched += _fetch_and_store(batch, store, records, now)
            report.new_matches += store.record_backfill(
                sub.name, items, deliver=deliver, now=now, done_through=hi
            )
            report.found += len(items)
            report.slices = n
            if progress is not None:
                progress(sub.name, n, len(slices), report.found)
        reports.append(report)
    return reports
