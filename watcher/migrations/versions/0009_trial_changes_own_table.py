"""A study's changes become a record of their own: tables trial_changes (one row per study
update, keyed trial-change:NCT…@DATE as before) and trial_change_lines (each change, its kind
and words, in order), instead of an articles row whose pub_date held the changes joined with
"; ". The rows already stored move across; their key is unchanged, so the matches, digest
items and deliveries that name them stay right (a change told is not told again, a pending
digest still carries it).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from watcher.schema import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The tables as this revision knows them (watcher/schema.py may move on).
_articles = sa.table(
    "articles",
    sa.column("item", sa.String),
    sa.column("pmid", sa.BigInteger),
    sa.column("version", sa.Integer),
    sa.column("title", sa.Text),
    sa.column("journal", sa.Text),
    sa.column("pub_date", sa.String),
    sa.column("record", sa.JSON),
    sa.column("first_seen", UTCDateTime()),
    sa.column("last_updated", UTCDateTime()),
)
_changes = sa.table(
    "trial_changes",
    sa.column("item", sa.String),
    sa.column("nct", sa.String),
    sa.column("last_update", sa.String),
    sa.column("title", sa.Text),
    sa.column("phase", sa.String),
    sa.column("found_at", UTCDateTime()),
)
_lines = sa.table(
    "trial_change_lines",
    sa.column("item", sa.String),
    sa.column("position", sa.Integer),
    sa.column("kind", sa.String),
    sa.column("what", sa.Text),
)


def upgrade() -> None:
    op.create_table(
        "trial_changes",
        sa.Column("item", sa.String(300), primary_key=True),
        sa.Column("nct", sa.String(64), nullable=False, index=True),
        sa.Column("last_update", sa.String(16)),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("phase", sa.String(64)),
        sa.Column("found_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "trial_change_lines",
        sa.Column(
            "item",
            sa.String(300),
            sa.ForeignKey("trial_changes.item", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("what", sa.Text(), nullable=False),
    )
    conn = op.get_bind()
    packed = conn.execute(
        sa.select(_articles.c.item, _articles.c.record, _articles.c.first_seen).where(
            _articles.c.item.like("trial-change:%")
        )
    ).all()
    for item, record, first_seen in packed:
        data = json.loads(record) if isinstance(record, str) else record
        conn.execute(
            sa.insert(_changes).values(
                item=item,
                nct=data.get("nct") or item.removeprefix("trial-change:").partition("@")[0],
                last_update=item.partition("@")[2] or None,
                title=data.get("title") or "",
                phase=data.get("phase"),
                found_at=first_seen,
            )
        )
        lines = _unpacked(data.get("pub_date") or "")
        if lines:
            conn.execute(sa.insert(_lines), [dict(item=item, **line) for line in lines])
    conn.execute(sa.delete(_articles).where(_articles.c.item.like("trial-change:%")))


def _unpacked(packed: str) -> list[dict[str, Any]]:
    """The changes as the digest read them (split at "; "), each with its kind. The new arms
    came last, their names joined with "; " too: what follows them is more of their names."""
    out: list[dict[str, Any]] = []
    for position, what in enumerate(packed.split("; ")):
        if (out and out[-1]["kind"] == "arms") or what.startswith("new arms: "):
            kind = "arms"
        elif what.startswith("results first posted"):
            kind = "results"
        elif what.startswith("primary completion moved"):
            kind = "completion"
        elif what.startswith("enrolment "):
            kind = "enrolment"
        elif "Phase" in what.partition(" → ")[0] and "Phase" in what.partition(" → ")[2]:
            kind = "phase"
        else:
            kind = "status"
        out.append(dict(position=position, kind=kind, what=what))
    return out


def downgrade() -> None:
    conn = op.get_bind()
    lines: dict[str, list[str]] = {}
    for item, what in conn.execute(
        sa.select(_lines.c.item, _lines.c.what).order_by(_lines.c.item, _lines.c.position)
    ):
        lines.setdefault(item, []).append(what)
    for r in conn.execute(sa.select(_changes)).all():
        told = "; ".join(lines.get(r.item, ()))
        record = {
            "pmid": None,
            "title": r.title,
            "journal": "ClinicalTrials.gov",
            "pub_date": told,
            "nct": r.nct,
            "phase": r.phase,
        }
        conn.execute(
            sa.insert(_articles).values(
                item=r.item,
                pmid=None,
                version=1,
                title=r.title,
                journal="ClinicalTrials.gov",
                pub_date=told if len(told) <= 64 else told[:63] + "…",
                record=record,
                first_seen=r.found_at,
                last_updated=r.found_at,
            )
        )
    op.drop_table("trial_change_lines")
    op.drop_table("trial_changes")
