"""The records a poll's matches need that the store lacks: fetched once each, in batches shared
by every subscription whose source has the same record fetcher. A record that did not come is
owed, and asked for again at later polls with backoff (record_retry_at); one its source deleted
is not."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from watcher.errors import SourceError
from watcher.identity import ItemKey, identifiers, pmid_key, pmid_of
from watcher.poll_report import Found, PollReport
from watcher.sources.base import Records
from watcher.store import Store

log = logging.getLogger(__name__)

# A matched record missing from efetch's answer (or unreadable) is asked for again with backoff.
RECORD_RETRY_FIRST = timedelta(minutes=15)
RECORD_RETRY_MAX = timedelta(days=1)
RECORD_GIVE_UP = timedelta(days=30)
DELETED = "deleted from PubMed by NCBI (a DeleteCitation in its efetch answer)"


def fetch_missing(
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
        # The papers it follows, too: a digest names them ("cites Herold 2019, N Engl J Med").
        keys = [pmid_key(p) for p in (*f.sub.like, *f.sub.followed)]
        liked.update(keys)
        by_fetcher.setdefault(id(f.records), (f.records, {}))[1].update(dict.fromkeys(keys))
    failed: dict[ItemKey, str] = {}
    missing: dict[ItemKey, str] = {}
    deleted: dict[ItemKey, str] = {}
    due: list[ItemKey] = []
    for client, wanted in by_fetcher.values():
        due += _fetch_due(
            client, unknown_items(store, list(wanted)), store, now, report, failed, missing, deleted
        )
    # A match whose record did not come stays owed: later polls ask again (record_retry_at).
    for item in liked.difference(owed).difference(i for f in found for i in f.items):
        missing.pop(item, None)
        deleted.pop(item, None)
    store.articles.record_missing(missing, now)
    if deleted:
        # Owed no more: NCBI says so, where a record merely missing might still come.
        log.warning(
            "NCBI deleted %d matched records from PubMed (a DeleteCitation in its efetch "
            "answer); they are not asked for again: %s",
            len(deleted),
            ", ".join(sorted(deleted)[:10]),
            extra={"fields": {"event": "records_deleted", "items": sorted(deleted)}},
        )
        store.articles.record_deleted(deleted, now)
        report.deleted += sorted(deleted)
    store.articles.forget_missing(
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
    tried = store.articles.attempts(wanted)
    due = [p for p in wanted if p not in tried or _retry_due(record_retry_at(*tried[p]), now)]
    if len(due) < len(wanted):
        log.info(
            "%d records NCBI did not give at earlier polls wait for their next try "
            "(see `watcher status`)",
            len(wanted) - len(due),
        )
    for batch in batches(due, client.batch_size):
        errors_before = len(report.record_errors)
        try:
            fetched, gone = fetch_and_store(batch, store, client, now, report.record_errors.append)
        except SourceError as exc:
            log.error("efetch of %d records failed: %s", len(batch), exc)
            failed.update(dict.fromkeys(batch, str(exc)))
            continue
        report.fetched += fetched
        errors = report.record_errors[errors_before:]
        for item in set(batch) - store.articles.known(batch):
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


def unknown_items(store: Store, items: Sequence[ItemKey]) -> list[ItemKey]:
    """`items` the store has no record of, in their order."""
    known = store.articles.known(items)
    return [p for p in items if p not in known]


def fetch_and_store(
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
    store.articles.upsert(articles, now)
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


def batches(items: Sequence[ItemKey], size: int) -> list[Sequence[ItemKey]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
