"""The soak's short version (bench/soak.py, 50 cycles): the daemon's poll, follow-up and digest
jobs in this process against the fakes and a real SMTP server in another, 10% of requests and
messages failing. Nothing is lost or mailed twice, the store stays consistent after every cycle,
no file descriptor leaks, and memory stays within a loose bound."""

from __future__ import annotations

import pytest

from .conftest import postgres_url
from .harness.soak import SoakResult, report, run_soak

# Left out of the quick run (`pytest -m "not slow"`): fifty cycles of the daemon's jobs.
pytestmark = pytest.mark.slow

CYCLES = 50
# Loose: over 50 cycles the caches of a fresh process (SQLAlchemy's compiled statements, Jinja's
# templates, the HTTP pool) are still filling; the 500-cycle run holds the real bound.
MAX_GROWTH_MB = 12.0


def check(result: SoakResult) -> None:
    lines, ok = report(result, MAX_GROWTH_MB)
    text = "\n".join(lines)
    assert not result.problems, text
    assert result.owed_pairs > 100, text  # the cycles did deliver papers
    assert (result.twice, result.never, result.unexpected) == ([], [], []), text
    assert result.messages == result.distinct_ids, text
    assert sum(result.faults.values()) > 50, text  # and faults were injected throughout
    assert {k.split()[0] for k in result.faults} == {
        "ncbi",
        "europepmc",
        "clinicaltrials",
        "smtp",
    }, text
    assert result.fd_growth <= 0, text
    assert result.growth("rss") <= MAX_GROWTH_MB * 1024 * 1024, text
    assert ok, text


def test_soak_on_sqlite_delivers_everything_once_and_leaks_nothing() -> None:
    check(run_soak(CYCLES, seed=16, kind="sqlite"))


@pytest.mark.postgres
def test_soak_on_postgresql_delivers_everything_once_and_leaks_nothing() -> None:
    if postgres_url() is None:
        pytest.skip("needs WATCHER_TEST_POSTGRES_URL")
    check(run_soak(CYCLES, seed=16, kind="postgresql"))
