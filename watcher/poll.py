"""One poll round, a batch of subscriptions at a time (ROUND_BATCH): each subscription's search
(or feed), several waiting for answers at once; then one efetch pass for the union of the PMIDs
the store lacks (poll_fetch.py); then the batch's matches and states committed in one
transaction (what each found and the round's report: poll_report.py), while the next batch is
searched. Backfill is in backfill.py.

Spending: one esearch per subscription (its window covers creation and MeSH dates),
ceil(new PMIDs / batch size) efetch per batch, each PMID fetched at most once per round however
many subscriptions matched it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime
from functools import partial

from watcher.config import Config
from watcher.errors import SourceError, Unreachable
from watcher.followups import RefreshReport, notices_found, published_as, refresh
from watcher.identity import ItemKey, key, pmid_key
from watcher.models import Article, JournalVersion, PollState
from watcher.poll_fetch import fetch_missing
from watcher.poll_locks import Claimer, unlocked
from watcher.poll_report import Found, Outcome, PollReport
from watcher.schedule import next_poll_time
from watcher.sources.base import Records, Source
from watcher.sources.eutils import ncbi_today as ncbi_today  # tests and benches take it here
from watcher.sources.following import first_poll
from watcher.sources.kinds import Sources
from watcher.store import PollCommit, RecordsOwed, Store
from watcher.subscriptions import Subscription

log = logging.getLogger(__name__)

Searching = Future[Found | SourceError]


def due_subscriptions(
    config: Config, states: dict[str, PollState], now: datetime
) -> list[Subscription]:
    due = []
    for sub in config.subscriptions:
        state = states.get(sub.name)
        if next_poll_time(sub.schedule, state.last_poll_at if state else None, now) <= now:
            due.append(sub)
    return due


# A round polls its subscriptions in batches of this many: a batch's searches, the efetch of
# the union of what they found, and the batch's commit (one transaction) come before the next
# batch's searches, so a crash or a restart loses the batch in progress at most. The whole
# round's union would fill its efetch requests but the last; each batch's union adds at most
# one partly filled request to that, against ROUND_BATCH esearches: at most 1% over the minimum.
ROUND_BATCH = 100


def poll(
    config: Config,
    store: Store,
    sources: Sources,
    now: datetime,
    subscriptions: Sequence[Subscription] | None = None,
    claim: Claimer = unlocked,
) -> PollReport:
    """Poll `subscriptions` (default: all), a batch at a time (ROUND_BATCH), each batch's
    subscriptions claimed (`claim`: poll_locks.claimer, the store's locks) from its searches to
    its commit; those another process holds are left to it (`report.skipped`). A failing one
    is recorded on its own row and does not stop the others; state advances only with
    committed results."""
    started = time.monotonic()
    requests_before = sources.requests
    subs = list(config.subscriptions if subscriptions is None else subscriptions)
    report = PollReport()
    states: dict[str, PollState] = {}
    # A host that never answered through all retries is not asked again in this round: the
    # subscriptions behind it are recorded as failed at once instead of each waiting it out.
    down: dict[str, str] = {}
    groups = [subs[i : i + ROUND_BATCH] for i in range(0, len(subs), ROUND_BATCH)]
    searchers = ThreadPoolExecutor(sources.kit.searches_in_flight, "search")
    search = partial(_search_safely, states=states, sources=sources, now=now, down=down)
    held: deque[ExitStack] = deque()  # the claims of the batch committing and the one searched

    def begin(group: Sequence[Subscription]) -> tuple[list[Subscription], list[Searching]]:
        """Claim `group` and start searching what this process holds of it."""
        locks = ExitStack()
        held.append(locks)
        got = locks.enter_context(claim(group))
        report.skipped += got.busy
        # Read under the lock: another process may have polled it since the round began.
        if got.states is not None:
            states.update(got.states)
        elif got.mine:
            states.update(store.polls.states([s.name for s in got.mine]))
        return got.mine, [searchers.submit(search, sub) for sub in got.mine]

    try:
        batch, searching = begin(groups[0]) if groups else ([], [])
        for n in range(len(groups)):
            found = _found(batch, searching, states, store, now, report)
            # The next batch is searched while this one's records are fetched and it is
            # committed, so that the rate is never left unspent; a crash loses this batch and
            # the searches made meanwhile.
            nxt, searching = begin(groups[n + 1]) if n + 1 < len(groups) else ([], [])
            _poll_batch(found, batch, store, sources, now, report, down)
            held.popleft().close()
            batch = nxt
    finally:
        # A round stopped by an error or an interrupt begins no more searches, and lets go of
        # its locks once those under way have ended.
        searchers.shutdown(cancel_futures=True)
        while held:
            held.popleft().close()
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


def _poll_batch(
    found: list[Found],
    subs: Sequence[Subscription],
    store: Store,
    sources: Sources,
    now: datetime,
    report: PollReport,
    down: Mapping[str, str],
) -> None:
    """What a batch's searches found: records stored, the union of those missing fetched once,
    and the batch committed."""
    changes = _store_held(found, store, now, report)
    # Records owed by earlier polls are asked for too, unless their source did not answer at all.
    owed = _owed(store, subs, sources, down)
    failed_items, still_owed = fetch_missing(found, owed, store, now, report)
    _commit(found, failed_items, still_owed, store, now, report, changes)
    # A retraction notice, erratum or expression of concern about a delivered paper is told to
    # that paper's readers as a follow-up, and never mailed as a paper itself.
    report.changes += notices_found(
        store, [i for f in found if f.deliver for i in f.items if i not in failed_items], now
    )


def _search_safely(
    sub: Subscription,
    *,
    states: Mapping[str, PollState],
    sources: Sources,
    now: datetime,
    down: dict[str, str],
) -> Found | SourceError:
    """One subscription's source asked what is new, on a searcher thread (several search at
    once: answers take longer than the rate's interval); its failure returned, not raised. A
    host that never answered is not asked again (`down`: host → error)."""
    host = sources[sub].host(sub)
    if host in down:
        return Unreachable(down[host])
    try:
        return _search(sub, states.get(sub.name), sources[sub], sources, now)
    except Unreachable as exc:
        down.setdefault(host, str(exc))
        return exc
    except SourceError as exc:
        return exc


def _found(
    subs: Sequence[Subscription],
    searching: Sequence[Searching],
    states: Mapping[str, PollState],
    store: Store,
    now: datetime,
    report: PollReport,
) -> list[Found]:
    """The answers of `subs`' searches as they come; failures recorded on their own rows, in
    the subscriptions' order. A followed paper's new links join its subscription's items
    (read here, on the poll's thread: the store is not the searchers')."""
    found: list[Found] = []
    for sub, future in zip(subs, searching, strict=True):
        got = future.result()
        if isinstance(got, SourceError):
            _fail(store, report, sub.name, str(got), now)
            continue
        found.append(got)
        report.record_errors += got.skipped
        if sub.follows and not first_poll(states.get(sub.name)):
            got.items += store.citations.news(sub, got.items, got.links)
    return found


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
    found: Sequence[Found],
    failed_items: Mapping[ItemKey, str],
    owed: RecordsOwed,
    store: Store,
    now: datetime,
    report: PollReport,
    changes: Mapping[str, int],
) -> None:
    """The subscriptions' matches and states and the records `owed`, in one transaction; not
    the subscriptions with a record to deliver that could not be fetched."""
    ready: list[Found] = []
    for f in found:
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
        else:
            ready.append(f)
    commits = [
        PollCommit(
            f.sub.name,
            f.items,
            f.source,
            f.deliver,
            f.window_end,
            len(f.items),
            f.requests,
            f.etag,
            f.last_modified,
            [pmid_key(p) for p in f.sub.like],
        )
        for f in ready
    ]
    for f, new in zip(ready, store.polls.commit_batch(commits, now, owed), strict=True):
        name = f.sub.name
        if f.sub.follows:
            # After the matches: a poll that dies in between announces these links' papers
            # again next time, which the matches already hold (never twice in a digest).
            store.citations.record(name, f.links, now, f.sub)
        report.outcomes.append(
            Outcome(name, len(f.items), new, f.requests, changes=changes.get(name, 0))
        )
        log.info(
            "poll %s: %d found, %d new matches, %d requests (%s)",
            name,
            len(f.items),
            new,
            f.requests,
            f.source,
            extra={
                "fields": {
                    "event": "poll",
                    "subscription": name,
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
    before = sources.requests_mine
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
        requests=sources.requests_mine - before,
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


def refresh_followups(
    config: Config, store: Store, sources: Sources, now: datetime, *, force: bool = False
) -> RefreshReport:
    """Fetch the delivered papers' PubMed records again when `[followups] every` has passed
    (or now, with `force`), through the same E-utilities client and rate limit as the polls."""
    client = sources.kit.pubmed
    return refresh(config.followups, store, client, lambda: sources.requests, now, force=force)
