"""The only code that touches the database. Writes are idempotent; state changes are claims.

A `Store` owns the engine and hands out one part per kind of stored thing, each a small object
whose methods run their own transaction on functions that take a Connection (so that one
transaction can span several): `store.articles`, `store.items`, `store.polls`, `store.outbox`,
`store.changes`, `store.trials`, `store.citations`, `store.facts`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from watcher.errors import StoreError
from watcher.store.articles import Articles, AwaitedRecord, article_rows
from watcher.store.changes import Changes
from watcher.store.citations import Citations
from watcher.store.engine import (
    SCHEMA_REVISION,
    AdvisoryLocks,
    Database,
    Facts,
    migrate,
    open_engine,
    sqlite_path,
    store_errors,
    translated_errors,
)
from watcher.store.items import Items
from watcher.store.limits import MAX_ABSTRACT, MAX_ITEMS, MAX_TEXT, MAX_TITLE, bounded
from watcher.store.outbox import Outbox, PendingDigest
from watcher.store.polls import Polls
from watcher.store.trials import Trials

__all__ = [
    "MAX_ABSTRACT",
    "MAX_ITEMS",
    "MAX_TEXT",
    "MAX_TITLE",
    "SCHEMA_REVISION",
    "AwaitedRecord",
    "PendingDigest",
    "Store",
    "article_rows",
    "bounded",
    "migrate",
    "store_errors",
]


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite_path: Path | None = sqlite_path(engine)
        database = Database(engine)
        self.items = Items(engine)
        self.articles = Articles(database)
        self.polls = Polls(database)
        self.outbox = Outbox(database)
        self.changes = Changes(database)
        self.trials = Trials(database)
        self.citations = Citations(database)
        self.facts = Facts(database)
        self._locks = AdvisoryLocks(engine)

    @classmethod
    def open(cls, url: str) -> Store:
        """Open (creating if need be) and migrate the store at `url`."""
        store = cls(open_engine(url))
        try:
            migrate(store.engine)
        except SQLAlchemyError as exc:
            store.engine.dispose()
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

    @translated_errors
    def migrate(self) -> None:
        """Bring the schema to the newest revision. Cheap when it already is there."""
        migrate(self.engine)

    @contextmanager
    def advisory_locks(self, keys: Sequence[str]) -> Iterator[set[str]]:
        """Take what it can of `keys`, without waiting, for the duration of the block; yields
        the keys it holds (see engine.AdvisoryLocks.hold)."""
        with self._locks.hold(keys) as held:
            yield held

    def lock_holder(self, key: str) -> str | None:
        """Who holds `key`, where the store can tell ("pid 1234" on SQLite), for messages."""
        return self._locks.holder(key)
