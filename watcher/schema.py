"""The store's tables (SQLAlchemy 2.x typed ORM). Migrations in watcher/migrations create them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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


class Base(DeclarativeBase):
    pass


class ArticleRow(Base):
    __tablename__ = "articles"

    # The item's stable key (pmid:123, doi:10.…); see watcher/identity.py.
    item: Mapped[str] = mapped_column(String(300), primary_key=True)
    pmid: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    doi: Mapped[str | None] = mapped_column(String(255))
    pmcid: Mapped[str | None] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(Text)
    journal: Mapped[str | None] = mapped_column(Text)
    pub_date: Mapped[str | None] = mapped_column(String(64))
    pub_year: Mapped[int | None] = mapped_column(Integer)
    epub_date: Mapped[date | None] = mapped_column(Date)
    language: Mapped[str | None] = mapped_column(String(16))
    # The whole parsed record, so the digest can show every field without another fetch: its
    # one JSON serialisation (authors, MeSH, keywords… live only here).
    record: Mapped[dict[str, Any]] = mapped_column(JSONString)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime)


class IdentifierRow(Base):
    """(scheme, value) → the item it names: a record's PMID, DOI and PMC id all lead to one item."""

    __tablename__ = "identifiers"

    scheme: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
    item: Mapped[str] = mapped_column(String(300), index=True)


class MatchRow(Base):
    """Subscription × item: found when, by which source, and whether it is news to announce."""

    __tablename__ = "matches"

    subscription: Mapped[str] = mapped_column(String(80), primary_key=True)
    item: Mapped[str] = mapped_column(String(300), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # esearch | rss | backfill | baseline
    matched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # False for baselines and backfills: known to the store but never mailed.
    deliver: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (Index("ix_matches_item", "item"),)


class SubscriptionState(Base):
    __tablename__ = "subscriptions"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[date | None] = mapped_column(Date)  # last maxdate that was committed
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_found: Mapped[int | None] = mapped_column(Integer)
    last_new: Mapped[int | None] = mapped_column(Integer)
    last_requests: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    etag: Mapped[str | None] = mapped_column(String(255))
    last_modified: Mapped[str | None] = mapped_column(String(64))
    backfill_done: Mapped[date | None] = mapped_column(Date)  # backfill resumes after this day


class SubscriberRow(Base):
    """A recipient of a subscription since a moment: papers matched before it are not theirs."""

    __tablename__ = "subscribers"

    subscription: Mapped[str] = mapped_column(String(80), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(254), primary_key=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime)


class DigestRow(Base):
    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recipient: Mapped[str] = mapped_column(String(254), index=True)
    schedule: Mapped[str] = mapped_column(String(128))
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # pending | sent | failed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    paper_count: Mapped[int] = mapped_column(Integer)
    # The exact bytes sent: a retry resends the same message with the same Message-ID.
    message: Mapped[bytes] = mapped_column(LargeBinary)


class DigestItemRow(Base):
    __tablename__ = "digest_items"

    digest_id: Mapped[int] = mapped_column(
        ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True
    )
    item: Mapped[str] = mapped_column(String(300), primary_key=True)


class DeliveryRow(Base):
    """An item that reached a recipient. Written in the transaction that marks its digest sent."""

    __tablename__ = "deliveries"

    recipient: Mapped[str] = mapped_column(String(254), primary_key=True)
    item: Mapped[str] = mapped_column(String(300), primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id"))
    delivered_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DigestRunRow(Base):
    """When each digest schedule last ran: the daemon's catch-up is derived from it."""

    __tablename__ = "digest_runs"

    schedule: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_run_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MetaRow(Base):
    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class AwaitedRecordRow(Base):
    """A matched item whose record its source did not give (or gave unreadable): retried by later
    polls with backoff; deleted once the record is stored. The match itself stays in matches."""

    __tablename__ = "awaited_records"

    item: Mapped[str] = mapped_column(String(300), primary_key=True)
    first_missing_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)


class TrialStateRow(Base):
    """A ClinicalTrials.gov study as last seen (watcher.models.TrialState), to diff the next
    answer against: only meaningful differences become changes."""

    __tablename__ = "trial_states"

    nct: Mapped[str] = mapped_column(String(16), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    last_update: Mapped[str | None] = mapped_column(String(16))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ChangeRow(Base):
    """Something that happened to an item after it was delivered (see watcher/followups.py):
    one row per (item, kind, notice), so the same retraction found by a refresh and by a poll
    is one change, told once."""

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item: Mapped[str] = mapped_column(String(300), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    # The notice's key (pmid:…) or the new status ("status:retracted").
    notice: Mapped[str] = mapped_column(String(300))
    url: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text)
    # The notice's own record, when it has one: never mailed as a paper (a retraction notice
    # that matches a search is told as the retraction it is).
    notice_item: Mapped[str | None] = mapped_column(String(300))
    found_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ux_changes_identity", "item", "kind", "notice", unique=True),
        Index("ix_changes_notice_item", "notice_item"),
    )


class DigestChangeRow(Base):
    """A change carried by a digest: delivered to its recipient when the digest is sent."""

    __tablename__ = "digest_changes"

    digest_id: Mapped[int] = mapped_column(
        ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True
    )
    change_id: Mapped[int] = mapped_column(ForeignKey("changes.id"), primary_key=True)


class ChangeDeliveryRow(Base):
    """A change told to a recipient. Written in the transaction that marks its digest sent."""

    __tablename__ = "change_deliveries"

    recipient: Mapped[str] = mapped_column(String(254), primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("changes.id"), primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id"))
    delivered_at: Mapped[datetime] = mapped_column(UTCDateTime)
