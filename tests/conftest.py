"""Shared fixtures: stores on SQLite files and on PostgreSQL, configs written to temp folders."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from watcher.sources.eutils import EUtils
from watcher.store import Store

from .fakes.ncbi import FakeNCBI
from .fakes.smtp import SmtpServer

TYPE_CHECKING = False
if TYPE_CHECKING:  # the helper lives with the daemon's tests, which import this module
    from .harness.driven import DrivenDaemon
    from .test_daemon import Daemon

PG_ENV = "WATCHER_TEST_POSTGRES_URL"
REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def postgres_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def _pg_schema_url(base: str) -> Iterator[str]:
    """A fresh schema per test, so tests never see each other's rows; dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # the server named by the variable is down: say so, do not hide it
        admin.dispose()
        pytest.fail(f"{PG_ENV}={base} is set but unusable: {exc}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    base = postgres_url()
    if base is None:
        pytest.skip(
            f"PostgreSQL store tests need {PG_ENV} (e.g. "
            "postgresql+psycopg://postgres@127.0.0.1:5432/test); .ci/run sets it"
        )
    yield from _pg_schema_url(base)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url)
    yield s
    s.close()


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared NCBI corpus is not beside the repo ({CORPUS})")
    return CORPUS


@pytest.fixture
def fake() -> Iterator[FakeNCBI]:
    server = FakeNCBI().start()
    yield server
    server.stop()


def make_client(base_url: str, **kw: Any) -> EUtils:
    """A client tuned for tests: fast rate and short backoff unless a test says otherwise."""
    options: dict[str, Any] = dict(
        base_url=base_url,
        email="tests@example.org",
        tool="watcher-tests",
        rate=200,
        backoff=0.001,
        timeout=5,
        retries=4,
        clock=lambda: datetime.now(UTC),
    )
    options.update(kw)
    return EUtils(**options)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on loopback, recording what it receives."""
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """`watcher run` processes a test starts (tests/test_daemon.py's Daemon): killed after it."""
    started: list[Daemon] = []
    yield started
    for d in started:
        d.kill()


@pytest.fixture
def driven() -> Iterator[Callable[[Path, datetime], DrivenDaemon]]:
    """`watcher run`'s Daemon in this process on a clock the test moves (tests/harness/driven.py):
    `driven(config_path, now)` starts one; each is stopped after the test."""
    from .harness.driven import DrivenDaemon

    started: list[DrivenDaemon] = []

    def start(config_path: Path, now: datetime) -> DrivenDaemon:
        started.append(DrivenDaemon(config_path, now))
        return started[-1]

    yield start
    for d in started:
        d.stop()


@pytest.fixture
def client(fake: FakeNCBI) -> EUtils:
    return make_client(fake.base_url)


def write_config(
    folder: Path, base_url: str, subscriptions: str, *, extra: str = "", defaults: str = ""
) -> Path:
    """A config pointing at the fake NCBI, with a fast rate (the fake is ours, not NCBI's)."""
    path = folder / "watcher.toml"
    path.write_text(
        f'[ncbi]\nemail = "tests@example.org"\nbase_url = "{base_url}"\nrate_limit = 100\n'
        f'retries = 2\n{extra}\n[defaults]\ntimezone = "UTC"\n{defaults}\n{subscriptions}\n'
    )
    return path
