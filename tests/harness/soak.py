"""The soak: poll/digest cycles of `watcher run`'s own jobs in one long-lived process, against
the world of tests/harness/soak_world.py in another, the store checked after every cycle
(tests/harness/store_checks.py) and resident memory, open file descriptors and the database's
size measured per cycle. tests/test_soak.py runs 50 cycles; bench/soak.py runs 500 and prints
the table in bench/README.md.

The watcher side is `watcher run`'s: one store, one set of sources (one HTTP session and its
rate limiters) and a `watcher.daemon.Daemon` whose jobs are called in turn each cycle, on a
simulated clock one hour later each cycle (poll_every is 1h, so every subscription is due each
cycle), without APScheduler's threads. The backoff and rate-limit waits the daemon would sleep
are cut to at most 10 ms.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from watcher.config import Config, load_config
from watcher.daemon import Daemon, sync_store
from watcher.store import Store
from watcher.wiring import make_sources

from .commands import store_url
from .soak_world import READERS, SUBSCRIPTIONS, WorldClient
from .store_checks import Progress, check_store

START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
STEP = timedelta(hours=1)
QUIET_CYCLES = 6  # fault-free cycles at the end, to deliver what the faults held back


def write_config(folder: Path, url: str, ends: dict[str, Any]) -> Path:
    subs = ""
    for name, kind, query in SUBSCRIPTIONS:
        readers = ", ".join(f'"{r}"' for r, follows in READERS.items() if name in follows)
        value = ends["feed"] if kind == "rss" else query
        subs += f'[[subscription]]\nname = "{name}"\n{kind} = "{value}"\nrecipients = [{readers}]\n'
    path = folder / "watcher.toml"
    path.write_text(
        f'[store]\nurl = "{url}"\n'
        f'[ncbi]\nemail = "soak@example.org"\nbase_url = "{ends["ncbi"]}"\nrate_limit = 100\n'
        "retries = 3\ntimeout = 5\n"
        f'[europepmc]\nbase_url = "{ends["europepmc"]}"\nrate_limit = 100\n'
        f'[clinicaltrials]\nbase_url = "{ends["clinicaltrials"]}"\nrate_limit = 100\n'
        '[mail]\nfrom = "watcher@example.org"\n'
        f'[mail.smtp]\nhost = "127.0.0.1"\nport = {ends["smtp_port"]}\nsecurity = "none"\n'
        "timeout = 5\n"
        '[defaults]\ntimezone = "UTC"\npoll_every = "1h"\ndigest_cron = "0 * * * *"\n'
        f"{subs}"
        '[[recipient]]\naddress = "carol@example.org"\ndigest_cron = "30 */2 * * *"\n'
    )
    return path


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def db_bytes(store: Store) -> int:
    if store.sqlite_path is not None:
        files = [store.sqlite_path, store.sqlite_path.with_name(store.sqlite_path.name + "-wal")]
        return sum(p.stat().st_size for p in files if p.exists())
    with store.engine.connect() as conn:
        size = conn.execute(
            text(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')"
            )
        ).scalar_one()
    return int(size)


@dataclass
class Cycle:
    rss: int
    fds: int
    db: int
    papers: int  # items (papers, preprints, trials) added so far
    seconds: float  # the daemon's jobs, wall time
    cpu: float  # the daemon's jobs, this process's processor time (the fakes run elsewhere)
    check_seconds: float  # check_store


@dataclass
class SoakResult:
    cycles: list[Cycle]
    warmup: int
    problems: list[str]
    twice: list[tuple[str, str]]
    never: list[tuple[str, str]]
    unexpected: list[tuple[str, str]]
    messages: int
    distinct_ids: int
    owed_pairs: int
    faults: dict[str, int]
    seconds: float
    store: str
    digests: dict[str, tuple[int, int]]  # state → (digests, bytes of their stored messages)

    def window(self, which: str) -> list[Cycle]:
        n = max(1, len(self.cycles) // 10)
        if which == "first":
            return self.cycles[:n]
        if which == "last":
            return self.cycles[-n:]
        mid = len(self.cycles) // 2
        return self.cycles[mid - n // 2 : mid - n // 2 + n]

    def growth(self, attr: str) -> float:
        """After warm-up: the last 10% average minus the average of the 10% that follow it."""
        after = self.cycles[self.warmup :]
        n = max(1, len(self.cycles) // 10)
        return avg(after[-n:], attr) - avg(after[:n], attr)

    def slope(self, attr: str) -> float:
        """Least-squares growth per cycle after warm-up."""
        ys = [float(getattr(c, attr)) for c in self.cycles[self.warmup :]]
        if len(ys) < 2:
            return 0.0
        mx, my = (len(ys) - 1) / 2, sum(ys) / len(ys)
        num = sum((x - mx) * (y - my) for x, y in enumerate(ys))
        return num / sum((x - mx) ** 2 for x in range(len(ys)))

    @property
    def fd_growth(self) -> int:
        warm = self.cycles[: self.warmup] or self.cycles[:1]
        return max(c.fds for c in self.cycles) - max(c.fds for c in warm)

    def bytes_per_item(self) -> float:
        first, last = self.cycles[self.warmup], self.cycles[-1]
        added = last.papers - first.papers
        return (last.db - first.db) / added if added else 0.0


def avg(cycles: list[Cycle], attr: str) -> float:
    return sum(getattr(c, attr) for c in cycles) / len(cycles)


def run_soak(
    cycles: int,
    seed: int,
    kind: str = "sqlite",
    fault_rate: float = 0.1,
    on_cycle: Callable[[int, Cycle], None] | None = None,
) -> SoakResult:
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, store_url(kind, Path(tmp)) as url:
        world = WorldClient(seed, fault_rate, Path(tmp))
        try:
            return _soak(world, Path(tmp), url, cycles, on_cycle, began, kind)
        finally:
            world.stop()


def _soak(
    world: WorldClient,
    folder: Path,
    url: str,
    cycles: int,
    on_cycle: Callable[[int, Cycle], None] | None,
    began: float,
    kind: str,
) -> SoakResult:
    config = load_config(write_config(folder, url, world.endpoints))
    clock = [START]
    store = Store.open(config.store_url)
    # The daemon's sources, but its backoff and rate-limit waits shortened (simulated time).
    sources = make_sources(config, clock=lambda: clock[0], sleep=lambda s: time.sleep(min(s, 0.01)))
    daemon = Daemon(
        config.path or folder / "watcher.toml", config, store, sources, lambda: clock[0]
    )
    sync_store(store, config, START - STEP)
    owed: dict[str, set[str]] = {r: set() for r in READERS}
    progress, problems, measured = Progress(), [], []
    items: set[str] = set()
    for n in range(cycles + QUIET_CYCLES):
        started, cpu = time.monotonic(), time.process_time()
        if n == cycles:
            world("quiet")
        clock[0] = START + n * STEP
        if n < cycles:
            for sub, tokens in world("arrive", clock[0]).items():
                items.update(tokens)
                for rcpt, follows in READERS.items():
                    if sub in follows:
                        owed[rcpt].update(tokens)
        run_cycle(daemon, config, world)
        jobs, cpu = time.monotonic() - started, time.process_time() - cpu
        found = check_store(store, progress)
        problems += [f"cycle {n}: {p}" for p in found]
        if n < cycles:
            c = Cycle(
                rss_bytes(),
                open_fds(),
                db_bytes(store),
                len(items),
                jobs,
                cpu,
                time.monotonic() - started - jobs,
            )
            measured.append(c)
            if on_cycle is not None:
                on_cycle(n, c)
    with store.engine.connect() as conn:
        kept = {
            state: (int(n), int(size or 0))
            for state, n, size in conn.execute(
                text("SELECT state, count(*), sum(length(message)) FROM digests GROUP BY state")
            )
        }
    left = store.outbox.undelivered_counts()
    problems += [
        f"after the quiet cycles: {r} has {k} papers undelivered" for r, k in left.items() if k
    ]
    store.close()
    received = world("received")
    got: Counter[tuple[str, str]] = Counter(
        (rcpt, token) for rcpt, _, tokens in received for token in tokens
    )
    expected = {(r, t) for r, tokens in owed.items() for t in tokens}
    return SoakResult(
        cycles=measured,
        warmup=max(1, cycles // 10),
        problems=problems,
        twice=sorted(k for k, v in got.items() if v > 1),
        never=sorted(expected - set(got)),
        unexpected=sorted(set(got) - expected),
        messages=len(received),
        distinct_ids=len({mid for _, mid, _ in received}),
        owed_pairs=len(expected),
        faults=world("fault_counts"),
        seconds=time.monotonic() - began,
        store=kind,
        digests=kept,
    )


def run_cycle(daemon: Daemon, config: Config, world: WorldClient) -> None:
    """One hour of `watcher run`: its poll, follow-up and digest jobs, as its scheduler calls
    them (with a digest run refused now and then: the SMTP server down)."""
    daemon.poll_job()
    daemon.followups_job()
    for schedule in config.digests:
        refused = world("refuse_connections")
        try:
            daemon.digest_job(schedule)
        finally:
            if refused:
                world("accept_connections")
    daemon.heartbeat()


def report(r: SoakResult, max_growth_mb: float) -> tuple[list[str], bool]:
    mb = 1024 * 1024
    lines = [
        f"{len(r.cycles)} cycles (+{QUIET_CYCLES} fault-free) on {r.store}, "
        f"{sum(r.faults.values())} faults injected, {r.seconds:.0f} s wall",
        "",
        "| per cycle | first 10% | middle 10% | last 10% | slope after warm-up |",
        "|---|---|---|---|---|",
    ]
    for label, attr, unit, scale in (
        ("resident memory", "rss", "MB", mb),
        ("open fds", "fds", "", 1),
        ("database", "db", "MB", mb),
        ("the daemon's jobs (wall)", "seconds", "s", 1),
        ("the daemon's jobs (CPU)", "cpu", "s", 1),
        ("the store check", "check_seconds", "s", 1),
    ):
        cells = [
            f"{avg(r.window(w), attr) / scale:.2f} {unit}" for w in ("first", "middle", "last")
        ]
        per = r.slope(attr) / (1024 if scale == mb else 1)
        slope = f"{per:+.2f} KB/cycle" if scale == mb else f"{per:+.4f} {unit}/cycle"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {slope} |")
    growth = r.growth("rss") / mb
    lines += [
        "",
        f"memory growth after warm-up ({r.warmup} cycles): {growth:+.2f} MB "
        f"(bound {max_growth_mb:g} MB)",
        f"open fds after warm-up beyond the warm-up's highest: {r.fd_growth}",
        f"database growth per item added: {r.bytes_per_item():.0f} bytes "
        f"({r.cycles[-1].papers} items: papers, preprints, trials)",
        "digests kept in the store: "
        + ", ".join(
            f"{st} {n} ({b / n:.0f} bytes each)" for st, (n, b) in sorted(r.digests.items())
        )
        + f" = {sum(b for _, b in r.digests.values()) / r.cycles[-1].papers:.0f} bytes per item",
        f"messages received: {r.messages} ({r.distinct_ids} distinct Message-IDs); "
        f"(recipient, item) pairs owed {r.owed_pairs}, mailed twice {len(r.twice)}, "
        f"never {len(r.never)}, not owed {len(r.unexpected)}",
        f"store inconsistencies: {len(r.problems)}",
    ]
    lines += [f"  {p}" for p in r.problems[:20]]
    lines += [f"  twice: {p}" for p in r.twice[:10]]
    lines += [f"  never: {p}" for p in r.never[:10]]
    lines += [f"  not owed: {p}" for p in r.unexpected[:10]]
    lines.append("faults: " + ", ".join(f"{k} {v}" for k, v in sorted(r.faults.items())))
    ok = (
        not r.problems
        and not r.twice
        and not r.never
        and not r.unexpected
        and r.messages == r.distinct_ids
        and growth <= max_growth_mb
        and r.fd_growth <= 0
    )
    lines.append("PASS" if ok else "FAIL")
    return lines, ok
