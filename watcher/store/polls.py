"""Subscriptions and their polls: the config's subscriptions kept in step, a batch of polls'
matches committed with their states (and the records they still owe) in one transaction,
backfills, poll errors and match counts."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Row

import watcher.store.counts as counts
from watcher import schema as db
from watcher.identity import ItemKey
from watcher.models import PollState
from watcher.redact import safe_message
from watcher.store.articles import RecordsOwed, record_owed
from watcher.store.engine import Database, translated_errors
from watcher.store.items import add_matches, lookup_all
from watcher.subscriptions import Subscription


@dataclass(frozen=True)
class PollCommit:
    """One subscription's poll, ready to commit: what it matched and its state after."""

    name: str
    items: Sequence[ItemKey]
    source: str
    deliver: bool
    window_end: date | None
    found: int
    requests: int = 0
    etag: str | None = None
    last_modified: str | None = None
    # The papers the subscription `like`s: its readers know them from the start.
    known: Collection[ItemKey] = ()


class Polls:
    def __init__(self, database: Database) -> None:
        self.db = database

    @translated_errors
    def sync(self, subs: Sequence[Subscription], now: datetime) -> list[str]:
        """Make the store agree with the config's subscriptions.

        A new name starts clean; a changed fingerprint (the query or feed changed) restarts its
        window; a new recipient receives papers matched from now on. Returns what changed.
        """
        changes: list[str] = []
        subs_c = db.subscriptions.c
        with self.db.engine.begin() as conn:
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
            joined: set[str] = set()
            following: dict[str, set[str]] = {}
            for name, rcpt in subscribers:
                following.setdefault(name, set()).add(rcpt)
            for sub in subs:
                name, fingerprint, recipients = sub.name, sub.fingerprint, sub.recipients
                known = states.get(name)
                if known is None:
                    # ON CONFLICT: another instance on the same store may add it at the same time
                    conn.execute(
                        self.db.insert(db.subscriptions).on_conflict_do_nothing(),
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
                    conn.execute(self.db.insert(db.subscribers).on_conflict_do_nothing(), new)
                    joined.update(str(r["recipient"]) for r in new)
                    counts.owe_since(conn, name, now)
                gone = following.get(name, set()) - {r.lower() for r in recipients}
                counts.leave(conn, name, gone)
            counts.rejoin(conn, joined - {r for _, r in subscribers})
        return changes

    @translated_errors
    def state(self, name: str) -> PollState | None:
        query = select(db.subscriptions).where(db.subscriptions.c.name == name)
        with self.db.engine.connect() as conn:
            row = conn.execute(query).one_or_none()
        return _poll_state(row) if row else None

    @translated_errors
    def states(self, names: Collection[str] | None = None) -> dict[str, PollState]:
        """Every subscription's poll state, or those of `names`."""
        query = select(db.subscriptions)
        if names is not None:
            query = query.where(db.subscriptions.c.name.in_(names))
        with self.db.engine.connect() as conn:
            return {r.name: _poll_state(r) for r in conn.execute(query)}

    @translated_errors
    def commit(
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
        """Record a subscription's matches and advance its state, in one transaction: see
        commit_batch. Returns how many matches were new."""
        done = PollCommit(
            name, items, source, deliver, window_end, found, requests, etag, last_modified, known
        )
        return self.commit_batch([done], now)[0]

    @translated_errors
    def commit_batch(
        self, polls: Sequence[PollCommit], now: datetime, owed: RecordsOwed | None = None
    ) -> list[int]:
        """Record each subscription's matches and advance its state, and what the batch's
        efetch left `owed`, all in one transaction (a poll round commits a batch of
        subscriptions at once: poll.py). Returns how many matches were new, for each.

        Re-recording a known match changes nothing, so the poll's overlap window costs no
        duplicates, and a batch committed again (a round redone after a crash) adds nothing.
        Items in a poll's `known` (the papers the subscription `like`s: its readers know them
        from the start) are matched, never to be delivered, even if an earlier poll matched
        them for delivery.
        """
        with self.db.engine.begin() as conn:
            # The batch's keys are resolved to their items at once: one lookup, not one each.
            items = lookup_all(conn, self.db.insert, [k for p in polls for k in p.items])
            new = [
                add_matches(
                    conn, self.db.insert, p.name, p.items, p.source, p.deliver, now, p.known, items
                )
                for p in polls
            ]
            record_owed(conn, self.db.insert, owed or RecordsOwed(), now)
            for p, n in zip(polls, new, strict=True):
                values: dict[str, Any] = dict(
                    last_poll_at=now,
                    last_success_at=now,
                    last_found=p.found,
                    last_new=n,
                    last_requests=p.requests,
                    last_error=None,
                    last_error_at=None,
                )
                if p.window_end is not None:
                    values["window_end"] = p.window_end
                if p.etag is not None or p.last_modified is not None:
                    values.update(etag=p.etag, last_modified=p.last_modified)
                conn.execute(
                    update(db.subscriptions)
                    .where(db.subscriptions.c.name == p.name)
                    .values(**values)
                )
        return new

    @translated_errors
    def record_error(self, name: str, error: str, now: datetime) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                update(db.subscriptions)
                .where(db.subscriptions.c.name == name)
                .values(last_poll_at=now, last_error=safe_message(error), last_error_at=now)
            )

    @translated_errors
    def record_backfill(
        self,
        name: str,
        items: Sequence[ItemKey],
        *,
        deliver: bool,
        now: datetime,
        done_through: date,
    ) -> int:
        with self.db.engine.begin() as conn:
            new = add_matches(conn, self.db.insert, name, items, "backfill", deliver, now)
            conn.execute(
                update(db.subscriptions)
                .where(db.subscriptions.c.name == name)
                .values(backfill_done=done_through)
            )
        return new

    @translated_errors
    def match_counts(self) -> dict[str, int]:
        with self.db.engine.connect() as conn:
            return counts.kept(conn, "matches:")


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
