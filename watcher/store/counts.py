"""Kept counts and the marks of what is still to do, which `watcher status` and the digest
run read instead of the past: counts of articles, matches per subscription, changes per kind
and tellings (the `counts` table), matches still owed to a reader (`matches.owed`) and changes
not yet told to all their readers (`changes.untold`), each read through a partial index of its
own. Each is written in the transaction that writes the rows it stands for (migration 0011
works them out of a store written before them). Functions on a Connection."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    delete,
    func,
    literal_column,
    select,
    update,
)

from watcher import schema as db
from watcher.identity import ItemKey
from watcher.store.engine import CHUNK, chunks

# A match still owed to a reader (see schema.matches.owed), in the words of its partial index.
OWED = db.matches.c.owed == literal_column("true")
# A change some reader has not been told (see schema.changes.untold).
UNTOLD = db.changes.c.untold == literal_column("true")


def existing(conn: Connection, column: Any, keys: Sequence[Any]) -> set[Any]:
    """Those of `keys` in `column` (a table's key)."""
    out: set[Any] = set()
    for chunk in chunks(keys, CHUNK):
        out.update(conn.execute(select(column).where(column.in_(chunk))).scalars())
    return out


def count(conn: Connection, column: Any, keys: Sequence[Any], *where: Any) -> int:
    """How many rows have one of `keys` in `column` and meet `where`."""
    table = column.table
    return sum(
        int(
            conn.execute(
                select(func.count()).select_from(table).where(column.in_(chunk), *where)
            ).scalar_one()
        )
        for chunk in chunks(keys, CHUNK)
    )


def bump(conn: Connection, deltas: Mapping[str, int]) -> None:
    """Add to kept counts, in one order of names so that two transactions never wait on each
    other's counts crosswise."""
    for name, n in sorted(deltas.items()):
        if n:
            stmt = _upsert(conn, db.counts).values(name=name, n=n)
            stmt = stmt.on_conflict_do_update(
                index_elements=["name"], set_={"n": db.counts.c.n + stmt.excluded.n}
            )
            conn.execute(stmt)


def _upsert(conn: Connection, table: Table) -> Any:
    """INSERT with ON CONFLICT in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def kept(conn: Connection, name: str) -> dict[str, int]:
    """The kept count `name`, or with a name ending in ":" each count under it by the rest of
    its name."""
    c = db.counts.c
    if not name.endswith(":"):
        return {k: int(n) for k, n in conn.execute(select(c.name, c.n).where(c.name == name))}
    # ";" follows ":": the range holds exactly the names that start with `name`, on the index.
    under = select(c.name, c.n).where(c.name >= name, c.name < name[:-1] + ";")
    return {k[len(name) :]: int(n) for k, n in conn.execute(under)}


def lock_owed(conn: Connection, items: Sequence[ItemKey]) -> None:
    """Lock the owed matches of `items` until the transaction ends (PostgreSQL; a SQLite write
    transaction holds the whole store already), in item order."""
    if conn.dialect.name != "postgresql":
        return
    m = db.matches.c
    for chunk in chunks(sorted(set(items)), CHUNK):
        conn.execute(
            select(m.item)
            .where(OWED, m.item.in_(chunk))
            .order_by(m.item, m.subscription)
            .with_for_update()
        ).all()


def settle(conn: Connection, items: Sequence[ItemKey]) -> None:
    """Unmark the matches of `items` that no reader is owed any more."""
    for chunk in chunks(list(dict.fromkeys(items)), CHUNK):
        settle_where(conn, db.matches.c.item.in_(chunk))


def settle_where(conn: Connection, which: ColumnElement[bool]) -> None:
    """Unmark the owed matches among `which` that each reader of their subscription (from
    before the match) has received: the same test as _due's, without what only delays."""
    m, s, d = db.matches.c, db.subscribers.c, db.deliveries.c
    received = (
        select(d.item)
        .where(d.recipient == s.recipient, d.item == m.item)
        .correlate(db.matches, db.subscribers)
        .exists()
    )
    waiting = (
        select(s.recipient)
        .where(s.subscription == m.subscription, s.since <= m.matched_at, ~received)
        .correlate(db.matches)
        .exists()
    )
    conn.execute(update(db.matches).where(OWED, which, ~waiting).values(owed=False))


def leave(conn: Connection, subscription: str, gone: Collection[str]) -> None:
    """Readers no longer listed for `subscription` leave it: nothing more is owed them (back
    later, they are new readers, owed what is matched from then on, as any new reader)."""
    if not gone:
        return
    s = db.subscribers.c
    conn.execute(
        delete(db.subscribers).where(s.subscription == subscription, s.recipient.in_(gone))
    )
    settle_where(conn, db.matches.c.subscription == subscription)
    settle_changes(conn, UNTOLD)  # a reader who left them all is told nothing more


def owe_since(conn: Connection, subscription: str, since: Any) -> None:
    """A reader joined `subscription` at `since`: its matches from then on are owed again (none
    but in a store whose matches were written ahead of its readers, as a migrated one)."""
    m = db.matches.c
    conn.execute(
        update(db.matches)
        .where(
            m.subscription == subscription,
            m.deliver.is_(True),
            m.matched_at >= since,
            m.owed.is_not(True),
        )
        .values(owed=True)
    )
    settle_where(conn, m.subscription == subscription)


def rejoin(conn: Connection, readers: Collection[str]) -> None:
    """Readers back after leaving every subscription: the changes to what they received before
    are theirs to be told again."""
    if not readers:
        return
    c, d = db.changes.c, db.deliveries.c
    theirs = c.item.in_(select(d.item).where(d.recipient.in_(readers)))
    conn.execute(update(db.changes).where(theirs, ~UNTOLD).values(untold=True))
    settle_changes(conn, theirs)


def lock_untold(conn: Connection, ids: Sequence[int]) -> None:
    """Lock the untold changes `ids` until the transaction ends (see lock_owed)."""
    if conn.dialect.name != "postgresql":
        return
    c = db.changes.c
    query = select(c.id).where(UNTOLD, c.id.in_(sorted(set(ids)))).order_by(c.id)
    conn.execute(query.with_for_update()).all()


def settle_changes(conn: Connection, which: ColumnElement[bool]) -> None:
    """Unmark the untold changes among `which` that each reader who received their item before
    they were found, and still reads something here, has been told."""
    c, d, t = db.changes.c, db.deliveries.c, db.change_deliveries.c
    told = (
        select(t.change_id)
        .where(t.recipient == d.recipient, t.change_id == c.id)
        .correlate(db.changes, db.deliveries)
        .exists()
    )
    reading = select(db.subscribers.c.recipient)
    waiting = (
        select(d.recipient)
        .where(d.item == c.item, d.delivered_at <= c.found_at, d.recipient.in_(reading), ~told)
        .correlate(db.changes)
        .exists()
    )
    conn.execute(update(db.changes).where(UNTOLD, which, ~waiting).values(untold=False))
