"""Every process on a store shares one request budget per host and key, and no subscription is
searched by two of them at once: two `watcher poll`, a `watcher run` and a `watcher backfill`,
real processes on one store, against a fake NCBI that answers 429 past 3 requests in any second
from one address, as NCBI does without an API key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.poll import ncbi_today

from .fakes.ncbi import FakeNCBI
from .fakes.records import synthetic
from .test_daemon import Daemon, until

LIMIT = 3  # NCBI's keyless limit; the config leaves [ncbi] rate_limit to its default
SUBS = [f"s{i:02d}" for i in range(1, 19)]
FIRST_POLL = SUBS[0:10]
SECOND_POLL = SUBS[5:15]  # shares s06-s10 with the first
BACKFILL = SUBS[10:16]  # shares s11-s15 with the second
# s17 and s18 no command asks for: the daemon has them to itself from its first poll on.


@pytest.fixture
def limited() -> Iterator[FakeNCBI]:
    fake = FakeNCBI(rate_limit=LIMIT).start()
    today = ncbi_today(datetime.now(UTC))
    for i, _ in enumerate(SUBS):
        for n, days in enumerate((0, 1, 400, 700)):
            pmid = 1000 + 10 * i + n
            when = today - timedelta(days=days)
            fake.add([synthetic(pmid, f"topic{i:02d} paper {pmid}", edat=when, abstract="x")])
    yield fake
    fake.stop()


def write(tmp_path: Path, fake: FakeNCBI, store_url: str) -> Path:
    subs = "".join(
        f'[[subscription]]\nname = "{name}"\nquery = "topic{i:02d}"\n'
        'recipients = ["a@example.org"]\n'
        for i, name in enumerate(SUBS)
    )
    path = tmp_path / "watcher.toml"
    path.write_text(
        f'[ncbi]\nemail = "tests@example.org"\nbase_url = "{fake.base_url}"\nretries = 2\n'
        f'[store]\nurl = "{store_url}"\n'
        f'[mail]\nfrom = "watcher@example.org"\nmaildir = "{tmp_path / "mail"}"\n'
        # The daemon polls whatever is due every second or two, so it competes throughout.
        '[defaults]\ntimezone = "UTC"\npoll_every = "1s"\ndigest_cron = "0 7 * * mon"\n'
        f"{subs}"
    )
    return path


def command(cfg: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "watcher", "-c", str(cfg), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def only(names: list[str]) -> list[str]:
    return [a for n in names for a in ("--subscription", n)]


def polled(output: str) -> set[str]:
    return set(re.findall(r"^(s\d\d): \d+ found", output, re.M))


def skipped(output: str) -> set[str]:
    return set(re.findall(r"^(s\d\d): skipped, another watcher process", output, re.M))


@pytest.mark.slow
def test_four_processes_share_one_budget_and_never_search_a_subscription_twice_at_once(
    tmp_path, limited, store_url, daemons
) -> None:
    cfg = write(tmp_path, limited, store_url)
    # The store created and migrated once, as the first command on a new store does.
    check = subprocess.run(
        [sys.executable, "-m", "watcher", "-c", str(cfg), "check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    since = (ncbi_today(datetime.now(UTC)) - timedelta(days=800)).isoformat()
    procs = [
        command(cfg, "poll", *only(FIRST_POLL)),
        command(cfg, "poll", *only(SECOND_POLL)),
        command(cfg, "backfill", "--since", since, *only(BACKFILL)),
    ]
    # The daemon joins once the commands are under way (else it would take every subscription
    # before they start), and polls what they leave, and again each second, till they are done.
    until(lambda: limited.count() > 0, 60, lambda: "no command ever asked NCBI")
    daemon = Daemon(cfg)
    daemons.append(daemon)
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    until(lambda: "poll done" in daemon.log(), 60, daemon.log)
    assert daemon.stop() == 0, daemon.log()
    everything = "\n----\n".join([*outputs, daemon.log()])

    # No failed subscription, no 429, and never more than the limit in any second.
    assert [p.returncode for p in procs] == [0, 0, 0], everything
    assert "FAILED" not in everything and "poll failed" not in everything, everything
    assert "Traceback" not in everything, everything
    assert limited.too_many == 0, everything
    assert limited.peak(window=1.0) <= LIMIT * 1.05, everything

    # Each subscription both polls were asked for was polled by exactly one of them; the other
    # said who held it.
    first, second, backfill = outputs
    assert polled(first) | skipped(first) == set(FIRST_POLL), first
    assert polled(second) | skipped(second) == set(SECOND_POLL), second
    # Started together, each holding its subscriptions till it is done: none was searched by
    # both, and the one that found another holding it said so.
    assert not polled(first) & polled(second), everything
    # The backfill claims each subscription as it reaches it: one that a poll or the daemon
    # holds then is left, with a word; one whose poll has ended is backfilled (the past it
    # searches is no poll's). Never both.
    done = set(re.findall(r"^(s\d\d): \d+ papers in", backfill, re.M))
    left = set(re.findall(r"^(s\d\d): skipped, another watcher process", backfill, re.M))
    assert done | left == set(BACKFILL) and not done & left, backfill
