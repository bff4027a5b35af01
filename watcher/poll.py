"""One poll: each due subscription's search (or feed), then one efetch pass for the union of the
PMIDs the store lacks (poll_fetch.py), then each subscription's matches and state committed
together (what each found and the poll's report: poll_report.py). Backfill, too.

Spending: one esearch per subscription (its window covers creation and MeSH dates),
ceil(new PMIDs / batch size) efetch, each PMID fetched at most once per poll however many
subscriptions matched it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from watcher.config import Config
from watcher.errors import SourceError, Unreachable
from watcher.followups import RefreshReport, notices_found, published_as, refresh
from watcher.identity import ItemKey, key, pmid_key
from watcher.models import Article, JournalVersion, PollState
from watcher.poll_fetch import batches, fetch_and_store, fetch_missing, unknown_items
from watcher.poll_report import Found, Outcome, PollReport
from watcher.schedule import next_poll_time
from watcher.sources.base import History, Records, Source
from watcher.sources.eutils import ncbi_today
from watcher.sources.following import first_poll
from watcher.sources.kinds import Sources
from watcher.store import Store
from watcher.subscriptions import Subscription

log = logging.getLogger(__name__)

BACKFILL_SLICE = timedelta(days=365)


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
    found, down = _find_all(subs, store, sources, now, report)
    changes = _store_held(found, store, now, report)
    # Records owed by earlier polls are asked for too, unless their source did not answer at all.
    owed = _owed(store, subs, sources, down)
    failed_items = fetch_missing(found, owed, store, now, report)
    for f in found:
        _commit(f, failed_items, store, now, report)
    for outcome in report.outcomes:
        outcome.changes = changes.get(outcome.name, 0)
    # A retraction notice, erratum or expression of concern about a delivered paper is told to
    # that paper's readers as a follow-up, and never mailed as a paper itself.
    report.changes += notices_found(
        store, [i for f in found if f.deliver for i in f.items if i not in failed_items], now
    )
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
) -> tuple[list[Found], dict[str, str]]:
    """Each subscription's source asked what is new; failures recorded on their own rows.
    Also returns the hosts that never answered (host → error)."""
    states = store.polls.states()
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
            report.record_errors += found[-1].skipped
            if sub.follows and not first_poll(states.get(sub.name)):
                found[-1].items += store.citations.news(sub, found[-1].items, found[-1].links)
        except Unreachable as exc:
            down[host] = str(exc)
            _fail(store, report, sub.name, str(exc), now)
        except SourceError as exc:
            _fail(store, report, sub.name, str(exc), now)
    return found, down


def _store_held(
    found: Sequence[Found], store: Store, now: datetime, report: PollReport
) -> dict[str, int]:
    """Records that came whole with a search are stored as they come (new or revised: a
    preprint's link to its journal version arrives this way), and studies diffed against their
    kept state; returns each subscription's count of trial changes."""
    held = [a for f in found for a in f.held]
    report.journal_versions += journal_versions(store, held)
    store.articles.upsert(held, now)
    for v in report.journal_versions:
        log.info("preprint %s is published: PMID %d (%s)", v.ppr, v.pmid, v.journal or "?")
    if report.journal_versions:
        # Told as a follow-up to whoever received the preprint. Recorded on the item the
        # preprint is now part of (storing its record may have joined it to the journal
        # version's); a later join carries the change to the survivor.
        items = store.items.resolve(v.item for v in report.journal_versions)
        report.changes += store.changes.record(
            [published_as(items[v.item], v.pmid, v.journal) for v in report.journal_versions],
            now,
        )
    changes: dict[str, int] = {}
    for f in found:
        if f.trials:
            changes[f.sub.name] = len(store.trials.record(f.trials, now))
    return changes


def journal_versions(store: Store, held: Sequence[Article]) -> list[JournalVersion]:
    """Preprints the store knew without a journal version that now have one: the preprint's
    record names it (Europe PMC's "Preprint of"), or the journal version's record names the
    preprint ("Preprint in"). Read before the new records are stored."""
    links = [
        (a.ppr, a.published_pmid, a.published_in)
        for a in held
        if a.pmid is None and a.ppr and a.published_pmid is not None
    ]
    links += [(p, a.pmid, a.journal_iso or a.journal) for a in held if a.pmid for p in a.preprints]
    if not links:
        return []
    items = store.items.resolve(key("ppr", ppr) for ppr, _, _ in links)
    before = store.articles.records(set(items.values()))
    out: dict[ItemKey, JournalVersion] = {}
    for ppr, pmid, journal in links:
        item = items[key("ppr", ppr)]
        was = before.get(item)
        if was is not None and was.pmid is None and was.published_pmid is None:
            out.setdefault(item, JournalVersion(item, ppr, pmid, journal))
    return list(out.values())


def _owed(
    store: Store, subs: Sequence[Subscription], sources: Sources, down: Mapping[str, str]
) -> dict[ItemKey, Records]:
    """Items earlier polls matched but could not get, each with the fetcher of a subscription
    that matched it, unless that subscription's source did not answer in this poll."""
    by_name = {s.name: s for s in subs}
    out: dict[ItemKey, Records] = {}
    for item, awaited in store.articles.awaited(list(by_name)).items():
        if awaited.deleted_at is not None:
            continue  # deleted by its source: owed no more
        for name in awaited.subscriptions:
            source = sources[by_name[name]]
            if source.host(by_name[name]) not in down:
                out[item] = source.records
                break
    return out


def _commit(
    f: Found, failed_items: Mapping[ItemKey, str], store: Store, now: datetime, report: PollReport
) -> None:
    """One subscription's matches and state, in one transaction; not while a record it would
    deliver could not be fetched."""
    blocked = [i for i in f.items if i in failed_items] if f.deliver else []
    if blocked:
        # Why, too: `watcher status` shows this line alone, without the log's efetch error.
        _fail(
            store,
            report,
            f.sub.name,
            f"{len(blocked)} records could not be fetched ({failed_items[blocked[0]]}); "
            "retried next poll",
            now,
        )
        return
    new = store.polls.commit(
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
        known=[pmid_key(p) for p in f.sub.like],
    )
    if f.sub.follows:
        # After the matches: a poll that dies in between announces these links' papers again
        # next time, which the matches already hold (never twice in a digest).
        store.citations.record(f.sub.name, f.links, now, f.sub)
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
        held=got.records,
        trials=got.trials,
        skipped=got.skipped,
        links=got.links,
    )


def _fail(store: Store, report: PollReport, name: str, error: str, now: datetime) -> None:
    log.error(
        "poll %s failed: %s",
        name,
        error,
        extra={"fields": {"event": "poll_error", "subscription": name}},
    )
    store.polls.record_error(name, error, now)
    report.outcomes.append(Outcome(name, error=error))


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
            what = "a subscription following papers" if sub.follows else "an RSS feed"
            log.warning("%s: %s has no history to backfill; skipped", sub.name, what)
            continue
        state = store.polls.state(sub.name)
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
            for batch in batches(unknown_items(store, items), records.batch_size):
                report.fetched += fetch_and_store(batch, store, records, now)[0]
            report.new_matches += store.polls.record_backfill(
                sub.name, items, deliver=deliver, now=now, done_through=hi
            )
            report.found += len(items)
            report.slices = n
            if progress is not None:
                progress(sub.name, n, len(slices), report.found)
        reports.append(report)
    return reports


def refresh_followups(
    config: Config, store: Store, sources: Sources, now: datetime, *, force: bool = False
) -> RefreshReport:
    """Fetch the delivered papers' PubMed records again when `[followups] every` has passed
    (or now, with `force`), through the same E-utilities client and rate limit as the polls."""
    client = sources.kit.pubmed
    return refresh(config.followups, store, client, lambda: sources.requests, now, force=force)
