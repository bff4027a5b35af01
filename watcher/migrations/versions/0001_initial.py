"""The first schema: articles, matches, poll state, subscribers, digests and deliveries.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watcher.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "articles",
        sa.Column("pmid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("doi", sa.String(255)),
        sa.Column("pmcid", sa.String(32)),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("abstract", sa.Text),
        sa.Column("authors", sa.JSON, nullable=False),
        sa.Column("journal", sa.Text),
        sa.Column("pub_date", sa.String(64)),
        sa.Column("pub_year", sa.Integer),
        sa.Column("epub_date", sa.Date),
        sa.Column("language", sa.String(16)),
        sa.Column("publication_types", sa.JSON, nullable=False),
        sa.Column("mesh", sa.JSON, nullable=False),
        sa.Column("keywords", sa.JSON, nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        sa.Column("first_seen", UTCDateTime, nullable=False),
        sa.Column("last_updated", UTCDateTime, nullable=False),
    )
    op.create_table(
        "matches",
        sa.Column("subscription", sa.String(80), primary_key=True),
        sa.Column("pmid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("matched_at", UTCDateTime, nullable=False),
        sa.Column("deliver", sa.Boolean, nullable=False),
    )
    op.create_index("ix_matches_pmid", "matches", ["pmid"])
    op.create_table(
        "subscriptions",
        sa.Column("name", sa.String(80), primary_key=True),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("window_end", sa.Date),
        sa.Column("last_poll_at", UTCDateTime),
        sa.Column("last_success_at", UTCDateTime),
        sa.Column("last_found", sa.Integer),
        sa.Column("last_new", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("last_error_at", UTCDateTime),
        sa.Column("etag", sa.String(255)),
        sa.Column("last_modified", sa.String(64)),
        sa.Column("backfill_done", sa.Date),
    )
    op.create_table(
        "subscribers",
        sa.Column("subscription", sa.String(80), primary_key=True),
        sa.Column("recipient", sa.String(254), primary_key=True),
        sa.Column("since", UTCDateTime, nullable=False),
    )
    op.create_table(
        "digests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("schedule", sa.String(128), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False, unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("sent_at", UTCDateTime),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("paper_count", sa.Integer, nullable=False),
        sa.Column("message", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_digests_recipient", "digests", ["recipient"])
    op.create_index("ix_digests_state", "digests", ["state"])
    op.create_table(
        "digest_items",
        sa.Column(
            "digest_id",
            sa.Integer,
            sa.ForeignKey("digests.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("pmid", sa.BigInteger, primary_key=True, autoincrement=False),
    )
    op.create_table(
        "deliveries",
        sa.Column("recipient", sa.String(254), primary_key=True),
        sa.Column("pmid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("digest_id", sa.Integer, sa.ForeignKey("digests.id"), nullable=False),
        sa.Column("delivered_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "digest_runs",
        sa.Column("schedule", sa.String(128), primary_key=True),
        sa.Column("last_run_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "meta",
        "digest_runs",
        "deliveries",
        "digest_items",
        "digests",
        "subscribers",
        "subscriptions",
        "matches",
        "articles",
    ):
        op.drop_table(table)
