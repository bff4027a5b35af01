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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from watcher.config import Config
from watcher.errors import SourceError, Unreachable
from watcher.followups import RefreshReport, notices_found, published_as, refresh
from watcher.identity import ItemKey, identifiers, key, pmid_key, pmid_of
from watcher.models import Article, JournalVersion, PollState, TrialState
from watcher.schedule import next_poll_time
from watcher.sources.base import History, Records, Source
from watcher.sources.eutils import ncbi_today
from watcher.sources.kinds import Sources
from watcher.store import Store
from watcher.subscriptions import Subscription

log = logging.getLogger(__name__)

BACKFILL_SLICE = timedelta(days=365)
# A matched record missing from efetch's answer (or unreadable) is asked for again with backoff.
RECORD_RETRY_FIRST = timedelta(minutes=15)
RECORD_RETRY_MAX = timedelta(days=1)
RECORD_GIVE_UP = timedelta(days=30)
DELETED = "deleted from PubMed by NCBI (a DeleteCitation in its efetch answer)"


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
    found, down = _find_all(subs, store, sources, now, report)
    changes = _store_held(found, store, now, report)
    # Records owed by earlier polls are asked for too, unless their source did not answer at all.
    owed = _owed(store, subs, sources, down)
    failed_items = _fetch_missing(found, owed, store, now, report)
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
            report.record_errors += found[-1].skipped
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
    store.upsert_articles(held, now)
    for v in report.journal_versions:
        log.info("preprint %s is published: PMID %d (%s)", v.ppr, v.pmid, v.journal or "?")
    if report.journal_versions:
        # Told as a follow-up to whoever received the preprint. Recorded on the item the
        # preprint is now part of (storing its record may have joined it to the journal
        # version's); a later join carries the change to the survivor.
        items = store.resolve(v.item for v in report.journal_versions)
        report.changes += store.record_changes(
            [published_as(items[v.item], v.pmid, v.journal) for v in report.journal_versions],
            now,
        )
    changes: dict[str, int] = {}
    for f in found:
        if f.trials:
            changes[f.sub.name] = len(store.record_trials(f.trials, now))
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
    items = store.resolve(key("ppr", ppr) for ppr, _, _ in links)
    before = store.articles(set(items.values()))
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
    for item, awaited in store.awaited_records(list(by_name)).items():
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
        known=[pmid_key(p) for p in f.sub.like],
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
        held=got.records,
        trials=got.trials,
        skipped=got.skipped,
    )


def _fetch_missing(
    found: list[Found],
    owed: Mapping[ItemKey, Records],
    store: Store,
    now: datetime,
    report: PollReport,
) -> dict[ItemKey, str]:
    """Fetch, once each and in shared batches, the items some subscription will deliver that the
    store lacks: this poll's matches and the records earlier polls matched but could not get
    (`owed`), these as their backoff allows. Returns the items whose batch failed, with the
    error."""
    # Sources that share a record fetcher (PubMed's search and RSS) share one pass of it.
    by_fetcher: dict[int, tuple[Records, dict[ItemKey, None]]] = {}
    for f in found:
        if f.deliver:
            by_fetcher.setdefault(id(f.records), (f.records, {}))[1].update(dict.fromkeys(f.items))
    for item, records in owed.items():
        by_fetcher.setdefault(id(records), (records, {}))[1][item] = None
    # The papers a subscription's readers `like` ride in the same batches, once: relevance
    # ranking reads their stored records. They are not owed: a missing one is not chased.
    liked: set[ItemKey] = set()
    for f in found:
        keys = [pmid_key(p) for p in f.sub.like]
        liked.update(keys)
        by_fetcher.setdefault(id(f.records), (f.records, {}))[1].update(dict.fromkeys(keys))
    failed: dict[ItemKey, str] = {}
    missing: dict[ItemKey, str] = {}
    deleted: dict[ItemKey, str] = {}
    due: list[ItemKey] = []
    for client, wanted in by_fetcher.values():
        due += _fetch_due(
            client, _unknown(store, list(wanted)), store, now, report, failed, missing, deleted
        )
    # A match whose record did not come stays owed: later polls ask again (record_retry_at).
    for item in liked.difference(owed).difference(i for f in found for i in f.items):
        missing.pop(item, None)
        deleted.pop(item, None)
    store.record_missing(missing, now)
    if deleted:
        # Owed no more: NCBI says so, where a record merely missing might still come.
        log.warning(
            "NCBI deleted %d matched records from PubMed (a DeleteCitation in its efetch "
            "answer); they are not asked for again: %s",
            len(deleted),
            ", ".join(sorted(deleted)[:10]),
            extra={"fields": {"event": "records_deleted", "items": sorted(deleted)}},
        )
        store.record_deleted(deleted, now)
        report.deleted += sorted(deleted)
    store.forget_missing(
        p for p in due if p not in missing and p not in failed and p not in deleted
    )
    back = [p for p in owed if p in due and p not in missing and p not in failed]
    if back:
        log.info("%d records awaited from earlier polls arrived", len(back))
    return failed


def _fetch_due(
    client: Records,
    wanted: list[ItemKey],
    store: Store,
    now: datetime,
    report: PollReport,
    failed: dict[ItemKey, str],
    missing: dict[ItemKey, str],
    deleted: dict[ItemKey, str],
) -> list[ItemKey]:
    """Fetch those of `wanted` whose backoff allows, noting the failed batches, the records
    that did not come and those their source deleted; returns the items asked for."""
    tried = store.record_attempts(wanted)
    due = [p for p in wanted if p not in tried or _retry_due(record_retry_at(*tried[p]), now)]
    if len(due) < len(wanted):
        log.info(
            "%d records NCBI did not give at earlier polls wait for their next try "
            "(see `watcher status`)",
            len(wanted) - len(due),
        )
    for batch in _batches(due, client.batch_size):
        errors_before = len(report.record_errors)
        try:
            fetched, gone = _fetch_and_store(batch, store, client, now, report.record_errors.append)
        except SourceError as exc:
            log.error("efetch of %d records failed: %s", len(batch), exc)
            failed.update(dict.fromkeys(batch, str(exc)))
            continue
        report.fetched += fetched
        errors = report.record_errors[errors_before:]
        for item in set(batch) - store.known_items(batch):
            if pmid_of(item) in gone:
                deleted[item] = DELETED
                continue
            said = re.compile(rf"\bPMID {pmid_of(item)}\b")
            missing[item] = next(
                (e for e in errors if said.search(e)), "not in NCBI's efetch answer"
            )
    return due


def record_retry_at(
    attempts: int,
    first_miss: datetime,
    last_attempt: datetime,
    deleted_at: datetime | None = None,
) -> datetime | None:
    """When a record NCBI did not give is asked for again: RECORD_RETRY_FIRST after the first
    miss, the wait doubling up to RECORD_RETRY_MAX; None once RECORD_GIVE_UP has passed since
    the first miss (a record not yet released comes within hours or days; a deleted one never
    does), and None at once for a record NCBI said it deleted. `watcher status` lists it either
    way."""
    if deleted_at is not None or last_attempt - first_miss >= RECORD_GIVE_UP:
        return None
    wait: timedelta = RECORD_RETRY_FIRST * 2 ** min(attempts - 1, 16)
    return last_attempt + min(wait, RECORD_RETRY_MAX)


def _retry_due(when: datetime | None, now: datetime) -> bool:
    return when is not None and when <= now


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
) -> tuple[int, set[int]]:
    """One efetch of `batch`, stored; returns how many records came back, and the PMIDs NCBI
    said it deleted."""
    gone: set[int] = set()
    articles = list(client.fetch_items(batch, on_error, gone.add))
    store.upsert_articles(articles, now)
    absent = set(batch).difference(*(identifiers(a) for a in articles))
    absent = {i for i in absent if pmid_of(i) not in gone}
    if absent:
        # Withdrawn or not yet released records: esearch lists them, efetch returns nothing.
        log.warning(
            "efetch returned no record for %d items: %s",
            len(absent),
            ", ".join(sorted(absent)[:10]),
        )
    return len(articles), gone


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
                report.fetched += _fetch_and_store(batch, store, records, now)[0]
            report.new_matches += store.record_backfill(
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
