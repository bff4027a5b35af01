"""Figure 3: upserting articles. 100,000 real-shaped articles into a fresh store, then the same
100,000 again (all duplicates, as the poll's overlap produces), by the watcher's store, beside a
bare driver executemany of the same rows in the same run: sqlite3 for SQLite, psycopg for
PostgreSQL (set WATCHER_TEST_POSTGRES_URL, as .ci/run does, to include it).

    python bench/store.py [--n 100000]

Both sides write the same ready-made rows (JSON already serialised): the watcher through its
store (SQLAlchemy Core executemany with ON CONFLICT), the bare side through the driver. The time
to turn Article records into rows is shown on its own line.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from corpus import efetch_file

from watcher.sources.pubmed_xml import parse_articles
from watcher.store import Store, article_rows

NOW = datetime(2026, 11, 16, tzinfo=UTC)
COLUMNS = (
    "pmid",
    "version",
    "doi",
    "pmcid",
    "title",
    "abstract",
    "authors",
    "journal",
    "pub_date",
    "pub_year",
    "epub_date",
    "language",
    "publication_types",
    "mesh",
    "keywords",
    "record",
    "first_seen",
    "last_updated",
)


def articles(n: int) -> list:
    pool = list(parse_articles(efetch_file(2000).read_bytes()))
    return [replace(pool[i % len(pool)], pmid=50_000_000 + i) for i in range(n)]


def bare_rows(rows: list[dict]) -> list[tuple]:
    """The watcher's rows as the driver takes them (dates as ISO text, as SQLite stores them)."""
    return [
        tuple(
            r[c].isoformat()
            if hasattr(r[c], "isoformat") and c != "epub_date"
            else (r[c].isoformat() if r[c] is not None and c == "epub_date" else r[c])
            for c in COLUMNS
        )
        for r in rows
    ]


def upsert_sql(placeholder: str, json_cast: str = "") -> str:
    """The same upsert as the store's, written by hand: unchanged records are not rewritten."""
    cols = ", ".join(COLUMNS)
    json_columns = {"authors", "publication_types", "mesh", "keywords", "record"}
    marks = ", ".join(placeholder + (json_cast if c in json_columns else "") for c in COLUMNS)
    sets = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in ("pmid", "first_seen"))
    return (
        f"INSERT INTO articles ({cols}) VALUES ({marks}) ON CONFLICT (pmid) DO UPDATE SET "
        f"{sets} WHERE CAST(articles.record AS TEXT) <> CAST(excluded.record AS TEXT)"
    )


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sqlite_run(arts: list, rows: list[tuple], folder: Path) -> dict[str, float]:
    store = Store.open(f"sqlite:///{folder / 'watcher.db'}")
    ready = article_rows(arts, NOW)
    w_new = timed(lambda: store.upsert_rows(ready))
    w_dup = timed(lambda: store.upsert_rows(ready))
    assert store.count_articles() == len(arts)
    store.close()
    # The bare side: the same schema (made by the watcher's migrations), the same pragmas.
    Store.open(f"sqlite:///{folder / 'bare.db'}").close()
    conn = sqlite3.connect(folder / "bare.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    sql = upsert_sql("?")

    def load() -> None:
        with conn:
            conn.executemany(sql, rows)

    b_new = timed(load)
    b_dup = timed(load)
    conn.close()
    return {"w_new": w_new, "w_dup": w_dup, "b_new": b_new, "b_dup": b_dup}


def postgres_run(arts: list, rows: list[tuple], url: str) -> dict[str, float]:
    import uuid

    import psycopg
    from sqlalchemy import create_engine, text

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        store = Store.open(f"{url}?options=-csearch_path%3D{schema}")
        ready = article_rows(arts, NOW)
        w_new = timed(lambda: store.upsert_rows(ready))
        w_dup = timed(lambda: store.upsert_rows(ready))
        with store.engine.begin() as c:
            c.execute(text("TRUNCATE articles"))
        store.close()
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, options=f"-csearch_path={schema}") as conn:
            sql = upsert_sql("%s", "::json")

            def load() -> None:
                with conn.cursor() as cur:
                    cur.executemany(sql, rows)
                conn.commit()

            b_new = timed(load)
            b_dup = timed(load)
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
    return {"w_new": w_new, "w_dup": w_dup, "b_new": b_new, "b_dup": b_dup}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    arts = articles(args.n)
    build = timed(lambda: article_rows(arts, NOW))
    rows = bare_rows(article_rows(arts, NOW))
    results = {"SQLite": sqlite_run(arts, rows, Path(tempfile.mkdtemp()))}
    url = os.environ.get("WATCHER_TEST_POSTGRES_URL")
    if url:
        results["PostgreSQL"] = postgres_run(arts, rows, url)
    print(f"{args.n:,} articles; bare = the driver's executemany of ready-made rows\n")
    print("| store | pass | watcher | bare driver | ratio |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        for label, w, b in (
            ("new", r["w_new"], r["b_new"]),
            ("all duplicates", r["w_dup"], r["b_dup"]),
        ):
            print(f"| {name} | {label} | {w:.2f} s | {b:.2f} s | {w / b:.2f}x |")
    print(
        f"\nTurning the {args.n:,} Article records into rows (JSON serialised once each): "
        f"{build:.2f} s, paid once per ingest by the watcher and not by the bare driver."
    )
    if not url:
        print("\n(PostgreSQL left out: set WATCHER_TEST_POSTGRES_URL to include it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
