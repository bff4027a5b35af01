"""An institution's watcher: thousands of searches and readers on one store and one NCBI budget.

For each size (subscriptions; readers are half as many, each subscription mailing two of them)
and each store (SQLite, PostgreSQL), with and without a large history (1M past articles, 2M
past deliveries), the real commands run, each in a child process of its own, against a fake
NCBI (tests/fakes/ncbi.py, served by this process) that answers at once and serves real records
(bench/corpus.py: the shared corpus's efetch records, renumbered, with fresh DOIs):

- `watcher check` (the config read and checked, every subscription's next runs);
- `watcher poll`: the first round, every subscription searched, the union of what they found
  fetched and stored: requests made beside the minimum (N esearch + ⌈union / batch_size⌉
  efetch), processor time, peak resident memory;
- `watcher poll` again with nothing new (a steady round: N esearch, nothing to fetch);
- `watcher status` (with the round's papers owed to every reader);
- `watcher digest`: every reader's digest written to a maildir: processor time, per (reader,
  paper) pair and per reader.

Processor time (user + system) is the child's own (os.wait4's rusage), its peak RSS its VmHWM
sampled every 20 ms, so the fake's work, in this process, is not counted; the PostgreSQL
server's work is not in them either (it shows in wall time, given beside). The machine is
shared: wall times are noisy; processor time and request counts are the figures.

Growth exponents: the slope of log(cost) against log(subscriptions) between consecutive sizes
(1.0 linear, 2.0 quadratic). What one API key serves: NCBI's 10 requests/s (3 without a key)
× 6 h ÷ the requests a subscription costs per round, and the processor time per subscription.

    python bench/institution.py --sizes 100,1000,5000 --stores sqlite,postgres --history both \\
        --json bench/results/institution-before.json
    python bench/institution.py --sizes 100 --stores sqlite          # a quick look, ~1 min

PostgreSQL needs WATCHER_TEST_POSTGRES_URL; each cell gets a database of its own
(bench_i28_<pid>_<n>), dropped afterwards. --team-size K writes the subscriptions in files of K
(teams/team-NNN.toml) named by the main file's --include line, for configs whose size bound is
per file.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from corpus import real_records

from tests.fakes.ncbi import FakeNCBI, FakeRecord
from watcher.rate import PERIOD_FLOOR

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

PG_ENV = "WATCHER_TEST_POSTGRES_URL"
PAPERS_PER_SUBSCRIPTION = 4  # matches per subscription in the round
SHARED = 0.30  # share of papers two subscriptions find
RECIPIENTS_PER_SUBSCRIPTION = 2
BATCH = 500  # [ncbi] batch_size, the default
HISTORY_ARTICLES = 1_000_000
HISTORY_PAPERS_PER_DIGEST = 20
NCBI_RATES = {"with a key": 10.0, "without a key": 3.0}
ROUND_HOURS = 6.0
FIRST_PMID = 60_000_000
HISTORY_PMID = 10_000_000
TEAMS = ("Endo", "Transpl", "Immuno", "Paeds", "Pharmacy", "Nephro", "Library", "CTU")
# The queries are the starter config's vocabulary in short combinations (two groups of one to
# three terms, sometimes a limit): at most this long, so that 5,000 subscriptions fit in one
# file under the 1 MB bound the code before issue 28 sets (its starter queries, ~650
# characters, fit 1,400).
QUERY_MAX = 100

# The starter config's vocabulary (config.example.toml): the type 1 diabetes block's names, the
# agents' INNs, code names and brands, the islet transplantation names, and its limits.
DISEASE = (
    '"Diabetes Mellitus, Type 1"[mh]',
    '"type 1 diabet*"[tiab]',
    '"type I diabet*"[tiab]',
    '"T1D"[tiab]',
    '"T1DM"[tiab]',
    '"IDDM"[tiab]',
    '"juvenile diabet*"[tiab]',
    '"autoimmune diabet*"[tiab]',
    '"LADA"[tiab]',
    '"Islets of Langerhans Transplantation"[mh]',
    '"islet transplant*"[tiab]',
    '"beta-cell replacement"[tiab]',
)
AGENTS = (
    "teplizumab[tw]",
    "hOKT3*[tw]",
    '"MGA031"[tw]',
    "Tzield[tw]",
    "otelixizumab[tw]",
    "ChAglyCD3[tw]",
    "foralumab[tw]",
    "visilizumab[tw]",
    '"anti-CD3"[tiab]',
    "OKT3[tw]",
    "rituximab[tw]",
    "Rituxan[tw]",
    '"anti-CD20"[tiab]',
    "basiliximab[tw]",
    "daclizumab[tw]",
    '"anti-CD25"[tiab]',
    "abatacept[tw]",
    "Orencia[tw]",
    '"CTLA4-Ig"[tw]',
    "alefacept[tw]",
    '"Antilymphocyte Serum"[mh]',
    "Thymoglobulin*[tw]",
    '"low-dose ATG"[tiab]',
    "golimumab[tw]",
    "ustekinumab[tw]",
    "canakinumab[tw]",
    "frexalimab[tw]",
    "tegoprubart[tw]",
    "siplizumab[tw]",
    '"monoclonal antibod*"[tiab]',
)
LIMITS = ("", "", " NOT (animals[mh] NOT humans[mh])", " NOT mice[ti]")


# The world: subscriptions, readers, and what each subscription finds in the round


@dataclass(frozen=True)
class Subscription:
    name: str
    query: str
    recipients: tuple[str, str]


@dataclass
class World:
    subscriptions: list[Subscription]
    readers: list[str]
    hits: dict[str, list[int]]  # query → PMIDs it finds in the round
    papers: int  # the union

    def pairs(self) -> int:
        """(reader, paper) pairs the round owes: what the digests carry."""
        owed: set[tuple[str, int]] = set()
        for s in self.subscriptions:
            for r in s.recipients:
                owed.update((r, p) for p in self.hits[s.query])
        return len(owed)


def make_world(n: int, seed: int = 28) -> World:
    rng = random.Random(seed + n)
    readers = [f"r{j:05d}@inst.org" for j in range(max(2, n // 2))]
    subs: list[Subscription] = []
    seen: set[str] = set()
    while len(subs) < n:
        i = len(subs)
        disease = " OR ".join(rng.sample(DISEASE, rng.choice((1, 2, 2, 3))))
        agents = " OR ".join(rng.sample(AGENTS, rng.choice((1, 2, 2, 3))))
        query = f"({disease}) AND ({agents}){rng.choice(LIMITS)}"
        if query in seen or len(query) > QUERY_MAX:
            continue
        seen.add(query)
        first = readers[i % len(readers)]  # every reader on at least one subscription
        second = rng.choice([r for r in rng.sample(readers, 2) if r != first])
        subs.append(Subscription(f"{TEAMS[i % len(TEAMS)]} {i:05d}", query, (first, second)))
    papers = math.ceil(n * PAPERS_PER_SUBSCRIPTION / (1 + SHARED))
    hits: dict[str, list[int]] = {s.query: [] for s in subs}
    for p in range(papers):
        owners = {p % n}
        if n > 1 and rng.random() < SHARED:
            owners.add((p % n + 1 + rng.randrange(n - 1)) % n)
        for o in owners:
            hits[subs[o].query].append(FIRST_PMID + p)
    return World(subs, readers, hits, papers)


_PMID = re.compile(rb'<PMID Version="(\d+)">\d+</PMID>')
_IDS = re.compile(rb'<ArticleId IdType="(pubmed|doi|pmc)">[^<]*</ArticleId>')
_ELOC = re.compile(rb'<ELocationID EIdType="doi"([^>]*)>[^<]*</ELocationID>')


def records(world: World, today: date) -> list[FakeRecord]:
    """The union as real records, each with its own PMID, DOI and PMC id (the store joins
    records that share a DOI)."""
    pool = real_records()
    out = []
    for p in range(world.papers):
        pmid = FIRST_PMID + p
        xml = renumbered(pool[p % len(pool)], pmid)
        out.append(FakeRecord(pmid, xml, today, today, "", doi=f"10.9999/inst.{pmid}"))
    return out


def renumbered(rec: bytes, pmid: int) -> bytes:
    """A real record under a new PMID, DOI and PMC id (its references left as they are)."""
    head, cut, refs = rec.partition(b"<ReferenceList")
    ids = {b"pubmed": b"%d" % pmid, b"doi": b"10.9999/inst.%d" % pmid, b"pmc": b"PMC%d" % pmid}
    head = _PMID.sub(lambda m: b'<PMID Version="%s">%d</PMID>' % (m[1], pmid), head, count=1)
    head = _IDS.sub(lambda m: b'<ArticleId IdType="%s">%s</ArticleId>' % (m[1], ids[m[1]]), head)
    head = _ELOC.sub(
        lambda m: b'<ELocationID EIdType="doi"%s>%s</ELocationID>' % (m[1], ids[b"doi"]), head
    )
    return head + cut + refs


_DATED = re.compile(r'^\((.*)\) AND \(\("\d{4}/\d{2}/\d{2}"\[\w+\] : ', re.S)


@dataclass
class InstitutionNCBI(FakeNCBI):
    """The fake NCBI, its esearch answered from the world's assignment at once: its own matcher
    runs every query over every record (N × union evaluations a round), which at thousands of
    subscriptions would make the fake, not the watcher, the cost. Anything else (an unknown
    term) goes to the matcher as usual."""

    hits: dict[str, list[int]] = field(default_factory=dict)

    def search(
        self,
        term: str,
        datetype: str,
        mindate: date | None,
        maxdate: date | None,
        within: set[int] | None = None,
    ) -> tuple[list[int], list[str]]:
        m = _DATED.match(term)
        query = m[1] if m else term
        found = self.hits.get(query)
        if found is None:
            return super().search(term, datetype, mindate, maxdate, within)
        out = []
        for pmid in found:
            rec = self.records[pmid]
            when = rec.edat
            if (mindate and when < mindate) or (maxdate and when > maxdate):
                continue
            if within is None or pmid in within:
                out.append(pmid)
        return out, []


# The config


def toml_string(s: str) -> str:
    return json.dumps(s)  # a TOML basic string is a JSON string for these characters


def subscription_tables(subs: Iterable[Subscription]) -> str:
    return "".join(
        f"[[subscription]]\nname = {toml_string(s.name)}\nquery = {toml_string(s.query)}\n"
        f"recipients = [{', '.join(toml_string(r) for r in s.recipients)}]\n"
        for s in subs
    )


def write_config(
    folder: Path, world: World, url: str, fake: FakeNCBI, team_size: int, include: str
) -> Path:
    path = folder / "watcher.toml"
    head = (
        f"[store]\nurl = {toml_string(url)}\n"
        f'[ncbi]\nemail = "bench@example.org"\nbase_url = "{fake.base_url}"\n'
        f"rate_limit = 10000\nbatch_size = {BATCH}\n"
        f'[mail]\nfrom = "watcher@example.org"\nmaildir = "mail"\n'
        f'[defaults]\ntimezone = "UTC"\n'
    )
    if team_size <= 0:
        path.write_text(head + subscription_tables(world.subscriptions))
        return path
    teams = folder / "teams"
    teams.mkdir()
    subs = world.subscriptions
    for k in range(0, len(subs), team_size):
        (teams / f"team-{k // team_size:03d}.toml").write_text(
            subscription_tables(subs[k : k + team_size])
        )
    path.write_text(f"{include}\n{head}")
    return path


# Running a command: its own process, its own rusage


@dataclass
class Phase:
    command: str
    cpu: float | None = None  # user + system seconds of the child
    wall: float | None = None
    rss_mb: float | None = None  # peak resident set of the child
    rc: int | None = None
    error: str = ""
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0


def run_phase(cfg: Path, args: list[str], timeout: float) -> Phase:
    phase = Phase(" ".join(args))
    with tempfile.TemporaryFile("w+") as out:
        began = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "-c", str(cfg), "--log-level", "warning", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cfg.parent,
        )
        peak_kb = 0
        while True:
            peak_kb = max(peak_kb, hiwater_kb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - began > timeout:
                proc.kill()  # our own child, by its pid
                pid, status, usage = os.wait4(proc.pid, 0)
                phase.error = f"over the cap ({timeout:.0f} s)"
                break
            time.sleep(0.02)
        phase.wall = time.monotonic() - began
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        phase.rc = proc.returncode
        phase.cpu = usage.ru_utime + usage.ru_stime
        phase.rss_mb = peak_kb / 1024
        out.seek(0)
        phase.output = out.read()
    if phase.rc != 0 and not phase.error:
        lines = [ln for ln in phase.output.splitlines() if ln.strip()]
        phase.error = f"exit {phase.rc}: " + (lines[-1][:300] if lines else "")
    return phase


def hiwater_kb(pid: int) -> int:
    """The process's peak resident set so far (VmHWM), sampled while it runs. Not wait4's
    ru_maxrss: Linux carries a process's peak across fork and exec, so a command started by
    this process (which holds the fake's records) would report this process's size."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


# Stores


@contextmanager
def store_url(kind: str, folder: Path, n: int) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'watcher.db'}"
        return
    import psycopg

    base = os.environ.get(PG_ENV)
    if not base:
        raise SystemExit(f"--stores postgres needs {PG_ENV}")
    name = f"bench_i28_{os.getpid()}_{n}"
    admin = pg_plain(base)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(base, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_plain(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://…) as libpq takes it."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def with_database(url: str, name: str) -> str:
    head, sep, query = url.partition("?")
    return head.rsplit("/", 1)[0] + "/" + name + sep + query


# The history: past papers, matched, mailed and delivered over the years, by bulk SQL


def record_json() -> str:
    """A stored record as the store writes it, for the past papers: a short one (title,
    journal, two authors, one MeSH heading), because status and digests never read them and
    1M full records (about 4.5 KB each) would take a quarter of an hour to write per cell."""
    from tests.fakes.records import synthetic
    from watcher.sources.pubmed_xml import parse_articles

    rec = synthetic(HISTORY_PMID, "A past paper", edat=date(2024, 1, 1), mesh=("Humans",))
    body = b"<PubmedArticleSet>" + rec.xml + b"</PubmedArticleSet>"
    article = next(iter(parse_articles(body)))
    return json.dumps(article.to_json())


def history_plan(world: World) -> dict[str, int]:
    n, readers = len(world.subscriptions), len(world.readers)
    per_sub = math.ceil(HISTORY_ARTICLES / n)
    # digests per reader: each reader's past papers (their subscriptions' × per_sub) in
    # digests of about HISTORY_PAPERS_PER_DIGEST
    periods = max(
        1, round(per_sub * RECIPIENTS_PER_SUBSCRIPTION * n / readers / HISTORY_PAPERS_PER_DIGEST)
    )
    return {"n": n, "readers": readers, "periods": periods}


def add_history(kind: str, url: str, world: World, now: datetime) -> dict[str, Any]:
    """1M articles (with their PMID identifiers), each matched by one subscription and
    delivered to its two readers in weekly-sized digests: 2M deliveries and digest items."""
    began = time.monotonic()
    plan = history_plan(world)
    subs = [
        (i, s.name, world.readers.index(s.recipients[0]), world.readers.index(s.recipients[1]))
        for i, s in enumerate(world.subscriptions)
    ]
    readers = list(enumerate(world.readers))
    rec = record_json()
    since = now - timedelta(days=4 * 365)
    if kind == "sqlite":
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            _history_sqlite(conn, subs, readers, plan, rec, since)
    else:
        import psycopg

        with psycopg.connect(pg_plain(url)) as conn:
            _history_pg(conn, subs, readers, plan, rec, since)
    return {"seconds": time.monotonic() - began, **plan}


# The statements below are written for both stores: {seq} is the 0..HISTORY_ARTICLES-1 series,
# {ts}(seconds) a timestamp that many seconds after `since`.
_HISTORY = (
    """INSERT INTO articles (item, pmid, version, doi, pmcid, title, journal, pub_date,
        pub_year, epub_date, language, record, first_seen, last_updated)
    SELECT 'pmid:' || ({h} + n), {h} + n, 1, NULL, NULL, 'Past paper ' || n, 'J Past Stud',
        '2024', 2024, NULL, 'eng', {record}, {ts_n}, {ts_n} FROM {seq}""",
    """INSERT INTO identifiers (scheme, value, item)
    SELECT 'pmid', CAST({h} + n AS TEXT), 'pmid:' || ({h} + n) FROM {seq}""",
    """INSERT INTO matches (subscription, item, source, matched_at, deliver)
    SELECT s.name, 'pmid:' || ({h} + n), 'esearch', {ts_n}, {true} FROM {seq}
    JOIN hist_subs s ON s.idx = n % {n}""",
    # digest (reader r, period q) has id q * readers + r + 1
    """INSERT INTO digests (id, recipient, schedule, message_id, state, created_at, sent_at,
        attempts, last_error, paper_count, message)
    SELECT q * {readers} + r.idx + 1, r.address, '0 7 * * mon UTC',
        '<past.' || (q * {readers} + r.idx + 1) || '@bench.example.org>', 'sent',
        {ts_q}, {ts_q}, 1, NULL, {per_digest}, {empty}
    FROM {periods} CROSS JOIN hist_readers r""",
    """INSERT INTO digest_items (digest_id, item)
    SELECT ((n / {n}) % {q}) * {readers} + x.reader + 1, 'pmid:' || ({h} + n)
    FROM {seq} JOIN hist_subs s ON s.idx = n % {n}
    JOIN (SELECT idx, r1 AS reader FROM hist_subs UNION ALL SELECT idx, r2 FROM hist_subs) x
      ON x.idx = s.idx""",
    """INSERT INTO deliveries (recipient, item, digest_id, delivered_at)
    SELECT r.address, i.item, i.digest_id, d.sent_at FROM digest_items i
    JOIN digests d ON d.id = i.digest_id JOIN hist_readers r ON r.address = d.recipient""",
    "UPDATE subscribers SET since = {since}",
)


def _history_sql(kind: str, plan: dict[str, int], rec: str, since: datetime) -> list[str]:
    span = 3 * 365 * 86400  # the history's three years, after `since`
    if kind == "sqlite":
        base = f"'{since:%Y-%m-%d %H:%M:%S}'"

        def ts(expr: str) -> str:
            return f"strftime('%Y-%m-%d %H:%M:%f000', {base}, '+' || ({expr}) || ' seconds')"

        seq = "hist_seq"
        periods = "(SELECT n AS q FROM hist_seq WHERE n < {q})"
        true, empty, record, since_sql = "1", "X''", "?", f"'{since:%Y-%m-%d %H:%M:%S.%f}'"
    else:
        base = f"TIMESTAMPTZ '{since.isoformat()}'"

        def ts(expr: str) -> str:
            return f"{base} + ({expr}) * INTERVAL '1 second'"

        seq = f"generate_series(0, {HISTORY_ARTICLES - 1}) AS n"
        periods = "generate_series(0, {q} - 1) AS q"
        true, empty, record, since_sql = "TRUE", "''::bytea", "%s::json", f"{base}"
    values = {
        "h": str(HISTORY_PMID),
        "n": str(plan["n"]),
        "readers": str(plan["readers"]),
        "q": str(plan["periods"]),
        "per_digest": str(HISTORY_PAPERS_PER_DIGEST),
        "seq": seq,
        "true": true,
        "empty": empty,
        "record": record,
        "since": since_sql,
        "ts_n": ts(f"n * {span // HISTORY_ARTICLES}"),
        "ts_q": ts(f"q * {span // plan['periods']}"),
    }
    out = []
    for stmt in _HISTORY:
        text = stmt.replace("{periods}", periods)
        for k, v in values.items():
            text = text.replace("{" + k + "}", v)
        out.append(text)
    return out


def _history_sqlite(
    conn: sqlite3.Connection,
    subs: list[tuple[int, str, int, int]],
    readers: list[tuple[int, str]],
    plan: dict[str, int],
    rec: str,
    since: datetime,
) -> None:
    conn.execute("CREATE TEMP TABLE hist_seq (n INTEGER PRIMARY KEY)")
    conn.execute(
        "INSERT INTO hist_seq WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s "
        f"WHERE n < {HISTORY_ARTICLES - 1}) SELECT n FROM s"
    )
    conn.execute("CREATE TEMP TABLE hist_subs (idx INTEGER PRIMARY KEY, name, r1, r2)")
    conn.executemany("INSERT INTO hist_subs VALUES (?, ?, ?, ?)", subs)
    conn.execute("CREATE TEMP TABLE hist_readers (idx INTEGER PRIMARY KEY, address)")
    conn.execute("CREATE INDEX temp.hist_readers_address ON hist_readers (address)")
    conn.executemany("INSERT INTO hist_readers VALUES (?, ?)", readers)
    for stmt in _history_sql("sqlite", plan, rec, since):
        t = time.monotonic()
        conn.execute(stmt, (rec,) if "?" in stmt else ())
        print(f"   history: {time.monotonic() - t:5.1f} s {stmt.split()[2]}", flush=True)
    conn.commit()
    conn.execute("ANALYZE")


def _history_pg(
    conn: Any,
    subs: list[tuple[int, str, int, int]],
    readers: list[tuple[int, str]],
    plan: dict[str, int],
    rec: str,
    since: datetime,
) -> None:
    conn.execute("CREATE TEMP TABLE hist_subs (idx int PRIMARY KEY, name text, r1 int, r2 int)")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO hist_subs VALUES (%s, %s, %s, %s)", subs)
        conn.execute("CREATE TEMP TABLE hist_readers (idx int PRIMARY KEY, address text)")
        cur.executemany("INSERT INTO hist_readers VALUES (%s, %s)", readers)
    conn.execute("CREATE INDEX ON hist_readers (address)")
    for stmt in _history_sql("postgres", plan, rec, since):
        t = time.monotonic()
        conn.execute(stmt, (rec,) if "%s" in stmt else None)
        print(f"   history: {time.monotonic() - t:5.1f} s {stmt.split()[2]}", flush=True)
    # the digests' ids were given explicitly: move the sequence past them
    conn.execute(
        "SELECT setval(pg_get_serial_sequence('digests', 'id'), (SELECT max(id) FROM digests))"
    )
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE")


# One cell: a size, a store, with or without history


STORES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
NCBI_ZONE = "America/New_York"  # NCBI's day (watcher/sources/eutils.py, ncbi_today)


@dataclass
class Cell:
    store: str
    subscriptions: int
    readers: int
    history: bool
    papers: int = 0  # the round's union
    pairs: int = 0  # (reader, paper) pairs owed after the round
    config_bytes: int = 0
    history_setup: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, Phase] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)  # the first round
    steady_requests: dict[str, int] = field(default_factory=dict)
    messages: int = 0  # digests written
    stopped: str = ""  # why the cell stopped early, if it did
    seconds: float = 0.0
    started: str = ""  # UTC
    load: float = 0.0  # load average (1 min) when it started

    def cpu(self, phase: str) -> float | None:
        p = self.phases.get(phase)
        return p.cpu if p is not None and p.ok else None


def ncbi_day(now: datetime) -> date:
    from zoneinfo import ZoneInfo

    return now.astimezone(ZoneInfo(NCBI_ZONE)).date()


def request_counts(fake: FakeNCBI, minimum: int) -> dict[str, int]:
    return {
        "esearch": fake.count("esearch"),
        "efetch": fake.count("efetch"),
        "all": fake.count(),
        "minimum": minimum,
        "429": fake.too_many,
    }


PHASES = (
    ("check", ["check"]),
    ("poll", ["poll"]),
    ("poll_steady", ["poll"]),
    ("status", ["status"]),
    ("digest", ["digest"]),
)


def run_cell(
    kind: str, n: int, history: bool, cap: float, phase_cap: float, team_size: int, include: str
) -> Cell:
    began = time.monotonic()
    deadline = began + cap
    world = make_world(n)
    cell = Cell(STORES[kind], n, len(world.readers), history, world.papers, world.pairs())
    now = datetime.now(UTC)
    cell.started, cell.load = f"{now:%Y-%m-%d %H:%M}", os.getloadavg()[0]
    fake = InstitutionNCBI(hits=world.hits).start()
    fake.add(records(world, ncbi_day(now)))
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-i28-") as tmp,
            store_url(kind, Path(tmp), n) as url,
        ):
            folder = Path(tmp)
            cfg = write_config(folder, world, url, fake, team_size, include)
            cell.config_bytes = sum(p.stat().st_size for p in folder.rglob("*.toml"))
            # The store created and migrated, the subscriptions recorded (not measured).
            setup = run_phase(cfg, ["check"], max(1.0, deadline - time.monotonic()))
            if not setup.ok:
                cell.stopped = f"setup `watcher check`: {setup.error}"
                return cell
            if history:
                cell.history_setup = add_history(kind, url, world, now)
            minimum = n + math.ceil(world.papers / BATCH)
            for name, args in PHASES:
                left = deadline - time.monotonic()
                if left <= 1:
                    cell.stopped = f"cap of {cap:.0f} s reached before {name}"
                    break
                fake.reset_counts()
                phase = run_phase(cfg, args, min(left, phase_cap))
                cell.phases[name] = phase
                if name == "poll":
                    cell.requests = request_counts(fake, minimum)
                elif name == "poll_steady":
                    cell.steady_requests = request_counts(fake, n)
                elif name == "digest":
                    cell.messages = sum(1 for _ in (folder / "mail" / "new").glob("*"))
                if not phase.ok:
                    cell.stopped = f"{name}: {phase.error}"
                    if name in ("poll", "poll_steady"):
                        break  # the later phases need the round; check and status do not
    finally:
        fake.stop()
        cell.seconds = time.monotonic() - began
    return cell


# Figures


def fmt(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def per(x: float | None, d: int, scale: float = 1000.0) -> float | None:
    return None if x is None or d == 0 else x * scale / d


def row(c: Cell) -> str:
    r, sr = c.requests, c.steady_requests
    poll, digest, status = c.phases.get("poll"), c.phases.get("digest"), c.phases.get("status")
    reqs = f"{r['all']:,} / {r['minimum']:,}" if r else "—"
    steady = f"{sr['all']:,} / {sr['minimum']:,}" if sr else "—"
    cells = [
        c.store,
        f"{c.subscriptions:,}",
        f"{c.readers:,}",
        "1M / 2M" if c.history else "—",
        fmt(c.cpu("check"), 2),
        reqs,
        fmt(c.cpu("poll"), 1),
        fmt(per(c.cpu("poll"), c.subscriptions), 2),
        fmt(poll.rss_mb if poll and poll.ok else None, 0),
        steady,
        fmt(per(c.cpu("poll_steady"), c.subscriptions), 2),
        (
            f"{fmt(c.cpu('status'), 2)} ({fmt(status.wall if status and status.ok else None, 2)})"
            if status is None or status.ok
            else f"killed after {status.wall:.0f} s wall ({status.cpu:.0f} s CPU)"
        ),
        fmt(c.cpu("digest"), 1),
        fmt(per(c.cpu("digest"), c.pairs), 2),
        fmt(per(c.cpu("digest"), c.readers), 1),
        fmt(digest.rss_mb if digest and digest.ok else None, 0),
    ]
    line = "| " + " | ".join(cells) + " |"
    # a status killed at the cap says so in its own column
    note = "" if c.stopped.startswith("status: exit -") else c.stopped
    return line + (f"\n|  | *{note}* |" + " |" * 14 if note else "")


HEADER = (
    "| store | subscriptions | readers | history (articles / deliveries) | check CPU s "
    "| poll: requests / minimum | poll CPU s | poll CPU ms per subscription | poll peak RSS MB "
    "| steady poll: requests / minimum | steady poll CPU ms per subscription "
    "| status CPU s (wall) | digest CPU s | digest ms per (reader, paper) | digest ms per reader "
    "| digest peak RSS MB |\n|" + "---|" * 16
)

GROWTH = (
    ("check", "check"),
    ("poll", "poll"),
    ("poll_steady", "steady poll"),
    ("status", "status"),
    ("digest", "digest"),
)


def exponents(cells: list[Cell]) -> list[str]:
    """Slope of log(CPU) against log(subscriptions) between consecutive sizes."""
    out = [
        "| store | history | sizes | " + " | ".join(label for _, label in GROWTH) + " |",
        "|---|---|---|" + "---|" * len(GROWTH),
    ]
    groups: dict[tuple[str, bool], list[Cell]] = {}
    for c in cells:
        if c.cpu("poll") is not None:
            groups.setdefault((c.store, c.history), []).append(c)
    for (store, hist), group in groups.items():
        group.sort(key=lambda c: c.subscriptions)
        for a, b in itertools.pairwise(group):
            slopes = []
            for phase, _ in GROWTH:
                x, y = a.cpu(phase), b.cpu(phase)
                slopes.append(
                    "—"
                    if x is None or y is None or x <= 0 or y <= 0
                    else f"{math.log(y / x) / math.log(b.subscriptions / a.subscriptions):.2f}"
                )
            out.append(
                f"| {store} | {'1M / 2M' if hist else '—'} "
                f"| {a.subscriptions:,} → {b.subscriptions:,} | " + " | ".join(slopes) + " |"
            )
    return out


def one_key(cells: list[Cell]) -> list[str]:
    """How many subscriptions one NCBI budget polls every 6 h, from the largest measured round."""
    done = [c for c in cells if c.requests and c.cpu("poll") is not None]
    if not done:
        return ["no complete poll round: nothing to say about the key"]
    big = max(done, key=lambda c: (c.subscriptions, c.store))
    first = big.requests["all"] / big.subscriptions
    steady = big.steady_requests["all"] / big.subscriptions if big.steady_requests else float("nan")
    lines = [
        f"Requests per subscription per round (largest round measured, {big.subscriptions:,} "
        f"subscriptions on {big.store}{', with history' if big.history else ''}): "
        f"{first:.4f} in the first round (one esearch + its share of the union's efetch), "
        f"{steady:.4f} in a round with nothing new.",
        "",
        f"| NCBI budget | requests in 6 h at the shared budget's pace (rate ÷ {PERIOD_FLOOR:g} "
        "per second once the margin has narrowed: watcher/rate.py) "
        "| subscriptions polled every 6 h, by requests | one round of that many takes |",
        "|---|---|---|---|",
    ]
    for label, rate in NCBI_RATES.items():
        budget = rate / PERIOD_FLOOR * ROUND_HOURS * 3600
        lines.append(
            f"| {rate:g}/s ({label}) | {budget:,.0f} | {budget / first:,.0f} "
            f"| {ROUND_HOURS:g} h at {rate:g}/s |"
        )
    lines.append("")
    lines.append(
        "| store | history | poll CPU ms per subscription (first round, largest size) "
        "| subscriptions one core polls in 6 h, by CPU |"
    )
    lines.append("|---|---|---|---|")
    for c in done:
        if c.subscriptions != big.subscriptions:
            continue
        ms = per(c.cpu("poll"), c.subscriptions)
        assert ms is not None
        lines.append(
            f"| {c.store} | {'1M / 2M' if c.history else '—'} | {ms:.2f} "
            f"| {ROUND_HOURS * 3600 * 1000 / ms:,.0f} |"
        )
    return lines


def estimate(cells: list[Cell], target: int) -> list[str]:
    """Figures for a size that did not run, from the last two sizes' growth: labelled so."""
    out = []
    groups: dict[tuple[str, bool], list[Cell]] = {}
    for c in cells:
        groups.setdefault((c.store, c.history), []).append(c)
    for (store, hist), group in groups.items():
        ok = sorted(
            (c for c in group if c.cpu("digest") is not None), key=lambda c: c.subscriptions
        )
        if len(ok) < 2 or any(c.subscriptions >= target for c in ok):
            continue
        a, b = ok[-2], ok[-1]
        parts = []
        for phase, label in GROWTH:
            x, y = a.cpu(phase), b.cpu(phase)
            if not x or not y:
                continue
            k = math.log(y / x) / math.log(b.subscriptions / a.subscriptions)
            parts.append(f"{label} ~{y * (target / b.subscriptions) ** k:,.0f} s (k = {k:.2f})")
        out.append(
            f"- ESTIMATE, not measured: {store}{', with history' if hist else ''}, "
            f"{target:,} subscriptions, CPU extrapolated from {a.subscriptions:,} → "
            f"{b.subscriptions:,}: " + "; ".join(parts)
        )
    return out


def report(cells: list[Cell], sizes: list[int], commit: str) -> str:
    lines = [
        f"Measured at {commit}; CPU = user + system seconds of the command's "
        "own process (the fake NCBI and the PostgreSQL server not included); "
        f"{PAPERS_PER_SUBSCRIPTION} papers per subscription in the round, {SHARED:.0%} of "
        f"them found by two subscriptions, {RECIPIENTS_PER_SUBSCRIPTION} readers per "
        "subscription.",
        *when(cells),
        "",
        HEADER,
        *(row(c) for c in sorted(cells, key=lambda c: (c.store, c.history, c.subscriptions))),
        "",
        "Growth exponents (slope of log CPU against log subscriptions):",
        "",
        *exponents(cells),
        "",
        *one_key(cells),
    ]
    ran = {c.subscriptions for c in cells if c.cpu("digest") is not None}
    missing = [s for s in sizes if s not in ran]
    for target in missing:
        est = estimate(cells, target)
        if est:
            lines += ["", *est]
    return "\n".join(lines)


def when(cells: list[Cell]) -> list[str]:
    times = sorted(c.started for c in cells if c.started)
    loads = [c.load for c in cells if c.started]
    if not times:
        return []
    return [
        f"Cells started {times[0]} to {times[-1]} UTC, load average {min(loads):.1f} to "
        f"{max(loads):.1f} on 2 cores shared with other jobs: wall times are inflated and noisy."
    ]


def git_commit() -> str:
    proc = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "watcher"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return proc.stdout.strip() + (" (with uncommitted changes to watcher/)" if dirty else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100,1000,5000", help="subscriptions, comma-separated")
    ap.add_argument("--stores", default="sqlite,postgres", help="sqlite, postgres or both")
    ap.add_argument(
        "--history",
        choices=["no", "yes", "both"],
        default="both",
        help="a history of 1M articles and 2M deliveries: without, with, or each",
    )
    ap.add_argument("--cap", type=float, default=1200, help="seconds at most per cell")
    ap.add_argument("--phase-cap", type=float, default=300, help="seconds at most per command")
    ap.add_argument(
        "--report",
        nargs="+",
        metavar="JSON",
        help="only print the tables from these --json files (cells of several runs together)",
    )
    ap.add_argument("--json", metavar="FILE", help="write every figure there")
    ap.add_argument(
        "--team-size",
        type=int,
        default=0,
        help="subscriptions per team file (0: all in the main file)",
    )
    ap.add_argument(
        "--include",
        default='include = ["teams/*.toml"]',
        help="the main file's line naming the team files (with --team-size)",
    )
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.report:
        loaded = [load(f) for f in args.report]
        print(report([c for _, cs in loaded for c in cs], sizes, loaded[0][0]))
        return 0
    stores = [s.strip() for s in args.stores.split(",")]
    if unknown := set(stores) - set(STORES):
        ap.error(f"unknown store {sorted(unknown)}: sqlite or postgres")
    hist = {"no": [False], "yes": [True], "both": [False, True]}[args.history]
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "watcher")], check=False)
    commit = git_commit()
    cells: list[Cell] = []
    for h in hist:
        for n in sizes:
            for kind in stores:
                print(f"== {STORES[kind]}, {n:,} subscriptions, history {h}", flush=True)
                cell = run_cell(kind, n, h, args.cap, args.phase_cap, args.team_size, args.include)
                cells.append(cell)
                print(row(cell), f"({cell.seconds:.0f} s)", flush=True)
                if args.json:
                    dump(args.json, cells, commit)
    print()
    print(report(cells, sizes, commit))
    return 0


def dump(path: str, cells: list[Cell], commit: str) -> None:
    data = []
    for c in cells:
        d = asdict(c)
        for p in d["phases"].values():
            p.pop("output")
        data.append(d)
    Path(path).write_text(json.dumps({"commit": commit, "cells": data}, indent=1))


def load(path: str) -> tuple[str, list[Cell]]:
    data = json.loads(Path(path).read_text())
    cells = []
    for d in data["cells"]:
        d["phases"] = {k: Phase(**v) for k, v in d["phases"].items()}
        cells.append(Cell(**d))
    return data["commit"], cells


if __name__ == "__main__":
    raise SystemExit(main())
