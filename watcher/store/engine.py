"""The store's connection to its database: opening it (pragmas, timeouts, owner-only files),
migrating it, the one boundary where SQLAlchemy's errors become StoreError, the advisory locks
that keep two processes off the same work, and small key/value facts."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from watcher import schema as db
from watcher.errors import ConfigError, StoreError
from watcher.locks import KeyLocks
from watcher.paths import open_private, tighten
from watcher.redact import safe_message

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# The newest migration in watcher/migrations/versions; a test holds the two together.
SCHEMA_REVISION = "0012"
# Seconds a statement waits for a lock another process holds before it fails, so that a job
# fails with a clear line and runs again instead of hanging: SQLite's busy timeout ("database
# is locked"; `?timeout=SECONDS` on the URL sets another) and PostgreSQL's lock_timeout
# ("canceling statement due to lock timeout"; `?options=-c lock_timeout=MS`).
BUSY_TIMEOUT = 10.0
# Keeps each statement's parameter list well under SQLite's and PostgreSQL's limits.
CHUNK = 900


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


def translated_errors(method: Callable[P, R]) -> Callable[P, R]:
    """`method` with SQLAlchemy's errors raised as StoreError (see store_errors)."""

    @wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        with store_errors():
            return method(*args, **kwargs)

    return call


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Database:
    """The engine every part of the store shares, with what they ask of it: the dialect's
    INSERT … ON CONFLICT, and statements compiled once per store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.compiled: dict[str, Any] = {}

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def insert(self, table: Any) -> Any:
        """INSERT with ON CONFLICT support, in this store's dialect (imported on first use)."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)


def open_engine(url: str) -> Engine:
    """An engine on `url` with the store's pragmas and lock timeouts; its SQLite file, if it
    has one, created owner-only. Not yet migrated."""
    try:
        parsed = make_url(url)
        # Read before create_engine, which would fail on a bad value with a bare ValueError.
        wait = _busy_timeout(parsed) if parsed.get_backend_name() == "sqlite" else 0.0
        engine = create_engine(parsed, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(f"cannot use store {url!r}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", lambda conn, _: _sqlite_pragmas(conn, wait))
    else:
        given = str(parsed.query.get("options", ""))
        settings = {
            # PostgreSQL waits for a lock forever by default: a table another session locked
            # would hang the daemon (and every job behind it) without a word.
            "lock_timeout": f"{int(BUSY_TIMEOUT * 1000)}ms",
            # The store's queries are short lookups through indexes, but on a big store the
            # planner's estimate of some (status's count of what awaits each reader, over
            # 2M deliveries) passes jit_above_cost, and compiling them took 22 of 55 ms.
            "jit": "off",
        }
        settings = {k: v for k, v in settings.items() if k not in given}  # the URL's own win
        if settings:
            event.listen(engine, "connect", lambda conn, _: _pg_settings(conn, settings))
    path = sqlite_path(engine)
    if path is not None:
        _private_sqlite_files(path)
    return engine


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


def _pg_settings(dbapi_conn: Any, settings: dict[str, str]) -> None:
    """The session's settings, in one round trip per new connection."""
    calls = ", ".join("set_config(%s, %s, false)" for _ in settings)
    with dbapi_conn.cursor() as cur:
        cur.execute(f"SELECT {calls}", [x for kv in settings.items() for x in kv])
    dbapi_conn.commit()  # a setting in a transaction rolled back (the pool's reset) is undone


def _sqlite_pragmas(dbapi_conn: Any, busy_timeout: float) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets `watcher status` read while the daemon writes; busy_timeout waits out short locks.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    cur.close()


# Advisory locks are server-wide: the first key names the store (database and schema).
PG_STORE_KEY = "hashtext(current_database() || '.' || current_schema())"


class AdvisoryLocks:
    """Locks on names ("digest:a@b.org", "poll:name") that two processes on one store share."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        path = sqlite_path(engine)
        # A SQLite store's per-recipient and per-subscription locks, flock'd files beside it.
        self._files = KeyLocks(path.with_name(path.name + ".locks")) if path is not None else None

    @contextmanager
    def hold(self, keys: Sequence[str]) -> Iterator[set[str]]:
        """Take what it can of `keys`, without waiting, for the duration of the block; yields
        the keys it holds. Another process holding a key keeps it: the caller skips that work.

        Two processes on one store thereby never poll the same subscription or mail the same
        recipient at once, whatever their commands (`watcher run`, `watcher digest`). PostgreSQL:
        session advisory locks on one connection. SQLite: an flock'd file per key beside the
        database (watcher/locks.py). An in-memory SQLite store has one process: all granted.
        """
        if self.engine.dialect.name == "postgresql":
            with self._pg_locks(keys) as held:
                yield held
            return
        if self._files is None:
            yield set(keys)
            return
        files: dict[str, int] = {}
        try:
            for k in keys:
                fd = self._files.try_acquire(k)
                if fd is not None:
                    files[k] = fd
            yield set(files)
        finally:
            for fd in files.values():
                self._files.release(fd)

    def holder(self, key: str) -> str | None:
        """Who holds `key`, where the store can tell ("pid 1234" on SQLite), for messages."""
        return self._files.holder(key) if self._files is not None else None

    @contextmanager
    def _pg_locks(self, keys: Sequence[str]) -> Iterator[set[str]]:
        # Advisory locks are server-wide: the first key names the store (database and schema),
        # so two stores on one server never hold each other's recipients or subscriptions.
        store_key = PG_STORE_KEY
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


class Facts:
    """Small key/value facts (the daemon's heartbeat)."""

    def __init__(self, database: Database) -> None:
        self.db = database

    @translated_errors
    def set(self, key: str, value: str) -> None:
        stmt = self.db.insert(db.meta).values(key=key, value=value)
        stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value})
        with self.db.engine.begin() as conn:
            conn.execute(stmt)

    @translated_errors
    def get(self, key: str) -> str | None:
        with self.db.engine.connect() as conn:
            return conn.execute(select(db.meta.c.value).where(db.meta.c.key == key)).scalar()
