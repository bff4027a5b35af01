"""Changes after delivery (retractions, errata, expressions of concern, new versions) and who
has been told of each: follow-ups, watcher/followups.py.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watcher.schema import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("notice", sa.String(300), nullable=False),
        sa.Column("url", sa.Text),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("notice_item", sa.String(300)),
        sa.Column("found_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_changes_item", "changes", ["item"])
    op.create_index("ix_changes_notice_item", "changes", ["notice_item"])
    op.create_index("ux_changes_identity", "changes", ["item", "kind", "notice"], unique=True)
    op.create_table(
        "digest_changes",
        sa.Column(
            "digest_id",
            sa.Integer,
            sa.ForeignKey("digests.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("change_id", sa.Integer, sa.ForeignKey("changes.id"), primary_key=True),
    )
    op.create_table(
        "change_deliveries",
        sa.Column("recipient", sa.String(254), primary_key=True),
        sa.Column("change_id", sa.Integer, sa.ForeignKey("changes.id"), primary_key=True),
        sa.Column("digest_id", sa.Integer, sa.ForeignKey("digests.id"), nullable=False),
        sa.Column("delivered_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("change_deliveries")
    op.drop_table("digest_changes")
    op.drop_table("changes")
