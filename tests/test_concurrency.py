"""Two processes on one store, whatever their commands, never mail a recipient's papers twice:
real `python -m watcher` processes against a real SMTP server that is slow to answer DATA."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.config import load_config
from watcher.poll import ncbi_today, poll
from watcher.store import Store
from watcher.wiring import sources_for

from .conftest import PG_ENV, _pg_schema_url, make_client, postgres_url
from .fakes.ncbi import FakeNCBI
from .fakes.records import synthetic
from .fakes.smtp import SmtpServer
from .test_daemon import Daemon, config, more_digest_runs, until

RECIPIENTS = ("alice@example.org", "bob@example.org")


@pytest.fixture
def slow_smtp() -> Iterator[SmtpServer]:
    """Slow to answer DATA, and the first DATA waits until the test releases it: the second
    process then runs entirely while the first is mid-send, however loaded the machine."""
    server = SmtpServer().start()
    server.handler.data_delay = (0.5, 1.0)
    server.handler.hold = {1}
    yield server
    server.handler.release.set()
    server.stop()


def polled(tmp_path: Path, fake: FakeNCBI, smtp: SmtpServer, store_url: str, cron: str) -> Path:
    """A config whose store already holds five papers due to both recipients."""
    today = ncbi_today(datetime.now(UTC))
    fake.add(
        synthetic(700 + i, f"teplizumab paper {700 + i}", edat=today, abstract="About it.")
        for i in range(5)
    )
    cfg = config(tmp_path, fake, smtp, cron, store=store_url)
    # The held DATA must not time out the client while the other process runs.
    cfg.write_text(cfg.read_text().replace("timeout = 5\n", "timeout = 60\n"))
    loaded = load_config(cfg)
    store = Store.open(loaded.store_url)
    now = datetime.now(UTC)
    store.polls.sync(loaded.subscriptions, now - timedelta(minutes=1))
    assert not poll(loaded, store, sources_for(make_client(fake.base_url), loaded.ncbi), now).failed
    store.close()
    return cfg


def digest_process(cfg: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "watcher", "-c", str(cfg), "digest"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def pmids_mailed(smtp: SmtpServer) -> dict[str, list[int]]:
    """Recipient → every PMID in the messages they received, repeats included."""
    out: dict[str, list[int]] = {r: [] for r in RECIPIENTS}
    for r in smtp.received:
        body = r.message.get_body(("plain",))
        assert body is not None
        found = re.findall(r"pubmed\.ncbi\.nlm\.nih\.gov/(\d+)/", body.get_content())
        out[r.rcpt_tos[0]].extend(int(p) for p in dict.fromkeys(found))
    return {r: sorted(p) for r, p in out.items()}


@pytest.mark.slow
def test_two_digest_commands_at_once_mail_each_paper_once(
    tmp_path, fake, slow_smtp, store_url
) -> None:
    cfg = polled(tmp_path, fake, slow_smtp, store_url, "0 7 * * mon")
    first = digest_process(cfg)
    # The second runs while the first waits on the server's answer to its first DATA.
    until(lambda: slow_smtp.handler.data_started >= 1, 30, lambda: "the first never sent")
    second = digest_process(cfg)
    second_out = second.communicate(timeout=60)[0]
    slow_smtp.handler.release.set()
    outputs = [first.communicate(timeout=60)[0], second_out]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    mailed = pmids_mailed(slow_smtp)
    assert mailed == {r: [700, 701, 702, 703, 704] for r in RECIPIENTS}, outputs
    ids = [r.message["Message-ID"] for r in slow_smtp.received]
    assert len(ids) == len(set(ids)) == 2
    # The one that found a recipient taken says so, and why.
    assert "skipped: another watcher process" in outputs[1], outputs
    assert "Traceback" not in "".join(outputs)


@pytest.mark.slow
def test_digest_command_beside_a_sending_daemon_mails_each_paper_once(
    tmp_path, fake, slow_smtp, daemons
) -> None:
    cfg = polled(tmp_path, fake, slow_smtp, f"sqlite:///{tmp_path / 'store.db'}", "*/2 * * * * *")
    d = Daemon(cfg)
    daemons.append(d)
    # The daemon has recorded a pending digest and waits on the server's answer to DATA...
    until(lambda: slow_smtp.handler.data_started >= 1, 30, d.log)
    # ...when someone runs `watcher digest` by hand.
    by_hand = digest_process(cfg)
    out = by_hand.communicate(timeout=60)[0]
    slow_smtp.handler.release.set()
    assert by_hand.returncode == 0, out
    until(lambda: len(slow_smtp.received) >= 2, 30, d.log)
    more_digest_runs([d], 2)  # more digest times pass in the daemon: nothing is left to send
    assert d.stop() == 0, d.log()
    mailed = pmids_mailed(slow_smtp)
    assert mailed == {r: [700, 701, 702, 703, 704] for r in RECIPIENTS}, out + d.log()
    assert "skipped: another watcher process (pid " in out, out
    assert "Traceback" not in out + d.log()


def test_a_held_recipient_lock_is_refused_to_a_second_store(store_url: str) -> None:
    first, second = Store.open(store_url), Store.open(store_url)
    try:
        with first.advisory_locks(["digest:a@example.org", "poll:x"]) as held:
            assert held == {"digest:a@example.org", "poll:x"}
            with second.advisory_locks(["digest:a@example.org", "poll:y"]) as other:
                assert other == {"poll:y"}
        with second.advisory_locks(["digest:a@example.org"]) as other:
            assert other == {"digest:a@example.org"}  # released with the block
    finally:
        first.close()
        second.close()


@pytest.mark.postgres
def test_stores_in_two_schemas_of_one_server_never_share_a_lock() -> None:
    base = postgres_url()
    if base is None:
        pytest.skip(f"needs {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    one_url, other_url = _pg_schema_url(base), _pg_schema_url(base)
    one, other = Store.open(next(one_url)), Store.open(next(other_url))
    try:
        with one.advisory_locks(["digest:a@example.org"]) as held:
            assert held == {"digest:a@example.org"}
            with other.advisory_locks(["digest:a@example.org"]) as theirs:
                assert theirs == {"digest:a@example.org"}  # another store's reader
    finally:
        one.close()
        other.close()
        for gen in (one_url, other_url):
            gen.close()  # drops the schema
