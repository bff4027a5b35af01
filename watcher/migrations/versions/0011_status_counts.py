"""`watcher status` in constant time, whatever the store's past: counts kept as the rows they
count are written (articles, matches per subscription, changes per kind, changes told), and each
match marked `owed` while one of its subscription's readers has not received it, with a partial
index over the owed ones only, so what awaits delivery is read without reading what was
delivered; likewise each change marked `untold` while one of its readers has not been told
it, for the digest run. Indexes by item on deliveries and digest items, which a merge of two
items and the follow-ups look up by item, and of digests by reader and state (a reader's
pending ones) and of those not sent (pending or failed). The counts and marks are worked out
from the rows already there.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# The store's queries (watcher.store.counts.OWED …) say the same words: SQLite uses a partial
# index only when the query's WHERE holds the index's own term.
OWED = "owed = true"
UNTOLD = "untold = true"
UNSENT = "state IN ('pending', 'failed')"


def upgrade() -> None:
    op.create_table(
        "counts",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    # A plain ADD COLUMN (with its default) in both databases: SQLite's batch mode would copy
    # the table, which the foreign keys to `changes` forbid.
    op.add_column(
        "matches", sa.Column("owed", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.create_index(
        "ix_matches_owed",
        "matches",
        ["subscription", "item"],
        sqlite_where=sa.text(OWED),
        postgresql_where=sa.text(OWED),
    )
    op.add_column(
        "changes", sa.Column("untold", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.create_index(
        "ix_changes_untold",
        "changes",
        ["id"],
        sqlite_where=sa.text(UNTOLD),
        postgresql_where=sa.text(UNTOLD),
    )
    op.create_index("ix_deliveries_item", "deliveries", ["item"])
    op.create_index("ix_digests_recipient_state", "digests", ["recipient", "state"])
    op.create_index(
        "ix_digests_unsent",
        "digests",
        ["id"],
        sqlite_where=sa.text(UNSENT),
        postgresql_where=sa.text(UNSENT),
    )
    op.create_index("ix_digest_items_item", "digest_items", ["item"])
    backfill(op.get_bind())


def backfill(conn: sa.Connection) -> None:
    """The counts and the owed marks, from the rows as they are."""
    conn.execute(
        sa.text(
            "UPDATE matches SET owed = :yes WHERE deliver = :yes AND EXISTS ("
            " SELECT 1 FROM subscribers s WHERE s.subscription = matches.subscription"
            " AND s.since <= matches.matched_at AND NOT EXISTS ("
            "  SELECT 1 FROM deliveries d WHERE d.recipient = s.recipient"
            "  AND d.item = matches.item))"
        ),
        {"yes": True},
    )
    conn.execute(
        sa.text(
            "UPDATE changes SET untold = :yes WHERE EXISTS ("
            " SELECT 1 FROM deliveries d WHERE d.item = changes.item"
            " AND d.delivered_at <= changes.found_at"
            " AND d.recipient IN (SELECT recipient FROM subscribers) AND NOT EXISTS ("
            "  SELECT 1 FROM change_deliveries t WHERE t.recipient = d.recipient"
            "  AND t.change_id = changes.id))"
        ),
        {"yes": True},
    )
    conn.execute(sa.text("DELETE FROM counts"))
    for sql in (
        "SELECT 'articles', count(*) FROM articles",
        "SELECT 'matches:' || subscription, count(*) FROM matches GROUP BY subscription",
        "SELECT 'changes:' || kind, count(*) FROM changes GROUP BY kind",
        "SELECT 'told', count(*) FROM change_deliveries",
    ):
        conn.execute(sa.text(f"INSERT INTO counts (name, n) {sql}"))


def downgrade() -> None:
    op.drop_index("ix_digest_items_item", "digest_items")
    op.drop_index("ix_digests_unsent", "digests")
    op.drop_index("ix_digests_recipient_state", "digests")
    op.drop_index("ix_deliveries_item", "deliveries")
    op.drop_index("ix_changes_untold", "changes")
    with op.batch_alter_table("changes") as batch:
        batch.drop_column("untold")
    op.drop_index("ix_matches_owed", "matches")
    with op.batch_alter_table("matches") as batch:
        batch.drop_column("owed")
    op.drop_table("counts")
