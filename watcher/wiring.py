"""Builds what the CLI and the daemon drive, from the config and the environment: the store, the
NCBI client and the sources around it, the mail transport. The only module that reads
os.environ; everything it builds takes plain arguments."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from watcher.config import (
    NCBI_RATE_WITH_KEY,
    NCBI_RATE_WITHOUT_KEY,
    Config,
    MailConfig,
    NcbiConfig,
)
from watcher.config import require_secrets as config_require_secrets
from watcher.errors import ConfigError

# What a command builds is imported when it builds it: `check` and `status` open the store and
# never pay for requests or the mail transports.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from watcher.sources.eutils import EUtils
    from watcher.sources.kinds import Sources
    from watcher.store import Store
    from watcher.transports.base import Transport
    from watcher.transports.kinds import TransportSettings

log = logging.getLogger(__name__)

DEFAULT_CONFIG_NAME = "watcher.toml"
CONFIG_ENV = "WATCHER_CONFIG"


def config_path(explicit: str | None, env: Mapping[str, str] = os.environ) -> Path:
    """The config file: the one named on the command line, else $WATCHER_CONFIG, else
    ./watcher.toml."""
    if explicit:
        return Path(explicit)
    return Path(env.get(CONFIG_ENV) or DEFAULT_CONFIG_NAME)


def connect_store(config: Config) -> Store:
    """The store, migrated (the daemon syncs its subscriptions itself, logging the changes)."""
    from watcher.store import Store

    return Store.open(config.store_url)


def open_store(config: Config, now: datetime) -> Store:
    """The store, migrated, and agreeing with the config's subscriptions."""
    store = connect_store(config)
    store.polls.sync(config.subscriptions, now)
    return store


def require_secrets(config: Config, env: Mapping[str, str] = os.environ) -> None:
    """Every secret the config names an environment variable for is set (see config's)."""
    config_require_secrets(config, env)


def ncbi_client(
    ncbi: NcbiConfig,
    env: Mapping[str, str] = os.environ,
    sleep: Callable[[float], None] = time.sleep,
    *,
    clock: Callable[[], datetime],
) -> EUtils:
    api_key = env.get(ncbi.api_key_env) if ncbi.api_key_env else None
    if ncbi.api_key_env and not api_key:
        log.warning(
            "ncbi.api_key_env names %s, which is not set: using the keyless limit",
            ncbi.api_key_env,
        )
    limit = NCBI_RATE_WITH_KEY if api_key else NCBI_RATE_WITHOUT_KEY
    from watcher.sources.eutils import EUtils

    return EUtils(
        base_url=ncbi.base_url,
        email=ncbi.email,
        tool=ncbi.tool,
        api_key=api_key,
        rate=ncbi.rate_limit or limit,
        timeout=ncbi.timeout,
        retries=ncbi.retries,
        batch_size=ncbi.batch_size,
        max_response_mb=ncbi.max_response_mb,
        clock=clock,
        sleep=sleep,
    )


def make_sources(
    config: Config,
    env: Mapping[str, str] = os.environ,
    sleep: Callable[[float], None] = time.sleep,
    *,
    clock: Callable[[], datetime],
) -> Sources:
    """Every registered source, sharing one HTTP layer and one NCBI client; `clock` is the
    caller's (the poll's `now`), so the client's dates agree with it."""
    return sources_for(ncbi_client(config.ncbi, env, sleep, clock=clock), config.ncbi, config)


def sources_for(client: EUtils, ncbi: NcbiConfig, config: Config | None = None) -> Sources:
    """The sources around `client`; `config` gives the registries' roots and paces."""
    from watcher.sources.kinds import pubmed_sources

    if config is None:
        return pubmed_sources(client, datetype=ncbi.datetype, overlap_days=ncbi.overlap_days)
    return pubmed_sources(
        client,
        datetype=ncbi.datetype,
        overlap_days=ncbi.overlap_days,
        europepmc_url=config.europepmc.base_url,
        clinicaltrials_url=config.clinicaltrials.base_url,
        europepmc_rate=config.europepmc.rate_limit,
        clinicaltrials_rate=config.clinicaltrials.rate_limit,
        icite_url=config.icite.base_url,
        icite_rate=config.icite.rate_limit,
    )


def make_transport(mail: MailConfig, env: Mapping[str, str] = os.environ) -> Transport:
    from watcher.transports.kinds import TRANSPORTS

    return TRANSPORTS["smtp" if mail.smtp else "maildir"](transport_settings(mail, env))


def transport_settings(mail: MailConfig, env: Mapping[str, str]) -> TransportSettings:
    from watcher.transports.kinds import TransportSettings
    from watcher.transports.smtp import SmtpSettings

    if mail.smtp is None:
        return TransportSettings(mail.from_addr, mail.maildir)
    c = mail.smtp
    password = None
    if c.password_env:
        password = env.get(c.password_env)
        if password is None:
            raise ConfigError(
                f"environment variable {c.password_env} is not set",
                key="mail.smtp.password_env",
            )
    smtp = SmtpSettings(c.host, c.port, c.security, c.username, c.timeout, c.ca_file)
    return TransportSettings(mail.from_addr, mail.maildir, smtp, password)
