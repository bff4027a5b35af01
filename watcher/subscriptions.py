"""What is watched, for whom and when: the [defaults] schedule, a [[subscription]] and a
[[recipient]], as frozen dataclasses. Each config key is declared once, on the field it fills
(watcher/toml_reading.py's `key`); the reader (watcher/config_subscriptions.py) builds them.
No I/O here."""

from __future__ import annotations

import base64
import hashlib
import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

from watcher.addresses import normalise_address
from watcher.toml_reading import MAX_QUERY, key


@dataclass(frozen=True)
class Schedule:
    """When to poll and to send: the [defaults] table, which a [[subscription]] (and, for the
    digest, a [[recipient]]) may override key by key."""

    poll_every: timedelta = field(default=timedelta(hours=6), metadata=key(str, "poll interval"))
    digest_cron: str = field(default="0 7 * * mon", metadata=key(str, "the digests' crontab line"))
    timezone: str = field(default="UTC", metadata=key(str, "the IANA zone digest_cron runs in"))
    lookback_days: int = field(default=30, metadata=key(int, "days a first poll reaches back"))


# The subscription keys that each select a kind of source (exactly one per subscription).
KINDS = ("query", "rss", "europepmc", "trials")
# The keys that follow papers (issue 27): alone or with a `query`, they make the kind "follow".
FOLLOW = ("cites", "similar")
# `similar` keeps each followed paper's first `top` neighbours by PubMed's rank. Measured on the
# two real scored pubmed_pubmed answers in tests/fixtures/elink/ (2008, 143 and 345 neighbours):
# at rank 20 a neighbour still scores 65 % and 51 % of the best one; scores are raw integers
# comparable only within one answer (docs/citations.md), so a rank travels where a score does not.
SIMILAR_TOP = 20


@dataclass(frozen=True)
class Subscription:
    """A [[subscription]]: one search and who gets what it finds (its schedule's keys are
    Schedule's, over [defaults]). Its source is the one of KINDS it sets."""

    name: str = field(metadata=key(str, "unique; shown in subjects and headings"))
    # normalised addresses (normalise_address): who they are
    recipients: tuple[str, ...] = field(metadata=key(list, "email addresses, bare or name-addr"))
    schedule: Schedule
    query: str | None = field(
        default=None, metadata=key(str, "a PubMed search", max_length=MAX_QUERY)
    )
    # As written; the reader ANDs their search (config_authors.py) into `query`.
    author: tuple[str, ...] = field(
        default=(), metadata=key((str, list), 'an ORCID iD or a name ("Herold KC"), or a list')
    )
    rss: str | None = field(default=None, metadata=key(str, "a PubMed RSS feed URL"))
    # (address, display name) for recipients written as name-addr: how to greet them only
    display_names: tuple[tuple[str, str], ...] = ()
    # preprints unless it names a SRC
    europepmc: str | None = field(
        default=None, metadata=key(str, "a Europe PMC search", max_length=MAX_QUERY)
    )
    # sent as the API's query.term
    trials: str | None = field(
        default=None, metadata=key(str, "a ClinicalTrials.gov search", max_length=MAX_QUERY)
    )
    # `order = "relevance"` ranks new papers by their likeness to these.
    like: tuple[int, ...] = field(default=(), metadata=key(list, "PMIDs of papers readers want"))
    # Following papers (issue 27): new papers citing them, new papers PubMed finds similar.
    cites: tuple[int, ...] = field(default=(), metadata=key(list, "PMIDs: new papers citing them"))
    similar: tuple[int, ...] = field(
        default=(), metadata=key(list, "PMIDs: new papers among their similar articles")
    )
    top: int = field(
        default=SIMILAR_TOP, metadata=key(int, "`similar` keeps each paper's first this many")
    )
    min_score: int | None = field(
        default=None, metadata=key(int, "`similar` also drops neighbours scored below this")
    )

    @property
    def kind(self) -> str:
        """The key of its source in watcher/sources/kinds.py."""
        if self.follows:
            return "follow"
        for kind in KINDS:
            if getattr(self, kind) is not None:
                return kind
        return "rss"

    @property
    def source(self) -> str:
        if self.follows:
            parts = [f"{k} {', '.join(map(str, getattr(self, k)))}" for k in FOLLOW]
            parts = [p for p, k in zip(parts, FOLLOW, strict=True) if getattr(self, k)]
            if self.similar:
                limit = f"top {self.top}"
                if self.min_score is not None:
                    limit += f", min_score {self.min_score}"
                parts.append(limit)
            if self.query is not None:
                parts.append(f"query {self.query}")
            return "; ".join(parts)
        return str(getattr(self, self.kind))

    @property
    def follows(self) -> bool:
        """Whether it follows papers (`cites`, `similar`), with or without a `query`."""
        return bool(self.cites or self.similar)

    @property
    def followed(self) -> tuple[int, ...]:
        """Every paper it follows, once, in config order."""
        return tuple(dict.fromkeys((*self.cites, *self.similar)))

    def sends_to(self, address: str) -> bool:
        """Whether `address` is one of the recipients (whatever its case or display name)."""
        return normalise_address(address) in self.recipients

    @property
    def fingerprint(self) -> str:
        """Changes when what the subscription searches changes, so its window restarts."""
        return hashlib.sha256(f"{self.kind}\0{self.source}".encode()).hexdigest()[:16]


Order = Literal["date", "evidence", "relevance"]


@dataclass(frozen=True)
class Recipient:
    """How one reader gets their digest: a [[recipient]] table, or the [mail] defaults."""

    # normalised (normalise_address)
    address: str = field(metadata=key(str, "one of the subscriptions' recipients"))
    abstract: str = field(metadata=key(str, "[mail]'s abstract, for this reader", inherited=True))
    max_items: int = field(metadata=key(int, "[mail]'s max_items, for this reader", inherited=True))
    order: Order = field(metadata=key(str, "[mail]'s order, for this reader", inherited=True))
    name: str | None = None
    # Their own digest schedule (cron, timezone) across all their subscriptions, from the
    # table's digest_cron and timezone; None: each subscription's, as for a reader without one.
    schedule: tuple[str, str] | None = None
    paused_until: date | None = field(default=None, metadata=key(date, "no mail before this day"))

    def paused(self, now: datetime) -> bool:
        """Whether `now` is before `paused_until` began in the reader's own time zone."""
        if self.paused_until is None:
            return False
        if self.schedule is not None and now.tzinfo is not None:
            now = now.astimezone(zoneinfo.ZoneInfo(self.schedule[1]))
        return now.date() < self.paused_until


def reader_reference(address: str) -> str:
    """A reader's reference in the subject of a request to leave or pause: six characters that
    name them (`watcher status` lists each reader's), should they write from another address
    than the one the digest reached (a forward, an alias)."""
    digest = hashlib.sha256(address.strip().lower().encode()).digest()
    return base64.b32encode(digest).decode("ascii")[:6].lower()
