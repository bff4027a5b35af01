"""The store's tables, as SQLAlchemy Core tables on one MetaData (the store needs no ORM).
Migrations in watcher/migrations create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python; naive UTC in SQLite, timestamptz in PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        when: datetime = value
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class JSONString(TypeDecorator[Any]):
    """A JSON column whose values the store serialises itself, once per row, before a bulk
    write (see store.article_rows); reads still come back as Python objects."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


metadata = MetaData()

articles = Table(
    "articles",
    metadata,
    # The item's stable key (pmid:123, doi:10.…); see watcher/identity.py.
    Column("item", String(300), primary_key=True),
    Column("pmid", BigInteger, unique=True),
    Column("version", Integer, nullable=False, default=1),
    Column("doi", String(255)),
    Column("pmcid", String(32)),
    Column("title", Text, nullable=False),
    Column("journal", Text),
    Column("pub_date", String(64)),
    Column("pub_year", Integer),
    Column("epub_date", Date),
    Column("language", String(16)),
    # The whole parsed record, so the digest can show every field without another fetch: its
    # one JSON serialisation (authors, MeSH, keywords… live only here).
    Column("record", JSONString, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_updated", UTCDateTime, nullable=False),
)

# (scheme, value) → the item it names: a record's PMID, DOI and PMC id all lead to one item.
identifiers = Table(
    "identifiers",
    metadata,
    Column("scheme", String(16), primary_key=True),
    Column("value", String(255), primary_key=True),
    Column("item", String(300), nullable=False, index=True),
)

# Subscription × item: found when, by which source, and whether it is news to announce.
matches = Table(
    "matches",
    metadata,
    Column("subscription", String(80), primary_key=True),
    Column("item", String(300), primary_key=True),
    Column("source", String(16), nullable=False),  # esearch | rss | backfill | baseline
    Column("matched_at", UTCDateTime, nullable=False),
    # False for baselines and backfills: known to the store but never mailed.
    Column("deliver", Boolean, nullable=False),
    Index("ix_matches_item", "item"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("name", String(80), primary_key=True),
    Column("fingerprint", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("window_end", Date),  # last maxdate that was committed
    Column("last_poll_at", UTCDateTime),
    Column("last_success_at", UTCDateTime),
    Column("last_found", Integer),
    Column("last_new", Integer),
    Column("last_requests", Integer),
    Column("last_error", Text),
    Column("last_error_at", UTCDateTime),
    Column("etag", String(255)),
    Column("last_modified", String(64)),
    Column("backfill_done", Date),  # backfill resumes after this day
)

# A recipient of a subscription since a moment: papers matched before it are not theirs.
subscribers = Table(
    "subscribers",
    metadata,
    Column("subscription", String(80), primary_key=True),
    Column("recipient", String(254), primary_key=True),
    Column("since", UTCDateTime, nullable=False),
)

digests = Table(
    "digests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recipient", String(254), nullable=False, index=True),
    Column("schedule", String(128), nullable=False),
    Column("message_id", String(255), nullable=False, unique=True),
    Column("state", String(16), nullable=False, index=True),  # pending | sent | failed
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("paper_count", Integer, nullable=False),
    # The exact bytes sent: a retry resends the same message with the same Message-ID.
    Column("message", LargeBinary, nullable=False),
)

digest_items = Table(
    "digest_items",
    metadata,
    Column("digest_id", Integer, ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True),
    Column("item", String(300), primary_key=True),
)

# An item that reached a recipient. Written in the transaction that marks its digest sent.
deliveries = Table(
    "deliveries",
    metadata,
    Column("recipient", String(254), primary_key=True),
    Column("item", String(300), primary_key=True),
    Column("digest_id", Integer, ForeignKey("digests.id"), nullable=False),
    Column("delivered_at", UTCDateTime, nullable=False),
)

# When each digest schedule last ran: the daemon's catch-up is derived from it.
digest_runs = Table(
    "digest_runs",
    metadata,
    Column("schedule", String(128), primary_key=True),
    Column("last_run_at", UTCDateTime, nullable=False),
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# A matched item whose record its source did not give (or gave unreadable): retried by later
# polls with backoff; deleted once the record is stored. The match itself stays in matches.
awaited_records = Table(
    "awaited_records",
    metadata,
    Column("item", String(300), primary_key=True),
    Column("first_missing_at", UTCDateTime, nullable=False),
    Column("last_attempt_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    # When its source said the record was deleted (PubMed's DeleteCitation): owed no more.
    Column("deleted_at", UTCDateTime),
)

# The links of the papers a subscription follows (`cites`, `similar`), as seen: only a link not
# seen before is news. Kept per subscription, since each has its own first poll (issue 27).
citation_links = Table(
    "citation_links",
    metadata,
    Column("subscription", String(80), primary_key=True),
    Column("kind", String(8), primary_key=True),  # cites | similar
    Column("followed", BigInteger, primary_key=True),  # the followed paper's PMID
    Column("pmid", BigInteger, primary_key=True),  # the citing or similar paper's
    Column("score", BigInteger),  # PubMed's similarity score, when asked for
    Column("seen_at", UTCDateTime, nullable=False),
    Index("ix_citation_links_pmid", "pmid"),
)

# A ClinicalTrials.gov study as last seen (watcher.models.TrialState), to diff the next answer
# against: only meaningful differences become changes.
trial_states = Table(
    "trial_states",
    metadata,
    Column("nct", String(16), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("last_update", String(16)),
    Column("seen_at", UTCDateTime, nullable=False),
)

# A study's meaningful changes brought by one registry update (watcher.models.StudyUpdate):
# an item of its own, `trial-change:NCT…@<last update>`, matched, put in digests and delivered
# through the same rows as a paper, so each reader is told of it once.
trial_changes = Table(
    "trial_changes",
    metadata,
    Column("item", String(300), primary_key=True),
    Column("nct", String(64), nullable=False, index=True),
    Column("last_update", String(16)),
    Column("title", Text, nullable=False),
    Column("phase", String(64)),  # "Phase 2", as the study said then
    Column("found_at", UTCDateTime, nullable=False),
)

# Each change of such an update ("Recruiting → Completed"), in the order it is told.
trial_change_lines = Table(
    "trial_change_lines",
    metadata,
    Column(
        "item",
        String(300),
        ForeignKey("trial_changes.item", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),  # models.TRIAL_CHANGE_KINDS
    Column("what", Text, nullable=False),
)

# Something that happened to an item after it was delivered (see watcher/followups.py): one
# row per (item, kind, notice), so the same retraction found by a refresh and by a poll is one
# change, told once.
changes = Table(
    "changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item", String(300), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    # The notice's key (pmid:…) or the new status ("status:retracted").
    Column("notice", String(300), nullable=False),
    Column("url", Text),
    Column("detail", Text, nullable=False),
    # The notice's own record, when it has one: never mailed as a paper (a retraction notice
    # that matches a search is told as the retraction it is).
    Column("notice_item", String(300)),
    Column("found_at", UTCDateTime, nullable=False),
    Index("ux_changes_identity", "item", "kind", "notice", unique=True),
    Index("ix_changes_notice_item", "notice_item"),
)

# A change carried by a digest: delivered to its recipient when the digest is sent.
digest_changes = Table(
    "digest_changes",
    metadata,
    Column("digest_id", Integer, ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True),
    Column("change_id", Integer, ForeignKey("changes.id"), primary_key=True),
)

# A change told to a recipient. Written in the transaction that marks its digest sent.
change_deliveries = Table(
    "change_deliveries",
    metadata,
    Column("recipient", String(254), primary_key=True),
    Column("change_id", Integer, ForeignKey("changes.id"), primary_key=True),
    Column("digest_id", Integer, ForeignKey("digests.id"), nullable=False),
    Column("delivered_at", UTCDateTime, nullable=False),
)
