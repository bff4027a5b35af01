"""Soak: hundreds of poll/digest cycles of the daemon's own jobs in one long-lived process, with
random faults at 10% of requests and messages, to show that memory, open file descriptors and
the database stay flat and that no cycle leaves the store inconsistent.

    python bench/soak.py                                # 500 cycles on SQLite
    python bench/soak.py --store postgresql             # needs WATCHER_TEST_POSTGRES_URL
    python bench/soak.py --cycles 50 --seed 3 --fault-rate 0.1

The watcher side is `watcher run`'s: one store, one set of sources (one HTTP session and its
rate limiters) and a `watcher.daemon.Daemon` whose jobs are called in turn each cycle —
`poll_job`, `followups_job`, `digest_job` for each digest schedule (a new SMTP transport each,
as the daemon makes), `heartbeat` — on a simulated clock one hour later each cycle (poll_every
is 1h, so every subscription is due each cycle), without APScheduler's threads. The backoff and
rate-limit waits the daemon would sleep are cut to at most 10 ms.

The world runs in a second process, so that this one holds only the watcher: the fake NCBI
(E-utilities and one RSS feed), the fake Europe PMC and ClinicalTrials.gov, and a real SMTP
server (aiosmtpd). Each cycle it adds a few papers, preprints and trials; with a fixed seed it
fails 10% of requests (NCBI: 429, 500/502/503, connection reset, a body shorter than its
Content-Length, XML cut in half, an HTML page or a JSON error under 200; Europe PMC and
ClinicalTrials.gov: 429/500/503, reset, not JSON) and of SMTP commands (421 at MAIL, 451 or
550 at RCPT, 451 or 552 at DATA, the connection dropped mid-DATA) and refuses 10% of digest
runs' connections (the server stopped). After the last cycle the faults stop and a few quiet
cycles deliver what is owed.

After each cycle the store is checked (`check_store`); at the end every (recipient, paper) owed
must have been received exactly once (the messages parsed with `email`). Measured per cycle in
this process: resident memory (/proc/self/statm), open file descriptors (/proc/self/fd) and the
database's size (the SQLite file and its WAL; on PostgreSQL pg_total_relation_size over the
store's schema). Exits 1 on an inconsistency, a paper lost or mailed twice, memory growing more
than --max-growth-mb after warm-up, or any open file descriptor more after warm-up than during it.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from bench.stress_digest import store_url
from watcher.config import Config, load_config
from watcher.daemon import Daemon, sync_store
from watcher.poll import ncbi_today
from watcher.store import Store
from watcher.wiring import make_sources

START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
STEP = timedelta(hours=1)
QUIET_CYCLES = 6  # fault-free cycles at the end, to deliver what the faults held back
TOKEN = re.compile(r"\bSOAK[PET]\d+\b")
# Who follows what: (subscription, kind, query) and the readers of each.
SUBSCRIPTIONS = (
    ("anti-cd3", "query", "teplizumab"),
    ("anti-cd20", "query", "rituximab"),
    ("feed", "rss", None),
    ("preprints", "europepmc", "teplizumab"),
    ("trials", "trials", "teplizumab"),
)
READERS = {
    "alice@example.org": ("anti-cd3", "feed", "preprints"),
    "bob@example.org": ("anti-cd3", "anti-cd20", "trials"),
    "carol@example.org": ("anti-cd20", "feed"),  # on her own digest schedule
}
NCBI_FAULTS = (
    "ratelimit",
    "status:500",
    "status:502",
    "status:503",
    "reset",
    "short",
    "truncated",
    "html",
    "ratelimit200",
)
API_FAULTS = ("status:429", "status:500", "status:503", "reset", "notjson")
# One of these befalls 10% of messages: (the command it answers, the answer; "drop" hangs up).
SMTP_FAULTS = (
    ("mail", "421 4.3.2 Service shutting down"),
    ("rcpt", "451 4.3.0 Try again later"),
    ("rcpt", "550 5.1.1 Mailbox unavailable"),
    ("data", "451 4.3.0 Try again later"),
    ("data", "552 5.3.4 Message too big"),
    ("data", "drop"),
)


# The world: fakes and the SMTP server, in their own process.


@dataclass
class World:
    seed: int
    fault_rate: float
    folder: Path
    rng: random.Random = field(init=False)
    faults: Counter[str] = field(default_factory=Counter)
    faulty: bool = True

    def __post_init__(self) -> None:
        from tests.fakes.clinicaltrials import FakeClinicalTrials
        from tests.fakes.europepmc import FakeEuropePmc, load_record
        from tests.fakes.jsonapi import Fault as ApiFault
        from tests.fakes.ncbi import FakeNCBI, Fault
        from tests.fakes.smtp import Handler, SmtpServer

        world = self

        # The fakes as the tests know them, asked for a random fault when none is queued.
        class NCBI(FakeNCBI):
            def take_fault(self, endpoint: str) -> Fault | None:
                kind = world._draw(NCBI_FAULTS, f"ncbi {endpoint}")
                return super().take_fault(endpoint) or (Fault(kind) if kind else None)

        class EuropePmc(FakeEuropePmc):
            def take_fault(self) -> ApiFault | None:
                kind = world._draw(API_FAULTS, "europepmc")
                return super().take_fault() or (ApiFault(kind) if kind else None)

        class ClinicalTrials(FakeClinicalTrials):
            def take_fault(self) -> ApiFault | None:
                kind = world._draw(API_FAULTS, "clinicaltrials")
                return super().take_fault() or (ApiFault(kind) if kind else None)

        class Smtp(Handler):
            async def handle_MAIL(
                self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
            ) -> str:
                drawn = world._draw(tuple(range(len(SMTP_FAULTS))), "smtp")
                world.message_fault = None if drawn is None else SMTP_FAULTS[int(drawn)]
                if world.message_fault and world.message_fault[0] == "mail":
                    return world.message_fault[1]
                envelope.mail_from = address
                envelope.mail_options.extend(options)
                return "250 OK"

            async def handle_RCPT(
                self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
            ) -> str:
                if world.message_fault and world.message_fault[0] == "rcpt":
                    return world.message_fault[1]
                return await super().handle_RCPT(server, session, envelope, address, options)

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                if world.message_fault and world.message_fault == ("data", "drop"):
                    self.drop_next_data = 1
                elif world.message_fault and world.message_fault[0] == "data":
                    self.data_failures = [world.message_fault[1]]
                return await super().handle_DATA(server, session, envelope)

        self.rng = random.Random(self.seed)
        self.papers = random.Random(self.seed + 1)  # what arrives, apart from the faults
        self.message_fault: tuple[str, str] | None = None
        self.ncbi = NCBI().start()
        self.ncbi.feeds["soak"] = []
        self.epmc = EuropePmc()
        self.epmc.start()
        self.ctgov = ClinicalTrials()
        self.ctgov.start()
        self.smtp = SmtpServer()
        self.smtp.handler = self.smtp.controller.handler = Smtp()
        self.smtp.start()
        self.preprint = load_record("europepmc-preprint.json")
        self.next_pmid = 40_000_000
        self.next_other = 1

    def endpoints(self) -> dict[str, Any]:
        return {
            "ncbi": self.ncbi.base_url,
            "feed": self.ncbi.feed_url("soak"),
            "europepmc": self.epmc.base_url,
            "clinicaltrials": self.ctgov.base_url,
            "smtp_port": self.smtp.port,
        }

    def _draw(self, kinds: tuple[Any, ...], where: str) -> Any:
        if not self.faulty or self.rng.random() >= self.fault_rate:
            return None
        kind = self.rng.choice(kinds)
        label = " ".join(SMTP_FAULTS[kind]) if where == "smtp" else kind
        self.faults[f"{where} {label}"] += 1
        return kind

    def quiet(self) -> None:
        self.faulty = False

    def arrive(self, now: datetime) -> dict[str, list[str]]:
        """This cycle's new records; returns subscription → the tokens it should find."""
        from tests.fakes.clinicaltrials import study
        from tests.fakes.records import synthetic

        rng, today = self.papers, ncbi_today(now)
        owed: dict[str, list[str]] = {name: [] for name, _, _ in SUBSCRIPTIONS}
        records = []
        for _ in range(rng.randint(1, 4)):
            pmid, self.next_pmid = self.next_pmid, self.next_pmid + 1
            topics = rng.choice((("teplizumab",), ("rituximab",), ("teplizumab", "rituximab"), ()))
            words = " and ".join(topics) or "insulin pumps"
            records.append(
                synthetic(pmid, f"SOAKP{pmid} a study of {words}", edat=today, abstract=words)
            )
            owed["anti-cd3"] += [f"SOAKP{pmid}"] if "teplizumab" in topics else []
            owed["anti-cd20"] += [f"SOAKP{pmid}"] if "rituximab" in topics else []
            if rng.random() < 0.3:  # the feed lists a paper whatever its topic, newest first
                self.ncbi.feeds["soak"].insert(0, pmid)
                owed["feed"].append(f"SOAKP{pmid}")
        self.ncbi.add(records)
        if rng.random() < 0.5:
            n, self.next_other = self.next_other, self.next_other + 1
            record = {k: v for k, v in self.preprint.items() if k != "commentCorrectionList"}
            record.update(
                id=f"PPR{8_000_000 + n}",
                doi=f"10.1101/soak.{n}",
                title=f"SOAKE{n} a preprint on teplizumab",
                abstractText="",
            )
            self.epmc.add(record, today)
            owed["preprints"].append(f"SOAKE{n}")
        if rng.random() < 0.3:
            n, self.next_other = self.next_other, self.next_other + 1
            nct = f"NCT{70_000_000 + n:08d}"
            self.ctgov.put(study(nct, f"SOAKT{n} trial of teplizumab", "RECRUITING", str(today)))
            owed["trials"].append(f"SOAKT{n}")
        return owed

    def refuse_connections(self) -> bool:
        """Stop the SMTP server for the next digest run (connections refused), at the rate."""
        if self._draw(("refused",), "smtp connect") is None:
            return False
        self.smtp.stop()
        return True

    def accept_connections(self) -> None:
        """The SMTP server back on its port, with its handler (what it received is kept)."""
        from aiosmtpd.controller import Controller

        c = Controller(
            self.smtp.handler,
            hostname="127.0.0.1",
            port=self.smtp.port,
            server_hostname="localhost",
        )
        c.start()
        self.smtp.controller = c

    def received(self) -> list[tuple[str, str, list[str]]]:
        """Each message received: (recipient, Message-ID, the tokens its text names)."""
        out = []
        for r in self.smtp.received:
            msg = r.message
            body = msg.get_body(("plain",))
            assert body is not None
            tokens = list(dict.fromkeys(TOKEN.findall(body.get_content())))
            out.append((r.rcpt_tos[0].lower(), str(msg["Message-ID"]), tokens))
        return out

    def fault_counts(self) -> dict[str, int]:
        return dict(self.faults)

    def stop(self) -> None:
        self.ncbi.stop()
        self.epmc.stop()
        self.ctgov.stop()
        self.smtp.stop()


def serve_world(conn: Connection, seed: int, fault_rate: float, folder: str) -> None:
    """The world process: answers (method, args) on `conn` until "stop"."""
    logging.disable(logging.CRITICAL)
    world = World(seed, fault_rate, Path(folder))
    conn.send(world.endpoints())
    while True:
        name, args = conn.recv()
        if name == "stop":
            world.stop()
            conn.send(None)
            return
        conn.send(getattr(world, name)(*args))


class WorldClient:
    def __init__(self, seed: int, fault_rate: float, folder: Path) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=serve_world, args=(child, seed, fault_rate, str(folder)), daemon=True
        )
        self.proc.start()
        child.close()
        self.endpoints: dict[str, Any] = self.conn.recv()

    def __call__(self, name: str, *args: Any) -> Any:
        self.conn.send((name, args))
        return self.conn.recv()

    def stop(self) -> None:
        self("stop")
        self.proc.join(10)
        self.conn.close()


# The watcher's side.


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


# What must hold in the store between cycles, whatever failed during them.
CHECKS = {
    "a match without its record that is not owed (awaited_records)": """
        SELECT m.subscription || ' ' || m.item FROM matches m
        LEFT JOIN articles a ON a.item = m.item
        LEFT JOIN awaited_records w ON w.item = m.item
        WHERE a.item IS NULL AND w.item IS NULL AND m.deliver""",
    "an owed record nobody matched": """
        SELECT w.item FROM awaited_records w LEFT JOIN matches m ON m.item = w.item
        WHERE m.item IS NULL""",
    "an owed record already stored": """
        SELECT w.item FROM awaited_records w JOIN articles a ON a.item = w.item""",
    "a delivery without a sent digest of that recipient carrying the paper": """
        SELECT d.recipient || ' ' || d.item FROM deliveries d
        LEFT JOIN digests g ON g.id = d.digest_id AND g.state = 'sent'
            AND g.recipient = d.recipient
        LEFT JOIN digest_items i ON i.digest_id = d.digest_id AND i.item = d.item
        WHERE g.id IS NULL OR i.item IS NULL""",
    "a paper of a sent digest delivered by another digest (mailed twice)": """
        SELECT g.id || ' ' || i.item FROM digests g
        JOIN digest_items i ON i.digest_id = g.id
        LEFT JOIN deliveries d ON d.recipient = g.recipient AND d.item = i.item
        WHERE g.state = 'sent' AND (d.digest_id IS NULL OR d.digest_id <> g.id)""",
    "a pending digest carrying a paper with no record": """
        SELECT g.id || ' ' || i.item FROM digests g JOIN digest_items i ON i.digest_id = g.id
        LEFT JOIN articles a ON a.item = i.item
        WHERE g.state = 'pending' AND a.item IS NULL""",
    "a pending digest carrying a paper already delivered to its recipient": """
        SELECT g.id || ' ' || i.item FROM digests g JOIN digest_items i ON i.digest_id = g.id
        JOIN deliveries d ON d.recipient = g.recipient AND d.item = i.item
        WHERE g.state = 'pending'""",
    "a paper in two unsent digests of one recipient": """
        SELECT g.recipient || ' ' || i.item FROM digests g
        JOIN digest_items i ON i.digest_id = g.id
        WHERE g.state = 'pending' GROUP BY g.recipient, i.item HAVING count(*) > 1""",
    "a digest whose paper_count is not its papers": """
        SELECT g.id FROM digests g LEFT JOIN digest_items i ON i.digest_id = g.id
        GROUP BY g.id, g.paper_count HAVING count(i.item) <> g.paper_count""",
    "a digest in an unknown state, or sent without a time": """
        SELECT id FROM digests WHERE state NOT IN ('pending', 'sent', 'failed')
            OR (state = 'sent') <> (sent_at IS NOT NULL)""",
    "a delivery to someone who does not follow a subscription that matched it": """
        SELECT d.recipient || ' ' || d.item FROM deliveries d
        WHERE NOT EXISTS (SELECT 1 FROM matches m JOIN subscribers s
            ON s.subscription = m.subscription AND s.recipient = d.recipient
            WHERE m.item = d.item)""",
    "an identifier naming an item neither stored nor matched": """
        SELECT i.scheme || ':' || i.value FROM identifiers i
        WHERE NOT EXISTS (SELECT 1 FROM articles a WHERE a.item = i.item)
            AND NOT EXISTS (SELECT 1 FROM matches m WHERE m.item = i.item)""",
}


@dataclass
class Progress:
    """What may only move forward: each subscription's window and successful poll, each digest
    schedule's last run, the sent digests."""

    seen: dict[str, Any] = field(default_factory=dict)

    def check(self, conn: Any) -> list[str]:
        now: dict[str, Any] = {}
        for name, end, success in conn.execute(
            text("SELECT name, window_end, last_success_at FROM subscriptions")
        ):
            now[f"window_end {name}"] = end
            now[f"last_success_at {name}"] = success
        for schedule, last in conn.execute(text("SELECT schedule, last_run_at FROM digest_runs")):
            now[f"digest run {schedule}"] = last
        now["sent digests"] = conn.execute(
            text("SELECT count(*) FROM digests WHERE state = 'sent'")
        ).scalar_one()
        now["deliveries"] = conn.execute(text("SELECT count(*) FROM deliveries")).scalar_one()
        problems = [
            f"{key} went back: {self.seen[key]} -> {value}"
            for key, value in now.items()
            if self.seen.get(key) is not None and (value is None or value < self.seen[key])
        ]
        self.seen = now
        return problems


def check_store(store: Store, progress: Progress) -> list[str]:
    problems = []
    with store.engine.connect() as conn:
        for what, sql in CHECKS.items():
            rows = [r[0] for r in conn.execute(text(sql))]
            if rows:
                problems.append(f"{what}: {len(rows)} (e.g. {rows[:3]})")
        problems += progress.check(conn)
    return problems


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
    left = store.undelivered_counts()
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument(
        "--max-growth-mb",
        type=float,
        default=8.0,
        help="resident memory may grow at most this much after warm-up",
    )
    parser.add_argument("--progress", action="store_true", help="a line per 50 cycles")
    args = parser.parse_args()
    # The faults' warnings and errors are expected by the thousand; they would bury the table.
    logging.basicConfig(level=logging.CRITICAL)

    def show(n: int, c: Cycle) -> None:
        if args.progress and n % 50 == 0:
            print(
                f"cycle {n}: rss {c.rss / 1048576:.1f} MB, fds {c.fds}, db {c.db / 1024:.0f} KB",
                file=sys.stderr,
            )

    result = run_soak(args.cycles, args.seed, args.store, args.fault_rate, show)
    lines, ok = report(result, args.max_growth_mb)
    print(f"seed {args.seed}, fault rate {args.fault_rate:g}")
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
