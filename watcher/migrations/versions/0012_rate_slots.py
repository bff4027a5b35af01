"""Every process on a PostgreSQL store takes its requests' slots from one table, so that they
share each host's rate (and each API key's) instead of each spending all of it.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_slots",
        sa.Column("budget", sa.String(64), primary_key=True),
        sa.Column("starts", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_slots")
