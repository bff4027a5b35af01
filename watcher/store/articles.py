"""Articles (the stored records of items) and the records owed: matched for delivery, not (yet)
stored, with what the polls that asked for them recorded."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Text, cast, delete, or_, select

import watcher.store.counts as counts
from watcher import schema as db
from watcher.identity import ItemKey, own_key, pmid_key, pmid_of, split
from watcher.models import Article
from watcher.redact import cap
from watcher.store.engine import Database, chunks, translated_errors
from watcher.store.items import attach, resolve
from watcher.store.limits import bounded


@dataclass(frozen=True)
class AwaitedRecord:
    """An item matched for delivery whose record the store lacks. attempts is 0 (and the times
    None) for one no poll has asked its source for yet."""

    item: ItemKey
    subscriptions: tuple[str, ...]
    attempts: int = 0
    first_missing_at: datetime | None = None
    last_attempt_at: datetime | None = None
    reason: str | None = None
    deleted_at: datetime | None = None  # its source deleted the record: owed no more

    @property
    def pmid(self) -> int | None:
        return pmid_of(self.item)


class Articles:
    def __init__(self, database: Database) -> None:
        self.db = database

    @translated_errors
    def known(self, keys: Iterable[ItemKey]) -> set[ItemKey]:
        """Those of `keys` whose item (under whichever of its identifiers) has a stored record."""
        wanted = list(dict.fromkeys(keys))
        with self.db.engine.connect() as conn:
            items = resolve(conn, wanted)
            stored: dict[str, int | None] = {}
            for chunk in chunks(list(set(items.values()))):
                query = select(db.articles.c.item, db.articles.c.pmid).where(
                    db.articles.c.item.in_(chunk)
                )
                stored.update((item, pmid) for item, pmid in conn.execute(query))
        # A PMID whose item holds only its preprint's record is not known yet: the journal
        # version's PubMed record is fetched, and becomes the item's record.
        return {
            k
            for k in wanted
            if items[k] in stored and (stored[items[k]] is not None or split(k)[0] != "pmid")
        }

    def known_pmids(self, pmids: Iterable[int]) -> set[int]:
        """known for PubMed records named by PMID."""
        keys = {pmid_key(p): p for p in pmids}
        return {keys[k] for k in self.known(keys)}

    @translated_errors
    def upsert(self, articles: Sequence[Article], now: datetime) -> None:
        """Insert new articles; a known one is updated in place (PubMed revises records).

        Each record joins the item that any of its identifiers already names (a paper first
        found by DOI keeps that key when its PubMed record arrives); its identifiers are
        recorded for the next source that finds it."""
        if not articles:
            return
        # Bounded first: a DOI past its column's width must not reach the identifiers either.
        unique = {own_key(b): b for b in map(bounded, articles)}
        with self.db.engine.begin() as conn:
            items = attach(conn, self.db.insert, unique)
            # A preprint joined to its PubMed record leaves that record as the item's own:
            # the journal version is the better record, and the two must not take turns.
            pubmed = _items_with_pubmed_record(
                conn, [items[own] for own, a in unique.items() if a.pmid is None]
            )
            rows = [
                _article_row(a, now, items[own])
                for own, a in unique.items()
                if a.pmid is not None or items[own] not in pubmed
            ]
            self.write_rows(conn, rows)

    def write_rows(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """A known item whose record is unchanged is left alone (its last_updated too); a
        revised one is updated in place."""
        sql, order = self._article_upsert()
        items = list({r["item"] for r in rows})
        known = counts.existing(conn, db.articles.c.item, items)
        # Bulk writes skip SQLAlchemy's processing of each row's parameters: the statement is
        # compiled by SQLAlchemy once and the rows go to the driver ready-made.
        params: Sequence[Any] = rows if order is None else _sqlite_rows(rows, order)
        for chunk in chunks(params, 5000):
            conn.exec_driver_sql(sql, chunk)
        new = [i for i in items if i not in known]
        if new:
            # Counted by what this transaction wrote (its own moment): a row another process
            # added since the probe (made before SQLite's transaction begins) is its to count.
            a = db.articles.c
            added = counts.count(conn, a.item, new, a.first_seen == rows[0]["first_seen"])
            counts.bump(conn, {"articles": added})

    def _article_upsert(self) -> tuple[str, Sequence[str] | None]:
        """The articles upsert in this dialect's SQL, and its positional parameter order
        (None where parameters are named, as psycopg's are)."""
        found: tuple[str, Sequence[str] | None] | None = self.db.compiled.get("article_upsert")
        if found is None:
            table = db.articles
            stmt = self.db.insert(table)
            changing = {
                c.name: stmt.excluded[c.name]
                for c in table.c
                if c.name not in ("item", "first_seen")
            }
            stmt = stmt.on_conflict_do_update(
                index_elements=["item"],
                set_=changing,
                where=cast(table.c.record, Text) != cast(stmt.excluded.record, Text),
            )
            compiled = stmt.compile(dialect=self.db.engine.dialect)
            found = self.db.compiled["article_upsert"] = (str(compiled), compiled.positiontup)
        return found

    @translated_errors
    def records(self, items: Iterable[ItemKey]) -> dict[ItemKey, Article]:
        """The stored record of each item, by its stable key."""
        out: dict[ItemKey, Article] = {}
        with self.db.engine.connect() as conn:
            for chunk in chunks(list(items)):
                query = select(db.articles.c.item, db.articles.c.record).where(
                    db.articles.c.item.in_(chunk)
                )
                for item, record in conn.execute(query):
                    out[item] = Article.from_json(record)
        return out

    @translated_errors
    def listing(
        self, items: Iterable[ItemKey], ref_types: Collection[str]
    ) -> dict[ItemKey, Article]:
        """The stored records among `items` with a CommentsCorrections entry of one of
        `ref_types` (the notices: RetractionOf, ErratumFor …). The database picks them by their
        record's text, so the others are neither sent nor parsed: few of a poll's papers are
        notices, and reading every one back was a quarter of a steady poll."""
        if not ref_types:
            return {}
        record = cast(db.articles.c.record, Text)
        # A ref_type is ASCII, written as a JSON string in the record (Article.to_json): a
        # record that lists it holds that text. What else holds it is dropped below.
        named = or_(*(record.contains(json.dumps(t), autoescape=True) for t in sorted(ref_types)))
        out: dict[ItemKey, Article] = {}
        with self.db.engine.connect() as conn:
            for chunk in chunks(list(items)):
                query = select(db.articles.c.item, db.articles.c.record).where(
                    db.articles.c.item.in_(chunk), named
                )
                for item, found in conn.execute(query):
                    art = Article.from_json(found)
                    if any(c.ref_type in ref_types for c in art.corrections):
                        out[item] = art
        return out

    @translated_errors
    def count(self) -> int:
        with self.db.engine.connect() as conn:
            return counts.kept(conn, "articles").get("articles", 0)

    # Records owed: matched for delivery, not (yet) stored

    @translated_errors
    def awaited(self, subscriptions: Sequence[str]) -> dict[ItemKey, AwaitedRecord]:
        """Items some of `subscriptions` matched for delivery whose record the store lacks,
        with what the polls that asked for them recorded."""
        # The owed matches are few: read alone (their partial index), and their records looked
        # up by key. Joined to the articles, or with the subscriptions named in the query (a
        # list of thousands), they let PostgreSQL's planner read every article or match.
        m = db.matches.c
        owed = (
            select(m.item, m.subscription)
            .where(counts.OWED, m.deliver.is_(True))
            .order_by(m.item, m.subscription)
        )
        subs: dict[ItemKey, list[str]] = {}
        wanted = set(subscriptions)
        with self.db.engine.connect() as conn:
            for item, sub in conn.execute(owed):
                if sub in wanted:
                    subs.setdefault(item, []).append(sub)
            # A study's changes are their own record.
            items = list(subs)
            stored = counts.existing(conn, db.articles.c.item, items)
            stored |= counts.existing(conn, db.trial_changes.c.item, items)
            subs = {item: names for item, names in subs.items() if item not in stored}
            rows = {
                r.item: r
                for chunk in chunks(list(subs))
                for r in conn.execute(
                    select(db.awaited_records).where(db.awaited_records.c.item.in_(chunk))
                )
            }
        out = {}
        for item, names in subs.items():
            r = rows.get(item)
            out[item] = (
                AwaitedRecord(
                    item,
                    tuple(names),
                    r.attempts,
                    r.first_missing_at,
                    r.last_attempt_at,
                    r.reason,
                    r.deleted_at,
                )
                if r is not None
                else AwaitedRecord(item, tuple(names))
            )
        return out

    @translated_errors
    def attempts(
        self, items: Iterable[ItemKey]
    ) -> dict[ItemKey, tuple[int, datetime, datetime, datetime | None]]:
        """item → (attempts, first miss, last attempt, deleted at) for those of `items` whose
        record did not come before."""
        ids = list(dict.fromkeys(items))
        out: dict[ItemKey, tuple[int, datetime, datetime, datetime | None]] = {}
        with self.db.engine.connect() as conn:
            for chunk in chunks(ids):
                query = select(
                    db.awaited_records.c.item,
                    db.awaited_records.c.attempts,
                    db.awaited_records.c.first_missing_at,
                    db.awaited_records.c.last_attempt_at,
                    db.awaited_records.c.deleted_at,
                ).where(db.awaited_records.c.item.in_(chunk))
                for item, attempts, first, last, deleted in conn.execute(query):
                    out[item] = (attempts, first, last, deleted)
        return out

    @translated_errors
    def record_missing(self, reasons: Mapping[ItemKey, str], now: datetime) -> None:
        """One more unsuccessful attempt at each item's record, with why."""
        with self.db.engine.begin() as conn:
            record_owed(conn, self.db.insert, RecordsOwed(missing=reasons), now)

    @translated_errors
    def record_deleted(self, reasons: Mapping[ItemKey, str], now: datetime) -> None:
        """Each item's record was deleted by its source (with what it said): it is owed no
        more, and never asked for again."""
        with self.db.engine.begin() as conn:
            record_owed(conn, self.db.insert, RecordsOwed(deleted=reasons), now)

    @translated_errors
    def forget_missing(self, items: Iterable[ItemKey]) -> None:
        """These records arrived: nothing is awaited for them any more."""
        with self.db.engine.begin() as conn:
            _forget_awaited(conn, items)


@dataclass(frozen=True)
class RecordsOwed:
    """What a poll's efetch left owed (awaited_records): records that did not come (item →
    why), records their source deleted (owed no more), and owed records that arrived."""

    missing: Mapping[ItemKey, str] = field(default_factory=dict)
    deleted: Mapping[ItemKey, str] = field(default_factory=dict)
    arrived: Collection[ItemKey] = ()


def record_owed(
    conn: Connection, insert: Callable[[Any], Any], owed: RecordsOwed, now: datetime
) -> None:
    """`owed` into awaited_records, in the caller's transaction (a poll batch's commit)."""
    for reasons, deleted in ((owed.missing, False), (owed.deleted, True)):
        if reasons:
            _record_attempt(conn, insert, reasons, now, deleted)
    _forget_awaited(conn, owed.arrived)


def _record_attempt(
    conn: Connection,
    insert: Callable[[Any], Any],
    reasons: Mapping[ItemKey, str],
    now: datetime,
    deleted: bool,
) -> None:
    table = db.awaited_records
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["item"],
        set_={
            "attempts": table.c.attempts + 1,
            "last_attempt_at": stmt.excluded.last_attempt_at,
            "reason": stmt.excluded.reason,
            "deleted_at": stmt.excluded.deleted_at,
        },
    )
    rows = [
        dict(
            item=p,
            first_missing_at=now,
            last_attempt_at=now,
            attempts=1,
            reason=r[:500],
            deleted_at=now if deleted else None,
        )
        for p, r in reasons.items()
    ]
    for chunk in chunks(rows):
        conn.execute(stmt, list(chunk))


def _forget_awaited(conn: Connection, items: Iterable[ItemKey]) -> None:
    for chunk in chunks(list(dict.fromkeys(items))):
        conn.execute(delete(db.awaited_records).where(db.awaited_records.c.item.in_(chunk)))


def article_rows(
    articles: Iterable[Article], now: datetime, items: Mapping[ItemKey, ItemKey] | None = None
) -> list[dict[str, Any]]:
    """Rows for the articles table, JSON already serialised; a record given twice counts once.
    `items` gives the item each record's own key belongs to (default: that key itself)."""
    items = items or {}
    unique = {own_key(a): a for a in articles}
    return [_article_row(bounded(a), now, items.get(k) or k) for k, a in unique.items()]


def _article_row(a: Article, now: datetime, item: ItemKey) -> dict[str, Any]:
    """The row of an article already within the store's bounds (see bounded)."""
    return dict(
        item=item,
        pmid=a.pmid,
        version=a.version,
        doi=a.doi,
        pmcid=a.pmcid,
        title=a.title,
        journal=a.journal,
        pub_date=a.pub_date if len(a.pub_date or "") <= 64 else cap(a.pub_date or "", 64),
        pub_year=a.pub_year,
        epub_date=a.epub_date,
        language=a.language,
        record=json.dumps(a.to_json()),
        first_seen=now,
        last_updated=now,
    )


def _sqlite_rows(rows: Sequence[dict[str, Any]], order: Sequence[str]) -> list[tuple[Any, ...]]:
    """Rows as parameter tuples in `order`, with dates and datetimes as SQLAlchemy's SQLite types
    store them (ISO text; datetimes as naive UTC)."""
    memo: dict[Any, str | None] = {None: None}

    def as_text(value: Any) -> str | None:
        if value not in memo:  # a batch shares one first_seen/last_updated: convert it once
            memo[value] = (
                value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
                if isinstance(value, datetime)
                else value.isoformat()
            )
        return memo[value]

    dated = [order.index(k) for k in ("epub_date", "first_seen", "last_updated")]
    pick = itemgetter(*order)  # a row's values in one call; only the dated slots are rewritten
    out = []
    for row in rows:
        values = list(pick(row))
        for i in dated:
            values[i] = as_text(values[i])
        out.append(tuple(values))
    return out


def _items_with_pubmed_record(conn: Connection, items: Iterable[ItemKey]) -> set[ItemKey]:
    out: set[ItemKey] = set()
    for chunk in chunks(list(items)):
        out.update(
            conn.execute(
                select(db.articles.c.item).where(
                    db.articles.c.item.in_(chunk), db.articles.c.pmid.is_not(None)
                )
            ).scalars()
        )
    return out
