"""ClinicalTrials.gov studies as last seen, and the changes found by diffing the next answer
against them; the papers in the store that cite a study."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, Text, cast, insert, select, update

from watcher import schema as db
from watcher.identity import ItemKey, key, own_key
from watcher.models import Article, TrialChange, TrialState
from watcher.store.articles import Articles, article_rows
from watcher.store.engine import Database, translated_errors
from watcher.store.items import resolve
from watcher.trials import phase_words, trial_changes


class Trials:
    def __init__(self, database: Database) -> None:
        self.db = database

    @translated_errors
    def record(self, states: Sequence[TrialState], now: datetime) -> list[TrialChange]:
        """Keep each study's new state and return what changed meaningfully since the kept one
        (nothing for a study seen for the first time). Each study with changes becomes one
        change item, `trial-change:NCT…@<last update>`, matched for delivery to every
        subscription that matched the study: it is stored, digested and delivered through the
        same rows as a paper, so each recipient is told of it once."""
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
        Articles(self.db).write_rows(conn, article_rows([record], now, {own_key(record): item}))
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


def trial_change_key(state: TrialState) -> ItemKey:
    """The identity of a study's change: the study and the update that brought it."""
    return f"trial-change:{state.nct}@{state.last_update or ''}"
