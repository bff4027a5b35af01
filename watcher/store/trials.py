"""ClinicalTrials.gov studies as last seen, the changes found by diffing the next answer
against them (each update's changes a record of its own, models.StudyUpdate), and the papers
in the store that cite a study."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, Text, cast, delete, insert, select, update

from watcher import schema as db
from watcher.identity import ItemKey, key, trial_change_key
from watcher.models import Article, StudyUpdate, TrialChange, TrialState
from watcher.redact import cap
from watcher.store.engine import Database, chunks, translated_errors
from watcher.store.items import resolve
from watcher.store.limits import MAX_TEXT, MAX_TITLE
from watcher.trials import phase_words, trial_changes


class Trials:
    def __init__(self, database: Database) -> None:
        self.db = database

    @translated_errors
    def record(self, states: Sequence[TrialState], now: datetime) -> list[TrialChange]:
        """Keep each study's new state and return what changed meaningfully since the kept one
        (nothing for a study seen for the first time). Each study with changes gets one
        StudyUpdate, `trial-change:NCT…@<last update>`, matched for delivery to every
        subscription that matched the study: digested and delivered through the same rows as a
        paper, so each recipient is told of it once."""
        changes: list[TrialChange] = []
        trials = db.trial_states
        with self.db.engine.begin() as conn:
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
                    self._add_update(conn, new, found, now)
                    changes += found
        return changes

    def _add_update(
        self, conn: Connection, new: TrialState, found: Sequence[TrialChange], now: datetime
    ) -> None:
        item = trial_change_key(new.nct, new.last_update)
        phase = phase_words(new.phases)
        stmt = self.db.insert(db.trial_changes).values(
            item=item,
            nct=new.nct,
            last_update=new.last_update,
            title=cap(new.title, MAX_TITLE),
            phase=None if phase is None else cap(phase, 64),
            found_at=now,
        )
        # The same update seen again (a study without an update date) tells what it says now.
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["item"],
                set_={"title": stmt.excluded.title, "phase": stmt.excluded.phase},
            )
        )
        lines = db.trial_change_lines
        conn.execute(delete(lines).where(lines.c.item == item))
        conn.execute(
            insert(lines),
            [
                dict(item=item, position=i, kind=c.kind, what=cap(c.what, MAX_TEXT))
                for i, c in enumerate(found)
            ],
        )
        study = key("nct", new.nct)
        subs = conn.execute(
            select(db.matches.c.subscription).where(
                db.matches.c.item == resolve(conn, [study])[study]
            )
        ).scalars()
        rows = [
            dict(subscription=sub, item=item, source="trials", matched_at=now, deliver=True)
            for sub in subs
        ]
        if rows:
            conn.execute(self.db.insert(db.matches).on_conflict_do_nothing(), rows)

    @translated_errors
    def updates(self, items: Iterable[ItemKey]) -> dict[ItemKey, StudyUpdate]:
        """The stored StudyUpdate of each of `items` that is one, by its key."""
        head, lines = db.trial_changes.c, db.trial_change_lines.c
        found: dict[ItemKey, list[TrialChange]] = {}
        out: dict[ItemKey, StudyUpdate] = {}
        with self.db.engine.connect() as conn:
            for chunk in chunks(list(dict.fromkeys(items))):
                rows = conn.execute(select(db.trial_changes).where(head.item.in_(chunk))).all()
                by_item = {r.item: r for r in rows}
                told = select(lines.item, lines.kind, lines.what).where(lines.item.in_(chunk))
                for item, kind, what in conn.execute(told.order_by(lines.item, lines.position)):
                    r = by_item[item]
                    found.setdefault(item, []).append(TrialChange(r.nct, r.title, what, kind))
                for r in rows:
                    changes = tuple(found.get(r.item, ()))
                    out[r.item] = StudyUpdate(r.nct, r.last_update, r.title, r.phase, changes)
        return out

    @translated_errors
    def papers_citing(self, ncts: Iterable[str]) -> dict[str, list[Article]]:
        """PubMed records in the store that name each NCT id (in their DataBankList or
        abstract: Article.trial_ids)."""
        out: dict[str, list[Article]] = {}
        with self.db.engine.connect() as conn:
            for nct in dict.fromkeys(ncts):
                query = select(db.articles.c.record).where(
                    db.articles.c.pmid.is_not(None),
                    cast(db.articles.c.record, Text).like(f'%"{nct}"%'),
                )
                arts = [Article.from_json(r) for r in conn.execute(query).scalars()]
                out[nct] = [a for a in arts if nct in a.trial_ids]
        return out
