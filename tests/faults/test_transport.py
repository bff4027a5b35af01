"""Fault matrix, mail transports: each cell polls three papers for two readers, mails under the
fault, clears it and mails again; every paper must reach every reader exactly once, and the user
must have seen an exit code, one clear line per undelivered digest, and `watcher status` naming
the pending digest with the server's last answer, never a traceback.

SMTP runs against a real server on loopback (tests/fakes/smtp.py); the maildir's disk faults are
a tiny or read-only tmpfs mounted in a private mount namespace around one `watcher` process."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from ..fakes.ncbi import FakeNCBI
from ..fakes.smtp import SmtpServer
from ._mail_store import (
    READERS,
    Run,
    Watcher,
    assert_each_paper_once,
    assert_no_traceback,
    in_maildir,
    namespaces_work,
    not_delivered,
    over_smtp,
)

# Left out of the quick run (`pytest -m "not slow"`): each cell polls, mails and retries.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def servers() -> Iterator[list[SmtpServer]]:
    started: list[SmtpServer] = []
    yield started
    for s in started:
        s.stop()


def tls_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("localhost", "127.0.0.1"))).configure_cert(ctx)
    return ctx


def smtp_section(port: int, security: str = "none", extra: str = "") -> str:
    return (
        f'[mail.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "{security}"\n'
        f"timeout = 5\n{extra}"
    )


def polled(tmp_path: Path, fake: FakeNCBI, smtp: str) -> Watcher:
    w = Watcher.make(tmp_path, fake, smtp=smtp)
    run = w.cli("poll")
    assert run.code == 0 and "Anti-CD3: 3 found, 3 new" in run.out, run
    return w


def failed_digest(w: Watcher, expect: str, *, readers: tuple[str, ...] = READERS) -> Run:
    """`watcher digest` under the fault: exit 1, for each of `readers` one line naming `expect`,
    and `status` showing each such reader's digest pending with that answer (nothing lost)."""
    run = w.cli("digest")
    assert run.code == 1, run
    assert_no_traceback(run)
    lines = not_delivered(run)
    assert sorted(lines) == sorted(readers), run
    assert all(expect in line for line in lines.values()), run
    digests = w.digests()
    for rcpt in readers:
        (d,) = digests[rcpt]
        assert (d["state"], d["attempts"], d["papers"]) == ("pending", 1, 3), d
        assert expect in d["last_error"], d
    return run


def cleared_digest(w: Watcher) -> None:
    """After the fault: `watcher digest` exits 0, nothing is left pending, a further run sends
    nothing."""
    run = w.cli("digest")
    assert run.code == 0 and "0 still pending" in run.out, run
    assert all(d == [] for d in w.digests().values())
    again = w.cli("digest")
    assert again.code == 0 and again.out.startswith("0 digests sent"), again


@dataclass(frozen=True)
class Cell:
    """An SMTP fault: how to cause it, the server's answer the user must see, which readers it
    hits, and how it clears."""

    cause: Callable[[SmtpServer], None]
    answer: str
    readers: tuple[str, ...]
    clear: Callable[[SmtpServer], None]
    started: bool = True  # whether the server is up before the fault


def _greet_421(s: SmtpServer) -> None:
    s.handler.greetings += ["421 4.3.2 Service not available, closing channel"] * 2


def _rcpt_451(s: SmtpServer) -> None:
    s.handler.reject["alice@example.org"] = "451 4.7.1 Greylisted, try again later"


def _data_552(s: SmtpServer) -> None:
    s.handler.data_failures.append("552 5.3.4 Message size exceeds fixed limit")


def _drop(s: SmtpServer) -> None:
    s.handler.drop_next_data = 1


def _nothing(s: SmtpServer) -> None:
    pass


def _start(s: SmtpServer) -> None:
    s.start()


def _unreject(s: SmtpServer) -> None:
    s.handler.reject.clear()


CELLS = {
    "connection-refused": Cell(_nothing, "Connection refused", READERS, _start, started=False),
    "421-on-connect": Cell(_greet_421, "421 4.3.2 Service not available", READERS, _nothing),
    "451-on-rcpt": Cell(_rcpt_451, "451 4.7.1 Greylisted", ("alice@example.org",), _unreject),
    "drop-mid-data": Cell(_drop, "SMTP connection lost", ("alice@example.org",), _nothing),
}


@pytest.mark.parametrize("cell", list(CELLS), ids=list(CELLS))
def test_smtp_transient_fault_keeps_the_digest_pending_then_delivers_once(
    tmp_path: Path, fake: FakeNCBI, servers: list[SmtpServer], cell: str
) -> None:
    c = CELLS[cell]
    server = SmtpServer()
    if c.started:
        servers.append(server.start())
    w = polled(tmp_path, fake, smtp_section(server.port))
    c.cause(server)
    failed_digest(w, c.answer, readers=c.readers)
    c.clear(server)
    if not c.started:
        servers.append(server)  # started by the clearing
    cleared_digest(w)
    assert_each_paper_once(over_smtp(server.received))
    # A retried digest is the recorded message: its Message-ID is the one first tried.
    assert len(server.received) == 2


def test_smtp_552_on_data_marks_the_digest_refused_and_its_papers_go_in_the_next(
    tmp_path: Path, fake: FakeNCBI, servers: list[SmtpServer]
) -> None:
    server = SmtpServer().start()
    servers.append(server)
    w = polled(tmp_path, fake, smtp_section(server.port))
    _data_552(server)  # alice's DATA: permanent, so not retried as such
    run = w.cli("digest")
    assert run.code == 1 and list(not_delivered(run)) == ["alice@example.org"], run
    assert_no_traceback(run)
    (d,) = w.digests()["alice@example.org"]
    assert d["state"] == "failed" and d["last_error"].startswith("552 5.3.4"), d
    assert w.awaiting()["alice@example.org"] == 3  # not lost: still owed to her
    assert "FAILED (refused; its papers go in the next digest)" in w.cli("status").out
    cleared_digest(w)
    assert_each_paper_once(over_smtp(server.received))


def test_smtp_authentication_failure_keeps_the_digest_pending_until_the_password_is_right(
    tmp_path: Path,
    fake: FakeNCBI,
    servers: list[SmtpServer],
    ca: trustme.CA,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = SmtpServer(starttls=tls_context(ca), credentials=("watcher", "s3cret")).start()
    servers.append(server)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    extra = f'username = "watcher"\npassword_env = "FAULTS_SMTP_PW"\nca_file = "{ca_file}"\n'
    w = polled(tmp_path, fake, smtp_section(server.port, "starttls", extra))
    monkeypatch.setenv("FAULTS_SMTP_PW", "wrong-password")
    run = failed_digest(w, "SMTP login refused: 535")
    assert server.handler.mails_started == 0
    assert "wrong-password" not in run.text + str(w.status())
    monkeypatch.setenv("FAULTS_SMTP_PW", "s3cret")
    cleared_digest(w)
    assert_each_paper_once(over_smtp(server.received))


CERTS = {
    # (the server's certificate: CA, names), whether the config trusts the test CA
    "untrusted-ca": (True, ("localhost", "127.0.0.1"), False),
    "wrong-hostname": (False, ("mail.example.net",), True),
}


@pytest.mark.parametrize("security", ["starttls", "ssl"])
@pytest.mark.parametrize("cert", list(CERTS))
def test_a_certificate_that_does_not_verify_fails_closed(
    tmp_path: Path,
    fake: FakeNCBI,
    servers: list[SmtpServer],
    ca: trustme.CA,
    security: str,
    cert: str,
) -> None:
    other_ca, names, trusted = CERTS[cert]
    served_by = trustme.CA() if other_ca else ca
    ctx = tls_context(served_by, *names)
    server = SmtpServer(**{"implicit_tls" if security == "ssl" else "starttls": ctx}).start()
    servers.append(server)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    extra = f'ca_file = "{ca_file}"\n' if trusted else ""
    w = polled(tmp_path, fake, smtp_section(server.port, security, extra))
    run = failed_digest(w, "TLS handshake with 127.0.0.1")
    assert "nothing was sent: CERTIFICATE_VERIFY_FAILED" in run.out, run
    # The CA hint only where a CA is what is missing.
    assert ("mail.smtp.ca_file" in run.out) == (cert == "untrusted-ca"), run
    # Fail closed: no sender was ever named, so nothing went out in clear.
    assert server.handler.mails_started == 0 and server.received == []
    # The operator installs a certificate that verifies (same port, same config).
    fixed = SmtpServer(
        **{"implicit_tls" if security == "ssl" else "starttls": tls_context(ca)},
        port=server.port,
    )
    server.stop()
    servers.remove(server)
    servers.append(fixed.start())
    w.config.write_text(
        w.config.read_text().replace("timeout = 5\n", f'timeout = 5\nca_file = "{ca_file}"\n')
        if not trusted
        else w.config.read_text()
    )
    cleared_digest(w)
    assert_each_paper_once(over_smtp(fixed.received))


def test_a_server_that_does_not_offer_starttls_is_refused_not_used_in_clear(
    tmp_path: Path, fake: FakeNCBI, servers: list[SmtpServer], ca: trustme.CA
) -> None:
    plain = SmtpServer().start()  # or a man in the middle stripping STARTTLS from EHLO
    servers.append(plain)
    w = polled(tmp_path, fake, smtp_section(plain.port, "starttls"))
    failed_digest(w, "does not offer STARTTLS")
    assert plain.handler.mails_started == 0 and plain.received == []
    fixed = SmtpServer(starttls=tls_context(ca), port=plain.port)
    plain.stop()
    servers.remove(plain)
    servers.append(fixed.start())
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    w.config.write_text(
        w.config.read_text().replace("timeout = 5\n", f'timeout = 5\nca_file = "{ca_file}"\n')
    )
    cleared_digest(w)
    assert_each_paper_once(over_smtp(fixed.received))


def test_implicit_tls_to_a_plain_server_fails_closed(
    tmp_path: Path, fake: FakeNCBI, servers: list[SmtpServer]
) -> None:
    plain = SmtpServer().start()
    servers.append(plain)
    w = polled(tmp_path, fake, smtp_section(plain.port, "ssl"))
    failed_digest(w, "TLS handshake with 127.0.0.1")
    assert 'security = "ssl" is implicit TLS' in w.cli("status").out
    assert plain.handler.mails_started == 0 and plain.received == []
    # The user corrects the security setting for that port.
    w.config.write_text(w.config.read_text().replace('security = "ssl"', 'security = "none"'))
    cleared_digest(w)
    assert_each_paper_once(over_smtp(plain.received))


def test_maildir_blocked_by_a_file_keeps_the_papers_owed_then_delivers_once(
    tmp_path: Path, fake: FakeNCBI
) -> None:
    w = polled(tmp_path, fake, "")
    w.maildir.mkdir()
    (w.maildir / "new").write_text("not a folder")
    run = w.cli("digest")
    assert run.code == 1 and "Traceback" not in run.text, run
    (line,) = [x for x in run.err.splitlines() if x.startswith("watcher: ")]
    assert "cannot use" in line and "a file stands where a folder is needed" in line, run
    assert w.awaiting() == {r: 3 for r in READERS}
    (w.maildir / "new").unlink()
    cleared_digest(w)
    assert_each_paper_once(in_maildir(w.maildir))


needs_namespaces = pytest.mark.skipif(
    not namespaces_work(), reason="needs unshare -Urm and a tmpfs mount (user namespaces)"
)


@needs_namespaces
def test_maildir_on_a_full_disk_keeps_the_digest_pending_then_delivers_once(
    tmp_path: Path, fake: FakeNCBI
) -> None:
    w = polled(tmp_path, fake, "")
    w.maildir.mkdir()
    # One page of tmpfs: the folders fit, a digest does not (ENOSPC mid-write).
    run = w.cli_in_namespace('mount -t tmpfs -o size=4k tmpfs "$1/mail"', "digest")
    assert run.code == 1, run
    assert_no_traceback(run)
    lines = not_delivered(run)
    assert sorted(lines) == sorted(READERS), run
    assert all("No space left on device" in line for line in lines.values()), run
    for rcpt, (d,) in w.digests().items():
        assert d["state"] == "pending" and "No space left on device" in d["last_error"], rcpt
    assert list(w.maildir.iterdir()) == []  # the full disk was the tmpfs, gone with it
    cleared_digest(w)
    assert_each_paper_once(in_maildir(w.maildir))


@needs_namespaces
def test_maildir_on_a_read_only_filesystem_keeps_the_papers_owed_then_delivers_once(
    tmp_path: Path, fake: FakeNCBI
) -> None:
    w = polled(tmp_path, fake, "")
    w.maildir.mkdir()
    run = w.cli_in_namespace('mount -t tmpfs -o ro,size=4k tmpfs "$1/mail"', "digest")
    assert run.code == 1, run
    assert_no_traceback(run)
    (line,) = [x for x in run.err.splitlines() if x.startswith("watcher: ")]
    assert "Read-only file system" in line, run
    assert w.awaiting() == {r: 3 for r in READERS}
    cleared_digest(w)
    assert_each_paper_once(in_maildir(w.maildir))
