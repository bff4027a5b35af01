"""What a config holds: a frozen dataclass per table, each key declared once on the field it
fills, `field(default=…, metadata=key(TOML type, help))`. The reader (watcher/config.py) takes
the allowed keys and the defaults from these declarations and builds the objects by keyword;
[defaults], [[subscription]] and [[recipient]] fill subscriptions.py's Schedule, Subscription and
Recipient, declared the same way. tests/test_config_keys.py holds README's reference and
config.example.toml to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal, NamedTuple

from watcher.addresses import normalise_address
from watcher.errors import ConfigError
from watcher.sources.endpoints import (
    CLINICALTRIALS_BASE_URL,
    CLINICALTRIALS_RATE,
    EUROPEPMC_BASE_URL,
    EUROPEPMC_RATE,
    ICITE_BASE_URL,
    ICITE_RATE,
)
from watcher.subscriptions import Order, Recipient, Schedule, Subscription
from watcher.toml_reading import NUMBER, Key, inherited, key, keys, suggest

NCBI_BASE_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
# NCBI's published limits: https://www.ncbi.nlm.nih.gov/books/NBK25497/ ("Usage Guidelines").
NCBI_RATE_WITHOUT_KEY = 3.0
NCBI_RATE_WITH_KEY = 10.0

# The values a choice key may take, each as its type and as the reader's list.
AbstractMode = Literal["none", "snippet", "full"]
ABSTRACTS = ("none", "snippet", "full")
ORDERS = ("date", "evidence", "relevance")  # subscriptions.Order
Security = Literal["starttls", "ssl", "none"]
SECURITIES = ("starttls", "ssl", "none")
SMTP_PORTS = {"ssl": 465, "starttls": 587, "none": 25}
DateType = Literal["crdt", "edat"]
DATETYPES = ("crdt", "edat")

# Imported where a config names them: `watcher check` and `status` load every config and most
# configs add no drugs.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from watcher.drug_table import Drug


@dataclass(frozen=True, kw_only=True)
class NcbiConfig:
    """[ncbi]: how E-utilities are asked (watcher/sources/eutils.py)."""

    email: str = field(metadata=key(str, "your contact address; NCBI asks every client for one"))
    tool: str = field(
        default="pubmed-watcher", metadata=key(str, "the tool name sent with each request")
    )
    api_key_env: str | None = field(
        default=None, metadata=key(str, "the variable holding an NCBI API key (10/s)")
    )
    base_url: str = field(
        default=NCBI_BASE_URL, metadata=key(str, "E-utilities' root (mirrors and tests change it)")
    )
    # None: NCBI's limit for the key situation, worked out where the key is read (wiring.py).
    rate_limit: float | None = field(
        default=None, metadata=key(NUMBER, "requests/s; may only go below NCBI's limit")
    )
    batch_size: int = field(default=500, metadata=key(int, "PMIDs per efetch request"))
    timeout: float = field(default=30.0, metadata=key(NUMBER, "seconds per request"))
    retries: int = field(
        default=5, metadata=key(int, "tries after the first, on 429, 5xx, timeouts, broken bodies")
    )
    datetype: DateType = field(
        default="crdt", metadata=key(str, "poll windows by creation (crdt) or Entrez (edat) date")
    )
    overlap_days: int = field(
        default=3, metadata=key(int, "each poll reaches this far behind the last one")
    )
    # see sources/http.py's DEFAULT_MAX_RESPONSE_MB
    max_response_mb: float = field(
        default=128.0, metadata=key(NUMBER, "the largest answer read, in MB")
    )


@dataclass(frozen=True, kw_only=True)
class SmtpConfig:
    """[mail.smtp]: the server digests are mailed through."""

    host: str = field(metadata=key(str, "the SMTP server"))
    port: int = field(metadata=key(int, "587, or 465 for ssl, 25 for none", inherited=True))
    security: Security = field(
        default="starttls", metadata=key(str, "starttls, ssl (implicit TLS) or none")
    )
    username: str | None = field(default=None, metadata=key(str, "AUTH user"))
    password_env: str | None = field(
        default=None, metadata=key(str, "the variable holding the password")
    )
    timeout: float = field(default=30.0, metadata=key(NUMBER, "seconds"))
    ca_file: Path | None = field(
        default=None, metadata=key(str, "an extra CA certificate to trust")
    )


@dataclass(frozen=True, kw_only=True)
class MailConfig:
    """[mail]: who sends, where digests go, and what a digest shows by default."""

    # the bare address: the envelope sender and the Message-ID's domain
    from_addr: str = field(
        default="pubmed-watcher@localhost", metadata=key(str, "the sender", name="from")
    )
    from_name: str | None = None  # the display name of `from`, when written as name-addr
    maildir: Path = field(
        default=Path("mail"), metadata=key(str, "where digests go without [mail.smtp]")
    )
    templates: Path | None = field(
        default=None, metadata=key(str, "a folder of templates that replace the shipped")
    )
    abstract: AbstractMode = field(
        default="snippet", metadata=key(str, "none, snippet (~300 characters) or full")
    )
    max_items: int = field(
        default=50, metadata=key(int, "papers shown in full; the rest as title links")
    )
    send_empty: bool = field(
        default=False, metadata=key(bool, "mail a digest even when nothing is new")
    )
    smtp: SmtpConfig | None = field(
        default=None, metadata=key(dict, "[mail.smtp]: mail digests through a server")
    )
    order: Order = field(
        default="date", metadata=key(str, "date (newest first), evidence or relevance")
    )
    # Who runs this watcher: where List-Unsubscribe mails go and whom the footer names.
    admin: str | None = field(
        default=None, metadata=key(str, "who runs this watcher, bare or name-addr")
    )
    admin_name: str | None = None


@dataclass(frozen=True, kw_only=True)
class ApiConfig:
    """Where a registry's API lives and how fast it may be asked (requests per second)."""

    base_url: str = field(
        metadata=key(str, "the API's root (tests point it at a fake)", inherited=True)
    )
    rate_limit: float = field(metadata=key(NUMBER, "requests per second", inherited=True))


@dataclass(frozen=True, kw_only=True)
class FollowupsConfig:
    """[followups]: watcher/followups.py's refresh of delivered papers."""

    enabled: bool = field(
        default=True, metadata=key(bool, "fetch delivered papers again for retractions and errata")
    )
    every: timedelta = field(
        default=timedelta(days=7), metadata=key(str, "at most one refresh per this duration")
    )
    months: int = field(
        default=24, metadata=key(int, "papers delivered in the last this many months are refreshed")
    )


class ConfigFile(NamedTuple):
    """One file a config was read from (the main one first, then each it includes), with what
    it held: `watcher check` lists them."""

    path: Path
    subscriptions: int
    recipients: int  # its [[recipient]] tables
    size: int  # bytes


@dataclass(frozen=True, kw_only=True)
class Config:
    path: Path
    # [store] url: the one key of its table
    store_url: str = field(
        default="sqlite:///watcher.db",
        metadata=key(str, "SQLAlchemy URL: a SQLite file or PostgreSQL", name="url"),
    )
    ncbi: NcbiConfig
    mail: MailConfig
    defaults: Schedule
    subscriptions: tuple[Subscription, ...]
    recipients: tuple[Recipient, ...] = ()  # the [[recipient]] tables
    # The user's additions to the shipped drug table ([drugs] file, then [[drug]] entries).
    drugs: tuple[Drug, ...] = ()
    # [europepmc] and [clinicaltrials]: the APIs' roots (tests point them at fakes on
    # 127.0.0.1) and paces.
    europepmc: ApiConfig
    clinicaltrials: ApiConfig
    followups: FollowupsConfig
    # [icite]: NIH's citation API, read by `cites` subscriptions.
    icite: ApiConfig = ApiConfig(base_url=ICITE_BASE_URL, rate_limit=ICITE_RATE)
    warnings: tuple[str, ...] = ()
    # Every file read, the main one first; empty for a Config built in code.
    files: tuple[ConfigFile, ...] = ()

    def recipient(self, address: str) -> Recipient:
        """How `address` gets their digest: their [[recipient]] table, else [mail]'s defaults."""
        address = normalise_address(address)
        found = self._readers.get(address)
        if found is not None:
            return found
        m = self.mail
        return Recipient(address, m.abstract, m.max_items, m.order)

    # Lookups built once, on first use, from the frozen fields (cached_property writes the
    # instance's __dict__, which frozen dataclasses allow): asked once per reader or per
    # mention, a scan of every subscription made `check` quadratic in them.
    @cached_property
    def _readers(self) -> dict[str, Recipient]:
        return {r.address: r for r in self.recipients}

    @cached_property
    def _by_name(self) -> dict[str, Subscription]:
        return {sub.name: sub for sub in self.subscriptions}

    @cached_property
    def _display_names(self) -> dict[str, str]:
        """Address → the first name a subscription gives it, in config order."""
        names: dict[str, str] = {}
        for sub in self.subscriptions:
            for address, name in sub.display_names:
                names.setdefault(address, name)
        return names

    @cached_property
    def digests(self) -> dict[tuple[str, str], dict[str, tuple[str, ...]]]:
        """Digest schedule (cron, timezone) → recipient → the subscriptions that digest carries.

        A recipient with a schedule of their own gets one digest on it across all their
        subscriptions; the others one per subscription schedule, as `schedules` groups them.
        Computed once per config (a digest run asks it for each reader): read it, never change
        it.
        """
        own = {r.address: r.schedule for r in self.recipients if r.schedule is not None}
        out: dict[tuple[str, str], dict[str, list[str]]] = {}
        for sub in self.subscriptions:
            for rcpt in sub.recipients:
                key = own.get(rcpt) or (sub.schedule.digest_cron, sub.schedule.timezone)
                out.setdefault(key, {}).setdefault(rcpt, []).append(sub.name)
        return {k: {r: tuple(v[r]) for r in sorted(v)} for k, v in out.items()}

    def display_name(self, address: str) -> str | None:
        """The name to put beside `address` in a To header: their [[recipient]] table's, else
        the first one a subscription gives it, in config order (the same person may be written
        differently in two subscriptions)."""
        address = normalise_address(address)
        table = self._readers.get(address)
        return (table and table.name) or self._display_names.get(address)

    def subscription(self, name: str) -> Subscription:
        found = self._by_name.get(name)
        if found is not None:
            return found
        raise ConfigError(
            f"no subscription named {name!r}{suggest(name, [s.name for s in self.subscriptions])}",
            path=str(self.path),
        )

    @property
    def schedules(self) -> dict[tuple[str, str], list[Subscription]]:
        """Subscriptions grouped by digest schedule (cron, timezone): one digest job each."""
        groups: dict[tuple[str, str], list[Subscription]] = {}
        for sub in self.subscriptions:
            groups.setdefault((sub.schedule.digest_cron, sub.schedule.timezone), []).append(sub)
        return groups


# Each table's keys, as README's reference heads them. [europepmc] and [clinicaltrials] take
# their defaults from sources/endpoints.py; a subscription's schedule and a reader's digest
# schedule are [defaults]' keys over [defaults]; [drugs] and [[drug]] are drug_table.py's.
STORE = keys(Config, "store_url")
NCBI = keys(NcbiConfig)
MAIL = keys(MailConfig)
SMTP = keys(SmtpConfig)
EUROPEPMC = keys(
    ApiConfig, defaults=ApiConfig(base_url=EUROPEPMC_BASE_URL, rate_limit=EUROPEPMC_RATE)
)
CLINICALTRIALS = keys(
    ApiConfig, defaults=ApiConfig(base_url=CLINICALTRIALS_BASE_URL, rate_limit=CLINICALTRIALS_RATE)
)
FOLLOWUPS = keys(FollowupsConfig)
ICITE = keys(ApiConfig, defaults=ApiConfig(base_url=ICITE_BASE_URL, rate_limit=ICITE_RATE))
DEFAULTS = keys(Schedule)
SUBSCRIPTION = keys(Subscription)
RECIPIENT = keys(Recipient)
RECIPIENT_SCHEDULE = keys(Schedule, "digest_cron", "timezone")
TABLES: dict[str, tuple[Key, ...]] = {
    "[store]": STORE,
    "[ncbi]": NCBI,
    "[mail]": MAIL,
    "[mail.smtp]": SMTP,
    "[europepmc]": EUROPEPMC,
    "[clinicaltrials]": CLINICALTRIALS,
    "[followups]": FOLLOWUPS,
    "[icite]": ICITE,
    "[defaults]": DEFAULTS,
    "[[subscription]]": SUBSCRIPTION + inherited(DEFAULTS),
    "[[recipient]]": RECIPIENT + inherited(RECIPIENT_SCHEDULE),
}
TOP_LEVEL = {heading.strip("[]").split(".")[0] for heading in TABLES} | {"drugs", "drug", "include"}
# What a file named by `include` may hold: what is watched and for whom, nothing of how.
INCLUDED_TOP_LEVEL = {"subscription", "recipient"}
