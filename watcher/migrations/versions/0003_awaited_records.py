"""Records a poll matched but could not get from NCBI (missing from the efetch answer, or
unreadable): how often and since when they were asked for, so later polls retry them with
backoff and `watcher status` shows them.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watcher.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "awaited_records",
        sa.Column("pmid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("first_missing_at", UTCDateTime, nullable=False),
        sa.Column("last_attempt_at", UTCDateTime, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("awaited_records")
