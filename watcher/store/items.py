"""Items and their identifiers: which item a key names, a record attached to the item any of
its identifiers names, two items proven one merged, and matches of items to a subscription.
Functions on a Connection, so that the caller's transaction spans them."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import (
    ARRAY,
    Connection,
    Engine,
    Executable,
    String,
    Table,
    bindparam,
    delete,
    func,
    select,
    update,
)

from watcher import schema as db
from watcher.identity import ItemKey, identifiers, split
from watcher.models import Article
from watcher.store.engine import chunks, store_errors

log = logging.getLogger(__name__)


class Items:
    """What the store knows an item by."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def resolve(self, keys: Iterable[ItemKey]) -> dict[ItemKey, ItemKey]:
        """Each key → the stable key of the item it names (itself when nothing else is known)."""
        with store_errors(), self.engine.connect() as conn:
            return resolve(conn, list(dict.fromkeys(keys)))


def lookup(conn: Connection, keys: Sequence[ItemKey]) -> dict[ItemKey, ItemKey]:
    """The item each of `keys` names, for the keys the store has an identifier row for."""
    by_scheme: dict[str, dict[str, ItemKey]] = {}
    for k in keys:
        scheme, value = split(k)
        by_scheme.setdefault(scheme, {})[value] = k
    out: dict[ItemKey, ItemKey] = {}
    for scheme, values in by_scheme.items():
        for value, item in probe(conn, IDENTIFIERS, scheme, list(values)).items():
            out[values[value]] = item
    return out


def resolve(conn: Connection, keys: Sequence[ItemKey]) -> dict[ItemKey, ItemKey]:
    found = lookup(conn, keys)
    return {k: found.get(k, k) for k in keys}


class KeyProbe(NamedTuple):
    """One table's "which of these values do you hold under this prefix of your primary key",
    in each dialect's form (see key_probe)."""

    postgresql: Executable
    sqlite: Executable


def key_probe(table: Table, fixed: str, key: str, out: str) -> KeyProbe:
    """The rows of `table` whose primary key is (`fixed`, `key`) for one `fixed` and many
    `key` values: (value, `out`) pairs. The values go as one parameter (an array; JSON text for
    SQLite's json_each), so that the statement keeps one shape, compiled once, whatever their
    number.

    On PostgreSQL each value looks itself up in an index on its own (the primary key, or an
    index on `key` alone; `out` is NULL where there is no row): an IN list in a prepared
    statement may keep a generic plan made while the table was small, which compares every row
    with every value as the table grows (bench/README.md: design notes). SQLite plans each
    statement afresh, so its IN stays.
    """
    c = table.c
    array = func.unnest(bindparam("values", type_=ARRAY(String))).table_valued("value")
    wanted = array.render_derived()
    found = (
        select(c[out]).where(c[fixed] == bindparam("fixed"), c[key] == wanted.c.value)
    ).scalar_subquery()
    listed = func.json_each(bindparam("values")).table_valued("value")
    return KeyProbe(
        postgresql=select(wanted.c.value, found),
        sqlite=select(c[key], c[out]).where(
            c[fixed] == bindparam("fixed"), c[key].in_(select(listed.c.value))
        ),
    )


def probe(conn: Connection, which: KeyProbe, fixed: str, values: list[str]) -> dict[str, Any]:
    """value → the probed column, for those of `values` the table holds under `fixed`."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(which.postgresql, {"fixed": fixed, "values": values})
    else:
        rows = conn.execute(which.sqlite, {"fixed": fixed, "values": json.dumps(values)})
    return {value: found for value, found in rows if found is not None}


# Built once: SQLAlchemy then finds their compiled form in its cache at each lookup instead of
# compiling an IN list for each new length.
IDENTIFIERS = key_probe(db.identifiers, "scheme", "value", "item")
MATCHES = key_probe(db.matches, "subscription", "item", "item")


def record_identifiers(
    conn: Connection, insert: Callable[[Any], Any], items: Mapping[ItemKey, ItemKey]
) -> None:
    """identifier → item rows; an identifier already recorded keeps its item."""
    if not items:
        return
    # Compiled once and handed to the driver ready-made, as the articles are (see articles.py).
    compiled = insert(db.identifiers).on_conflict_do_nothing().compile(dialect=conn.dialect)
    rows = []
    for k, item in items.items():
        scheme, value = split(k)
        rows.append({"scheme": scheme, "value": value, "item": item})
    order = compiled.positiontup  # None where parameters are named, as psycopg's are
    params = rows if order is None else list(map(itemgetter(*order), rows))
    conn.exec_driver_sql(str(compiled), params)


def attach(
    conn: Connection, insert: Callable[[Any], Any], articles: Mapping[ItemKey, Article]
) -> dict[ItemKey, ItemKey]:
    """The item each record belongs to (own key → item), its identifiers recorded.

    A record joins the item any of its identifiers names, unless it is a PubMed record and that
    item another PubMed record's (two PMIDs are never one item: a DOI they share stays with the
    first). A preprint joins the PubMed record of its journal version. When two of a record's
    identifiers name two items, they are proven one and merged (into the PubMed one, if any)."""
    ids = {own: (a.pmid is not None, list(identifiers(a))) for own, a in articles.items()}
    found = lookup(conn, [k for _, keys in ids.values() for k in keys])
    pubmed = _items_with_pmid(conn, set(found.values()))
    out: dict[ItemKey, ItemKey] = {}
    new: dict[ItemKey, ItemKey] = {}
    for own, (has_pmid, (_, *others)) in ids.items():
        item = found.get(own)
        for k in others:
            other = found.get(k)
            if other is None or other == item or (has_pmid and other in pubmed):
                continue
            if item is None:
                item = other  # first found under another identifier: it keeps that key
            elif other in pubmed and item not in pubmed:
                _merge(conn, loser=item, survivor=other)
                item = other
            else:
                _merge(conn, loser=other, survivor=item)
        out[own] = item or own
        new.update({k: out[own] for k in (own, *others) if k not in found})
    record_identifiers(conn, insert, new)
    return out


def _items_with_pmid(conn: Connection, items: Collection[ItemKey]) -> set[ItemKey]:
    # An item keyed pmid:N is PMID N's by construction; only the others need asking (a paper
    # first found by DOI whose PubMed record came later). A re-ingest asks nothing.
    out = {i for i in items if i.startswith("pmid:")}
    for chunk in chunks([i for i in items if i not in out]):
        out.update(
            conn.execute(
                select(db.identifiers.c.item).where(
                    db.identifiers.c.scheme == "pmid", db.identifiers.c.item.in_(chunk)
                )
            ).scalars()
        )
    return out


def _merge(conn: Connection, *, loser: ItemKey, survivor: ItemKey) -> None:
    """Two items proven one: the loser's identifiers, matches, digest items and deliveries move
    to the survivor (where the survivor has its own, the loser's go), in the caller's
    transaction. Deliveries move too, so a merge never announces a paper again."""
    log.info("%s and %s are one item: merged into %s", loser, survivor, survivor)
    _move(conn, db.matches, db.matches.c.subscription, loser, survivor)
    _move(conn, db.deliveries, db.deliveries.c.recipient, loser, survivor)
    _move(conn, db.digest_items, db.digest_items.c.digest_id, loser, survivor)
    _move_changes(conn, loser, survivor)
    conn.execute(update(db.identifiers).where(db.identifiers.c.item == loser).values(item=survivor))
    conn.execute(delete(db.articles).where(db.articles.c.item == loser))


def _move_changes(conn: Connection, loser: ItemKey, survivor: ItemKey) -> None:
    """The loser's changes become the survivor's; one the survivor already has (same kind and
    notice) stays behind, told to nobody: the loser has no deliveries left."""
    have = {
        (kind, notice)
        for kind, notice in conn.execute(
            select(db.changes.c.kind, db.changes.c.notice).where(db.changes.c.item == survivor)
        )
    }
    for change_id, kind, notice in conn.execute(
        select(db.changes.c.id, db.changes.c.kind, db.changes.c.notice).where(
            db.changes.c.item == loser
        )
    ).all():
        if (kind, notice) not in have:
            conn.execute(
                update(db.changes).where(db.changes.c.id == change_id).values(item=survivor)
            )


def _move(conn: Connection, table: Table, owner: Any, loser: ItemKey, survivor: ItemKey) -> None:
    taken = select(owner).where(table.c.item == survivor).scalar_subquery()
    conn.execute(delete(table).where(table.c.item == loser, owner.in_(taken)))
    conn.execute(update(table).where(table.c.item == loser).values(item=survivor))


def add_matches(
    conn: Connection,
    insert: Callable[[Any], Any],
    name: str,
    keys: Sequence[ItemKey],
    source: str,
    deliver: bool,
    now: datetime,
    known: Collection[ItemKey] = (),
) -> int:
    """Match `keys` as the items they name: a paper found by PMID and by DOI is one match.
    Returns how many matches were new."""
    wanted = list(dict.fromkeys(keys))
    found = lookup(conn, wanted)
    # Every key seen gets its identifier row, so a record that arrives later under another
    # of its identifiers (a DOI, then a PMID) finds this item.
    record_identifiers(conn, insert, {k: k for k in wanted if k not in found})
    ids = list(dict.fromkeys(found.get(k, k) for k in wanted))
    liked = {found.get(k, k) for k in known if k in wanted}
    have = probe(conn, MATCHES, name, ids)
    rows = [
        dict(
            subscription=name,
            item=p,
            source=source,
            matched_at=now,
            deliver=deliver and p not in liked,
        )
        for p in ids
        if p not in have
    ]
    if rows:
        conn.execute(insert(db.matches).on_conflict_do_nothing(), rows)
    if liked.intersection(have):
        m = db.matches.c
        conn.execute(
            update(db.matches)
            .where(m.subscription == name, m.item.in_(liked), m.deliver.is_(True))
            .values(deliver=False)
        )
    return len(rows)
