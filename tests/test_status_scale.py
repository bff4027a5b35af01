"""`watcher status` in constant time (issue 28 item 4): the counts it shows are kept as their
rows are written and agree with a recount after a realistic life of the store; the matches
still owed to a reader are marked, and only they are read for what awaits delivery; every query
`status` makes reads the big tables through an index (PostgreSQL's plan, SQLite's query plan);
the migration works the counts and marks out of a store written before it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, event, func, insert, select, text

from watcher import schema as db
from watcher.config import load_config
from watcher.identity import key
from watcher.identity import pmid_key as k
from watcher.models import Change
from watcher.status import status_report
from watcher.store import Store, migrate

from .conftest import write_config
from .test_store import T0, article, sub

A, B, C = "a@example.org", "b@example.org", "c@example.org"
DOI = "10.1000/merged.1"
BIG = {
    "articles",
    "deliveries",
    "matches",
    "digests",
    "digest_items",
    "identifiers",
    "changes",
    "change_deliveries",
}
# The indexes a query may run through from end to end: partial, each holds only what is still
# to do (matches owed, changes untold, digests not sent).
BOUNDED = {"ix_matches_owed", "ix_changes_untold", "ix_digests_unsent"}


def recount(store: Store) -> dict[str, Any]:
    """What the kept counts must say, counted from the rows."""
    with store.engine.connect() as conn:

        def grouped(column: Any) -> dict[str, int]:
            rows = conn.execute(select(column, func.count()).group_by(column))
            return {name: int(n) for name, n in rows}

        return {
            "articles": conn.execute(select(func.count()).select_from(db.articles)).scalar_one(),
            "matches": grouped(db.matches.c.subscription),
            "changes": {
                **grouped(db.changes.c.kind),
                "told": conn.execute(
                    select(func.count()).select_from(db.change_deliveries)
                ).scalar_one(),
            },
        }


def kept(store: Store) -> dict[str, Any]:
    return {
        "articles": store.articles.count(),
        "matches": store.polls.match_counts(),
        "changes": store.changes.counts(),
    }


def owed_marks(store: Store) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(the matches marked owed, those some reader of their subscription since before the
    match has not received): the two must be one set."""
    with store.engine.connect() as conn:
        subscribers = conn.execute(select(db.subscribers)).all()
        delivered = set(conn.execute(select(db.deliveries.c.recipient, db.deliveries.c.item)))
        matches = conn.execute(select(db.matches)).all()
    marked = {(m.subscription, m.item) for m in matches if m.owed}
    waiting = {
        (m.subscription, m.item)
        for m in matches
        if m.deliver
        and any(
            s.subscription == m.subscription
            and s.since <= m.matched_at
            and (s.recipient, m.item) not in delivered
            for s in subscribers
        )
    }
    return marked, waiting


def untold_marks(store: Store) -> tuple[set[int], set[int]]:
    """(the changes marked untold, those that one who received their item before they were
    found, and still reads something, has not been told): the two must be one set."""
    with store.engine.connect() as conn:
        readers = set(conn.execute(select(db.subscribers.c.recipient)).scalars())
        delivered = conn.execute(select(db.deliveries)).all()
        told = set(
            conn.execute(select(db.change_deliveries.c.recipient, db.change_deliveries.c.change_id))
        )
        changes = conn.execute(select(db.changes)).all()
    marked = {c.id for c in changes if c.untold}
    waiting = {
        c.id
        for c in changes
        if any(
            d.item == c.item
            and d.delivered_at <= c.found_at
            and d.recipient in readers
            and (d.recipient, c.id) not in told
            for d in delivered
        )
    }
    return marked, waiting


def send(store: Store, recipient: str, subs: Sequence[str], now: datetime, **kw: Any) -> int:
    """A digest of what is due to `recipient`, recorded and sent."""
    items = list(store.outbox.pending_papers(recipient, subs))
    digest = store.outbox.create_digest(
        recipient=recipient,
        schedule="daily",
        message_id=f"<{recipient}.{now.timestamp()}@x>",
        message=b"m",
        items=items,
        now=now,
        **kw,
    )
    assert store.outbox.mark_digest_sent(digest, now)
    return len(items)


def poll(store: Store, name: str, items: Sequence[str], now: datetime, **kw: Any) -> int:
    return store.polls.commit(
        name,
        items,
        source="esearch",
        deliver=True,
        now=now,
        window_end=None,
        found=len(items),
        **kw,
    )


def test_kept_counts_and_owed_marks_agree_with_a_recount_through_a_stores_life(
    store: Store,
) -> None:
    """Polls with overlaps, a record awaited, a liked paper, a baseline, digests sent, retried
    and refused, follow-ups found twice and told, two items merged, a reader leaving and coming
    back: after each step the kept counts are what COUNT(*) says and the owed marks are
    exactly the matches a reader still waits for."""
    subs = [sub("s", "q1", [A, B]), sub("t", "q2", [A]), sub("u", "q3", [C])]
    store.polls.sync(subs, T0)

    def agree() -> None:
        assert kept(store) == recount(store)
        marked, waiting = owed_marks(store)
        assert marked == waiting
        assert untold_marks(store)[0] == untold_marks(store)[1]

    t = T0 + timedelta(hours=1)
    store.articles.upsert([article(i) for i in range(1, 7)], t)
    store.articles.upsert([article(i) for i in range(1, 4)], t)  # again: nothing new
    assert poll(store, "s", [k(1), k(2), k(3), k(4)], t) == 4
    assert poll(store, "t", [k(3), k(4), k(5)], t, known=[k(5)]) == 3  # 5 is liked
    store.polls.commit(
        "u", [k(6)], source="baseline", deliver=False, now=t, window_end=None, found=1
    )
    assert poll(store, "s", [k(2), k(3), k(7)], t + timedelta(minutes=1)) == 1
    store.articles.record_missing({k(7): "not in efetch's answer"}, t)
    agree()

    t += timedelta(hours=1)
    assert send(store, A, ["s", "t"], t) == 4  # 1-4 (7 awaits its record, 5 is liked)
    agree()
    # b's digest fails once (transient), then goes: a retry.
    items = list(store.outbox.pending_papers(B, ["s"]))
    digest = store.outbox.create_digest(
        recipient=B, schedule="d", message_id="<b1@x>", message=b"m", items=items, now=t
    )
    store.outbox.mark_digest_attempt(digest, "421 try later", permanent=False)
    agree()
    assert store.outbox.mark_digest_sent(digest, t + timedelta(minutes=5))
    agree()

    # A refused digest: its paper is owed again, and goes in the next one.
    t += timedelta(hours=1)
    store.articles.upsert([article(8)], t)
    poll(store, "s", [k(8)], t)
    refused = store.outbox.create_digest(
        recipient=A, schedule="d", message_id="<a2@x>", message=b"m", items=[k(8)], now=t
    )
    store.outbox.mark_digest_attempt(refused, "550 no such user", permanent=True)
    agree()
    assert send(store, A, ["s", "t"], t + timedelta(minutes=1)) == 1
    agree()

    # Follow-ups: a retraction of paper 1 found twice (once by a refresh, once by a poll), and
    # an erratum; told to a.
    t += timedelta(hours=1)
    retraction = Change(k(1), "retraction", "pmid:9", None, "Retracted", k(9))
    assert store.changes.record([retraction, Change(k(2), "erratum", "pmid:10", None, "E")], t)
    assert store.changes.record([retraction], t + timedelta(minutes=1)) == 0
    told = [c.id for c in store.changes.pending(A)]
    assert len(told) == 2
    agree()
    assert len(untold_marks(store)[0]) == 2  # a has not been told them yet (nor b, of 1)
    digest = store.outbox.create_digest(
        recipient=A, schedule="d", message_id="<a3@x>", message=b"m", items=[], now=t, changes=told
    )
    assert store.outbox.mark_digest_sent(digest, t)
    agree()

    # Two items proven one: s and u matched the preprint's DOI, s (and t) the PubMed record 3,
    # delivered to a and b; the revised record 3 carries the DOI.
    t += timedelta(hours=1)
    poll(store, "s", [key("doi", DOI)], t)
    poll(store, "u", [key("doi", DOI)], t)
    store.articles.upsert([replace(article(3), doi=DOI, pmid=None, title="Preprint")], t)
    agree()
    store.articles.upsert([replace(article(3), doi=DOI)], t + timedelta(minutes=1))
    assert store.items.resolve([key("doi", DOI)]) == {key("doi", DOI): k(3)}
    agree()
    assert store.polls.match_counts()["s"] == 6  # 1, 2, 3, 4, 7, 8: the DOI's match was 3's

    # b leaves s with papers owed; back later, b is a new reader.
    store.articles.upsert([article(11)], t)
    poll(store, "s", [k(11)], t)
    assert store.outbox.undelivered_counts()[B] == 2  # 8 (only a had a digest of it) and 11
    store.polls.sync([sub("s", "q1", [A]), *subs[1:]], t)
    agree()
    assert B not in store.outbox.undelivered_counts()
    store.polls.sync(subs, t + timedelta(hours=1))
    assert store.outbox.undelivered_counts()[B] == 0
    agree()
    # 7 awaits its record
    assert store.outbox.undelivered_counts(stored=False) == {A: 1, B: 0, C: 0}


def build_old_store(url: str, past: int) -> None:
    """A store written before migration 0011 (at 0008): `past` papers matched by s and t and
    delivered to each reader, 1 in 10 with a change told; 30 papers matched since, undelivered,
    5 of them without their record; one digest pending, one refused."""
    engine = create_engine(url)
    migrate(engine, "0008")
    old = T0 - timedelta(days=400)
    with engine.begin() as conn:
        for s in (sub("s", "q1", [A, B]), sub("t", "q2", [A])):
            write(
                conn,
                db.subscriptions,
                [dict(name=s.name, fingerprint=s.fingerprint, created_at=old)],
            )
            write(
                conn,
                db.subscribers,
                [dict(subscription=s.name, recipient=r, since=old) for r in s.recipients],
            )
        stored = [i for i in range(1, past + 31) if i <= past or i % 6]
        write(conn, db.articles, [arow(i, old) for i in stored])
        write(
            conn,
            db.matches,
            [
                dict(
                    subscription="s" if i % 2 else "t",
                    item=k(i),
                    source="esearch",
                    matched_at=old if i <= past else T0,
                    deliver=True,
                )
                for i in range(1, past + 31)
            ],
        )
        count = past // 10 + 2
        write(
            conn,
            db.digests,
            [
                dict(
                    id=d,
                    recipient=A if d % 2 else B,
                    schedule="daily",
                    message_id=f"<{d}@x>",
                    state="sent" if d <= past // 10 else ("pending", "failed")[d % 2],
                    created_at=old,
                    attempts=1,
                    paper_count=10,
                    message=b"",
                )
                for d in range(1, count + 1)
            ],
        )
        readers = {k(i): [A, B] if i % 2 else [A] for i in range(1, past + 1)}
        write(
            conn,
            db.deliveries,
            [
                dict(recipient=r, item=item, digest_id=(i - 1) // 10 + 1, delivered_at=old)
                for i, (item, rs) in enumerate(readers.items(), 1)
                for r in rs
            ],
        )
        write(
            conn,
            db.digest_items,
            [dict(digest_id=(i - 1) // 10 + 1, item=k(i)) for i in range(1, past + 1)]
            + [dict(digest_id=count - j, item=k(past + 1 + j)) for j in (0, 1)],
        )
        write(
            conn,
            db.changes,
            [
                dict(
                    id=i,
                    item=k(i * 10),
                    kind=("retraction", "erratum")[i % 2],
                    notice=f"ref:{i}",
                    detail="d",
                    found_at=old,
                )
                for i in range(1, past // 10 + 1)
            ],
        )
        write(
            conn,
            db.change_deliveries,
            [
                dict(recipient=A, change_id=i, digest_id=i, delivered_at=old)
                for i in range(1, past // 10 - 1)  # the last two not told yet
            ],
        )
        if conn.dialect.name == "postgresql":  # ids given: the sequences move on past them
            for table in ("digests", "changes"):
                conn.execute(
                    text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
                )
    engine.dispose()


def arow(i: int, when: datetime) -> dict[str, Any]:
    return dict(
        item=k(i),
        pmid=i,
        version=1,
        title=f"Paper {i}",
        record={},
        first_seen=when,
        last_updated=when,
    )


def write(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    if table is db.articles:  # a JSON column the store serialises itself (schema.JSONString)
        rows = [{**r, "record": json.dumps(r["record"])} for r in rows]
    for i in range(0, len(rows), 5000):
        conn.execute(insert(table), rows[i : i + 5000])


def test_migration_0011_works_out_the_counts_and_marks_of_an_old_store(store_url: str) -> None:
    build_old_store(store_url, 200)
    store = Store.open(store_url)  # migrates 0008 → head
    try:
        assert kept(store) == recount(store)
        assert kept(store)["articles"] == 200 + 25
        assert kept(store)["changes"] == {"retraction": 10, "erratum": 10, "told": 18}
        assert untold_marks(store) == ({19, 20}, {19, 20})
        marked, waiting = owed_marks(store)
        assert marked == waiting and len(marked) == 30  # the 30 recent ones, none of the past
        # What awaits delivery: a, reader of s and t, the 25 recent ones stored (the one in
        # a's refused digest too); b, reader of s (odd numbers), its 15 but the one waiting in
        # b's pending digest. The 5 without their record (multiples of 6) are t's: a's.
        assert store.outbox.undelivered_counts() == {A: 25, B: 15 - 1}
        assert store.outbox.undelivered_counts(stored=False) == {A: 5, B: 0}
    finally:
        store.close()


@pytest.fixture
def big_store(store_url: str, tmp_path: Path) -> Iterator[tuple[Store, Any]]:
    """An old store with a past large enough for a planner to prefer its indexes (and
    statistics gathered), migrated; with the config of its subscriptions."""
    build_old_store(store_url, 20_000)
    store = Store.open(store_url)
    with store.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    subs = (
        f'[[subscription]]\nname = "s"\nquery = "q1"\nrecipients = ["{A}", "{B}"]\n'
        f'[[subscription]]\nname = "t"\nquery = "q2"\nrecipients = ["{A}"]\n'
    )
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9/", subs))
    yield store, config
    store.close()


def status_statements(store: Store, config: Any) -> list[tuple[str, Any]]:
    """Every statement `status` sends the database, with its parameters, and those of what a
    digest run reads for a reader (due papers, changes to tell, when they had them)."""
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool):
        sent.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        out = status_report(store, config, T0)
        papers = store.outbox.pending_papers(A, ["s", "t"])
        assert len(store.changes.pending(A)) == 2  # the last two changes, untold
        store.outbox.received(A, list(papers))
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert out["articles"] == 20_025 and out["recipients"][0]["undelivered"] == 25
    return [(sql, params) for sql, params in sent if sql.lstrip().upper().startswith("SELECT")]


def pg_scans(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from pg_scans(child)


@pytest.mark.postgres
def test_status_reads_postgresqls_big_tables_only_through_indexes(big_store) -> None:
    store, config = big_store
    if store.dialect != "postgresql":
        pytest.skip("PostgreSQL's plans")
    statements = status_statements(store, config)
    assert len(statements) >= 8
    with store.engine.connect() as conn:
        for sql, params in statements:
            plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}", params).scalar_one()
            for node in pg_scans(plan[0]["Plan"]):
                table = node.get("Relation Name")
                if table not in BIG:
                    continue
                assert node["Node Type"] != "Seq Scan", (sql, json.dumps(plan, indent=1))
                # A whole index read end to end costs as much as the table: only the owed one.
                bounded = "Index Cond" in node or node.get("Index Name") in BOUNDED
                assert bounded or node["Node Type"] == "Bitmap Heap Scan", (sql, plan)


def test_status_reads_sqlites_big_tables_only_through_indexes(big_store) -> None:
    store, config = big_store
    if store.dialect != "sqlite":
        pytest.skip("SQLite's query plans")
    statements = status_statements(store, config)
    assert len(statements) >= 8
    with store.engine.connect() as conn:
        for sql, params in statements:
            plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)]
            for step in plan:
                words = step.split()
                if len(words) < 2 or words[1] not in BIG:
                    continue
                # SEARCH: through an index, for given keys; SCAN: every row (of the table, or
                # of an index), allowed only over the index of the owed matches alone.
                assert words[0] == "SEARCH" or any(i in step for i in BOUNDED), (sql, plan)
                assert (
                    "USING INDEX" in step
                    or "USING COVERING INDEX" in step
                    or ("USING INTEGER PRIMARY KEY" in step or "USING PRIMARY KEY" in step)
                ), (sql, plan)
