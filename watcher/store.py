"""The only module that touches the database. Writes are idempotent; state changes are claims."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import wraps
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple, ParamSpec, TypeVar

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    Engine,
    Executable,
    Select,
    String,
    Table,
    Text,
    bindparam,
    cast,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, Row, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from watcher import schema as db
from watcher.errors import ConfigError, StoreError
from watcher.identity import ItemKey, identifiers, key, own_key, pmid_key, pmid_of, split
from watcher.locks import KeyLocks
from watcher.models import (
    AbstractSection,
    Article,
    Author,
    Change,
    Correction,
    MeshHeading,
    PollState,
    StoredChange,
    TrialChange,
    TrialState,
)
from watcher.paths import open_private, tighten
from watcher.redact import cap, safe_message
from watcher.subscriptions import Subscription
from watcher.trials import phase_words, trial_changes

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# The newest migration in watcher/migrations/versions; a test holds the two together.
SCHEMA_REVISION = "0008"
# Seconds a statement waits for a lock another process holds before it fails, so that a job
# fails with a clear line and runs again instead of hanging: SQLite's busy timeout ("database
# is locked"; `?timeout=SECONDS` on the URL sets another) and PostgreSQL's lock_timeout
# ("canceling statement due to lock timeout"; `?options=-c lock_timeout=MS`).
BUSY_TIMEOUT = 10.0
# Keeps each statement's parameter list well under SQLite's and PostgreSQL's limits.
_CHUNK = 900


@contextmanager
def store_errors() -> Iterator[None]:
    """The one boundary where SQLAlchemy's exceptions become StoreError: nobody above the store
    needs to know which library raised (a PostgreSQL restart, a full disk, a locked file)."""
    try:
        yield
    except SQLAlchemyError as exc:
        said = str(getattr(exc, "orig", None) or exc)
        hint = _fault_hint(exc, said)
        # With a hint, the driver's first line is enough (PostgreSQL adds the query's text).
        reason = safe_message(said.splitlines()[0] if hint and said else said, 1000)
        raise StoreError(f"store error: {reason}{hint}") from exc


def _fault_hint(exc: SQLAlchemyError, reason: str) -> str:
    """What the user should know of a store fault that goes away: its likely cause, and that
    nothing is lost, since every state change commits whole (a poll's matches with its window,
    a digest with its papers) and what did not commit is done again by the next run."""
    if reason.startswith("database is locked"):
        cause = (
            ": another process held the SQLite store's write lock past the busy timeout "
            f"(?timeout=SECONDS on [store] url; default {BUSY_TIMEOUT:g})"
        )
    elif reason.startswith("canceling statement due to lock timeout"):
        cause = (
            ": another session held a lock on the store's tables past lock_timeout "
            f"(?options=-c%20lock_timeout%3DMS on [store] url; default {BUSY_TIMEOUT:g} s)"
        )
    elif reason.startswith("database or disk is full"):
        cause = ": free some space for the store"
    elif isinstance(exc, DBAPIError) and exc.connection_invalidated:
        cause = " (the connection to the database was lost: a server restart?)"
    elif reason.startswith(("connection failed", "could not connect")):
        cause = " (the database server cannot be reached: down, or restarting?)"
    else:
        return ""
    return f"{cause}; nothing is lost, the next run redoes what this one left unfinished"


def mapped(method: Callable[P, R]) -> Callable[P, R]:
    @wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        with store_errors():
            return method(*args, **kwargs)

    return call


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


@dataclass(frozen=True)
class PendingDigest:
    id: int
    recipient: str
    message_id: str
    message: bytes
    attempts: int
    items: tuple[ItemKey, ...]


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._upsert_sql: tuple[str, Sequence[str] | None] | None = None
        self.sqlite_path = sqlite_path(engine)
        # A SQLite store's per-recipient and per-subscription locks (see advisory_locks).
        self._file_locks = (
            KeyLocks(self.sqlite_path.with_name(self.sqlite_path.name + ".locks"))
            if self.sqlite_path is not None
            else None
        )

    @classmethod
    def open(cls, url: str) -> Store:
        """Open (creating if need be) and migrate the store at `url`."""
        try:
            parsed = make_url(url)
            # Read before create_engine, which would fail on a bad value with a bare ValueError.
            wait = _busy_timeout(parsed) if parsed.get_backend_name() == "sqlite" else 0.0
            engine = create_engine(parsed, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError) as exc:
            raise StoreError(f"cannot use store {url!r}: {exc}") from None
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", lambda conn, _: _sqlite_pragmas(conn, wait))
        elif "lock_timeout" not in str(parsed.query.get("options", "")):
            # PostgreSQL waits for a lock forever by default: a table another session locked
            # would hang the daemon (and every job behind it) without a word.
            event.listen(engine, "connect", _pg_lock_timeout)
        store = cls(engine)
        if store.sqlite_path is not None:
            _private_sqlite_files(store.sqlite_path)
        try:
            migrate(engine)
        except SQLAlchemyError as exc:
            engine.dispose()
            reason = getattr(exc, "orig", None) or exc
            raise StoreError(f"cannot open store {store.display_url}: {reason}") from None
        return store

    def close(self) -> None:
        self.engine.dispose()

    @property
    def display_url(self) -> str:
        """The store's URL with any password hidden, for messages and `watcher status`."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @mapped
    def migrate(self) -> None:
        """Bring the schema to the newest revision. Cheap when it already is there."""
        migrate(self.engine)

    def _insert(self, table: Any) -> Any:
        """INSERT with ON CONFLICT support, in this store's dialect (imported on first use)."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)

    # Articles

    @mapped
    def known_items(self, keys: Iterable[ItemKey]) -> set[ItemKey]:
        """Those of `keys` whose item (under whichever of its identifiers) has a stored record."""
        wanted = list(dict.fromkeys(keys))
        with self.engine.connect() as conn:
            items = _resolve(conn, wanted)
            stored: dict[str, int | None] = {}
            for chunk in _chunks(list(set(items.values())), _CHUNK):
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
        """known_items for PubMed records named by PMID."""
        keys = {pmid_key(p): p for p in pmids}
        return {keys[k] for k in self.known_items(keys)}

    def resolve(self, keys: Iterable[ItemKey]) -> dict[ItemKey, ItemKey]:
        """Each key → the stable key of the item it names (itself when nothing else is known)."""
        with store_errors(), self.engine.connect() as conn:
            return _resolve(conn, list(dict.fromkeys(keys)))

    @mapped
    def upsert_articles(self, articles: Sequence[Article], now: datetime) -> None:
        """Insert new articles; a known one is updated in place (PubMed revises records).

        Each record joins the item that any of its identifiers already names (a paper first
        found by DOI keeps that key when its PubMed record arrives); its identifiers are
        recorded for the next source that finds it."""
        if not articles:
            return
        # Bounded first: a DOI past its column's width must not reach the identifiers either.
        unique = {own_key(b): b for b in map(bounded, articles)}
        with self.engine.begin() as conn:
            items = _attach(conn, self._insert, unique)
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
            self._write_rows(conn, rows)

    @mapped
    def upsert_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """The write half of upsert_articles: one executemany for rows from article_rows.

        A known PMID whose record is unchanged is left alone (its last_updated too); a
        revised one is updated in place.
        """
        if not rows:
            return
        with self.engine.begin() as conn:
            self._write_rows(conn, rows)

    def _write_rows(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        sql, order = self._article_upsert()
        # Bulk writes skip SQLAlchemy's processing of each row's parameters: the statement is
        # compiled by SQLAlchemy once and the rows go to the driver ready-made.
        params: Sequence[Any] = rows if order is None else _sqlite_rows(rows, order)
        for chunk in _chunks(params, 5000):
            conn.exec_driver_sql(sql, chunk)

    def _article_upsert(self) -> tuple[str, Sequence[str] | None]:
        """The articles upsert in this dialect's SQL, and its positional parameter order
        (None where parameters are named, as psycopg's are)."""
        if self._upsert_sql is None:
            table = db.articles
            stmt = self._insert(table)
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
            compiled = stmt.compile(dialect=self.engine.dialect)
            self._upsert_sql = (str(compiled), compiled.positiontup)
        return self._upsert_sql

    @mapped
    def articles(self, items: Iterable[ItemKey]) -> dict[ItemKey, Article]:
        """The stored record of each item, by its stable key."""
        out: dict[ItemKey, Article] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(items), _CHUNK):
                query = select(db.articles.c.item, db.articles.c.record).where(
                    db.articles.c.item.in_(chunk)
                )
                for item, record in conn.execute(query):
                    out[item] = Article.from_json(record)
        return out

    @mapped
    def articles_listing(
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
        with self.engine.connect() as conn:
            for chunk in _chunks(list(items), _CHUNK):
                query = select(db.articles.c.item, db.articles.c.record).where(
                    db.articles.c.item.in_(chunk), named
                )
                for item, found in conn.execute(query):
                    art = Article.from_json(found)
                    if any(c.ref_type in ref_types for c in art.corrections):
                        out[item] = art
        return out

    # Records owed: matched for delivery, not (yet) stored

    @mapped
    def awaited_records(self, subscriptions: Sequence[str]) -> dict[ItemKey, AwaitedRecord]:
        """Items some of `subscriptions` matched for delivery whose record the store lacks,
        with what the polls that asked for them recorded."""
        owed = (
            select(db.matches.c.item, db.matches.c.subscription)
            .outerjoin(db.articles, db.articles.c.item == db.matches.c.item)
            .where(
                db.matches.c.deliver.is_(True),
                db.matches.c.subscription.in_(list(subscriptions)),
                db.articles.c.item.is_(None),
            )
            .order_by(db.matches.c.item, db.matches.c.subscription)
        )
        subs: dict[ItemKey, list[str]] = {}
        with self.engine.connect() as conn:
            for item, sub in conn.execute(owed):
                subs.setdefault(item, []).append(sub)
            rows = {
                r.item: r
                for chunk in _chunks(list(subs), _CHUNK)
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

    @mapped
    def record_attempts(
        self, items: Iterable[ItemKey]
    ) -> dict[ItemKey, tuple[int, datetime, datetime, datetime | None]]:
        """item → (attempts, first miss, last attempt, deleted at) for those of `items` whose
        record did not come before."""
        ids = list(dict.fromkeys(items))
        out: dict[ItemKey, tuple[int, datetime, datetime, datetime | None]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(ids, _CHUNK):
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

    @mapped
    def record_missing(self, reasons: Mapping[ItemKey, str], now: datetime) -> None:
        """One more unsuccessful attempt at each item's record, with why."""
        self._record_attempt(reasons, now, deleted=False)

    @mapped
    def record_deleted(self, reasons: Mapping[ItemKey, str], now: datetime) -> None:
        """Each item's record was deleted by its source (with what it said): it is owed no
        more, and never asked for again."""
        self._record_attempt(reasons, now, deleted=True)

    def _record_attempt(self, reasons: Mapping[ItemKey, str], now: datetime, deleted: bool) -> None:
        if not reasons:
            return
        table = db.awaited_records
        stmt = self._insert(table)
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
        with self.engine.begin() as conn:
            for chunk in _chunks(rows, _CHUNK):
                conn.execute(stmt, list(chunk))

    @mapped
    def forget_missing(self, items: Iterable[ItemKey]) -> None:
        """These records arrived: nothing is awaited for them any more."""
        ids = list(dict.fromkeys(items))
        with self.engine.begin() as conn:
            for chunk in _chunks(ids, _CHUNK):
                conn.execute(delete(db.awaited_records).where(db.awaited_records.c.item.in_(chunk)))

    @mapped
    def count_articles(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(db.articles)).scalar_one())

    # Subscriptions and their poll state

    @mapped
    def sync_subscriptions(self, subs: Sequence[Subscription], now: datetime) -> list[str]:
        """Make the store agree with the config's subscriptions.

        A new name starts clean; a changed fingerprint (the query or feed changed) restarts its
        window; a new recipient receives papers matched from now on. Returns what changed.
        """
        changes: list[str] = []
        subs_c = db.subscriptions.c
        with self.engine.begin() as conn:
            states: dict[str, str] = {
                name: fingerprint
                for name, fingerprint in conn.execute(select(subs_c.name, subs_c.fingerprint))
            }
            subscribers = {
                (name, rcpt.lower())
                for name, rcpt in conn.execute(
                    select(db.subscribers.c.subscription, db.subscribers.c.recipient)
                )
            }
            for sub in subs:
                name, fingerprint, recipients = sub.name, sub.fingerprint, sub.recipients
                known = states.get(name)
                if known is None:
                    # ON CONFLICT: another instance on the same store may add it at the same time
                    conn.execute(
                        self._insert(db.subscriptions).on_conflict_do_nothing(),
                        [dict(name=name, fingerprint=fingerprint, created_at=now)],
                    )
                    changes.append(f"new subscription {name!r}")
                elif known != fingerprint:
                    conn.execute(
                        update(db.subscriptions)
                        .where(subs_c.name == name)
                        .values(
                            fingerprint=fingerprint,
                            window_end=None,
                            etag=None,
                            last_modified=None,
                            backfill_done=None,
                        )
                    )
                    changes.append(f"subscription {name!r} changed its search: window restarts")
                new = [
                    dict(subscription=name, recipient=r.lower(), since=now)
                    for r in recipients
                    if (name, r.lower()) not in subscribers
                ]
                if new:
                    conn.execute(self._insert(db.subscribers).on_conflict_do_nothing(), new)
        return changes

    @mapped
    def poll_state(self, name: str) -> PollState | None:
        query = select(db.subscriptions).where(db.subscriptions.c.name == name)
        with self.engine.connect() as conn:
            row = conn.execute(query).one_or_none()
        return _poll_state(row) if row else None

    @mapped
    def poll_states(self) -> dict[str, PollState]:
        with self.engine.connect() as conn:
            return {r.name: _poll_state(r) for r in conn.execute(select(db.subscriptions))}

    @mapped
    def commit_poll(
        self,
        name: str,
        items: Sequence[ItemKey],
        *,
        source: str,
        deliver: bool,
        now: datetime,
        window_end: date | None,
        found: int,
        requests: int = 0,
        etag: str | None = None,
        last_modified: str | None = None,
        known: Collection[ItemKey] = (),
    ) -> int:
        """Record a subscription's matches and advance its state, in one transaction.

        Returns how many matches were new. Re-recording a known match changes nothing, so the
        poll's overlap window costs no duplicates. Items in `known` (the papers the
        subscription `like`s: its readers know them from the start) are matched, never to be
        delivered, even if an earlier poll matched them for delivery.
        """
        with self.engine.begin() as conn:
            new = self._add_matches(conn, name, items, source, deliver, now, known)
            values: dict[str, Any] = dict(
                last_poll_at=now,
                last_success_at=now,
                last_found=found,
                last_new=new,
                last_requests=requests,
                last_error=None,
                last_error_at=None,
            )
            if window_end is not None:
                values["window_end"] = window_end
            if etag is not None or last_modified is not None:
                values.update(etag=etag, last_modified=last_modified)
            conn.execute(
                update(db.subscriptions).where(db.subscriptions.c.name == name).values(**values)
            )
        return new

    def _add_matches(
        self,
        conn: Connection,
        name: str,
        keys: Sequence[ItemKey],
        source: str,
        deliver: bool,
        now: datetime,
        known: Collection[ItemKey] = (),
    ) -> int:
        """Match `keys` as the items they name: a paper found by PMID and by DOI is one match."""
        wanted = list(dict.fromkeys(keys))
        found = _lookup(conn, wanted)
        # Every key seen gets its identifier row, so a record that arrives later under another
        # of its identifiers (a DOI, then a PMID) finds this item.
        _record_identifiers(conn, self._insert, {k: k for k in wanted if k not in found})
        ids = list(dict.fromkeys(found.get(k, k) for k in wanted))
        liked = {found.get(k, k) for k in known if k in wanted}
        have = _probe(conn, _MATCHES, name, ids)
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
            conn.execute(self._insert(db.matches).on_conflict_do_nothing(), rows)
        if liked.intersection(have):
            m = db.matches.c
            conn.execute(
                update(db.matches)
                .where(m.subscription == name, m.item.in_(liked), m.deliver.is_(True))
                .values(deliver=False)
            )
        return len(rows)

    # Trial registries

    @mapped
    def record_trials(self, states: Sequence[TrialState], now: datetime) -> list[TrialChange]:
        """Keep each study's new state and return what changed meaningfully since the kept one
        (nothing for a study seen for the first time). Each study with changes becomes one
        change item, `trial-change:NCT…@<last update>`, matched for delivery to every
        subscription that matched the study: it is stored, digested and delivered through the
        same rows as a paper, so each recipient is told of it once."""
        changes: list[TrialChange] = []
        trials = db.trial_states
        with self.engine.begin() as conn:
            for new in {t.nct: t for t in states}.values():
                kept = conn.execute(
                    select(trials.c.state).where(trials.c.nct == new.nct)
                ).scalar_one_or_none()
                values = dict(state=new.to_json(), last_update=new.last_update, seen_at=now)
                if kept is None:
                    found = []
                    conn.execute(insert(trials).values(nct=new.nct, **values))
                else:
                    found = trial_changes(TrialState.from_json(kept), new)
                    conn.execute(update(trials).where(trials.c.nct == new.nct).values(**values))
                if found:
                    self._add_trial_change(conn, new, found, now)
                    changes += found
        return changes

    def _add_trial_change(
        self, conn: Connection, new: TrialState, found: Sequence[TrialChange], now: datetime
    ) -> None:
        item = trial_change_key(new)
        record = Article(
            pmid=None,
            title=new.title,
            journal="ClinicalTrials.gov",
            pub_date="; ".join(c.what for c in found),
            nct=new.nct,
            phase=phase_words(new.phases),
        )
        self._write_rows(conn, article_rows([record], now, {own_key(record): item}))
        study = key("nct", new.nct)
        subs = conn.execute(
            select(db.matches.c.subscription).where(
                db.matches.c.item == _resolve(conn, [study])[study]
            )
        ).scalars()
        rows = [
            dict(subscription=sub, item=item, source="trials", matched_at=now, deliver=True)
            for sub in subs
        ]
        if rows:
            conn.execute(self._insert(db.matches).on_conflict_do_nothing(), rows)

    @mapped
    def papers_citing(self, ncts: Iterable[str]) -> dict[str, list[Article]]:
        """PubMed records in the store that name each NCT id (in their DataBankList or
        abstract: Article.trial_ids)."""
        out: dict[str, list[Article]] = {}
        with self.engine.connect() as conn:
            for nct in dict.fromkeys(ncts):
                query = select(db.articles.c.record).where(
                    db.articles.c.pmid.is_not(None),
                    cast(db.articles.c.record, Text).like(f'%"{nct}"%'),
                )
                arts = [Article.from_json(r) for r in conn.execute(query).scalars()]
                out[nct] = [a for a in arts if nct in a.trial_ids]
        return out

    @mapped
    def record_poll_error(self, name: str, error: str, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(db.subscriptions)
                .where(db.subscriptions.c.name == name)
                .values(last_poll_at=now, last_error=safe_message(error), last_error_at=now)
            )

    @mapped
    def record_backfill(
        self,
        name: str,
        items: Sequence[ItemKey],
        *,
        deliver: bool,
        now: datetime,
        done_through: date,
    ) -> int:
        with self.engine.begin() as conn:
            new = self._add_matches(conn, name, items, "backfill", deliver, now)
            conn.execute(
                update(db.subscriptions)
                .where(db.subscriptions.c.name == name)
                .values(backfill_done=done_through)
            )
        return new

    @mapped
    def match_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(db.matches.c.subscription, func.count()).group_by(db.matches.c.subscription)
            )
            return {name: int(n) for name, n in rows}

    # Digests

    @mapped
    def pending_papers(
        self, recipient: str, subscriptions: Sequence[str], *, stored: bool = True
    ) -> dict[ItemKey, list[str]]:
        """Papers due to `recipient` from `subscriptions`: item → the matching subscriptions.

        Due means: matched for delivery after the recipient joined that subscription, stored,
        not yet delivered to them, and not waiting in one of their pending digests. With
        stored=False: the papers that would be due but whose record the store still awaits.
        """
        m = db.matches.c
        query = (
            _due(recipient.lower(), stored)
            .add_columns(m.item, m.subscription)
            .where(m.subscription.in_(list(subscriptions)))
            .order_by(db.articles.c.pmid, m.item)
        )
        papers: dict[ItemKey, list[str]] = {}
        with self.engine.connect() as conn:
            for item, sub in conn.execute(query):
                papers.setdefault(item, []).append(sub)
        return papers

    @mapped
    def undelivered_counts(self, *, stored: bool = True) -> dict[str, int]:
        """Per recipient, how many papers await delivery (in any subscription they follow); with
        stored=False, how many more await their record from NCBI first."""
        rcpt = db.subscribers.c.recipient
        counts = (
            _due(rcpt, stored)
            .add_columns(rcpt, func.count(db.matches.c.item.distinct()))
            .group_by(rcpt)
        )
        with self.engine.connect() as conn:
            out = {r: 0 for r in conn.execute(select(rcpt).distinct()).scalars()}
            out.update({r: int(n) for r, n in conn.execute(counts)})
        return out

    @mapped
    def create_digest(
        self,
        *,
        recipient: str,
        schedule: str,
        message_id: str,
        message: bytes,
        items: Sequence[ItemKey],
        now: datetime,
        changes: Sequence[int] = (),
    ) -> int:
        """Record a digest as pending, with its papers and the changes (follow-ups) it tells,
        before any attempt to send it."""
        with self.engine.begin() as conn:
            added = conn.execute(
                insert(db.digests).values(
                    recipient=recipient.lower(),
                    schedule=schedule,
                    message_id=message_id,
                    state="pending",
                    created_at=now,
                    attempts=0,
                    message=message,
                    paper_count=len(items),
                )
            )
            assert added.inserted_primary_key is not None  # a single-row INSERT always has it
            digest_id: int = added.inserted_primary_key.id
            if items:
                conn.execute(
                    self._insert(db.digest_items),
                    [dict(digest_id=digest_id, item=p) for p in items],
                )
            if changes:
                conn.execute(
                    self._insert(db.digest_changes),
                    [dict(digest_id=digest_id, change_id=c) for c in changes],
                )
            return digest_id

    @mapped
    def pending_digests(self, recipients: Iterable[str] | None = None) -> list[PendingDigest]:
        query = select(db.digests).where(db.digests.c.state == "pending").order_by(db.digests.c.id)
        if recipients is not None:
            query = query.where(db.digests.c.recipient.in_([r.lower() for r in recipients]))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            items: dict[int, list[ItemKey]] = {}
            if rows:
                for digest_id, item in conn.execute(
                    select(db.digest_items.c.digest_id, db.digest_items.c.item).where(
                        db.digest_items.c.digest_id.in_([r.id for r in rows])
                    )
                ):
                    items.setdefault(digest_id, []).append(item)
            return [
                PendingDigest(
                    r.id,
                    r.recipient,
                    r.message_id,
                    r.message,
                    r.attempts,
                    tuple(sorted(items.get(r.id, ()))),
                )
                for r in rows
            ]

    @mapped
    def mark_digest_sent(self, digest_id: int, now: datetime) -> bool:
        """pending → sent and its papers → delivered, in one transaction.

        The conditional update must change exactly one row: if another process already
        claimed this digest, nothing is written and False comes back.
        """
        with self.engine.begin() as conn:
            result = conn.execute(
                update(db.digests)
                .where(db.digests.c.id == digest_id, db.digests.c.state == "pending")
                # The bytes were kept for a retry to resend them unchanged; once sent they are
                # never read again, and kept they would grow the store by a message a digest.
                .values(
                    state="sent",
                    sent_at=now,
                    attempts=db.digests.c.attempts + 1,
                    last_error=None,
                    message=b"",
                )
            )
            if result.rowcount != 1:
                return False
            recipient = conn.execute(
                select(db.digests.c.recipient).where(db.digests.c.id == digest_id)
            ).scalar_one()
            items = conn.execute(
                select(db.digest_items.c.item).where(db.digest_items.c.digest_id == digest_id)
            ).scalars()
            rows = [
                dict(recipient=recipient, item=p, digest_id=digest_id, delivered_at=now)
                for p in items
            ]
            if rows:
                conn.execute(self._insert(db.deliveries).on_conflict_do_nothing(), rows)
            told = [
                dict(recipient=recipient, change_id=c, digest_id=digest_id, delivered_at=now)
                for c in conn.execute(
                    select(db.digest_changes.c.change_id).where(
                        db.digest_changes.c.digest_id == digest_id
                    )
                ).scalars()
            ]
            if told:
                conn.execute(self._insert(db.change_deliveries).on_conflict_do_nothing(), told)
            return True

    @mapped
    def mark_digest_attempt(self, digest_id: int, error: str, *, permanent: bool) -> None:
        """Record a failed send. Transient: stays pending for the next run. Permanent: failed,
        and its papers become due again, so nothing is lost if the address is fixed."""
        with self.engine.begin() as conn:
            values: dict[str, Any] = dict(
                attempts=db.digests.c.attempts + 1, last_error=safe_message(error)
            )
            if permanent:
                # Never sent again (its papers go in the recipient's next digest): no bytes kept.
                values.update(state="failed", message=b"")
            conn.execute(
                update(db.digests)
                .where(db.digests.c.id == digest_id, db.digests.c.state == "pending")
                .values(**values)
            )

    @mapped
    def digest_states(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    db.digests.c.id,
                    db.digests.c.recipient,
                    db.digests.c.state,
                    db.digests.c.message_id,
                    db.digests.c.paper_count,
                    db.digests.c.created_at,
                    db.digests.c.sent_at,
                    db.digests.c.attempts,
                    db.digests.c.last_error,
                ).order_by(db.digests.c.id)
            )
            return [dict(r._mapping) for r in rows]

    @mapped
    def undelivered_digests(self) -> list[dict[str, Any]]:
        """Digests that explain papers awaiting delivery, oldest first: each pending one (it is
        retried on the next run), and each failed one while any of its papers is still
        undelivered to its recipient (a later digest carries them once the address works)."""
        still_owed = (
            select(db.digest_items.c.item)
            .select_from(
                db.digest_items.outerjoin(
                    db.deliveries,
                    (db.deliveries.c.recipient == db.digests.c.recipient)
                    & (db.deliveries.c.item == db.digest_items.c.item),
                )
            )
            .where(db.digest_items.c.digest_id == db.digests.c.id, db.deliveries.c.item.is_(None))
            .exists()
        )
        changes = (
            select(func.count())
            .select_from(db.digest_changes)
            .where(db.digest_changes.c.digest_id == db.digests.c.id)
            .scalar_subquery()
        )
        query = (
            select(
                db.digests.c.recipient,
                db.digests.c.state,
                db.digests.c.message_id,
                db.digests.c.paper_count,
                changes.label("change_count"),
                db.digests.c.created_at,
                db.digests.c.attempts,
                db.digests.c.last_error,
            )
            .where(
                (db.digests.c.state == "pending") | ((db.digests.c.state == "failed") & still_owed)
            )
            .order_by(db.digests.c.id)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    @mapped
    def delivered_items(self, recipient: str) -> set[ItemKey]:
        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    select(db.deliveries.c.item).where(
                        db.deliveries.c.recipient == recipient.lower()
                    )
                ).scalars()
            )

    @mapped
    def received(
        self, recipient: str, items: Iterable[ItemKey]
    ) -> dict[ItemKey, tuple[datetime, list[str]]]:
        """Of `items`, those delivered to `recipient`: when, and under which of their
        subscriptions (those that matched it for them), for a follow-up to say."""
        rcpt = recipient.lower()
        d, m, s = db.deliveries.c, db.matches.c, db.subscribers.c
        out: dict[ItemKey, tuple[datetime, list[str]]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(items)), _CHUNK):
                for item, when in conn.execute(
                    select(d.item, d.delivered_at).where(d.recipient == rcpt, d.item.in_(chunk))
                ):
                    out[item] = (when, [])
                if not out:
                    continue
                under = (
                    select(m.item, m.subscription)
                    .join(db.subscribers, s.subscription == m.subscription)
                    .where(
                        s.recipient == rcpt,
                        m.item.in_([i for i in chunk if i in out]),
                        m.deliver.is_(True),
                        m.matched_at >= s.since,
                    )
                    .order_by(m.item, m.subscription)
                )
                for item, sub in conn.execute(under):
                    out[item][1].append(sub)
        return out

    @mapped
    def last_digest_run(self, schedule: str) -> datetime | None:
        runs = db.digest_runs
        with self.engine.connect() as conn:
            last: datetime | None = conn.execute(
                select(runs.c.last_run_at).where(runs.c.schedule == schedule)
            ).scalar()
        return last

    @mapped
    def set_digest_run(self, schedule: str, when: datetime) -> None:
        stmt = self._insert(db.digest_runs).values(schedule=schedule, last_run_at=when)
        stmt = stmt.on_conflict_do_update(index_elements=["schedule"], set_={"last_run_at": when})
        with self.engine.begin() as conn:
            conn.execute(stmt)

    # Changes after delivery (watcher/followups.py)

    @mapped
    def delivered_pubmed_items(self, since: datetime) -> dict[ItemKey, int]:
        """Items delivered to anyone since `since` that have a PubMed record: item → PMID."""
        query = (
            select(db.articles.c.item, db.articles.c.pmid)
            .where(
                db.articles.c.pmid.is_not(None),
                db.articles.c.item.in_(
                    select(db.deliveries.c.item).where(db.deliveries.c.delivered_at >= since)
                ),
            )
            .order_by(db.articles.c.pmid)
        )
        with self.engine.connect() as conn:
            return {item: pmid for item, pmid in conn.execute(query) if pmid is not None}

    @mapped
    def delivered_among(self, items: Iterable[ItemKey]) -> set[ItemKey]:
        """Those of `items` delivered to anyone."""
        out: set[ItemKey] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(list(set(items)), _CHUNK):
                out.update(
                    conn.execute(
                        select(db.deliveries.c.item)
                        .distinct()
                        .where(db.deliveries.c.item.in_(chunk))
                    ).scalars()
                )
        return out

    @mapped
    def record_changes(self, changes: Sequence[Change], now: datetime) -> int:
        """Record changes; one already known (same item, kind and notice) is not recorded again
        (it only learns its notice's record if it lacked it). Returns how many were new."""
        unique = list({(c.item, c.kind, c.notice): c for c in changes}.values())
        if not unique:
            return 0
        table = db.changes
        stmt = self._insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["item", "kind", "notice"],
            set_={"notice_item": func.coalesce(table.c.notice_item, stmt.excluded.notice_item)},
        )
        with self.engine.begin() as conn:
            known = {
                (r.item, r.kind, r.notice)
                for r in conn.execute(
                    select(db.changes.c.item, db.changes.c.kind, db.changes.c.notice).where(
                        db.changes.c.item.in_({c.item for c in unique})
                    )
                )
            }
            rows = [
                dict(
                    item=c.item,
                    kind=c.kind,
                    notice=c.notice,
                    url=c.url,
                    detail=cap(c.detail, MAX_TEXT),
                    notice_item=c.notice_item,
                    found_at=now,
                )
                for c in unique
            ]
            for row in rows:
                conn.execute(stmt, row)
        new = [c for c in unique if (c.item, c.kind, c.notice) not in known]
        for c in new:
            log.info(
                "change to %s: %s (%s)",
                c.item,
                c.kind,
                c.notice,
                extra={"fields": {"event": "change", "item": c.item, "kind": c.kind}},
            )
        return len(new)

    @mapped
    def pending_changes(self, recipient: str) -> list[StoredChange]:
        """Changes to tell `recipient`: to items delivered to them before the change was found,
        not yet told to them, and not waiting in one of their pending digests."""
        rcpt = recipient.lower()
        in_pending = (
            select(db.digest_changes.c.change_id)
            .join(db.digests, db.digests.c.id == db.digest_changes.c.digest_id)
            .where(db.digests.c.recipient == rcpt, db.digests.c.state == "pending")
        )
        told = select(db.change_deliveries.c.change_id).where(
            db.change_deliveries.c.recipient == rcpt
        )
        query = (
            select(db.changes)
            .join(
                db.deliveries,
                (db.deliveries.c.item == db.changes.c.item) & (db.deliveries.c.recipient == rcpt),
            )
            .where(
                db.deliveries.c.delivered_at <= db.changes.c.found_at,
                db.changes.c.id.not_in(told),
                db.changes.c.id.not_in(in_pending),
            )
            .order_by(db.changes.c.id)
        )
        with self.engine.connect() as conn:
            return [
                StoredChange(
                    r.id,
                    Change(r.item, r.kind, r.notice, r.url, r.detail, r.notice_item),
                    r.found_at,
                )
                for r in conn.execute(query)
            ]

    @mapped
    def change_counts(self) -> dict[str, int]:
        """How many changes of each kind the store holds, and how many tellings were sent."""
        with self.engine.connect() as conn:
            out = {
                kind: int(n)
                for kind, n in conn.execute(
                    select(db.changes.c.kind, func.count()).group_by(db.changes.c.kind)
                )
            }
            told = conn.execute(select(func.count()).select_from(db.change_deliveries)).scalar_one()
        out["told"] = int(told)
        return out

    # Small key/value facts (the daemon's heartbeat)

    @mapped
    def set_meta(self, key: str, value: str) -> None:
        stmt = self._insert(db.meta).values(key=key, value=value)
        stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value})
        with self.engine.begin() as conn:
            conn.execute(stmt)

    @mapped
    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(db.meta.c.value).where(db.meta.c.key == key)).scalar()

    @contextmanager
    def advisory_locks(self, keys: Sequence[str]) -> Iterator[set[str]]:
        """Take what it can of `keys`, without waiting, for the duration of the block; yields
        the keys it holds. Another process holding a key keeps it: the caller skips that work.

        Two processes on one store thereby never poll the same subscription or mail the same
        recipient at once, whatever their commands (`watcher run`, `watcher digest`). PostgreSQL:
        session advisory locks on one connection. SQLite: an flock'd file per key beside the
        database (watcher/locks.py). An in-memory SQLite store has one process: all granted.
        """
        if self.dialect == "postgresql":
            with self._pg_advisory_locks(keys) as held:
                yield held
            return
        if self._file_locks is None:
            yield set(keys)
            return
        files: dict[str, int] = {}
        try:
            for k in keys:
                fd = self._file_locks.try_acquire(k)
                if fd is not None:
                    files[k] = fd
            yield set(files)
        finally:
            for fd in files.values():
                self._file_locks.release(fd)

    def lock_holder(self, key: str) -> str | None:
        """Who holds `key`, where the store can tell ("pid 1234" on SQLite), for messages."""
        return self._file_locks.holder(key) if self._file_locks is not None else None

    @contextmanager
    def _pg_advisory_locks(self, keys: Sequence[str]) -> Iterator[set[str]]:
        # Advisory locks are server-wide: the first key names the store (database and schema),
        # so two stores on one server never hold each other's recipients or subscriptions.
        store_key = "hashtext(current_database() || '.' || current_schema())"
        with store_errors(), self.engine.connect() as conn:
            held = {
                k
                for k in keys
                if conn.execute(
                    text(f"SELECT pg_try_advisory_lock({store_key}, hashtext(:k))"), {"k": k}
                ).scalar()
            }
            conn.commit()
            try:
                yield held
            finally:
                try:
                    for k in held:
                        conn.execute(
                            text(f"SELECT pg_advisory_unlock({store_key}, hashtext(:k))"),
                            {"k": k},
                        )
                    conn.commit()
                except DBAPIError as exc:
                    # The session died (a server restart, a terminated backend) and its locks
                    # with it: the work done under them committed on other connections, so
                    # the job stands; nothing is left to release.
                    if not exc.connection_invalidated:
                        raise
                    log.warning(
                        "the database connection holding %s was lost; the server released "
                        "the locks with it",
                        ", ".join(sorted(held)),
                    )


def migrate(engine: Engine, revision: str = "head") -> None:
    """Run Alembic's migrations up to `revision` on `engine` (no alembic.ini involved)."""
    if revision == "head" and _stamped_revision(engine) == SCHEMA_REVISION:
        return  # the usual case, answered without importing Alembic: every command starts here
    from importlib import resources

    from alembic import command
    from alembic.config import Config as AlembicConfig
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with resources.as_file(resources.files("watcher") / "migrations") as folder:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(folder))
        target = ScriptDirectory.from_config(cfg).get_current_head()
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # Two daemons starting together on a new store must not both create it.
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('watcher:migrate'))"))
            current = MigrationContext.configure(conn).get_current_revision()
            if revision == "head" and current == target:
                return
            log.info(
                "migrating store from %s to %s",
                current or "empty",
                target if revision == "head" else revision,
            )
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)


def _stamped_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def sqlite_path(engine: Engine) -> Path | None:
    """The database file of a SQLite engine; None for other dialects and in-memory stores."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).absolute()


def _private_sqlite_files(path: Path) -> None:
    """The store file exists owner-only (0600) before SQLite first opens it: SQLite gives its
    -wal and -shm files the database file's permissions, so they follow. A store written by an
    older version is tightened, with any -wal/-shm already beside it."""
    if not path.parent.is_dir():
        return  # SQLite's own error ("unable to open database file") says it better
    if not path.exists():
        try:
            os.close(open_private(path, os.O_RDWR | os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            pass  # another process created it at the same moment, owner-only too
        except OSError:
            return  # a folder we may not write to: SQLite's own error says it better
    for suffix in ("", "-wal", "-shm", "-journal"):
        tighten(path.with_name(path.name + suffix))


def _busy_timeout(url: URL) -> float:
    """The SQLite busy timeout in seconds: the URL's `timeout` (which SQLAlchemy also hands to
    sqlite3.connect), else BUSY_TIMEOUT."""
    given = url.query.get("timeout")
    if given is None:
        return BUSY_TIMEOUT
    try:
        wait = float(given if isinstance(given, str) else given[-1])
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= 3600:
        raise ConfigError(f"timeout={given!r} is not a number of seconds (0-3600)", key="store.url")
    return wait


def _pg_lock_timeout(dbapi_conn: Any, _record: Any) -> None:
    with dbapi_conn.cursor() as cur:
        cur.execute(f"SET lock_timeout = '{int(BUSY_TIMEOUT * 1000)}ms'")
    dbapi_conn.commit()  # a SET in a transaction rolled back (the pool's reset) would be undone


def _sqlite_pragmas(dbapi_conn: Any, busy_timeout: float) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets `watcher status` read while the daemon writes; busy_timeout waits out short locks.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    cur.close()


def article_rows(
    articles: Iterable[Article], now: datetime, items: Mapping[ItemKey, ItemKey] | None = None
) -> list[dict[str, Any]]:
    """Rows for the articles table, JSON already serialised; a record given twice counts once.
    `items` gives the item each record's own key belongs to (default: that key itself)."""
    items = items or {}
    unique = {own_key(a): a for a in articles}
    return [_article_row(bounded(a), now, items.get(k) or k) for k, a in unique.items()]


# Field bounds for stored articles, far above any real record (the longest real titles run to
# ~1,000 characters, abstracts to ~10,000), so that a hostile record cannot bloat the store.
# Column widths (doi 255, pmcid 32, language 16) are hard limits in PostgreSQL. pub_date's 64
# bound only its column (a printed date): a registry's facts line ("Phase 2 · Terminated: slow
# accrual · …", a trial's changes) is kept whole in the record, which the digest reads.
MAX_TITLE = 2_000
MAX_ABSTRACT = 30_000  # all sections together
MAX_TEXT = 1_000  # journal, author names, keywords, MeSH terms, correction sources…
MAX_ITEMS = 5_000  # authors (large collaborations list 3,000+), MeSH headings, keywords…


def bounded(a: Article) -> Article:
    """`a` with every field within the store's bounds; a cut field ends with '…'."""
    if _within(a):
        return a  # every real record: checked in one pass, nothing rebuilt
    budget = MAX_ABSTRACT
    sections = []
    for s in a.abstract[:MAX_ITEMS]:
        if budget <= 0:
            break
        text = cap(s.text, budget)
        budget -= len(text)
        sections.append(AbstractSection(_opt(s.label, MAX_TEXT), text, _opt(s.category, 64)))
    out = Article(
        pmid=a.pmid,
        title=cap(a.title, MAX_TITLE),
        version=a.version,
        doi=_opt(a.doi, 255),
        pmcid=_opt(a.pmcid, 32),
        vernacular_title=_opt(a.vernacular_title, MAX_TITLE),
        abstract=tuple(sections),
        authors=tuple(
            Author(*(_opt(part, MAX_TEXT) for part in author)) for author in a.authors[:MAX_ITEMS]
        ),
        journal=_opt(a.journal, MAX_TEXT),
        journal_iso=_opt(a.journal_iso, MAX_TEXT),
        pub_date=_opt(a.pub_date, MAX_TEXT),
        pub_year=a.pub_year,
        epub_date=a.epub_date,
        language=_opt(a.language, 16),
        publication_types=tuple(cap(t, MAX_TEXT) for t in a.publication_types[:MAX_ITEMS]),
        mesh=tuple(
            MeshHeading(
                cap(m.descriptor, MAX_TEXT),
                m.major,
                tuple(cap(q, MAX_TEXT) for q in m.qualifiers[:MAX_ITEMS]),
            )
            for m in a.mesh[:MAX_ITEMS]
        ),
        keywords=tuple(cap(k, MAX_TEXT) for k in a.keywords[:MAX_ITEMS]),
        corrections=tuple(
            Correction(cap(c.ref_type, MAX_TEXT), _opt(c.pmid, 32), _opt(c.source, MAX_TEXT))
            for c in a.corrections[:MAX_ITEMS]
        ),
        trial_ids=tuple(cap(t, 64) for t in a.trial_ids[:MAX_ITEMS]),
        substances=tuple(cap(t, MAX_TEXT) for t in a.substances[:MAX_ITEMS]),
        is_book=a.is_book,
        status=_opt(a.status, 64),
        ppr=_opt(a.ppr, 64),
        preprint_server=_opt(a.preprint_server, MAX_TEXT),
        published_pmid=a.published_pmid,
        published_in=_opt(a.published_in, MAX_TEXT),
        preprints=tuple(p for p in a.preprints[:MAX_ITEMS] if len(p) <= 64),
        nct=_opt(a.nct, 64),
        phase=_opt(a.phase, 64),
        volume=_opt(a.volume, 64),
        issue=_opt(a.issue, 64),
        pages=_opt(a.pages, 64),
    )
    log.warning("%s: fields over the store's bounds were cut", a.label)
    return out


def _within(a: Article) -> bool:
    # max(map(len, …)) walks the many short strings in C, not in a Python loop: the check runs
    # on every article stored.
    short = (
        a.journal or "",
        a.journal_iso or "",
        *a.publication_types,
        *a.keywords,
        *a.substances,
    )
    names = filter(None, chain.from_iterable(a.authors))
    return (
        len(a.title) <= MAX_TITLE
        and len(a.vernacular_title or "") <= MAX_TITLE
        and sum(len(s.text) for s in a.abstract) <= MAX_ABSTRACT
        and all(len(s.label or "") <= MAX_TEXT and len(s.category or "") <= 64 for s in a.abstract)
        and max(len(a.authors), len(a.mesh), len(a.keywords), len(a.corrections)) <= MAX_ITEMS
        and max(len(a.publication_types), len(a.trial_ids), len(a.abstract)) <= MAX_ITEMS
        and len(a.substances) <= MAX_ITEMS
        and max(map(len, short), default=0) <= MAX_TEXT
        and max(map(len, names), default=0) <= MAX_TEXT
        and max(map(len, (m.descriptor for m in a.mesh)), default=0) <= MAX_TEXT
        and max(map(len, (m.qualifiers for m in a.mesh)), default=0) <= MAX_ITEMS
        and max(map(len, chain.from_iterable(m.qualifiers for m in a.mesh)), default=0) <= MAX_TEXT
        and all(
            len(c.ref_type) <= MAX_TEXT
            and len(c.pmid or "") <= 32
            and len(c.source or "") <= MAX_TEXT
            for c in a.corrections
        )
        and max(map(len, a.trial_ids), default=0) <= 64
        and len(a.doi or "") <= 255
        and len(a.pmcid or "") <= 32
        and len(a.pub_date or "") <= MAX_TEXT
        and len(a.language or "") <= 16
        and len(a.status or "") <= 64
        and len(a.ppr or "") <= 64
        and len(a.nct or "") <= 64
        and len(a.phase or "") <= 64
        and len(a.preprint_server or "") <= MAX_TEXT
        and len(a.published_in or "") <= MAX_TEXT
        and len(a.preprints) <= MAX_ITEMS
        and max(map(len, a.preprints), default=0) <= 64
        and all(len(t or "") <= 64 for t in (a.volume, a.issue, a.pages))
    )


def _opt(text: str | None, limit: int) -> str | None:
    return None if text is None else cap(text, limit)


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


def _lookup(conn: Connection, keys: Sequence[ItemKey]) -> dict[ItemKey, ItemKey]:
    """The item each of `keys` names, for the keys the store has an identifier row for."""
    by_scheme: dict[str, dict[str, ItemKey]] = {}
    for k in keys:
        scheme, value = split(k)
        by_scheme.setdefault(scheme, {})[value] = k
    out: dict[ItemKey, ItemKey] = {}
    for scheme, values in by_scheme.items():
        for value, item in _probe(conn, _IDENTIFIERS, scheme, list(values)).items():
            out[values[value]] = item
    return out


class KeyProbe(NamedTuple):
    """One table's "which of these values do you hold under this prefix of your primary key",
    in each dialect's form (see _key_probe)."""

    postgresql: Executable
    sqlite: Executable


def _key_probe(table: Table, fixed: str, key: str, out: str) -> KeyProbe:
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


def _probe(conn: Connection, probe: KeyProbe, fixed: str, values: list[str]) -> dict[str, Any]:
    """value → the probed column, for those of `values` the table holds under `fixed`."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(probe.postgresql, {"fixed": fixed, "values": values})
    else:
        rows = conn.execute(probe.sqlite, {"fixed": fixed, "values": json.dumps(values)})
    return {value: found for value, found in rows if found is not None}


# Built once: SQLAlchemy then finds their compiled form in its cache at each lookup instead of
# compiling an IN list for each new length.
_IDENTIFIERS = _key_probe(db.identifiers, "scheme", "value", "item")
_MATCHES = _key_probe(db.matches, "subscription", "item", "item")


def _resolve(conn: Connection, keys: Sequence[ItemKey]) -> dict[ItemKey, ItemKey]:
    found = _lookup(conn, keys)
    return {k: found.get(k, k) for k in keys}


def _record_identifiers(
    conn: Connection, insert: Callable[[Any], Any], items: Mapping[ItemKey, ItemKey]
) -> None:
    """identifier → item rows; an identifier already recorded keeps its item."""
    if not items:
        return
    # Compiled once and handed to the driver ready-made, as the articles are (see _write_rows).
    compiled = insert(db.identifiers).on_conflict_do_nothing().compile(dialect=conn.dialect)
    rows = []
    for k, item in items.items():
        scheme, value = split(k)
        rows.append({"scheme": scheme, "value": value, "item": item})
    order = compiled.positiontup  # None where parameters are named, as psycopg's are
    params = rows if order is None else list(map(itemgetter(*order), rows))
    conn.exec_driver_sql(str(compiled), params)


def _attach(
    conn: Connection, insert: Callable[[Any], Any], articles: Mapping[ItemKey, Article]
) -> dict[ItemKey, ItemKey]:
    """The item each record belongs to (own key → item), its identifiers recorded.

    A record joins the item any of its identifiers names, unless it is a PubMed record and that
    item another PubMed record's (two PMIDs are never one item: a DOI they share stays with the
    first). A preprint joins the PubMed record of its journal version. When two of a record's
    identifiers name two items, they are proven one and merged (into the PubMed one, if any)."""
    ids = {own: (a.pmid is not None, list(identifiers(a))) for own, a in articles.items()}
    found = _lookup(conn, [k for _, keys in ids.values() for k in keys])
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
    _record_identifiers(conn, insert, new)
    return out


def _items_with_pmid(conn: Connection, items: Collection[ItemKey]) -> set[ItemKey]:
    # An item keyed pmid:N is PMID N's by construction; only the others need asking (a paper
    # first found by DOI whose PubMed record came later). A re-ingest asks nothing.
    out = {i for i in items if i.startswith("pmid:")}
    for chunk in _chunks([i for i in items if i not in out], _CHUNK):
        out.update(
            conn.execute(
                select(db.identifiers.c.item).where(
                    db.identifiers.c.scheme == "pmid", db.identifiers.c.item.in_(chunk)
                )
            ).scalars()
        )
    return out


def trial_change_key(state: TrialState) -> ItemKey:
    """The identity of a study's change: the study and the update that brought it."""
    return f"trial-change:{state.nct}@{state.last_update or ''}"


def _items_with_pubmed_record(conn: Connection, items: Iterable[ItemKey]) -> set[ItemKey]:
    out: set[ItemKey] = set()
    for chunk in _chunks(list(items), _CHUNK):
        out.update(
            conn.execute(
                select(db.articles.c.item).where(
                    db.articles.c.item.in_(chunk), db.articles.c.pmid.is_not(None)
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


def _due(recipient: str | ColumnElement[str], stored: bool) -> Select[Any]:
    """Matches due to `recipient` (see Store.pending_papers), columns to be added; given the
    subscribers' recipient column instead of an address, each subscriber's own."""
    m, s, d = db.matches.c, db.subscribers.c, db.deliveries.c
    in_pending = (
        select(db.digest_items.c.item)
        .join(db.digests, db.digests.c.id == db.digest_items.c.digest_id)
        .where(db.digests.c.recipient == recipient, db.digests.c.state == "pending")
    )
    joined = (
        db.matches.join(db.subscribers, s.subscription == m.subscription)
        .outerjoin(db.articles, db.articles.c.item == m.item)
        .outerjoin(db.deliveries, (d.recipient == recipient) & (d.item == m.item))
    )
    query = select().select_from(joined)
    if isinstance(recipient, str):
        query = query.where(s.recipient == recipient)
    if not stored:
        # A record its source deleted is owed no more: it will never come.
        query = query.where(
            m.item.not_in(
                select(db.awaited_records.c.item).where(
                    db.awaited_records.c.deleted_at.is_not(None)
                )
            )
        )
    return query.where(
        db.articles.c.item.is_not(None) if stored else db.articles.c.item.is_(None),
        m.deliver.is_(True),
        m.matched_at >= s.since,
        d.item.is_(None),
        m.item.not_in(in_pending),
        # A notice about a delivered paper is told as that paper's change instead.
        m.item.not_in(
            select(db.changes.c.notice_item).where(db.changes.c.notice_item.is_not(None))
        ),
    )


def _poll_state(row: Row[Any]) -> PollState:
    return PollState(
        row.name,
        row.fingerprint,
        row.created_at,
        row.window_end,
        row.last_poll_at,
        row.last_success_at,
        row.last_found,
        row.last_new,
        row.last_requests,
        row.last_error,
        row.last_error_at,
        row.etag,
        row.last_modified,
        row.backfill_done,
    )


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
