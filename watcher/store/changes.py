"""Changes to delivered papers (watcher/followups.py finds them) and who was told of them:
each change is told once to each recipient who received its paper before it was found."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import func, select

from watcher import schema as db
from watcher.identity import ItemKey
from watcher.models import Change, StoredChange
from watcher.redact import cap
from watcher.store.engine import Database, chunks, translated_errors
from watcher.store.limits import MAX_TEXT

log = logging.getLogger(__name__)


class Changes:
    def __init__(self, database: Database) -> None:
        self.db = database

    @translated_errors
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
        with self.db.engine.connect() as conn:
            return {item: pmid for item, pmid in conn.execute(query) if pmid is not None}

    @translated_errors
    def delivered_among(self, items: Iterable[ItemKey]) -> set[ItemKey]:
        """Those of `items` delivered to anyone."""
        out: set[ItemKey] = set()
        with self.db.engine.connect() as conn:
            for chunk in chunks(list(set(items))):
                out.update(
                    conn.execute(
                        select(db.deliveries.c.item)
                        .distinct()
                        .where(db.deliveries.c.item.in_(chunk))
                    ).scalars()
                )
        return out

    @translated_errors
    def record(self, changes: Sequence[Change], now: datetime) -> int:
        """Record changes; one already known (same item, kind and notice) is not recorded again
        (it only learns its notice's record if it lacked it). Returns how many were new."""
        unique = list({(c.item, c.kind, c.notice): c for c in changes}.values())
        if not unique:
            return 0
        table = db.changes
        stmt = self.db.insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["item", "kind", "notice"],
            set_={"notice_item": func.coalesce(table.c.notice_item, stmt.excluded.notice_item)},
        )
        with self.db.engine.begin() as conn:
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

    @translated_errors
    def pending(self, recipient: str) -> list[StoredChange]:
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
        with self.db.engine.connect() as conn:
            return [
                StoredChange(
                    r.id,
                    Change(r.item, r.kind, r.notice, r.url, r.detail, r.notice_item),
                    r.found_at,
                )
                for r in conn.execute(query)
            ]

    @translated_errors
    def counts(self) -> dict[str, int]:
        """How many changes of each kind the store holds, and how many tellings were sent."""
        with self.db.engine.connect() as conn:
            out = {
                kind: int(n)
                for kind, n in conn.execute(
                    select(db.changes.c.kind, func.count()).group_by(db.changes.c.kind)
                )
            }
            told = conn.execute(select(func.count()).select_from(db.change_deliveries)).scalar_one()
        out["told"] = int(told)
        return out
