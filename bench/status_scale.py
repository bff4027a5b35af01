"""`watcher status` against history: the same institution (200 subscriptions, 100 readers, a
backlog of 2,000 undelivered papers, 50 records awaited, 5 pending digests and a failed one)
on a store with no past, and on one with 1,000,000 delivered articles and 2,000,000 deliveries
(with their digests, digest items, identifiers and matches, and 1% of them with a change told
to both readers), on SQLite and on PostgreSQL (set WATCHER_TEST_POSTGRES_URL; the stores go
in a schema of their own, dropped afterwards).

The stores are built at revision 0008 in bulk (INSERT … SELECT over a generated series, which
both databases do in a few seconds a million rows), then opened by the watcher, which migrates
them to its newest revision as it would an operator's store. `watcher status --json` then runs
in this process, best of 3: processor time of this process (the watcher's own work) and wall
time (which holds the database server's work on PostgreSQL; noisy on a shared machine). Beside
it, what a digest run reads for each of the 100 readers (store.outbox.pending_papers,
store.changes.pending, store.outbox.received), which grew with the past too.

    python bench/status_scale.py [--articles 1000000] [--store sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import Connection, Engine

from watcher.cli import main as watcher_main
from watcher.config import load_config
from watcher.schema import UTCDateTime
from watcher.store import Store, migrate

SUBS, READERS = 200, 100
BACKLOG, AWAITED, PENDING_DIGESTS = 2000, 50, 5
PAST = datetime(2022, 1, 3, tzinfo=UTC)
RECENT = datetime(2026, 12, 1, tzinfo=UTC)
GOAL = 1.5


def write_config(folder: Path, url: str) -> Path:
    lines = [
        f'[store]\nurl = "{url}"\n',
        '[ncbi]\nemail = "bench@example.org"\ntool = "bench"\n',
        '[mail]\nfrom = "watcher@example.org"\nmaildir = "mail"\n',
    ]
    for s in range(SUBS):
        rcpts = f'"r{s % READERS}@example.org", "r{(s + 1) % READERS}@example.org"'
        lines.append(
            f'[[subscription]]\nname = "s{s}"\nquery = "topic {s}[tiab]"\nrecipients = [{rcpts}]\n'
        )
    path = folder / "watcher.toml"
    path.write_text("\n".join(lines))
    return path


def series(conn: Connection, n: int) -> str:
    """A FROM clause of the integers 1..n, as column i, in this dialect."""
    if conn.dialect.name == "postgresql":
        return f"generate_series(1, {n}) AS g(i)"
    recursive = f"WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {n})"
    return f"({recursive} SELECT i FROM g)"


def run(conn: Connection, sql: str, **values: Any) -> None:
    """`sql` with `values`, datetimes bound as the store binds them."""
    stmt = text(sql).bindparams(
        *(bindparam(k, type_=UTCDateTime()) for k, v in values.items() if isinstance(v, datetime))
    )
    conn.execute(stmt, values)


def sub_of(i: str) -> str:
    return f"'s' || ({i} % {SUBS})"


def reader_of(i: str, slot: int) -> str:
    return f"'r' || ((({i} % {SUBS}) + {slot}) % {READERS}) || '@example.org'"


def add_articles(conn: Connection, first: int, n: int, deliver: bool, seen: datetime) -> None:
    """Articles pmid first..first+n-1 with their identifiers and one match each."""
    g = series(conn, n)
    pmid = f"(i + {first - 1})"
    run(
        conn,
        "INSERT INTO articles (item, pmid, version, title, record, first_seen, last_updated) "
        f"SELECT 'pmid:' || {pmid}, {pmid}, 1, 'Title ' || {pmid}, '{{}}', :t, :t FROM {g}",
        t=seen,
    )
    run(
        conn,
        "INSERT INTO identifiers (scheme, value, item) "
        f"SELECT 'pmid', '' || {pmid}, 'pmid:' || {pmid} FROM {g}",
    )
    add_matches(conn, first, n, deliver, seen)


def add_matches(conn: Connection, first: int, n: int, deliver: bool, seen: datetime) -> None:
    pmid = f"(i + {first - 1})"
    run(
        conn,
        "INSERT INTO matches (subscription, item, source, matched_at, deliver) "
        f"SELECT {sub_of(pmid)}, 'pmid:' || {pmid}, 'esearch', :t, "
        f"{'1 = 1' if deliver else '1 = 0'} FROM {series(conn, n)}",
        t=seen,
    )


def build_history(conn: Connection, n: int) -> None:
    """n delivered articles, each to the two readers of its subscription, 20 to a digest."""
    add_articles(conn, 1, n, True, PAST)
    g = series(conn, n // 10)  # digests: n * 2 deliveries / 20 papers
    run(
        conn,
        "INSERT INTO digests (id, recipient, schedule, message_id, state, created_at, sent_at, "
        "attempts, paper_count, message) "
        f"SELECT i, 'r0@example.org', 'daily', '<bench.' || i || '@example.org>', 'sent', "
        f":t, :t, 1, 20, {blob(conn)} FROM {g}",
        t=PAST,
    )
    for slot in (0, 1):
        digest = f"((i - 1) / 20) * 2 + {slot + 1}"
        g = series(conn, n)
        run(
            conn,
            f"INSERT INTO digest_items (digest_id, item) SELECT {digest}, 'pmid:' || i FROM {g}",
        )
        run(
            conn,
            "INSERT INTO deliveries (recipient, item, digest_id, delivered_at) "
            f"SELECT {reader_of('i', slot)}, 'pmid:' || i, {digest}, :t FROM {g}",
            t=PAST + timedelta(days=1),
        )
    # 1% of the delivered papers have a change, told to both their readers.
    g = series(conn, n // 100)
    kind = "CASE WHEN i % 2 = 0 THEN 'retraction' ELSE 'erratum' END"
    run(
        conn,
        "INSERT INTO changes (id, item, kind, notice, detail, found_at) "
        f"SELECT i, 'pmid:' || (i * 100), {kind}, 'ref:' || i, 'bench', :t FROM {g}",
        t=PAST + timedelta(days=2),
    )
    for slot in (0, 1):
        run(
            conn,
            "INSERT INTO change_deliveries (recipient, change_id, digest_id, delivered_at) "
            f"SELECT {reader_of('(i * 100)', slot)}, i, ((i * 100 - 1) / 20) * 2 + {slot + 1}, "
            f":t FROM {series(conn, n // 100)}",
            t=PAST + timedelta(days=3),
        )


def blob(conn: Connection) -> str:
    return "''::bytea" if conn.dialect.name == "postgresql" else "X''"


def build_backlog(conn: Connection, past: int) -> None:
    """What an institution has in flight whatever its past: papers not yet delivered, records
    awaited, a few pending digests and a failed one."""
    first = past + 1
    add_articles(conn, first, BACKLOG, True, RECENT)
    add_matches(conn, first + BACKLOG, AWAITED, True, RECENT)
    base = past // 10 + 1
    for k in range(PENDING_DIGESTS + 1):
        state = "failed" if k == PENDING_DIGESTS else "pending"
        run(
            conn,
            "INSERT INTO digests (id, recipient, schedule, message_id, state, created_at, "
            "attempts, paper_count, message) "
            f"VALUES ({base + k}, 'r{k}@example.org', 'daily', '<pending.{k}@example.org>', "
            f"'{state}', :t, 1, 10, {blob(conn)})",
            t=RECENT,
        )
        run(
            conn,
            f"INSERT INTO digest_items (digest_id, item) SELECT {base + k}, "
            f"'pmid:' || (i + {first - 1 + k * 10}) FROM {series(conn, 10)}",
        )
    if conn.dialect.name == "postgresql":  # ids given explicitly: move the sequences on
        for table in ("digests", "changes"):
            run(
                conn, f"SELECT setval('{table}_id_seq', (SELECT coalesce(max(id), 1) FROM {table}))"
            )


def build(url: str, config: Path, past: int) -> float:
    """A store at revision 0008 with `past` delivered articles and the backlog, opened (and so
    migrated) by the watcher; returns the seconds it took."""
    start = time.perf_counter()
    engine = create_engine(url)
    migrate(engine, "0008")
    cfg = load_config(config)
    since = PAST - timedelta(days=1)
    with engine.begin() as conn:
        for s in cfg.subscriptions:  # as the watcher of revision 0008 wrote them
            run(
                conn,
                "INSERT INTO subscriptions (name, fingerprint, created_at) VALUES (:n, :f, :t)",
                t=since,
                **{"n": s.name, "f": s.fingerprint},
            )
            for r in s.recipients:
                run(
                    conn,
                    "INSERT INTO subscribers (subscription, recipient, since) VALUES (:n, :r, :t)",
                    t=since,
                    **{"n": s.name, "r": r.lower()},
                )
        if past:
            build_history(conn, past)
        build_backlog(conn, past)
    analyze(engine)
    engine.dispose()
    Store.open(url).close()  # migrates to the newest revision, as `watcher status` would
    engine = create_engine(url)
    analyze(engine)
    engine.dispose()
    return time.perf_counter() - start


def analyze(engine: Engine) -> None:
    """Statistics, and on PostgreSQL the visibility map a store with a past has: autovacuum has
    passed over its years of rows many times, but not yet over rows bulk-written a moment ago,
    and until it has, every index-only lookup also reads the row (4,000 heap fetches in
    status's count of what awaits each reader)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        return
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


def time_status(config: Path, rounds: int) -> tuple[float, float, dict[str, Any]]:
    """Best processor and wall seconds of `watcher status --json` in this process."""
    cpu, wall, out = [], [], {}
    for _ in range(rounds):
        buf = io.StringIO()
        c0, w0 = time.process_time(), time.perf_counter()
        with contextlib.redirect_stdout(buf):
            code = watcher_main(["-c", str(config), "status", "--json"])
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        assert code == 0, code
        out = json.loads(buf.getvalue())
    return min(cpu), min(wall), out


def time_digest_reads(url: str, config: Path, rounds: int) -> tuple[float, float]:
    """Best processor and wall seconds of what a digest run reads for each reader (its due
    papers, the changes to tell, when it received those papers before), for every reader."""
    cfg = load_config(config)
    readers: dict[str, list[str]] = {}
    for s in cfg.subscriptions:
        for r in s.recipients:
            readers.setdefault(r, []).append(s.name)
    store = Store.open(url)
    cpu, wall = [], []
    try:
        for _ in range(rounds):
            c0, w0 = time.process_time(), time.perf_counter()
            for reader, subs in readers.items():
                papers = store.outbox.pending_papers(reader, subs)
                store.changes.pending(reader)
                store.outbox.received(reader, list(papers))
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
    finally:
        store.close()
    return min(cpu), min(wall)


@contextlib.contextmanager
def store_urls(kind: str, folder: Path) -> Iterator[tuple[str, str]]:
    """Two store URLs (no past, big past) of `kind`."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'empty.db'}", f"sqlite:///{folder / 'history.db'}"
        return
    base = os.environ["WATCHER_TEST_POSTGRES_URL"]
    schemas = [f"bench_status_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for s in schemas:
            conn.execute(text(f'CREATE SCHEMA "{s}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield (
            f"{base}{sep}options=-csearch_path%3D{schemas[0]}",
            f"{base}{sep}options=-csearch_path%3D{schemas[1]}",
        )
    finally:
        with admin.connect() as conn:
            for s in schemas:
                conn.execute(text(f'DROP SCHEMA "{s}" CASCADE'))
        admin.dispose()


def measure(kind: str, past: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, store_urls(kind, Path(tmp)) as urls:
        row: dict[str, Any] = {"store": kind}
        for label, url, n in (("empty", urls[0], 0), ("history", urls[1], past)):
            folder = Path(tmp) / label
            folder.mkdir()
            config = write_config(folder, url)
            row[f"{label}_build_s"] = round(build(url, config, n), 1)
            cpu, wall, out = time_status(config, rounds)
            row[f"{label}_cpu_s"], row[f"{label}_wall_s"] = round(cpu, 3), round(wall, 3)
            cpu, wall = time_digest_reads(url, config, rounds)
            row[f"{label}_digest_cpu_s"] = round(cpu, 3)
            row[f"{label}_digest_wall_s"] = round(wall, 3)
            row[f"{label}_articles"] = out["articles"]
            row[f"{label}_undelivered"] = sum(r["undelivered"] for r in out["recipients"])
            print(f"  {kind} {label}: {json.dumps(row)}", file=sys.stderr, flush=True)
        row["cpu_ratio"] = round(row["history_cpu_s"] / row["empty_cpu_s"], 2)
        row["wall_ratio"] = round(row["history_wall_s"] / row["empty_wall_s"], 2)
        row["digest_wall_ratio"] = round(
            row["history_digest_wall_s"] / row["empty_digest_wall_s"], 2
        )
        # Same backlog on both stores: the answer must not depend on the past.
        assert row["empty_undelivered"] == row["history_undelivered"], row
        return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.store == "both" else [args.store]
    if "postgresql" in kinds and not os.environ.get("WATCHER_TEST_POSTGRES_URL"):
        print("PostgreSQL left out: set WATCHER_TEST_POSTGRES_URL", file=sys.stderr)
        kinds.remove("postgresql")
    print(
        f"| store | past | status CPU s | wall s | history ÷ empty (CPU, wall) | ≤ {GOAL}× "
        "| digest reads, 100 readers: CPU s | wall s | history ÷ empty (wall) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in kinds:
        r = measure(kind, args.articles, args.rounds)
        met = "met" if max(r["cpu_ratio"], r["wall_ratio"]) <= GOAL else "MISSED"
        print(
            f"| {kind} | none | {r['empty_cpu_s']} | {r['empty_wall_s']} | | "
            f"| {r['empty_digest_cpu_s']} | {r['empty_digest_wall_s']} | |"
        )
        print(
            f"| {kind} | {r['history_articles'] - BACKLOG:,} articles, {2 * args.articles:,} "
            f"deliveries | {r['history_cpu_s']} | {r['history_wall_s']} | "
            f"{r['cpu_ratio']}×, {r['wall_ratio']}× | {met} | {r['history_digest_cpu_s']} "
            f"| {r['history_digest_wall_s']} | {r['digest_wall_ratio']}× |",
            flush=True,
        )


if __name__ == "__main__":
    main()
