"""`watcher run` against the fake NCBI and a real SMTP server: the real process on a schedule
compressed to seconds through the config (poll_every = "1s", a 6-field cron with seconds) for
what needs a process (signals, locks, two instances); the daemon in this process on a clock the
test moves (tests/harness/driven.py) for what needs time to pass (a restart hours later)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.poll import ncbi_today

from .conftest import PG_ENV, _pg_schema_url, postgres_url, write_config
from .fakes.ncbi import FakeNCBI
from .fakes.records import synthetic
from .fakes.smtp import SmtpServer


class Daemon:
    def __init__(self, config: Path, *options: str, env: dict[str, str] | None = None) -> None:
        """`watcher [options] -c config run`, with `env` added to this process's environment."""
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", *options, "-c", str(config), "run"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 20) -> None:
        until(
            lambda: any(text in line for line in self.lines),
            timeout,
            lambda: f"{text!r} never logged:\n{self.log()}",
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def until(check: Callable[[], bool], timeout: float, message: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(message())


def more_digest_runs(daemons: list[Daemon], n: int, timeout: float = 30) -> None:
    """Wait until each of `daemons` has logged `n` more digest runs than it has so far."""

    def runs() -> list[int]:
        return [d.log().count("digest run ") for d in daemons]

    seen = runs()
    until(
        lambda: all(now >= before + n for now, before in zip(runs(), seen, strict=True)),
        timeout,
        lambda: "\n----\n".join(d.log() for d in daemons),
    )


def papers(fake: FakeNCBI, first: int, n: int, topic: str = "teplizumab") -> None:
    today = ncbi_today(datetime.now(UTC))
    fake.add(
        synthetic(first + i, f"{topic} paper {first + i}", edat=today, abstract=f"About {topic}.")
        for i in range(n)
    )


def config(
    tmp_path: Path,
    fake: FakeNCBI,
    smtp: SmtpServer,
    cron: str,
    *,
    store: str = "",
    recipients: str = '"alice@example.org", "bob@example.org"',
) -> Path:
    subs = f"""
[[subscription]]
name = "Anti-CD3"
query = "teplizumab"
recipients = [{recipients}]
"""
    extra = (
        f'[mail]\nfrom = "watcher@example.org"\n[mail.smtp]\nhost = "127.0.0.1"\n'
        f'port = {smtp.port}\nsecurity = "none"\ntimeout = 5\n'
    )
    if store:
        extra = f'[store]\nurl = "{store}"\n' + extra
    return write_config(
        tmp_path,
        fake.base_url,
        subs,
        extra=extra,
        defaults=f'poll_every = "1s"\ndigest_cron = "{cron}"\n',
    )


@pytest.mark.slow
def test_daemon_polls_mails_and_stops_cleanly(tmp_path, fake, smtp, daemons) -> None:
    papers(fake, 100, 3)
    cfg = config(tmp_path, fake, smtp, "*/2 * * * * *")
    d = Daemon(cfg)
    daemons.append(d)
    d.wait_for("watcher running")
    until(lambda: len(smtp.received) >= 2, 20, d.log)
    subjects = {r.message["Subject"] for r in smtp.received}
    assert subjects == {"PubMed Watcher: 3 new papers — Anti-CD3"}
    papers(fake, 200, 1)  # a paper arriving while it runs reaches the next digest
    until(lambda: len(smtp.received) >= 4, 20, d.log)
    assert smtp.received[-1].message["Subject"] == "PubMed Watcher: 1 new paper — Anti-CD3"
    status = subprocess.run(
        [sys.executable, "-m", "watcher", "-c", str(cfg), "status", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    info = json.loads(status.stdout)["daemon"]
    assert info["alive"] is True, info
    assert "poll" in info["next_runs"]
    assert d.stop() == 0
    log = d.log()
    assert "poll Anti-CD3: 3 found, 3 new matches" in log
    assert "digest <" in log and "sent to alice@example.org" in log
    assert "watcher stopped" in log and "Traceback" not in log
    after = json.loads(
        subprocess.run(
            [sys.executable, "-m", "watcher", "-c", str(cfg), "status", "--json"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    )["daemon"]
    assert after["alive"] is False and after["state"] == "stopped"
    assert len(smtp.received) == 4  # nothing sent twice


def test_restart_after_missed_digest_times_sends_exactly_one(
    tmp_path, fake, smtp, driven, caplog
) -> None:
    """Stopped across three of its hourly digest times, the daemon sends one catch-up digest when
    it starts again, not one per time missed; its next regular time finds nothing more to send."""
    caplog.set_level(logging.INFO, logger="watcher")
    papers(fake, 300, 2)
    t0 = datetime.now(UTC).replace(second=0, microsecond=0)
    minute = (t0 + timedelta(minutes=30)).minute
    cfg = config(tmp_path, fake, smtp, f"{minute} * * * *", recipients='"alice@example.org"')
    first = driven(cfg, t0)
    assert "poll" in first.advance(timedelta(0))
    assert "poll Anti-CD3: 2 found" in caplog.text
    first.stop()
    assert smtp.received == []
    # three digest times pass while nothing runs
    second = driven(cfg, t0 + timedelta(hours=3, minutes=10))
    assert caplog.text.count("one catch-up digest now") == 1
    assert second.advance(timedelta(0))[0] == f"catch-up {minute} * * * * UTC"
    assert len(smtp.received) == 1
    assert f"digest {minute} * * * * UTC" in second.advance(timedelta(hours=1))
    second.stop()
    assert len(smtp.received) == 1
    assert smtp.received[0].message["Subject"] == "PubMed Watcher: 2 new papers — Anti-CD3"


@pytest.mark.slow
def test_second_instance_on_the_same_sqlite_store_is_refused(tmp_path, fake, smtp, daemons) -> None:
    cfg = config(tmp_path, fake, smtp, "0 7 * * mon")
    first = Daemon(cfg)
    daemons.append(first)
    first.wait_for("watcher running")
    second = subprocess.run(
        [sys.executable, "-m", "watcher", "-c", str(cfg), "run"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 1
    assert f"is in use by another `watcher run` (pid {first.proc.pid})" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.proc.poll() is None
    assert first.stop() == 0


@pytest.mark.slow
def test_sighup_reloads_and_a_bad_config_is_refused(tmp_path, fake, smtp, daemons) -> None:
    papers(fake, 400, 1, "rituximab")
    cfg = config(tmp_path, fake, smtp, "0 7 * * mon")
    d = Daemon(cfg)
    daemons.append(d)
    d.wait_for("watcher running")
    good = cfg.read_text()
    cfg.write_text(good.replace("[[subscription]]", "[[subscriptions]]"))
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for("config reload refused")
    assert "did you mean 'subscription'" in d.log() and d.proc.poll() is None
    cfg.write_text(
        good + '\n[[subscription]]\nname = "Anti-CD20"\nquery = "rituximab"\n'
        'recipients = ["alice@example.org"]\n'
    )
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for("config reloaded: 2 subscriptions")
    d.wait_for("poll Anti-CD20: 1 found, 1 new matches")
    assert d.stop() == 0


@pytest.mark.slow
@pytest.mark.postgres
def test_two_instances_on_postgresql_never_send_a_digest_twice(
    tmp_path, fake, smtp, daemons
) -> None:
    base = postgres_url()
    if base is None:
        pytest.skip(f"needs {PG_ENV}; .ci/run sets it")
    papers(fake, 500, 5)
    schema = _pg_schema_url(base)
    url = next(schema)
    try:
        folders = [tmp_path / "a", tmp_path / "b"]
        for f in folders:
            f.mkdir()
        configs = [config(f, fake, smtp, "*/2 * * * * *", store=url) for f in folders]
        pair = [Daemon(c) for c in configs]
        daemons.extend(pair)
        until(lambda: len(smtp.received) >= 2, 30, lambda: pair[0].log() + pair[1].log())
        papers(fake, 600, 2)
        until(lambda: len(smtp.received) >= 4, 30, lambda: pair[0].log() + pair[1].log())
        more_digest_runs(pair, 2)  # several more digest times, in both processes
        assert [d.stop() for d in pair] == [0, 0], pair[0].log() + "\n----\n" + pair[1].log()
        ids = [r.message["Message-ID"] for r in smtp.received]
        assert len(ids) == len(set(ids)) == 4
        per_rcpt: dict[str, list[str]] = {}
        for r in smtp.received:
            per_rcpt.setdefault(r.rcpt_tos[0], []).append(r.message["Subject"])
        assert sorted(per_rcpt) == ["alice@example.org", "bob@example.org"]
        for subjects in per_rcpt.values():
            assert sorted(subjects) == [
                "PubMed Watcher: 2 new papers — Anti-CD3",
                "PubMed Watcher: 5 new papers — Anti-CD3",
            ]
    finally:
        schema.close()


@pytest.mark.slow
def test_sigterm_during_backoff_exits_at_once(tmp_path, smtp, daemons) -> None:
    from .fakes.smtp import free_port

    dead = f"http://127.0.0.1:{free_port()}/entrez/eutils/"
    cfg = write_config(
        tmp_path,
        dead,
        '[[subscription]]\nname = "x"\nquery = "y"\nrecipients = ["a@example.org"]\n',
        defaults='poll_every = "1s"\n',
    )
    cfg.write_text(cfg.read_text().replace("retries = 2", "retries = 8"))
    d = Daemon(cfg)
    daemons.append(d)
    d.wait_for("retry 2/8")
    started = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - started < 5
    assert "poll interrupted by shutdown" in d.log()


def test_catch_up_digest_carries_what_the_overdue_poll_finds(
    tmp_path, fake, smtp, driven, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="watcher")
    papers(fake, 700, 2)
    t0 = datetime.now(UTC).replace(second=0, microsecond=0)
    minute = (t0 + timedelta(minutes=30)).minute
    cfg = config(tmp_path, fake, smtp, f"{minute} * * * *", recipients='"alice@example.org"')
    # A daemon polls and mails at its digest time, then stops: the store holds its last poll and
    # last digest run.
    first = driven(cfg, t0)
    first.advance(timedelta(0))
    assert f"digest {minute} * * * * UTC" in first.advance(timedelta(minutes=30))
    first.stop()
    assert len(smtp.received) == 1
    papers(fake, 800, 3)  # published while the watcher is down
    d = driven(cfg, t0 + timedelta(hours=2))  # a digest time passed meanwhile
    assert "one catch-up digest now" in caplog.text
    caplog.clear()
    assert d.advance(timedelta(0))[0] == f"catch-up {minute} * * * * UTC"
    assert len(smtp.received) == 2
    assert smtp.received[1].message["Subject"] == "PubMed Watcher: 3 new papers — Anti-CD3"
    d.stop()
    lines = caplog.messages
    polled = next(i for i, line in enumerate(lines) if "poll Anti-CD3: 5 found, 3 new" in line)
    mailed = next(i for i, line in enumerate(lines) if "sent to alice@example.org" in line)
    assert polled < mailed, caplog.text


@pytest.mark.slow
def test_sighup_refuses_a_config_naming_an_unset_secret(tmp_path, fake, smtp, daemons) -> None:
    assert "WATCHER_TEST_UNSET_SECRET" not in os.environ
    cfg = config(tmp_path, fake, smtp, "0 7 * * mon")
    d = Daemon(cfg)
    daemons.append(d)
    d.wait_for("watcher running")
    cfg.write_text(
        cfg.read_text().replace("[ncbi]\n", '[ncbi]\napi_key_env = "WATCHER_TEST_UNSET_SECRET"\n')
    )
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for("config reload refused")
    assert "ncbi.api_key_env: environment variable WATCHER_TEST_UNSET_SECRET is not set" in d.log()
    assert d.proc.poll() is None
    assert d.stop() == 0
