"""Where every process on a store takes its requests' slots (watcher/rate.py): the `rate_slots`
table of a PostgreSQL store, a file per budget beside a SQLite store's file (locks.FileBudget),
this process's memory for an in-memory store (one process)."""

from __future__ import annotations

from sqlalchemy import Engine, text

from watcher.locks import FileBudget
from watcher.rate import LocalBudget, Pace, RateBudget, format_starts, parse_starts, take
from watcher.store.engine import PG_STORE_KEY, sqlite_path, store_errors


def rate_budget(engine: Engine) -> RateBudget:
    if engine.dialect.name == "postgresql":
        return PgBudget(engine)
    path = sqlite_path(engine)
    if path is not None:
        # The folder of the store's other locks (engine.AdvisoryLocks).
        return FileBudget(path.with_name(path.name + ".locks"))
    return LocalBudget()


class PgBudget:
    """A PostgreSQL store's rate budgets: each a row of `rate_slots`, read and rewritten in one
    short transaction under an advisory lock on the budget, on the server's clock (the one
    clock every process, on any machine, reads). A process that dies mid-transaction is rolled
    back and its lock released by the server; between requests it holds nothing."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def try_take(self, pace: Pace) -> float:
        with store_errors(), self.engine.connect() as conn:
            # Slots are worth nothing after a crash: their commit need not wait for the disk,
            # whose flush would stand between the slot and the request it is for.
            conn.execute(
                text(
                    "SELECT set_config('synchronous_commit', 'off', true), "
                    f"pg_advisory_xact_lock({PG_STORE_KEY}, hashtext(:k))"
                ),
                {"k": f"rate:{pace.name}"},
            )
            # A statement of its own, after the lock: its snapshot holds the last holder's
            # commit, and the clock is read while no one else can take a slot.
            now, raw = conn.execute(
                text(
                    "SELECT extract(epoch FROM clock_timestamp()), "
                    "(SELECT starts FROM rate_slots WHERE budget = :b)"
                ),
                {"b": pace.name},
            ).one()
            kept, wait = take(parse_starts(raw), float(now), pace)
            if not wait:
                # The start is written as the clock reads when it is written, a moment after
                # the decision: nearer the request, so never earlier than it.
                conn.execute(
                    text(
                        "INSERT INTO rate_slots (budget, starts) VALUES (:b, concat_ws(' ', "
                        "CAST(:s AS text), extract(epoch FROM clock_timestamp())::text)) "
                        "ON CONFLICT (budget) DO UPDATE SET starts = excluded.starts"
                    ),
                    {"b": pace.name, "s": format_starts(kept[:-1])},
                )
            conn.commit()
            return wait
