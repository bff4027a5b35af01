"""The wiring: every [ncbi] and [mail] setting reaches what it builds, and the environment is
read there."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.config import load_config
from watcher.errors import ConfigError
from watcher.sources.clinicaltrials import ClinicalTrials
from watcher.sources.europepmc import EuropePmc
from watcher.transports.maildir import MaildirTransport
from watcher.transports.smtp import SmtpTransport
from watcher.wiring import config_path, make_sources, make_transport, ncbi_client, sources_for

from .conftest import write_config

SUB = '[[subscription]]\nname = "s"\nquery = "x"\nrecipients = ["a@example.org"]\n'
NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)  # 10:00 at NCBI


def test_ncbi_settings_and_the_api_key_reach_the_client(tmp_path: Path) -> None:
    extra = 'api_key_env = "NCBI_KEY"\nbatch_size = 123\nmax_response_mb = 2\ntimeout = 7\n'
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9/", SUB, extra=extra))
    client = ncbi_client(config.ncbi, {"NCBI_KEY": "k-123456"}, clock=lambda: NOW)
    assert client.identity["api_key"] == "k-123456" and client.batch_size == 123
    assert client.http.max_response_mb == 2 and client.http.timeout == (7, 7)
    assert client.limiter.slots == 100  # the config's rate_limit
    assert client.today() == NOW.date()
    sources = make_sources(config, {"NCBI_KEY": "k-123456"}, clock=lambda: NOW)
    assert set(sources.by_kind) == {"query", "rss", "europepmc", "trials", "follow"}


def test_registry_base_urls_reach_their_sources(tmp_path: Path) -> None:
    extra = (
        '[europepmc]\nbase_url = "http://127.0.0.1:9/epmc"\nrate_limit = 2\n'
        '[clinicaltrials]\nbase_url = "http://127.0.0.1:9/ctgov/"\n'
    )
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9/", SUB, extra=extra))
    sources = make_sources(config, {}, clock=lambda: NOW)
    assert sources.by_kind["europepmc"].host(config.subscriptions[0]) == "127.0.0.1:9"
    epmc, trials = sources.by_kind["europepmc"], sources.by_kind["trials"]
    assert isinstance(epmc, EuropePmc) and epmc.base_url == "http://127.0.0.1:9/epmc/"
    assert isinstance(trials, ClinicalTrials) and trials.base_url == "http://127.0.0.1:9/ctgov/"
    assert epmc.rate == 2 and trials.rate == 0.5  # the documented default


def test_the_transport_follows_the_mail_settings_and_its_secret(tmp_path: Path) -> None:
    plain = load_config(write_config(tmp_path, "http://127.0.0.1:9/", SUB))
    assert isinstance(make_transport(plain.mail, {}), MaildirTransport)
    smtp = '[mail.smtp]\nhost = "127.0.0.1"\nport = 2525\nusername = "u"\npassword_env = "PW"\n'
    config = load_config(
        write_config(tmp_path, "http://127.0.0.1:9/", SUB, extra=f"\n[mail]\n{smtp}")
    )
    transport = make_transport(config.mail, {"PW": "pw-123456"})
    assert isinstance(transport, SmtpTransport) and transport.password == "pw-123456"
    with pytest.raises(ConfigError, match="PW is not set"):
        make_transport(config.mail, {})


def test_the_config_file_is_named_by_the_argument_then_the_environment() -> None:
    assert config_path("a.toml", {"WATCHER_CONFIG": "b.toml"}) == Path("a.toml")
    assert config_path(None, {"WATCHER_CONFIG": "b.toml"}) == Path("b.toml")
    assert config_path(None, {}) == Path("watcher.toml")


def test_registry_sources_set_their_pace_only_when_used(tmp_path: Path) -> None:
    # Every source is built in every process; one never asked must not slow its host (here the
    # same 127.0.0.1 as NCBI's), as building them once did to every test of the suite.
    from .conftest import make_client

    config = load_config(write_config(tmp_path, "http://127.0.0.1:9/", SUB))
    client = make_client("http://127.0.0.1:9/")
    sources_for(client, config.ncbi, config)
    assert client.http.limiter("http://127.0.0.1:9/esearch.fcgi").slots == 200
