"""TOML → frozen, typed configuration. Every check happens here, at load, so the rest can trust it.

Each error names the file, the key path (``subscription[2].recipients[0]``) and what is wrong.
"""

from __future__ import annotations

import math
import re
import tomllib
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from watcher.errors import ConfigError
from watcher.models import KINDS, Order, Recipient, Schedule, Subscription, normalise_address
from watcher.redact import holds_secret
from watcher.sources.endpoints import (
    CLINICALTRIALS_BASE_URL,
    CLINICALTRIALS_RATE,
    EUROPEPMC_BASE_URL,
    EUROPEPMC_RATE,
)

NCBI_BASE_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
# NCBI's published limits: https://www.ncbi.nlm.nih.gov/books/NBK25497/ ("Usage Guidelines").
NCBI_RATE_WITHOUT_KEY = 3.0
NCBI_RATE_WITH_KEY = 10.0

AbstractMode = Literal["none", "snippet", "full"]
ORDERS = ("date", "evidence", "relevance")
MAX_LIKE = 200  # `like` PMIDs per subscription: a reader's own papers, not a library
Security = Literal["starttls", "ssl", "none"]
DateType = Literal["crdt", "edat"]

_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_NAME = re.compile(r"^[\w][\w .,:;+()'/&-]{0,79}$")
# name-addr as people write it: `Dr Ana Lopez <ana@example.org>` or `"Lopez, Ana" <ana@…>`.
_NAME_ADDR = re.compile(r'^(?:"((?:[^"\\]|\\.)*)"|([^"<>]*?))\s*<([^<>]*)>$')
_DISPLAY_NAME_MAX = 100
# RFC 5321 §4.5.3.1: local part 64 octets, a path 256 (so 254 for the address itself).
MAX_LOCAL_PART = 64
MAX_ADDRESS = 254
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_MAILBOX_HINT = " (write ana@example.org or Ana Lopez <ana@example.org>)"
# Bounds on what a config may hold, far above any sensible value: a runaway value (a pasted file,
# a generated query) is refused at load instead of travelling into URLs, logs and the store.
MAX_CONFIG_BYTES = 1024 * 1024
MAX_STRING = 2_000  # URLs, addresses, paths, names, crontab lines
MAX_QUERY = 20_000  # systematic-review search strategies run to a few thousand characters
MAX_RECIPIENTS = 1_000

# Imported where a config names them: `watcher check` and `status` load every config and most
# configs add no drugs.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from watcher.drugs import Drug


@dataclass(frozen=True)
class FollowupsConfig:
    """[followups]: watcher/followups.py's refresh of delivered papers."""

    enabled: bool = True
    every: timedelta = timedelta(days=7)
    months: int = 24


@dataclass(frozen=True)
class NcbiConfig:
    email: str
    tool: str = "pubmed-watcher"
    api_key_env: str | None = None
    base_url: str = NCBI_BASE_URL
    rate_limit: float | None = None  # requests/s; None = NCBI's limit for the key situation
    batch_size: int = 500
    timeout: float = 30.0
    retries: int = 5
    datetype: DateType = "crdt"
    overlap_days: int = 3
    max_response_mb: float = 128.0  # see sources/http.py's DEFAULT_MAX_RESPONSE_MB


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: Security = "starttls"
    username: str | None = None
    password_env: str | None = None
    timeout: float = 30.0
    ca_file: Path | None = None


@dataclass(frozen=True)
class MailConfig:
    from_addr: str  # the bare address: the envelope sender and the Message-ID's domain
    maildir: Path
    smtp: SmtpConfig | None = None
    templates: Path | None = None
    abstract: AbstractMode = "snippet"
    max_items: int = 50
    send_empty: bool = False
    from_name: str | None = None  # the display name of `from`, when written as name-addr
    order: Order = "date"
    # Who runs this watcher: where List-Unsubscribe mails go and whom the footer names.
    admin: str | None = None
    admin_name: str | None = None


@dataclass(frozen=True)
class ApiConfig:
    """Where a registry's API lives and how fast it may be asked (requests per second)."""

    base_url: str
    rate_limit: float


@dataclass(frozen=True)
class Config:
    path: Path
    store_url: str
    ncbi: NcbiConfig
    mail: MailConfig
    defaults: Schedule
    subscriptions: tuple[Subscription, ...]
    warnings: tuple[str, ...] = field(default=())
    # The user's additions to the shipped drug table ([drugs] file, then [[drug]] entries).
    drugs: tuple[Drug, ...] = field(default=())
    # [europepmc] and [clinicaltrials]: the APIs' roots (tests point them at fakes on
    # 127.0.0.1) and paces.
    europepmc: ApiConfig = ApiConfig(EUROPEPMC_BASE_URL, EUROPEPMC_RATE)
    clinicaltrials: ApiConfig = ApiConfig(CLINICALTRIALS_BASE_URL, CLINICALTRIALS_RATE)
    followups: FollowupsConfig = field(default=FollowupsConfig())
    recipients: tuple[Recipient, ...] = field(default=())  # the [[recipient]] tables

    def recipient(self, address: str) -> Recipient:
        """How `address` gets their digest: their [[recipient]] table, else [mail]'s defaults."""
        address = normalise_address(address)
        for r in self.recipients:
            if r.address == address:
                return r
        m = self.mail
        return Recipient(address, m.abstract, m.max_items, m.order)

    @property
    def digests(self) -> dict[tuple[str, str], dict[str, tuple[str, ...]]]:
        """Digest schedule (cron, timezone) → recipient → the subscriptions that digest carries.

        A recipient with a schedule of their own gets one digest on it across all their
        subscriptions; the others one per subscription schedule, as `schedules` groups them.
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
        if self.recipient(address).name:
            return self.recipient(address).name
        for sub in self.subscriptions:
            for addr, name in sub.display_names:
                if addr == address:
                    return name
        return None

    def subscription(self, name: str) -> Subscription:
        for sub in self.subscriptions:
            if sub.name == name:
                return sub
        raise ConfigError(
            f"no subscription named {name!r}{_suggest(name, [s.name for s in self.subscriptions])}",
            path=str(self.path),
        )

    @property
    def schedules(self) -> dict[tuple[str, str], list[Subscription]]:
        """Subscriptions grouped by digest schedule (cron, timezone): one digest job each."""
        groups: dict[tuple[str, str], list[Subscription]] = {}
        for sub in self.subscriptions:
            groups.setdefault((sub.schedule.digest_cron, sub.schedule.timezone), []).append(sub)
        return groups


def require_secrets(config: Config, env: Mapping[str, str]) -> None:
    """Every environment variable the config names for a secret is set and not empty.

    `check` and `run` call this at start, so a typo in a variable's name (or a unit file that
    forgot its EnvironmentFile) is refused at once instead of failing the first poll or digest
    hours later.
    """
    named = [("ncbi.api_key_env", config.ncbi.api_key_env, "the NCBI API key")]
    if config.mail.smtp is not None:
        named.append(("mail.smtp.password_env", config.mail.smtp.password_env, "the SMTP password"))
    for key, variable, what in named:
        if variable and not env.get(variable):
            raise ConfigError(
                f"environment variable {variable} is not set (it should hold {what})",
                path=str(config.path),
                key=key,
            )


def parse_mailbox(text: str) -> tuple[str | None, str]:
    """'ana@example.org' or 'Dr Ana Lopez <ana@example.org>' (RFC 5322 name-addr; the name may
    be quoted and hold any Unicode) → (display name or None, address). ValueError otherwise.

    The address is returned as SMTP carries it: an internationalised domain in its ASCII
    (punycode) form."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text.strip()):
        # A line break in a To or From header would start a header of its own (Bcc: …).
        raise ValueError(f"{text!r} holds a line break or control character")
    text = text.strip()
    name: str | None = None
    address = text
    if "<" in text or ">" in text:
        m = _NAME_ADDR.match(text)
        if not m:
            raise ValueError(f"{text!r} is not an email address{_MAILBOX_HINT}")
        quoted, bare, address = m.groups()
        name = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        name = " ".join(name.split()) or None
        address = address.strip()
    address = check_address(address, text)
    if name is not None and len(name) > _DISPLAY_NAME_MAX:
        raise ValueError(f"{text!r}: the name is longer than {_DISPLAY_NAME_MAX} characters")
    return name, address


def check_address(address: str, text: str | None = None) -> str:
    """A bare address (local@domain) as SMTP will carry it, or ValueError saying what is wrong.

    The local part is an RFC 5321 dot-atom of at most 64 ASCII characters (a non-ASCII one
    needs SMTPUTF8, which not every server offers); the domain has a dot (localhost aside)
    and labels of letters, digits and hyphens, an internationalised one being encoded to
    punycode (bücher.example → xn--bcher-kva.example); the whole is at most 254 characters.
    """
    shown = repr(text if text is not None else address)
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in address):
        raise ValueError(f"{shown} is not an email address{_MAILBOX_HINT}")
    if len(local) > MAX_LOCAL_PART:
        raise ValueError(
            f"{shown}: the part before @ is {len(local)} characters long; at most "
            f"{MAX_LOCAL_PART} are allowed"
        )
    if not local.isascii():
        raise ValueError(f"{shown}: the part before @ must be ASCII (SMTPUTF8 is not used)")
    if not _LOCAL_PART.match(local):
        raise ValueError(f"{shown} is not an email address{_MAILBOX_HINT}")
    if domain.lower() != "localhost":
        try:
            # An ASCII name is its own IDNA form (the label pattern below checks its lengths);
            # asking the codec anyway imports it, its stringprep and unicodedata, for every
            # command that loads the config.
            domain = domain if domain.isascii() else domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"{shown}: {domain!r} is not a domain name") from None
        labels = domain.split(".")
        if len(labels) < 2 or not all(map(_DOMAIN_LABEL.match, labels)) or labels[-1].isdigit():
            raise ValueError(f"{shown}: {domain!r} is not a domain name (write ana@example.org)")
    address = f"{local}@{domain}"
    if len(address) > MAX_ADDRESS:
        raise ValueError(
            f"{shown} is {len(address)} characters long; an address has at most {MAX_ADDRESS}"
        )
    return address


def parse_duration(text: str) -> timedelta:
    """'45s', '30m', '6h', '1d', '2w' → timedelta. Raises ValueError with a readable reason."""
    m = _DURATION.match(text)
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like '45s', '30m', '6h', '1d' or '1w'")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def load_config(path: Path | str) -> Config:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("no such file (create one with `watcher init`)", path=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=str(path)) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"is {len(raw):,} bytes; a config holds at most {MAX_CONFIG_BYTES:,}", path=str(path)
        )
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", path=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"TOML syntax error: {exc}", path=str(path)) from None
    config = _Reader(path).config(data)
    try:
        mode = path.stat().st_mode
    except OSError:
        return config
    warning = exposure_warning(config, mode)
    return replace(config, warnings=(*config.warnings, warning)) if warning else config


def secret_keys(config: Config) -> list[str]:
    """The keys whose value holds a secret in the file itself: a URL with a password
    (postgresql://u:pw@host/db, https://user:pw@host/…) or a credential in its query."""
    urls = [
        ("store.url", config.store_url),
        ("ncbi.base_url", config.ncbi.base_url),
        ("europepmc.base_url", config.europepmc.base_url),
        ("clinicaltrials.base_url", config.clinicaltrials.base_url),
        *((f"subscription[{i}].rss", s.rss) for i, s in enumerate(config.subscriptions)),
    ]
    return [key for key, url in urls if url and holds_secret(url)]


def exposure_warning(config: Config, mode: int) -> str | None:
    """One warning when the file holds a secret and its group or others may read it (never the
    secret itself: only the key that holds it, and the fix)."""
    keys = secret_keys(config)
    if not keys or not mode & 0o044:
        return None
    who = "anyone on this machine" if mode & 0o004 else "its group"
    return (
        f"{config.path}: {', '.join(keys)} holds a password or key, and the file is readable "
        f"by {who} (mode {mode & 0o777:04o}): run `chmod 600 {config.path}`, or take the "
        "secret out of the file (for a PostgreSQL store: PGPASSWORD or ~/.pgpass)"
    )


class _Reader:
    """Walks the parsed TOML, checking each key against what it may be."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.parent.resolve()
        self.warnings: list[str] = []

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, path=str(self.path), key=key)

    def table(self, data: Any, key: str, allowed: set[str]) -> Mapping[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise self.fail(key, f"must be a table, not {_kind(data)}")
        for name in data:
            if name not in allowed:
                where = f"{key}.{name}" if key else name
                raise self.fail(where, f"unknown key{_suggest(name, allowed)}")
        return data

    def get(
        self,
        data: Mapping[str, Any],
        key: str,
        name: str,
        typ: type | tuple[type, ...],
        default: Any = None,
        required: bool = False,
    ) -> Any:
        where = f"{key}.{name}" if key else name
        if name not in data:
            if required:
                raise self.fail(where, "is required")
            return default
        value = data[name]
        # bool is an int in Python; a TOML `true` is never a valid number here.
        if isinstance(value, bool) and bool not in _as_tuple(typ):
            raise self.fail(where, f"must be {_type_name(typ)}, not a boolean")
        if not isinstance(value, typ):
            raise self.fail(where, f"must be {_type_name(typ)}, not {_kind(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            # TOML has nan and inf; every bound check below is False for nan, so refuse here.
            raise self.fail(where, f"must be a finite number, not {value}")
        if isinstance(value, str):
            if not value.strip():
                raise self.fail(where, "must not be empty")
            long = name in ("query", "europepmc", "trials")
            self.short(where, value, MAX_QUERY if long else MAX_STRING)
        return value

    def short(self, where: str, value: str, limit: int = MAX_STRING) -> None:
        if len(value) > limit:
            raise self.fail(
                where, f"is {len(value):,} characters long; at most {limit:,} are allowed"
            )

    def checked(self, where: str, value: Any, check: Callable[[Any], Any]) -> Any:
        try:
            return check(value)
        except ValueError as exc:
            raise self.fail(where, str(exc)) from None

    def config(self, data: dict[str, Any]) -> Config:
        top = self.table(
            data,
            "",
            {
                "store",
                "ncbi",
                "mail",
                "defaults",
                "subscription",
                "recipient",
                "drug",
                "drugs",
                "europepmc",
                "clinicaltrials",
                "followups",
            },
        )
        store_url = self.store(self.table(top.get("store"), "store", {"url"}))
        ncbi = self.ncbi(top.get("ncbi"))
        mail = self.mail(top.get("mail"))
        defaults = self.schedule(
            self.table(
                top.get("defaults"),
                "defaults",
                {"poll_every", "digest_cron", "timezone", "lookback_days"},
            ),
            "defaults",
            Schedule(parse_duration("6h"), "0 7 * * mon", "UTC", 30),
        )
        subs_raw = top.get("subscription", [])
        if not isinstance(subs_raw, list):
            raise self.fail("subscription", "must be an array of tables: write [[subscription]]")
        if not subs_raw:
            raise self.fail("subscription", "no [[subscription]] entries: nothing to watch")
        subs = tuple(
            self.subscription(s, f"subscription[{i}]", defaults) for i, s in enumerate(subs_raw)
        )
        seen: dict[str, int] = {}
        for i, sub in enumerate(subs):
            if sub.name in seen:
                raise self.fail(
                    f"subscription[{i}].name",
                    f"{sub.name!r} is already the name of subscription[{seen[sub.name]}]",
                )
            seen[sub.name] = i
        drugs = self.drugs(top.get("drugs"), top.get("drug", []))
        recipients = self.recipients(top.get("recipient", []), subs, mail, defaults)
        return Config(
            self.path,
            store_url,
            ncbi,
            mail,
            defaults,
            subs,
            tuple(self.warnings),
            drugs,
            self.api(top.get("europepmc"), "europepmc", EUROPEPMC_BASE_URL, EUROPEPMC_RATE),
            self.api(
                top.get("clinicaltrials"),
                "clinicaltrials",
                CLINICALTRIALS_BASE_URL,
                CLINICALTRIALS_RATE,
            ),
            self.followups(top.get("followups")),
            recipients,
        )

    def recipients(
        self, raw: Any, subs: tuple[Subscription, ...], mail: MailConfig, defaults: Schedule
    ) -> tuple[Recipient, ...]:
        if not isinstance(raw, list):
            raise self.fail("recipient", "must be an array of tables: write [[recipient]]")
        if len(raw) > MAX_RECIPIENTS:
            raise self.fail("recipient", f"has {len(raw):,} tables; at most {MAX_RECIPIENTS:,}")
        listed = sorted({r for s in subs for r in s.recipients})
        out: dict[str, Recipient] = {}
        for i, entry in enumerate(raw):
            r = self.recipient(entry, f"recipient[{i}]", mail, defaults)
            if r.address not in listed:
                raise self.fail(
                    f"recipient[{i}].address",
                    f"{r.address!r} is in no subscription's recipients: add it to the "
                    f"subscriptions they should get{_suggest(r.address, listed)}",
                )
            if r.address in out:
                raise self.fail(f"recipient[{i}].address", f"{r.address!r} has a table already")
            out[r.address] = r
        return tuple(out.values())

    def recipient(self, raw: Any, key: str, mail: MailConfig, defaults: Schedule) -> Recipient:
        fields = {"address", "digest_cron", "timezone", "abstract", "max_items", "order"}
        data = self.table(raw, key, fields | {"paused_until"})
        text = self.get(data, key, "address", str, required=True)
        name, address = self.checked(f"{key}.address", text, parse_mailbox)
        # Their own schedule: their cron in their zone, else [defaults]' (a reader in Tokyo
        # writing only `timezone` gets [defaults]' cron at that hour of their day).
        tz = self.get(data, key, "timezone", str, defaults.timezone)
        self.checked(f"{key}.timezone", tz, _check_timezone)
        cron = self.get(data, key, "digest_cron", str, defaults.digest_cron)
        self.checked(f"{key}.digest_cron", (cron, tz), _check_cron)
        abstract = self.choice(data, key, "abstract", ("none", "snippet", "full"), mail.abstract)
        max_items = self.get(data, key, "max_items", int, mail.max_items)
        if not 1 <= max_items <= 1000:
            raise self.fail(f"{key}.max_items", "must be between 1 and 1000")
        order = self.choice(data, key, "order", ORDERS, mail.order)
        paused = data.get("paused_until")
        if paused is not None and (not isinstance(paused, date) or hasattr(paused, "hour")):
            raise self.fail(f"{key}.paused_until", "must be a date, written 2026-09-01 (no quotes)")
        return Recipient(
            normalise_address(address), abstract, max_items, order, name, (cron, tz), paused
        )

    def api(self, raw: Any, key: str, url: str, rate: float) -> ApiConfig:
        """[europepmc] / [clinicaltrials]: where that API lives and its pace."""
        data = self.table(raw, key, {"base_url", "rate_limit"})
        url = self.get(data, key, "base_url", str, url)
        self.http_url(f"{key}.base_url", url)
        rate = self.get(data, key, "rate_limit", (int, float), rate)
        if not 0 < rate <= 100:
            raise self.fail(f"{key}.rate_limit", "must be a number of requests per second, 0–100")
        return ApiConfig(url if url.endswith("/") else url + "/", float(rate))

    def followups(self, raw: Any) -> FollowupsConfig:
        """[followups]: how often delivered papers are fetched again, and how far back."""
        key = "followups"
        data = self.table(raw, key, {"enabled", "every", "months"})
        enabled = self.get(data, key, "enabled", bool, True)
        text = self.get(data, key, "every", str, "7d")
        every = self.checked("followups.every", text, parse_duration)
        if every < timedelta(hours=1):
            # Each refresh costs an efetch per batch of delivered papers; PubMed's notices
            # come out over days, not minutes.
            raise self.fail("followups.every", f"{text} is under an hour; '1d' or '7d' is usual")
        months = self.get(data, key, "months", int, 24)
        if not 1 <= months <= 240:
            raise self.fail("followups.months", "must be between 1 and 240 (months)")
        return FollowupsConfig(enabled, every, months)

    def drugs(self, table: Any, entries: Any) -> tuple[Drug, ...]:
        """[drugs] file = "…" (a table in the shipped format) and [[drug]] entries: they add to
        the shipped table (see drugs.merged for an INN already in it)."""
        found: list[Drug] = []
        data = self.table(table, "drugs", {"file"})
        name = self.get(data, "drugs", "file", str)
        if name is None and entries == []:
            return ()
        # Only now: the drug table's module is needed by configs that extend it.
        from watcher.drugs import drug_entry, load_drug_file

        if name is not None:
            path = self.local_path(name)
            found += self.checked("drugs.file", path, load_drug_file)
        if not isinstance(entries, list):
            raise self.fail("drug", "must be an array of tables: write [[drug]]")
        for i, entry in enumerate(entries):
            try:
                found.append(drug_entry(entry, f"drug[{i}]"))
            except ValueError as exc:
                where, _, message = str(exc).partition(": ")
                raise self.fail(where, message) from None
        return tuple(found)

    def store(self, data: Mapping[str, Any]) -> str:
        url: str = self.get(data, "store", "url", str, "sqlite:///watcher.db")
        if "://" not in url:
            raise self.fail(
                "store.url", f"{url!r} is not a SQLAlchemy URL like sqlite:///watcher.db"
            )
        scheme, _, rest = url.partition(":///")
        if scheme.startswith("sqlite") and rest and rest != ":memory:" and not rest.startswith("/"):
            # Relative SQLite paths belong to the config file, not to whatever directory cron used.
            url = f"{scheme}:///{self.base / rest}"
        elif not scheme.startswith(("sqlite", "postgresql")):
            raise self.fail(
                "store.url",
                f"unsupported database {url.split(':')[0]!r}; use "
                "sqlite:///FILE or postgresql+psycopg://…",
            )
        return url

    def ncbi(self, raw: Any) -> NcbiConfig:
        key = "ncbi"
        data = self.table(
            raw,
            key,
            {
                "email",
                "tool",
                "api_key_env",
                "base_url",
                "rate_limit",
                "batch_size",
                "timeout",
                "retries",
                "datetype",
                "overlap_days",
                "max_response_mb",
            },
        )
        if raw is None:
            raise self.fail(
                "ncbi",
                "is required: NCBI asks every client for a contact email "
                '([ncbi] email = "you@example.org")',
            )
        email = self.get(data, key, "email", str, required=True)
        if "<" in email or "@localhost" in email.lower():  # NCBI wants a reachable address
            raise self.fail("ncbi.email", f"{email!r} is not an email address")
        email = self.checked("ncbi.email", email, check_address)
        tool = self.get(data, key, "tool", str, "pubmed-watcher")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", tool):
            raise self.fail("ncbi.tool", "may hold only letters, digits, '_', '.' and '-'")
        api_key_env = self.env_name(data, key, "api_key_env")
        base_url = self.get(data, key, "base_url", str, NCBI_BASE_URL)
        self.http_url("ncbi.base_url", base_url)
        if not base_url.endswith("/"):
            base_url += "/"
        rate = self.rate_limit(data, key, api_key_env, base_url)
        batch = self.get(data, key, "batch_size", int, 500)
        if not 1 <= batch <= 10_000:
            raise self.fail("ncbi.batch_size", "must be between 1 and 10000 (NCBI's efetch cap)")
        timeout = self.positive(data, key, "timeout", 30.0)
        retries = self.get(data, key, "retries", int, 5)
        if not 0 <= retries <= 20:
            raise self.fail("ncbi.retries", "must be between 0 and 20")
        datetype = self.choice(data, key, "datetype", ("crdt", "edat"), "crdt")
        overlap = self.get(data, key, "overlap_days", int, 3)
        if not 0 <= overlap <= 60:
            raise self.fail("ncbi.overlap_days", "must be between 0 and 60")
        max_mb = self.get(data, key, "max_response_mb", (int, float), 128)
        if not 0 < max_mb <= 4096:
            raise self.fail("ncbi.max_response_mb", "must be a number of MB above 0, at most 4096")
        return NcbiConfig(
            email,
            tool,
            api_key_env,
            base_url,
            rate,
            batch,
            timeout,
            retries,
            datetype,
            overlap,
            float(max_mb),
        )

    def rate_limit(
        self, data: Mapping[str, Any], key: str, api_key_env: str | None, base_url: str
    ) -> float | None:
        rate = self.get(data, key, "rate_limit", (int, float))
        if rate is not None:
            limit = NCBI_RATE_WITH_KEY if api_key_env else NCBI_RATE_WITHOUT_KEY
            if rate <= 0:
                raise self.fail("ncbi.rate_limit", "must be a positive number of requests/s")
            if rate > limit and base_url == NCBI_BASE_URL:
                raise self.fail(
                    "ncbi.rate_limit",
                    f"NCBI allows at most {limit:g} requests/s "
                    f"{'with' if api_key_env else 'without'} an API key",
                )
        return None if rate is None else float(rate)

    def mail(self, raw: Any) -> MailConfig:
        key = "mail"
        data = self.table(
            raw,
            key,
            {
                "from",
                "maildir",
                "smtp",
                "templates",
                "abstract",
                "max_items",
                "send_empty",
                "order",
                "admin",
            },
        )
        from_text = self.get(data, key, "from", str, "pubmed-watcher@localhost")
        from_name, from_addr = self.checked("mail.from", from_text, parse_mailbox)
        maildir = self.local_path(self.get(data, key, "maildir", str, "mail"))
        templates = self.get(data, key, "templates", str)
        templates_path = None
        if templates is not None:
            templates_path = self.local_path(templates)
            if not templates_path.is_dir():
                raise self.fail("mail.templates", f"{templates_path} is not a folder")
        abstract = self.choice(data, key, "abstract", ("none", "snippet", "full"), "snippet")
        max_items = self.get(data, key, "max_items", int, 50)
        if not 1 <= max_items <= 1000:
            raise self.fail("mail.max_items", "must be between 1 and 1000")
        send_empty = self.get(data, key, "send_empty", bool, False)
        smtp = None
        if "smtp" in data:
            smtp = self.smtp(data["smtp"])
        order = self.choice(data, key, "order", ORDERS, "date")
        admin_name, admin = None, None
        admin_text = self.get(data, key, "admin", str)
        if admin_text is not None:
            admin_name, admin = self.checked("mail.admin", admin_text, parse_mailbox)
        return MailConfig(
            from_addr,
            maildir,
            smtp,
            templates_path,
            abstract,
            max_items,
            send_empty,
            from_name,
            order,
            admin,
            admin_name,
        )

    def smtp(self, raw: Any) -> SmtpConfig:
        key = "mail.smtp"
        data = self.table(
            raw, key, {"host", "port", "security", "username", "password_env", "timeout", "ca_file"}
        )
        host = self.get(data, key, "host", str, required=True)
        security = self.choice(data, key, "security", ("starttls", "ssl", "none"), "starttls")
        port = self.get(data, key, "port", int, {"ssl": 465, "starttls": 587, "none": 25}[security])
        if not 1 <= port <= 65535:
            raise self.fail("mail.smtp.port", "must be between 1 and 65535")
        username = self.get(data, key, "username", str)
        password_env = self.env_name(data, key, "password_env")
        if password_env and not username:
            raise self.fail("mail.smtp.password_env", "is set but mail.smtp.username is not")
        if "password" in data:  # pragma: no cover - caught as unknown key above
            raise self.fail("mail.smtp.password", "secrets never go in the file")
        timeout = self.positive(data, key, "timeout", 30.0)
        ca = self.get(data, key, "ca_file", str)
        ca_path = self.local_path(ca) if ca else None
        if ca_path and not ca_path.is_file():
            raise self.fail("mail.smtp.ca_file", f"{ca_path} does not exist")
        return SmtpConfig(host, port, security, username, password_env, timeout, ca_path)

    def schedule(self, data: Mapping[str, Any], key: str, parent: Schedule) -> Schedule:
        poll_every = parent.poll_every
        if "poll_every" in data:
            text = self.get(data, key, "poll_every", str)
            poll_every = self.checked(f"{key}.poll_every", text, parse_duration)
            if poll_every < timedelta(minutes=1):
                self.warnings.append(
                    f"{self.path}: {key}.poll_every: {text} is under a minute; fine for a demo, "
                    "but NCBI asks for polls no more often than needed"
                )
        tz = self.get(data, key, "timezone", str, parent.timezone)
        self.checked(f"{key}.timezone", tz, _check_timezone)
        cron = self.get(data, key, "digest_cron", str, parent.digest_cron)
        self.checked(f"{key}.digest_cron", (cron, tz), _check_cron)
        lookback = self.get(data, key, "lookback_days", int, parent.lookback_days)
        if not 0 <= lookback <= 3650:
            raise self.fail(f"{key}.lookback_days", "must be between 0 and 3650")
        return Schedule(poll_every, cron, tz, lookback)

    def subscription(self, raw: Any, key: str, defaults: Schedule) -> Subscription:
        data = self.table(
            raw,
            key,
            {
                "name",
                "query",
                "rss",
                "europepmc",
                "trials",
                "recipients",
                "poll_every",
                "digest_cron",
                "timezone",
                "lookback_days",
                "like",
            },
        )
        name = self.get(data, key, "name", str, required=True).strip()
        if not _NAME.match(name):
            raise self.fail(
                f"{key}.name",
                "use up to 80 letters, digits, spaces and simple "
                "punctuation (it appears in email subjects)",
            )
        query = self.get(data, key, "query", str)
        rss = self.get(data, key, "rss", str)
        europepmc = self.get(data, key, "europepmc", str)
        trials = self.get(data, key, "trials", str)
        if sum(data.get(k) is not None for k in KINDS) != 1:
            raise self.fail(
                key,
                "needs exactly one of `query` (a PubMed search), `rss` (a PubMed RSS feed URL), "
                "`europepmc` (a Europe PMC search) or `trials` (a ClinicalTrials.gov search)",
            )
        for kind, text in (("query", query), ("europepmc", europepmc), ("trials", trials)):
            if text is not None:
                self.checked(f"{key}.{kind}", text, _check_query)
        if rss is not None:
            self.http_url(f"{key}.rss", rss)
        recipients = self.get(data, key, "recipients", list, required=True)
        if not recipients:
            raise self.fail(f"{key}.recipients", "lists nobody: add at least one email address")
        if len(recipients) > MAX_RECIPIENTS:
            raise self.fail(
                f"{key}.recipients", f"lists {len(recipients):,}; at most {MAX_RECIPIENTS:,}"
            )
        clean: list[str] = []
        names: dict[str, str] = {}
        for i, text in enumerate(recipients):
            where = f"{key}.recipients[{i}]"
            if not isinstance(text, str):
                raise self.fail(where, f"{text!r} is not an email address")
            self.short(where, text)
            display, address = self.checked(where, text, parse_mailbox)
            if "@localhost" in address and not _EMAIL.match(address):
                raise self.fail(where, f"{text!r} is not an email address")
            address = normalise_address(address)
            if address not in clean:
                clean.append(address)
            if display and address not in names:
                names[address] = display
        schedule = self.schedule(data, key, defaults)
        like = self.get(data, key, "like", list, [])
        if len(like) > MAX_LIKE:
            raise self.fail(f"{key}.like", f"lists {len(like):,} PMIDs; at most {MAX_LIKE}")
        for i, pmid in enumerate(like):
            if isinstance(pmid, bool) or not isinstance(pmid, int) or pmid <= 0:
                raise self.fail(f"{key}.like[{i}]", f"{pmid!r} is not a PMID (a number)")
        return Subscription(
            name,
            tuple(clean),
            schedule,
            query,
            rss,
            tuple(names.items()),
            europepmc,
            trials,
            tuple(like),
        )

    def choice(
        self, data: Mapping[str, Any], key: str, name: str, options: tuple[str, ...], default: str
    ) -> Any:
        value = self.get(data, key, name, str, default)
        if value not in options:
            raise self.fail(
                f"{key}.{name}",
                f"{value!r} is not one of "
                f"{', '.join(repr(o) for o in options)}{_suggest(value, options)}",
            )
        return value

    def positive(self, data: Mapping[str, Any], key: str, name: str, default: float) -> float:
        value = self.get(data, key, name, (int, float), default)
        if value <= 0:
            raise self.fail(f"{key}.{name}", "must be a positive number of seconds")
        return float(value)

    def env_name(self, data: Mapping[str, Any], key: str, name: str) -> str | None:
        value: str | None = self.get(data, key, name, str)
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise self.fail(
                f"{key}.{name}",
                f"{value!r} is not an environment variable name "
                "(secrets never go in the file, only the variable's name)",
            )
        return value

    def http_url(self, where: str, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self.fail(where, f"{url!r} is not an http(s) URL")

    def local_path(self, text: str) -> Path:
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.base / path


def _check_timezone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a name that is a folder of the zone database ("Europe") or too long for a
        # file name; zoneinfo lets those through as IsADirectoryError and ENAMETOOLONG.
        raise ValueError(f"{name!r} is not an IANA time zone such as 'Europe/Paris'") from None


def _check_cron(value: tuple[str, str]) -> None:
    from watcher.schedule import check_cron

    cron, _tz = value  # the time zone is checked on its own key
    if len(cron.split()) not in (5, 6):
        raise ValueError(f"{cron!r} is not a crontab line of 5 fields, e.g. '0 7 * * mon'")
    try:
        check_cron(cron)
    except ValueError as exc:
        raise ValueError(f"{cron!r} is not a valid crontab line: {exc}") from None


def _check_query(query: str) -> None:
    depth = 0
    for ch in query:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            raise ValueError("has a ')' without its '('")
    if depth:
        raise ValueError("has a '(' that is never closed")
    if query.count('"') % 2:
        raise ValueError("has an unbalanced '\"'")


def _suggest(name: str, options: Any) -> str:
    import difflib  # only for a config with a mistyped key: not on every start

    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _as_tuple(typ: type | tuple[type, ...]) -> tuple[type, ...]:
    return typ if isinstance(typ, tuple) else (typ,)


def _type_name(typ: type | tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "an array",
        dict: "a table",
    }
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in _as_tuple(typ)))


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        str: "a string",
        int: "an integer",
        float: "a number",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)
