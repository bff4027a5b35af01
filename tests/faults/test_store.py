"""Fault matrix, the store: a SQLite file another process keeps locked, a full disk, a PostgreSQL
server that drops the watcher's connections mid-poll or mid-digest. Each cell polls three papers
for two readers and mails them under the fault, then after it; every paper must reach every
reader exactly once, and the user must have seen an exit code and one clear line, no traceback.

The faults strike at chosen moments through hooks: the fake NCBI's before an efetch is answered
(the poll is then between its search and its writes), the SMTP server's when DATA arrives (the
digest is recorded, its sending not yet)."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Pool, create_engine, event, make_url, text

from watcher.errors import ConfigError
from watcher.store import Store

from ..conftest import PG_ENV, _pg_schema_url, postgres_url
from ..fakes.ncbi import FakeNCBI
from ..fakes.smtp import SmtpServer, free_port
from ..test_daemon import Daemon, until
from ._mail_store import (
    READERS,
    Run,
    Watcher,
    assert_each_paper_once,
    assert_no_traceback,
    in_maildir,
    over_smtp,
)

# Left out of the quick run (`pytest -m "not slow"`): locks, full disks, database restarts.
pytestmark = pytest.mark.slow


def smtp_section(server: SmtpServer) -> str:
    return (
        f'[mail.smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\ntimeout = 10\n'
    )


def once(action: Callable[[], None]) -> Callable[..., None]:
    """A hook that acts on its first call only."""
    done = threading.Event()

    def hook(*_: Any) -> None:
        if not done.is_set():
            done.set()
            action()

    return hook


def at_efetch(action: Callable[[], None]) -> Callable[[str], None]:
    """A fake-NCBI hook acting once, before the first efetch is answered."""
    act = once(action)

    def hook(endpoint: str) -> None:
        if endpoint == "efetch":
            act()

    return hook


class Locker:
    """Another process's connection to the SQLite store holding its write lock (BEGIN
    EXCLUSIVE; in WAL mode readers go on, writers wait), for as long as a test says."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.held = threading.Event()

    def hold(self) -> None:
        self.conn.execute("BEGIN EXCLUSIVE")
        self.held.set()

    def hold_for(self, seconds: float) -> None:
        self.hold()
        threading.Timer(seconds, self.release).start()

    def release(self) -> None:
        if self.conn.in_transaction:
            self.conn.rollback()

    def close(self) -> None:
        self.release()
        self.conn.close()


@pytest.fixture
def locker(tmp_path: Path) -> Iterator[Callable[[], Locker]]:
    made: list[Locker] = []

    def make() -> Locker:
        made.append(Locker(tmp_path / "store.db"))
        return made[-1]

    yield make
    for lk in made:
        lk.close()


def delivered(w: Watcher, smtp: SmtpServer | None) -> None:
    """The fault is over: a digest run mails what is owed, and each paper arrived once."""
    run = w.cli("digest")
    assert run.code == 0 and "0 still pending" in run.out, run
    assert w.cli("digest").out.startswith("0 digests sent")
    assert_each_paper_once(over_smtp(smtp.received) if smtp else in_maildir(w.maildir))


def one_error_line(run: Run, *expected: str) -> str:
    """The command failed with exit 1 and said why in one `watcher:` line holding `expected`."""
    assert run.code == 1, run
    assert_no_traceback(run)
    (line,) = [x for x in run.err.splitlines() if x.startswith("watcher: ")]
    for part in expected:
        assert part in line, run
    return line


# SQLite: the database locked by another process


def test_sqlite_locked_mid_poll_and_mid_send_for_less_than_the_busy_timeout_is_waited_out(
    tmp_path: Path, fake: FakeNCBI, smtp: SmtpServer, locker: Callable[[], Locker]
) -> None:
    w = Watcher.make(tmp_path, fake, smtp=smtp_section(smtp))
    assert w.cli("check").code == 0  # the store exists before another process opens it
    other = locker()
    fake.on_request = at_efetch(lambda: other.hold_for(0.5))
    run = w.cli("poll")
    assert other.held.is_set()
    assert run.code == 0 and "Anti-CD3: 3 found, 3 new" in run.out, run
    # Locked again while the server takes the first digest: recording it as sent waits.
    again = locker()
    smtp.handler.on_data = once(lambda: again.hold_for(0.5))
    run = w.cli("digest")
    assert again.held.is_set()
    assert run.code == 0 and run.out.startswith("2 digests sent"), run
    delivered(w, smtp)


def test_sqlite_locked_past_the_busy_timeout_fails_the_poll_clearly_and_it_is_redone(
    tmp_path: Path, fake: FakeNCBI, locker: Callable[[], Locker]
) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}?timeout=0.2"  # the wait, shortened for the test
    w = Watcher.make(tmp_path, fake, store_url=store)
    assert w.cli("check").code == 0
    other = locker()
    fake.on_request = at_efetch(other.hold)
    one_error_line(w.cli("poll"), "database is locked: another process", "nothing is lost")
    other.release()
    assert w.awaiting() == {r: 0 for r in READERS}  # nothing half-recorded
    run = w.cli("poll")
    assert run.code == 0 and "Anti-CD3: 3 found, 3 new" in run.out, run
    delivered(w, None)


def test_sqlite_locked_past_the_busy_timeout_fails_the_digest_clearly_and_sends_nothing(
    tmp_path: Path, fake: FakeNCBI, smtp: SmtpServer, locker: Callable[[], Locker]
) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}?timeout=0.2"
    w = Watcher.make(tmp_path, fake, store_url=store, smtp=smtp_section(smtp))
    assert w.cli("poll").code == 0
    other = locker()
    other.hold()
    one_error_line(w.cli("digest"), "database is locked: another process", "nothing is lost")
    assert smtp.received == [] and smtp.handler.mails_started == 0
    other.release()
    assert w.awaiting() == {r: 3 for r in READERS}
    delivered(w, smtp)


def test_a_sqlite_busy_timeout_that_is_not_seconds_is_a_config_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}?timeout=soon"
    with pytest.raises(ConfigError, match=r"store\.url: timeout='soon' is not a number of seconds"):
        Store.open(url)


def test_sqlite_locked_past_the_busy_timeout_after_the_server_took_a_digest_resends_it_once(
    tmp_path: Path, fake: FakeNCBI, smtp: SmtpServer, locker: Callable[[], Locker]
) -> None:
    """The one window no store can close: the server has the message, the store cannot record
    it. The digest stays pending and goes again, the same recorded message with the same
    Message-ID (which lets a mail client or a list server drop the copy); nothing is lost."""
    store = f"sqlite:///{tmp_path / 'store.db'}?timeout=0.2"
    w = Watcher.make(tmp_path, fake, store_url=store, smtp=smtp_section(smtp))
    assert w.cli("poll").code == 0
    other = locker()
    smtp.handler.on_data = once(other.hold)  # alice's DATA: her message is accepted, then…
    one_error_line(w.cli("digest"), "database is locked: another process", "nothing is lost")
    other.release()
    assert [r.rcpt_tos for r in smtp.received] == [["alice@example.org"]]
    run = w.cli("digest")
    assert run.code == 0 and run.out.startswith("2 digests sent (1 retried)"), run
    first, again, bob = smtp.received
    assert again.message["Message-ID"] == first.message["Message-ID"]
    assert again.data == first.data
    assert_each_paper_once(over_smtp([again, bob]))
    assert w.cli("digest").out.startswith("0 digests sent")


# SQLite: the disk full


@pytest.fixture
def full_disk() -> Iterator[threading.Event]:
    """While the event is set, every SQLite connection the pool hands out may not grow its
    database by a page: SQLite's own SQLITE_FULL, "database or disk is full", as on a full
    disk (max_page_count is a per-connection setting, so it is set at each checkout)."""
    full = threading.Event()

    def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if isinstance(dbapi_conn, sqlite3.Connection):
            pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
            limit = pages if full.is_set() else 1073741823
            dbapi_conn.execute(f"PRAGMA max_page_count = {limit}")

    event.listen(Pool, "checkout", checkout)
    yield full
    event.remove(Pool, "checkout", checkout)


def test_sqlite_disk_full_mid_poll_fails_clearly_and_the_poll_is_redone(
    tmp_path: Path, fake: FakeNCBI, full_disk: threading.Event
) -> None:
    w = Watcher.make(tmp_path, fake)
    fake.on_request = at_efetch(full_disk.set)
    one_error_line(w.cli("poll"), "database or disk is full: free some", "nothing is lost")
    full_disk.clear()
    assert w.awaiting() == {r: 0 for r in READERS}
    run = w.cli("poll")
    assert run.code == 0 and "Anti-CD3: 3 found, 3 new" in run.out, run
    delivered(w, None)


def test_sqlite_disk_full_at_digest_time_sends_nothing_then_delivers_once(
    tmp_path: Path, fake: FakeNCBI, smtp: SmtpServer, full_disk: threading.Event
) -> None:
    w = Watcher.make(tmp_path, fake, smtp=smtp_section(smtp))
    assert w.cli("poll").code == 0
    full_disk.set()
    one_error_line(w.cli("digest"), "database or disk is full", "nothing is lost")
    assert smtp.received == []
    full_disk.clear()
    assert w.awaiting() == {r: 3 for r in READERS}
    delivered(w, smtp)


# PostgreSQL: the server restarted (its backends terminated) mid-poll and mid-digest


@pytest.fixture
def pg() -> Iterator[tuple[str, Callable[[], int]]]:
    """A PostgreSQL store URL (a schema of its own) whose connections carry a name of their
    own, and a function that terminates them all, as a server restart would; the shared server
    itself is never restarted."""
    base = postgres_url()
    if base is None:
        pytest.skip(f"needs {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    schema = _pg_schema_url(base)
    store_url = next(schema)
    name = "faults-" + store_url.rsplit("search_path%3D", 1)[1]
    admin = create_engine(store_url, isolation_level="AUTOCOMMIT")

    def restart() -> int:
        with admin.connect() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": name},
            ).scalar()
        return int(killed or 0)

    yield f"{store_url}&application_name={name}", restart
    admin.dispose()
    schema.close()  # drops the schema


@pytest.mark.postgres
def test_postgresql_restarted_mid_poll_loses_and_repeats_nothing(
    tmp_path: Path, fake: FakeNCBI, pg: tuple[str, Callable[[], int]]
) -> None:
    url, restart = pg
    w = Watcher.make(tmp_path, fake, store_url=url, ncbi="batch_size = 1")
    killed: list[int] = []
    # Between efetch batches: the first batch is stored, two are to come.
    fake.on_request = at_efetch(lambda: killed.append(restart()))
    run = w.cli("poll")
    assert killed and killed[0] >= 1
    assert_no_traceback(run)
    # The pool tests each connection before handing it out (pool_pre_ping) and replaces the
    # dead ones: the poll goes on as if nothing happened.
    assert run.code == 0 and "Anti-CD3: 3 found, 3 new" in run.out, run
    assert fake.count("efetch") == 3
    delivered(w, None)


@pytest.mark.postgres
def test_postgresql_restarted_while_the_server_takes_a_digest_repeats_nothing(
    tmp_path: Path, fake: FakeNCBI, smtp: SmtpServer, pg: tuple[str, Callable[[], int]]
) -> None:
    url, restart = pg
    w = Watcher.make(tmp_path, fake, store_url=url, smtp=smtp_section(smtp))
    assert w.cli("poll").code == 0
    killed: list[int] = []
    # While the first DATA is in flight, the connection holding that reader's lock dies too.
    smtp.handler.on_data = once(lambda: killed.append(restart()))
    run = w.cli("digest")
    assert killed and killed[0] >= 1
    assert_no_traceback(run)
    assert run.code == 0 and run.out.startswith("2 digests sent"), run
    first = smtp.received[0].rcpt_tos[0]  # whichever reader was mailed first
    assert f"connection holding digest:{first} was lost" in run.err, run
    delivered(w, smtp)


@pytest.mark.postgres
def test_postgresql_restarted_mid_poll_of_the_daemon_loses_and_repeats_nothing(
    tmp_path: Path,
    fake: FakeNCBI,
    smtp: SmtpServer,
    pg: tuple[str, Callable[[], int]],
    daemons: list[Daemon],
) -> None:
    url, restart = pg
    w = Watcher.make(tmp_path, fake, store_url=url, smtp=smtp_section(smtp))
    # A schedule compressed to seconds: poll every second, mail every two.
    w.config.write_text(
        w.config.read_text().replace(
            "[defaults]\n", '[defaults]\npoll_every = "1s"\ndigest_cron = "*/2 * * * * *"\n'
        )
    )
    killed: list[int] = []
    # The daemon holds the subscription's lock on a connection of its own through the poll.
    fake.on_request = at_efetch(lambda: killed.append(restart()))
    d = Daemon(w.config)
    daemons.append(d)
    until(lambda: len(smtp.received) >= 2, 30, d.log)
    assert d.stop() == 0, d.log()
    assert killed and killed[0] >= 1
    assert "connection holding poll:Anti-CD3 was lost" in d.log()
    assert "Traceback" not in d.log() and " ERROR " not in d.log(), d.log()
    delivered(w, smtp)


class PgLocker:
    """Another session holding ACCESS EXCLUSIVE locks on some of the store's tables (a DBA's
    LOCK TABLE, a long migration): even reads of them wait."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        self.conn = self.engine.connect()
        self.held = threading.Event()

    def hold(self, *tables: str) -> None:
        self.conn.execute(text(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE"))
        self.held.set()

    def release(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()


@pytest.mark.postgres
def test_postgresql_tables_locked_are_waited_out_briefly_and_past_lock_timeout_fail_clearly(
    tmp_path: Path, fake: FakeNCBI, smtp: SmtpServer, pg: tuple[str, Callable[[], int]]
) -> None:
    url, _ = pg
    w = Watcher.make(tmp_path, fake, store_url=url, smtp=smtp_section(smtp))
    assert w.cli("check").code == 0
    other = PgLocker(url)
    try:
        # Locked for half a second mid-poll: the writes wait (default lock_timeout 10 s).
        timer = threading.Timer(0.5, other.release)
        fake.on_request = at_efetch(lambda: (other.hold("articles", "matches"), timer.start()))
        run = w.cli("poll")
        timer.join()
        assert other.held.is_set()
        assert run.code == 0 and "Anti-CD3: 3 found, 3 new" in run.out, run
        # Locked for good at digest time, with the wait shortened in the URL for the test.
        short = w.config.read_text().replace(
            "options=-csearch_path", "options=-clock_timeout%3D300%20-csearch_path"
        )
        w.config.write_text(short)
        other.hold("digests")
        line = one_error_line(w.cli("digest"), "lock timeout: another session", "nothing is lost")
        assert "LINE" not in line  # the hint, not the statement's text
        assert smtp.received == [] and smtp.handler.mails_started == 0
        other.release()
    finally:
        other.close()
    delivered(w, smtp)


@pytest.mark.postgres
def test_postgresql_connections_wait_for_a_lock_ten_seconds_not_forever(
    pg: tuple[str, Callable[[], int]],
) -> None:
    store = Store.open(pg[0])
    try:
        for _ in range(2):  # on a new connection, and after the pool's reset of a used one
            with store.engine.connect() as conn:
                assert conn.execute(text("SHOW lock_timeout")).scalar() == "10s"
    finally:
        store.close()


class Relay:
    """A TCP relay to the PostgreSQL server that a test can take down (every connection through
    it cut, new ones refused) and bring back on the same port: a server restart as the watcher
    sees it, without touching the server others share."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        assert self._listener is not None
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        self._listener.close()
        with self._lock:
            cut, self._open = self._open, []
        for s in cut:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.mark.postgres
def test_postgresql_down_for_two_seconds_mid_poll_of_the_daemon_loses_and_repeats_nothing(
    tmp_path: Path,
    fake: FakeNCBI,
    smtp: SmtpServer,
    pg: tuple[str, Callable[[], int]],
    daemons: list[Daemon],
) -> None:
    url, _ = pg
    real = make_url(url)
    relay = Relay((real.host or "127.0.0.1", real.port or 5432))
    through = real.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    w = Watcher.make(tmp_path, fake, store_url=through, smtp=smtp_section(smtp))
    w.config.write_text(
        w.config.read_text().replace(
            "[defaults]\n", '[defaults]\npoll_every = "1s"\ndigest_cron = "*/2 * * * * *"\n'
        )
    )
    back = threading.Timer(2.0, relay.up)

    def restart() -> None:
        relay.down()
        back.start()

    # The server goes away between the search and the fetch, and refuses connections for two
    # seconds, through the next poll's start; then it is back.
    fake.on_request = at_efetch(restart)
    d = Daemon(w.config)
    daemons.append(d)
    until(lambda: len(smtp.received) >= 2, 30, d.log)
    assert d.stop() == 0, d.log()
    back.join()
    assert "Traceback" not in d.log(), d.log()
    assert "poll failed: store error:" in d.log(), d.log()
    delivered(w, smtp)
    relay.down()


@pytest.mark.postgres
def test_postgresql_down_mid_poll_command_fails_clearly_and_the_poll_is_redone(
    tmp_path: Path, fake: FakeNCBI, pg: tuple[str, Callable[[], int]]
) -> None:
    real = make_url(pg[0])
    relay = Relay((real.host or "127.0.0.1", real.port or 5432))
    through = real.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    w = Watcher.make(tmp_path, fake, store_url=through)
    fake.on_request = at_efetch(relay.down)  # and it stays down until the command has ended
    one_error_line(w.cli("poll"), "cannot be reached: down, or restarting?", "nothing is lost")
    relay.up()
    assert w.awaiting() == {r: 0 for r in READERS}
    run = w.cli("poll")
    assert run.code == 0 and "Anti-CD3: 3 found, 3 new" in run.out, run
    delivered(w, None)
    relay.down()
