"""Figure 3: whole ingest. 100,000 real-shaped articles into a fresh store, then the same
100,000 again (all duplicates, as the poll's overlap produces), in 500-article batches as
efetch delivers them, by the watcher's store.articles.upsert (rows built from the Article
records, identifiers looked up and recorded, the articles upserted) beside a bare driver that
builds its own rows from the same records (one json.dumps per article) and writes the same
tables with the same upserts: sqlite3 for SQLite, psycopg for PostgreSQL (set
WATCHER_TEST_POSTGRES_URL, as .ci/run does, to include it). Processor time of this process is
shown beside wall time: the database server's work is in the wall time only.

    python bench/store.py [--n 100000] [--best-of 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from corpus import efetch_file

from watcher.models import Article
from watcher.sources.pubmed_xml import parse_articles
from watcher.store import Store, bounded

NOW = datetime(2026, 11, 16, tzinfo=UTC)
BATCH = 500
COLUMNS = (
    "item",
    "pmid",
    "version",
    "doi",
    "pmcid",
    "title",
    "journal",
    "pub_date",
    "pub_year",
    "epub_date",
    "language",
    "record",
    "first_seen",
    "last_updated",
)
GOAL = 1.2


def articles(n: int) -> list[Article]:
    pool = list(parse_articles(efetch_file(2000).read_bytes()))
    return [
        replace(
            pool[i % len(pool)],
            pmid=50_000_000 + i,
            doi=f"10.9999/bench.{i}",
            pmcid=None,
        )
        for i in range(n)
    ]


def batches(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + BATCH] for i in range(0, len(items), BATCH)]


def bare_rows(arts: Sequence[Article], stamp: str) -> tuple[list[tuple], list[tuple]]:
    """What the bare driver builds itself: an article row (the record serialised once) and its
    identifier rows, with the same bounds the store applies."""
    rows = []
    ids = []
    for a in arts:
        a = bounded(a)
        item = f"pmid:{a.pmid}"
        rows.append(
            (
                item,
                a.pmid,
                a.version,
                a.doi,
                a.pmcid,
                a.title,
                a.journal,
                a.pub_date,
                a.pub_year,
                a.epub_date.isoformat() if a.epub_date else None,
                a.language,
                json.dumps(a.to_json()),
                stamp,
                stamp,
            )
        )
        ids.append(("pmid", str(a.pmid), item))
        if a.doi:
            ids.append(("doi", a.doi.lower(), item))
    return rows, ids


def upsert_sql(mark: str, json_cast: str = "") -> str:
    """The same upsert as the store's, written by hand: unchanged records are not rewritten."""
    cols = ", ".join(COLUMNS)
    marks = ", ".join(mark + (json_cast if c == "record" else "") for c in COLUMNS)
    sets = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in ("item", "first_seen"))
    return (
        f"INSERT INTO articles ({cols}) VALUES ({marks}) ON CONFLICT (item) DO UPDATE SET "
        f"{sets} WHERE CAST(articles.record AS TEXT) <> CAST(excluded.record AS TEXT)"
    )


def ids_sql(mark: str) -> str:
    return (
        f"INSERT INTO identifiers (scheme, value, item) VALUES ({mark}, {mark}, {mark}) "
        "ON CONFLICT DO NOTHING"
    )


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def watcher_ingest(store: Store, arts: list[Article]) -> None:
    for batch in batches(arts):
        store.articles.upsert(batch, NOW)


def sqlite_run(arts: list[Article], folder: Path) -> dict[str, Any]:
    store = Store.open(f"sqlite:///{folder / 'watcher.db'}")
    w_new = timed(lambda: watcher_ingest(store, arts))
    w_dup = timed(lambda: watcher_ingest(store, arts))
    assert store.articles.count() == len(arts)
    store.close()
    # The bare side: the same schema (made by the watcher's migrations), the same pragmas.
    Store.open(f"sqlite:///{folder / 'bare.db'}").close()
    conn = sqlite3.connect(folder / "bare.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    sql, id_sql = upsert_sql("?"), ids_sql("?")
    stamp = NOW.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")

    def load() -> None:
        for batch in batches(arts):
            rows, ids = bare_rows(batch, stamp)
            with conn:
                conn.executemany(id_sql, ids)
                conn.executemany(sql, rows)

    b_new = timed(load)
    b_dup = timed(load)
    conn.close()
    for db in ("watcher.db", "bare.db"):  # what the write-ahead log holds is the file's too
        c = sqlite3.connect(folder / db)
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        c.close()
    size = (folder / "watcher.db").stat().st_size
    return {"w_new": w_new, "w_dup": w_dup, "b_new": b_new, "b_dup": b_dup, "size": size}


def postgres_run(arts: list[Article], url: str) -> dict[str, Any]:
    import uuid

    import psycopg
    from sqlalchemy import create_engine, text

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    size_sql = text("SELECT pg_total_relation_size(:a) + pg_total_relation_size(:i)").bindparams(
        a=f"{schema}.articles", i=f"{schema}.identifiers"
    )
    try:
        store = Store.open(f"{url}?options=-csearch_path%3D{schema}")
        w_new = timed(lambda: watcher_ingest(store, arts))
        w_dup = timed(lambda: watcher_ingest(store, arts))
        with store.engine.begin() as c:
            size = int(c.execute(size_sql).scalar_one())
            c.execute(text("TRUNCATE articles, identifiers"))
        store.close()
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        stamp = NOW.isoformat()
        with psycopg.connect(dsn, options=f"-csearch_path={schema}") as conn:
            sql, id_sql = upsert_sql("%s", "::json"), ids_sql("%s")

            def load() -> None:
                for batch in batches(arts):
                    rows, ids = bare_rows(batch, stamp)
                    with conn.cursor() as cur:
                        cur.executemany(id_sql, ids)
                        cur.executemany(sql, rows)
                    conn.commit()

            b_new = timed(load)
            b_dup = timed(load)
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
    return {"w_new": w_new, "w_dup": w_dup, "b_new": b_new, "b_dup": b_dup, "size": size}


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure, the least disturbed of the runs (shortest wall time)."""
    return {
        k: min((r[k] for r in runs), key=lambda v: v if isinstance(v, int) else v[0])
        for k in runs[0]
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    # Best of 3: single runs of a side moved by 10-15% on the shared machine.
    ap.add_argument("--best-of", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="5,000 articles, SQLite; exit 1 past 2x")
    args = ap.parse_args()
    if args.smoke:
        args.n, args.best_of = 5_000, 1
    arts = articles(args.n)
    results = {
        "SQLite": best([sqlite_run(arts, Path(tempfile.mkdtemp())) for _ in range(args.best_of)])
    }
    url = None if args.smoke else os.environ.get("WATCHER_TEST_POSTGRES_URL")
    if url:
        results["PostgreSQL"] = best([postgres_run(arts, url) for _ in range(args.best_of)])
    print(
        f"{args.n:,} articles in batches of {BATCH}, best of {args.best_of}; both sides build "
        "their rows from the Article records; wall time (this process's processor time)\n"
    )
    print("| store | pass | watcher | bare driver | ratio (wall) | goal |")
    print("|---|---|---|---|---|---|")
    missed = []
    for name, r in results.items():
        for label, w, b in (
            ("new", r["w_new"], r["b_new"]),
            ("all duplicates", r["w_dup"], r["b_dup"]),
        ):
            ratio = w[0] / b[0]
            verdict = "met" if ratio <= GOAL else f"missed by {ratio / GOAL - 1:.0%}"
            if ratio > GOAL:
                missed.append(f"{name} {label}")
            print(
                f"| {name} | {label} | {w[0]:.2f} s ({w[1]:.2f} s) | {b[0]:.2f} s ({b[1]:.2f} s) "
                f"| {ratio:.2f}x | ≤ {GOAL}x: {verdict} |"
            )
    print()
    for name, r in results.items():
        print(f"{name} store after the ingest: {r['size'] / 1e6:.0f} MB (articles and identifiers)")
    if args.smoke:
        print("\n(the smoke run measures SQLite only)")
    elif not url:
        print("\n(PostgreSQL left out: set WATCHER_TEST_POSTGRES_URL to include it)")
    sqlite = results["SQLite"]
    if args.smoke and sqlite["w_new"][0] > 2 * sqlite["b_new"][0]:
        print("SMOKE FAIL: a new-article ingest past 2x the bare driver")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
