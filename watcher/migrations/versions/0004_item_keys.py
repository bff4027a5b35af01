"""Items known by a stable key (pmid:123, doi:…) instead of a PMID alone; their other identifiers
recorded in `identifiers`. Matches, digest items and deliveries refer to the key.

Every existing row is carried over: a PMID becomes the key pmid:N; each stored record's DOI and
PMC id become identifiers of its item (a DOI that two records share stays with the first).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watcher.schema import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_KEY = "'pmid:' || CAST(pmid AS VARCHAR(20))"
_ARTICLE_COLUMNS = (
    "version, doi, pmcid, title, abstract, authors, journal, pub_date, pub_year, epub_date, "
    "language, publication_types, mesh, keywords, record, first_seen, last_updated"
)


def upgrade() -> None:
    _identifiers()
    _articles()
    _matches()
    _digest_items()
    _deliveries()
    _awaited_records()


def _identifiers() -> None:
    # Every PMID the store knows (a record, a match, a digest's or a delivery's) names its item;
    # a record's DOI and PMC id name it too.
    op.create_table(
        "identifiers",
        sa.Column("scheme", sa.String(16), primary_key=True),
        sa.Column("value", sa.String(255), primary_key=True),
        sa.Column("item", sa.String(300), nullable=False),
    )
    op.execute(
        f"INSERT INTO identifiers (scheme, value, item) "
        f"SELECT 'pmid', CAST(pmid AS VARCHAR(20)), {_KEY} FROM ("
        "SELECT pmid FROM articles UNION SELECT pmid FROM matches "
        "UNION SELECT pmid FROM digest_items UNION SELECT pmid FROM deliveries "
        "UNION SELECT pmid FROM awaited_records) AS known"
    )
    for scheme, normal in (("doi", "LOWER(doi)"), ("pmcid", "UPPER(pmcid)")):
        op.execute(
            f"INSERT INTO identifiers (scheme, value, item) "
            f"SELECT '{scheme}', {normal}, MIN({_KEY}) FROM articles "
            f"WHERE {scheme} IS NOT NULL AND {scheme} <> '' GROUP BY {normal}"
        )
    op.create_index("ix_identifiers_item", "identifiers", ["item"])


def _articles() -> None:
    op.create_table(
        "articles_new",
        sa.Column("item", sa.String(300), primary_key=True),
        sa.Column("pmid", sa.BigInteger, unique=True),
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
    op.execute(
        f"INSERT INTO articles_new (item, pmid, {_ARTICLE_COLUMNS}) "
        f"SELECT {_KEY}, pmid, {_ARTICLE_COLUMNS} FROM articles"
    )
    op.drop_table("articles")
    op.rename_table("articles_new", "articles")


def _matches() -> None:
    op.create_table(
        "matches_new",
        sa.Column("subscription", sa.String(80), primary_key=True),
        sa.Column("item", sa.String(300), primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("matched_at", UTCDateTime, nullable=False),
        sa.Column("deliver", sa.Boolean, nullable=False),
    )
    op.execute(
        "INSERT INTO matches_new (subscription, item, source, matched_at, deliver) "
        f"SELECT subscription, {_KEY}, source, matched_at, deliver FROM matches"
    )
    op.drop_index("ix_matches_pmid", "matches")
    op.drop_table("matches")
    op.rename_table("matches_new", "matches")
    op.create_index("ix_matches_item", "matches", ["item"])


def _digest_items() -> None:
    op.create_table(
        "digest_items_new",
        sa.Column(
            "digest_id",
            sa.Integer,
            sa.ForeignKey("digests.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("item", sa.String(300), primary_key=True),
    )
    op.execute(
        f"INSERT INTO digest_items_new (digest_id, item) SELECT digest_id, {_KEY} FROM digest_items"
    )
    op.drop_table("digest_items")
    op.rename_table("digest_items_new", "digest_items")


def _deliveries() -> None:
    op.create_table(
        "deliveries_new",
        sa.Column("recipient", sa.String(254), primary_key=True),
        sa.Column("item", sa.String(300), primary_key=True),
        sa.Column("digest_id", sa.Integer, sa.ForeignKey("digests.id"), nullable=False),
        sa.Column("delivered_at", UTCDateTime, nullable=False),
    )
    op.execute(
        "INSERT INTO deliveries_new (recipient, item, digest_id, delivered_at) "
        f"SELECT recipient, {_KEY}, digest_id, delivered_at FROM deliveries"
    )
    op.drop_table("deliveries")
    op.rename_table("deliveries_new", "deliveries")


def _awaited_records() -> None:
    op.create_table(
        "awaited_records_new",
        sa.Column("item", sa.String(300), primary_key=True),
        sa.Column("first_missing_at", UTCDateTime, nullable=False),
        sa.Column("last_attempt_at", UTCDateTime, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.execute(
        "INSERT INTO awaited_records_new (item, first_missing_at, last_attempt_at, attempts, "
        f"reason) SELECT {_KEY}, first_missing_at, last_attempt_at, attempts, reason "
        "FROM awaited_records"
    )
    op.drop_table("awaited_records")
    op.rename_table("awaited_records_new", "awaited_records")


def downgrade() -> None:
    raise NotImplementedError(
        "items without a PMID (preprints, trials) cannot go back into a PMID-keyed store; "
        "restore the backup taken before upgrading instead"
    )
