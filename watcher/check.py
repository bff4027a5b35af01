"""`watcher check`: the config as the watcher reads it (each subscription's source, readers
and next runs, each [[recipient]]'s own schedule) and, with --online, each search asked once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from watcher.config import Config
from watcher.errors import SourceError
from watcher.redact import redact
from watcher.schedule import next_digest_time, next_poll_time
from watcher.subscriptions import Subscription
from watcher.toml_reading import format_duration
from watcher.wiring import make_sources, ncbi_client

TYPE_CHECKING = False
if TYPE_CHECKING:
    from watcher.sources.base import Source
    from watcher.store import Store


def print_check(config: Config, store: Store, now: datetime) -> None:
    """The config's summary: its store, each subscription (source, readers, next poll and
    digest) and each [[recipient]] table."""
    states = store.polls.states()
    print(
        f"{config.path}: OK, {len(config.subscriptions)} subscriptions, store {store.display_url}"
    )
    _print_files(config)
    # Thousands of subscriptions share a few digest schedules: each one's next time worked out
    # once (building a cron trigger costs more than the rest of a subscription's lines).
    digests: dict[tuple[str, str], datetime] = {}
    for sub in config.subscriptions:
        state = states.get(sub.name)
        poll = next_poll_time(sub.schedule, state.last_poll_at if state else None, now)
        when = (sub.schedule.digest_cron, sub.schedule.timezone)
        if when not in digests:
            digests[when] = next_digest_time(*when, now)
        digest = digests[when]
        every = format_duration(sub.schedule.poll_every)
        print(
            # A feed URL may carry user:password@ (see config.secret_keys): never print it.
            f"\n  {sub.name} [{sub.kind}]\n    {redact(sub.source)}\n"
            f"    recipients: {', '.join(_mailbox(config, r) for r in sub.recipients)}\n"
            f"    next poll:   {_when(poll, now)} (every {every})\n"
            f"    next digest: {digest.isoformat(timespec='minutes')} "
            f"({sub.schedule.digest_cron!r} {sub.schedule.timezone})"
        )
    _print_readers(config, now)


def _print_files(config: Config) -> None:
    """Each file read (the main one, then those `include` names) and what it held."""
    for file in config.files:
        tables = f", {file.recipients} [[recipient]] tables" if file.recipients else ""
        print(f"  read {file.path}: {file.subscriptions} subscriptions{tables}")


def _print_readers(config: Config, now: datetime) -> None:
    """Each [[recipient]] table: their own digest schedule and how they read."""
    digests = config.digests  # built once: it walks every subscription
    for r in config.recipients:
        cron, tz = r.schedule or ("", "")
        digest = next_digest_time(cron, tz, now)
        mine = digests.get((cron, tz), {}).get(r.address, ())
        paused = f"\n    paused until {r.paused_until}" if r.paused(now) else ""
        print(
            f"\n  reader {_mailbox(config, r.address)}\n"
            f"    next digest: {digest.isoformat(timespec='minutes')} ({cron!r} {tz}), "
            f"carrying {', '.join(mine)}\n"
            f"    order {r.order}, abstract {r.abstract}, max_items {r.max_items}{paused}"
        )


def check_online(config: Config, clock: Callable[[], datetime]) -> int:
    """Each search asked once: a PubMed query's count, translation and warnings, a registry's
    count. 1 when any of them has an error or a warning."""
    # The client's dates come from the same clock as the poll's `now`.
    client = ncbi_client(config.ncbi, clock=clock)
    # The registries' sources built once: one HTTP layer whose pace holds across subscriptions
    # (built per subscription, each count had a fresh rate limiter, and the building cost
    # grew with the subscriptions).
    sources = make_sources(config, clock=clock)
    problems = 0
    print()
    for sub in config.subscriptions:
        if sub.kind in ("europepmc", "trials"):
            problems += _count_online(sources[sub], sub)
            continue
        if sub.follows:
            problems += _follow_online(config, sub, clock)
        if sub.query is None:
            continue
        # A count, a translation and the warnings are all this shows: esearch with retmax=0
        # answers them in one request, however many papers the query matches.
        result = client.search(sub.query, None, None, ids=False)
        print(f"  {sub.name}: {result.count} papers in all")
        if result.query_translation:
            print(f"    PubMed reads it as: {result.query_translation}")
        for err in result.errors:
            print(f"    ERROR: {err}")
        for warning in result.warnings:
            print(f"    warning: {warning}")
        problems += bool(result.errors or result.warnings)
    return 1 if problems else 0


def _count_online(source: Source, sub: Subscription) -> int:
    """One request (pageSize=1 / countTotal=true): how many records the registry holds for the
    subscription's query; 1 if it could not say."""
    from watcher.sources.base import Counting

    assert isinstance(source, Counting)
    what = "preprints" if sub.kind == "europepmc" else "studies"
    try:
        print(f"  {sub.name}: {source.count(sub.source):,} {what} in all")
    except SourceError as exc:
        print(f"  {sub.name}: ERROR: {exc}")
        return 1
    return 0


def _follow_online(config: Config, sub: Subscription, clock: Callable[[], datetime]) -> int:
    """Per followed paper, how many papers cite it and how many similar ones `top` keeps, as
    ELink and iCite say now (what one poll asks: one elink, one iCite request per 200)."""
    from watcher.sources.following import Following

    source = make_sources(config, clock=clock)[sub]
    assert isinstance(source, Following)
    try:
        links, notes, _ = source.links(sub)
    except SourceError as exc:
        print(f"  {sub.name}: ERROR: {exc}")
        return 1
    counts: dict[tuple[str, int], int] = {}
    for link in links:
        counts[(link.kind, link.followed)] = counts.get((link.kind, link.followed), 0) + 1
    print(f"  {sub.name}: follows {len(sub.followed)} papers")
    for pmid in sub.followed:
        said = [f"{counts.get(('cites', pmid), 0):,} citing"] if pmid in sub.cites else []
        if pmid in sub.similar:
            said.append(f"{counts.get(('similar', pmid), 0):,} similar (top {sub.top})")
        print(f"    PMID {pmid}: {', '.join(said)}")
    for note in notes:
        print(f"    warning: {note.removeprefix(sub.name + ': ')}")
    return 0


def _mailbox(config: Config, address: str) -> str:
    name = config.display_name(address)
    return f"{name} <{address}>" if name else address


def _when(when: datetime, now: datetime) -> str:
    return "now (due)" if when <= now else when.isoformat(timespec="minutes")
