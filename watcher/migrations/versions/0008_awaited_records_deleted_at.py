"""When NCBI said it deleted an awaited record (a DeleteCitation in efetch's answer): such a
record is owed no more, is not asked for again, and `watcher status` says it was deleted.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watcher.schema import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("awaited_records") as batch:
        batch.add_column(sa.Column("deleted_at", UTCDateTime()))


def downgrade() -> None:
    with op.batch_alter_table("awaited_records") as batch:
        batch.drop_column("deleted_at")
