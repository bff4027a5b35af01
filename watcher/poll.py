"""One poll: each due subscription's search (or feed), then one efetch pass for the union of the
PMIDs the store lacks, then each subscription's matches and state committed together.

Spending: one esearch per subscription (its window covers creation and MeSH dates),
ceil(new PMIDs / batch size) efetch, each PMID fetched at most once per poll however many
subscriptions matched it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit

from watcher.config import Config, Subscription
from watcher.errors import SourceError, Unreachable
from watcher.schedule import next_poll_time
from watcher.sources.eutils import EUtils, ncbi_today
from watcher.sources.rss import read_feed
from watcher.store import AwaitedRecord, PollState, Store

log = logging.getLogger(__name__)

BACKFILL_SLICE = timedelta(days=365)
# A matched record missing from efetch's answer (or unreadable) is asked for again with backoff.
RECORD_RETRY_FIRST = timedelta(minutes=15)
RECORD_RETRY_MAX = timedelta(days=1)
RECORD_GIVE_UP = timedelta(days=30)


@dataclass
class Found:
    """What one subscription's source returned, not yet committed."""

    sub: Subscription
    pmids: list[int]
    deliver: bool
    source: str
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
    client: EUtils,
    now: datetime,
    subscriptions: Sequence[Subscription] | None = None,
) -> PollReport:
    """Poll `subscriptions` (default: all) together. A failing one is recorded on its own row
    and does not stop the others; state advances only with committed results."""
    started = time.monotonic()
    requests_before = client.counters.requests
    subs = list(config.subscriptions if subscriptions is None else subscriptions)
    states = store.poll_states()
    report = PollReport()
    found: list[Found] = []
    # A host that never answered through all retries is not asked again in this poll: the
    # subscriptions behind it are recorded as failed at once instead of each waiting it out.
    down: dict[str, str] = {}
    for sub in subs:
        host = urlsplit(sub.rss or config.ncbi.base_url).netloc
        if host in down:
            _fail(store, report, sub.name, down[host], now)
            continue
        try:
            found.append(
                _search(
                    sub,
                    states.get(sub.name),
                    client,
                    config.ncbi.datetype,
                    config.ncbi.overlap_days,
                    now,
                )
            )
        except Unreachable as exc:
            down[host] = str(exc)
            _fail(store, report, sub.name, str(exc), now)
        except SourceError as exc:
            _fail(store, report, sub.name, str(exc), now)

    # Records owed by earlier polls are asked for too, unless NCBI did not answer at all.
    ncbi_down = urlsplit(config.ncbi.base_url).netloc in down
    owed = {} if ncbi_down else store.awaited_records([s.name for s in subs])
    failed_pmids = _fetch_missing(found, owed, store, client, now, report)

    for f in found:
        blocked = failed_pmids.intersection(f.pmids) if f.deliver else set()
        if blocked:
            _fail(
                store,
                report,
                f.sub.name,
                f"{len(blocked)} records could not be fetched; retried next poll",
                now,
            )
            continue
        new = store.commit_poll(
            f.sub.name,
            f.pmids,
            source=f.source,
            deliver=f.deliver,
            now=now,
            window_end=f.window_end,
            found=len(f.pmids),
            requests=f.requests,
            etag=f.etag,
            last_modified=f.last_modified,
        )
        report.outcomes.append(Outcome(f.sub.name, len(f.pmids), new, f.requests))
        log.info(
            "poll %s: %d found, %d new matches, %d requests (%s)",
            f.sub.name,
            len(f.pmids),
            new,
            f.requests,
            f.source,
            extra={
                "fields": {
                    "event": "poll",
                    "subscription": f.sub.name,
                    "found": len(f.pmids),
                    "new": new,
                    "requests": f.requests,
                }
            },
        )
    report.requests = client.counters.requests - requests_before
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


def _search(
    sub: Subscription,
    state: PollState | None,
    client: EUtils,
    datetype: str,
    overlap_days: int,
    now: datetime,
) -> Found:
    fresh = state is None or (state.window_end is None and state.last_success_at is None)
    # lookback_days = 0: the first poll only records what exists as a baseline, to be mailed never.
    baseline = fresh and sub.schedule.lookback_days == 0
    before = client.counters.requests
    if sub.query is not None:
        today = ncbi_today(now)
        if state is not None and state.window_end is not None:
            # Reach back behind the last window: PubMed adds records dated in the past
            # (late indexing, batch loads). The store's dedupe makes this cost one esearch.
            start = state.window_end - timedelta(days=overlap_days)
        else:
            start = today - timedelta(days=max(sub.schedule.lookback_days, overlap_days))
        # The same window of MeSH dates too: a record that matches only through MeSH headings
        # or publication types indexed days or weeks after its creation enters the results
        # when it is indexed, not when it was created. Still one esearch (the term carries both
        # windows); the store's dedupe keeps an already matched record from coming back.
        result = client.search(sub.query, start, today, datetype, indexed_since=start)
        for message in result.errors:
            log.warning(
                "%s: PubMed says %s (the query may match less than intended)", sub.name, message
            )
        return Found(
            sub,
            result.pmids,
            not baseline,
            "baseline" if baseline else "esearch",
            window_end=today,
            requests=client.counters.requests - before,
        )
    assert sub.rss is not None
    feed = read_feed(
        client, sub.rss, state.etag if state else None, state.last_modified if state else None
    )
    return Found(
        sub,
        feed.pmids,
        not baseline,
        "baseline" if baseline else "rss",
        etag=feed.etag,
        last_modified=feed.last_modified,
        requests=client.counters.requests - before,
    )


def _fetch_missing(
    found: list[Found],
    owed: dict[int, AwaitedRecord],
    store: Store,
    client: EUtils,
    now: datetime,
    report: PollReport,
) -> set[int]:
    """Fetch, once each and in shared batches, the PMIDs some subscription will deliver that the
    store lacks: this poll's matches and the records earlier polls matched but could not get
    (`owed`), these as their backoff allows. Returns the PMIDs whose batch failed."""
    wanted = _unknown(
        store, list(dict.fromkeys([*(p for f in found if f.deliver for p in f.pmids), *owed]))
    )
    tried = store.record_attempts(wanted)
    due = [p for p in wanted if p not in tried or _retry_due(record_retry_at(*tried[p]), now)]
    if len(due) < len(wanted):
        log.info(
            "%d records NCBI did not give at earlier polls wait for their next try "
            "(see `watcher status`)",
            len(wanted) - len(due),
        )
    failed: set[int] = set()
    missing: dict[int, str] = {}
    for batch in _batches(due, client.batch_size):
        errors_before = len(report.record_errors)
        try:
            report.fetched += _fetch_and_store(
                batch, store, client, now, report.record_errors.append
            )
        except SourceError as exc:
            log.error("efetch of %d records failed: %s", len(batch), exc)
            failed.update(batch)
            continue
        errors = report.record_errors[errors_before:]
        for pmid in set(batch) - store.known_pmids(batch):
            said = re.compile(rf"\bPMID {pmid}\b")
            missing[pmid] = next(
                (e for e in errors if said.search(e)), "not in NCBI's efetch answer"
            )
    # A match whose record did not come stays owed: later polls ask again (record_retry_at).
    store.record_missing(missing, now)
    store.forget_missing(p for p in due if p not in missing and p not in failed)
    back = [p for p in owed if p in due and p not in missing and p not in failed]
    if back:
        log.info("%d records awaited from earlier polls arrived", len(back))
    return failed


def record_retry_at(attempts: int, first_miss: datetime, last_attempt: datetime) -> datetime | None:
    """When a record NCBI did not give is asked for again: RECORD_RETRY_FIRST after the first
    miss, the wait doubling up to RECORD_RETRY_MAX; None once RECORD_GIVE_UP has passed since
    the first miss (a record not yet released comes within hours or days; a deleted one never
    does). `watcher status` lists it either way."""
    if last_attempt - first_miss >= RECORD_GIVE_UP:
        return None
    return last_attempt + min(RECORD_RETRY_FIRST * 2 ** min(attempts - 1, 16), RECORD_RETRY_MAX)


def _retry_due(when: datetime | None, now: datetime) -> bool:
    return when is not None and when <= now


def _unknown(store: Store, pmids: Sequence[int]) -> list[int]:
    """`pmids` the store has no record of, in their order."""
    known = store.known_pmids(pmids)
    return [p for p in pmids if p not in known]


def _fetch_and_store(
    batch: Sequence[int],
    store: Store,
    client: EUtils,
    now: datetime,
    on_error: Callable[[str], None] | None = None,
) -> int:
    """One efetch of `batch`, stored; returns how many records came back."""
    articles = list(client.fetch(batch, on_error))
    store.upsert_articles(articles, now)
    absent = set(batch) - {a.pmid for a in articles}
    if absent:
        # Withdrawn or not yet released records: esearch lists them, efetch returns nothing.
        log.warning(
            "efetch returned no record for %d PMIDs: %s",
            len(absent),
            ", ".join(map(str, sorted(absent)[:10])),
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


def _batches(items: Sequence[int], size: int) -> list[Sequence[int]]:
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
    client: EUtils,
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
        if sub.query is None:
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
            result = client.search(sub.query, lo, hi, config.ncbi.datetype)
            for batch in _batches(_unknown(store, result.pmids), client.batch_size):
                report.fetched += _fetch_and_store(batch, store, client, now)
            report.new_matches += store.record_backfill(
                sub.name, result.pmids, deliver=deliver, now=now, done_through=hi
            )
            report.found += len(result.pmids)
            report.slices = n
            if progress is not None:
                progress(sub.name, n, len(slices), report.found)
        reports.append(report)
    return reports
