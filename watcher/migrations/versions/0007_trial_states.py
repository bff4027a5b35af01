"""ClinicalTrials.gov studies as last seen, to diff the next answer against.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watcher.schema import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trial_states",
        sa.Column("nct", sa.String(16), primary_key=True),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("last_update", sa.String(16)),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("trial_states")
