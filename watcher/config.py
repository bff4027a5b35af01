"""TOML → frozen, typed configuration. Every check happens here, at load, so the rest can trust it.

Each error names the file, the key path (``subscription[2].recipients[0]``) and what is wrong.
The keys, their TOML types and their defaults are declared once, on the dataclasses they fill
(config_keys.py; subscriptions.py's Schedule, Subscription and Recipient): the reader takes them
from there, and what is written here is each key's own rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from watcher.addresses import check_address, parse_mailbox
from watcher.config_include import Part, included_parts, read_watched
from watcher.config_keys import (
    ABSTRACTS,
    CLINICALTRIALS,
    DATETYPES,
    EUROPEPMC,
    FOLLOWUPS,
    ICITE,
    MAIL,
    NCBI,
    NCBI_BASE_URL,
    NCBI_RATE_WITH_KEY,
    NCBI_RATE_WITHOUT_KEY,
    ORDERS,
    SECURITIES,
    SMTP,
    SMTP_PORTS,
    STORE,
    TOP_LEVEL,
    ApiConfig,
    Config,
    ConfigFile,
    FollowupsConfig,
    MailConfig,
    NcbiConfig,
    SmtpConfig,
)
from watcher.config_subscriptions import SubscriptionReader
from watcher.errors import ConfigError
from watcher.redact import holds_secret
from watcher.toml_reading import (
    MAX_STRING,
    Key,
    names,
    parse_document,
    parse_duration,
    read_config_bytes,
)

# What the rest of the package and the tests import from here.
__all__ = [
    "MAX_STRING",
    "NCBI_RATE_WITHOUT_KEY",
    "NCBI_RATE_WITH_KEY",
    "Config",
    "FollowupsConfig",
    "MailConfig",
    "NcbiConfig",
    "load_config",
    "parse_duration",
    "require_secrets",
]

# Imported where a config names them: `watcher check` and `status` load every config and most
# configs add no drugs.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from watcher.drug_table import Drug


def load_config(path: Path | str) -> Config:
    """The config in `path` and the files its `include` names (watcher/config_include.py)."""
    path = Path(path)
    raw = read_config_bytes(path)
    config = _Reader(path).config(parse_document(path, raw), len(raw))
    found: dict[Path, list[str]] = {}
    for file, key in secret_keys(config):
        found.setdefault(file, []).append(key)
    warnings = []
    for file, keys in found.items():
        try:
            mode = file.stat().st_mode
        except OSError:
            continue
        warning = exposure_warning(file, keys, mode)
        if warning:
            warnings.append(warning)
    return replace(config, warnings=(*config.warnings, *warnings)) if warnings else config


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


def secret_keys(config: Config) -> list[tuple[Path, str]]:
    """The keys whose value holds a secret in a file itself, with that file: a URL with a
    password (postgresql://u:pw@host/db, https://user:pw@host/…) or a credential in its query."""
    urls: list[tuple[Path, str, str | None]] = [
        (config.path, "store.url", config.store_url),
        (config.path, "ncbi.base_url", config.ncbi.base_url),
        (config.path, "europepmc.base_url", config.europepmc.base_url),
        (config.path, "clinicaltrials.base_url", config.clinicaltrials.base_url),
        (config.path, "icite.base_url", config.icite.base_url),
    ]
    # Each file's subscriptions in turn, keyed as in that file (a Config built in code: one).
    files = config.files or (ConfigFile(config.path, len(config.subscriptions), 0, 0),)
    subs = iter(config.subscriptions)
    for file in files:
        for i, sub in zip(range(file.subscriptions), subs, strict=False):
            urls.append((file.path, f"subscription[{i}].rss", sub.rss))
    return [(path, key) for path, key, url in urls if url and holds_secret(url)]


def exposure_warning(path: Path, keys: list[str], mode: int) -> str | None:
    """One warning when a file holds a secret and its group or others may read it (never the
    secret itself: only the key that holds it, and the fix)."""
    if not keys or not mode & 0o044:
        return None
    who = "anyone on this machine" if mode & 0o004 else "its group"
    return (
        f"{path}: {', '.join(keys)} holds a password or key, and the file is readable "
        f"by {who} (mode {mode & 0o777:04o}): run `chmod 600 {path}`, or take the "
        "secret out of the file (for a PostgreSQL store: PGPASSWORD or ~/.pgpass)"
    )


class _Reader(SubscriptionReader):
    """Each table read by its declared keys (type, default), then checked key by key."""

    def config(self, data: dict[str, Any], size: int) -> Config:
        top = self.table(data, "", TOP_LEVEL)
        store = self.store(top.get("store"))
        ncbi = self.ncbi(top.get("ncbi"))
        mail = self.mail(top.get("mail"))
        defaults = self.defaults(top.get("defaults"))
        here = Part(self.path, top.get("subscription", []), top.get("recipient", []), size)
        parts = [here, *included_parts(self, top.get("include"), size)]
        subscriptions, recipients, files = read_watched(self, parts, defaults, mail)
        drugs = self.drugs(top.get("drugs"), top.get("drug", []))
        return Config(
            path=self.path,
            store_url=store,
            ncbi=ncbi,
            mail=mail,
            defaults=defaults,
            subscriptions=subscriptions,
            recipients=recipients,
            drugs=drugs,
            europepmc=self.api(top.get("europepmc"), "europepmc", EUROPEPMC),
            clinicaltrials=self.api(top.get("clinicaltrials"), "clinicaltrials", CLINICALTRIALS),
            followups=self.followups(top.get("followups")),
            icite=self.api(top.get("icite"), "icite", ICITE),
            warnings=tuple(self.warnings),
            files=files,
        )

    def store(self, raw: Any) -> str:
        url: str = self.read(raw, "store", STORE)["store_url"]
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
        data = self.table(raw, "ncbi", names(NCBI))
        if raw is None:
            raise self.fail(
                "ncbi",
                "is required: NCBI asks every client for a contact email "
                '([ncbi] email = "you@example.org")',
            )
        v = self.values(data, "ncbi", NCBI)
        email = v["email"]
        if "<" in email or "@localhost" in email.lower():  # NCBI wants a reachable address
            raise self.fail("ncbi.email", f"{email!r} is not an email address")
        v["email"] = self.checked("ncbi.email", email, check_address)
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", v["tool"]):
            raise self.fail("ncbi.tool", "may hold only letters, digits, '_', '.' and '-'")
        self.env_name("ncbi.api_key_env", v["api_key_env"])
        self.http_url("ncbi.base_url", v["base_url"])
        if not v["base_url"].endswith("/"):
            v["base_url"] += "/"
        self.ncbi_rate(v["rate_limit"], v["api_key_env"], v["base_url"])
        self.within("ncbi.batch_size", v["batch_size"], 1, 10000, " (NCBI's efetch cap)")
        self.positive("ncbi.timeout", v["timeout"])
        self.within("ncbi.retries", v["retries"], 0, 20)
        self.choice("ncbi.datetype", v["datetype"], DATETYPES)
        self.within("ncbi.overlap_days", v["overlap_days"], 0, 60)
        if not 0 < v["max_response_mb"] <= 4096:
            raise self.fail("ncbi.max_response_mb", "must be a number of MB above 0, at most 4096")
        return NcbiConfig(**v)

    def ncbi_rate(self, rate: float | None, api_key_env: str | None, base_url: str) -> None:
        if rate is None:
            return
        limit = NCBI_RATE_WITH_KEY if api_key_env else NCBI_RATE_WITHOUT_KEY
        if rate <= 0:
            raise self.fail("ncbi.rate_limit", "must be a positive number of requests/s")
        if rate > limit and base_url == NCBI_BASE_URL:
            raise self.fail(
                "ncbi.rate_limit",
                f"NCBI allows at most {limit:g} requests/s "
                f"{'with' if api_key_env else 'without'} an API key",
            )

    def mail(self, raw: Any) -> MailConfig:
        v = self.read(raw, "mail", MAIL)
        v["from_name"], v["from_addr"] = self.checked("mail.from", v["from_addr"], parse_mailbox)
        v["maildir"] = self.local_path(v["maildir"])
        if v["templates"] is not None:
            v["templates"] = self.local_path(v["templates"])
            if not v["templates"].is_dir():
                raise self.fail("mail.templates", f"{v['templates']} is not a folder")
        self.choice("mail.abstract", v["abstract"], ABSTRACTS)
        self.within("mail.max_items", v["max_items"], 1, 1000)
        if v["smtp"] is not None:
            v["smtp"] = self.smtp(v["smtp"])
        self.choice("mail.order", v["order"], ORDERS)
        if v["admin"] is not None:
            v["admin_name"], v["admin"] = self.checked("mail.admin", v["admin"], parse_mailbox)
        return MailConfig(**v)

    def smtp(self, raw: Any) -> SmtpConfig:
        v = self.read(raw, "mail.smtp", SMTP)
        security = self.choice("mail.smtp.security", v["security"], SECURITIES)
        v.setdefault("port", SMTP_PORTS[security])
        self.within("mail.smtp.port", v["port"], 1, 65535)
        self.env_name("mail.smtp.password_env", v["password_env"])
        if v["password_env"] and not v["username"]:
            raise self.fail("mail.smtp.password_env", "is set but mail.smtp.username is not")
        self.positive("mail.smtp.timeout", v["timeout"])
        if v["ca_file"]:
            v["ca_file"] = self.local_path(v["ca_file"])
            if not v["ca_file"].is_file():
                raise self.fail("mail.smtp.ca_file", f"{v['ca_file']} does not exist")
        return SmtpConfig(**v)

    def api(self, raw: Any, key: str, declared: tuple[Key, ...]) -> ApiConfig:
        """[europepmc] / [clinicaltrials]: where that API lives and its pace."""
        v = self.read(raw, key, declared)
        self.http_url(f"{key}.base_url", v["base_url"])
        if not 0 < v["rate_limit"] <= 100:
            raise self.fail(f"{key}.rate_limit", "must be a number of requests per second, 0–100")
        if not v["base_url"].endswith("/"):
            v["base_url"] += "/"
        return ApiConfig(**v)

    def followups(self, raw: Any) -> FollowupsConfig:
        """[followups]: how often delivered papers are fetched again, and how far back."""
        data = self.table(raw, "followups", names(FOLLOWUPS))
        v = self.values(data, "followups", FOLLOWUPS)
        if "every" in data:
            text = v["every"]
            v["every"] = self.checked("followups.every", text, parse_duration)
            if v["every"] < timedelta(hours=1):
                # Each refresh costs an efetch per batch of delivered papers; PubMed's notices
                # come out over days, not minutes.
                raise self.fail(
                    "followups.every", f"{text} is under an hour; '1d' or '7d' is usual"
                )
        self.within("followups.months", v["months"], 1, 240, " (months)")
        return FollowupsConfig(**v)

    def drugs(self, table: Any, entries: Any) -> tuple[Drug, ...]:
        """[drugs] file = "…" (a table in the shipped format) and [[drug]] entries: they add to
        the shipped table (see drug_table.merged for an INN already in it)."""
        found: list[Drug] = []
        data = self.table(table, "drugs", {"file"})
        name = self.get(data, "drugs", "file", str)
        if name is None and entries == []:
            return ()
        # Only now: the drug table's module is needed by configs that extend it.
        from watcher.drug_table import drug_entry, load_drug_file

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
