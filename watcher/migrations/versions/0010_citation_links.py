"""The links of followed papers (`cites`, `similar`) a subscription has seen, so that only new
ones are fetched and announced (issue 27).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watcher.schema import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "citation_links",
        sa.Column("subscription", sa.String(80), primary_key=True),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("followed", sa.BigInteger(), primary_key=True),
        sa.Column("pmid", sa.BigInteger(), primary_key=True),
        sa.Column("score", sa.BigInteger()),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_citation_links_pmid", "citation_links", ["pmid"])


def downgrade() -> None:
    op.drop_index("ix_citation_links_pmid", "citation_links")
    op.drop_table("citation_links")
