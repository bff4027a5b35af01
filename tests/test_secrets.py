"""Secrets and safety: a full daemon run leaves its SMTP password and API key nowhere; a config
holding a secret and readable by others is warned about; email addresses are validated."""

from __future__ import annotations

import base64
import json
import ssl
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from watcher.config import load_config
from watcher.errors import ConfigError, MailError, SourceError
from watcher.transports.smtp import SmtpSettings, SmtpTransport

from .conftest import make_client, write_config
from .fakes.ncbi import FakeNCBI
from .fakes.smtp import SmtpServer, free_port
from .test_cli import run
from .test_daemon import Daemon, papers, until

SMTP_PASSWORD = "Tr0ub4dor-smtp-7f3a9c"
API_KEY = "5e1d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a39"
# AUTH PLAIN sends base64("\0user\0password"): that form must not leak either.
AUTH_PLAIN = base64.b64encode(f"\0watcher\0{SMTP_PASSWORD}".encode()).decode()
SECRETS = (API_KEY, SMTP_PASSWORD, AUTH_PLAIN)
ENV = {"WATCHER_TEST_NCBI_KEY": API_KEY, "WATCHER_TEST_SMTP_PW": SMTP_PASSWORD}
SUB = '[[subscription]]\nname = "Anti-CD3"\nquery = "teplizumab"\nrecipients = ["a@example.org"]\n'


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_smtp(ca: trustme.CA) -> Iterator[SmtpServer]:
    """STARTTLS with a certificate from the test CA, AUTH required before any mail."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    server = SmtpServer(starttls=ctx, credentials=("watcher", SMTP_PASSWORD)).start()
    yield server
    server.stop()


def everything(folder: Path) -> bytes:
    """Every byte left under the test folder: config, store, WAL, lock files, maildir."""
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def smtp_section(port: int, ca_file: Path) -> str:
    return (
        'api_key_env = "WATCHER_TEST_NCBI_KEY"\n'
        f'[mail]\nfrom = "watcher@example.org"\n[mail.smtp]\nhost = "127.0.0.1"\n'
        f'port = {port}\nsecurity = "starttls"\ntimeout = 5\nusername = "watcher"\n'
        f'password_env = "WATCHER_TEST_SMTP_PW"\nca_file = "{ca_file}"\n'
    )


@pytest.mark.slow
def test_a_full_debug_run_with_faults_leaves_no_secret_anywhere(
    tmp_path: Path, fake: FakeNCBI, tls_smtp: SmtpServer, ca: trustme.CA, daemons: list[Daemon]
) -> None:
    """`watcher run` at debug level through polls (a 500 and a reset on the way, retried), a
    digest over STARTTLS with AUTH (a 451 first, kept pending and sent again), then `status`
    and `status --json`: neither secret in any output, log line or file."""
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    fake.api_keys = {API_KEY}
    papers(fake, 100, 3)
    fake.fault("esearch", "status:500")
    fake.fault("efetch", "reset")
    tls_smtp.handler.data_failures.append("451 4.3.0 try again later")
    cfg = write_config(
        tmp_path,
        fake.base_url,
        SUB,
        extra=smtp_section(tls_smtp.port, ca_file),
        defaults='poll_every = "1s"\ndigest_cron = "*/2 * * * * *"\n',
    )
    d = Daemon(cfg, "--log-level", "debug", env=ENV)
    daemons.append(d)
    until(lambda: len(tls_smtp.received) >= 1, 40, d.log)
    outputs = [
        run("--log-level", "debug", "-c", str(cfg), *a, env=ENV)
        for a in (("status",), ("status", "--json"))
    ]
    assert d.stop() == 0
    log = d.log()
    # The run went where the secrets travel: key-bearing requests logged at debug (redacted),
    # a refused poll request and a refused DATA on the error paths, mail sent after AUTH.
    assert "api_key=[REDACTED]" in log and "451" in log
    assert "retry" in log.lower() and "sent to a@example.org" in log
    assert tls_smtp.received[0].rcpt_tos == ["a@example.org"]
    for code, _out, err in outputs:
        assert code == 0, err
    assert json.loads(outputs[1][1])["daemon"]["alive"] is True
    texts = [log, *(out + err for _code, out, err in outputs)]
    stored = everything(tmp_path)
    for secret in SECRETS:
        assert all(secret not in text for text in texts), secret
        assert secret.encode() not in stored, secret


def test_an_smtp_login_refusal_names_no_password(tls_smtp: SmtpServer, tmp_path: Path, ca) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    wrong = "Wr0ng-but-still-secret-42"
    transport = SmtpTransport(
        SmtpSettings("127.0.0.1", tls_smtp.port, "starttls", "watcher", timeout=5, ca_file=ca_file),
        "watcher@example.org",
        wrong,
    )
    with pytest.raises(MailError) as err:
        transport._live_connection()
    transport.close()
    text = "".join(traceback.format_exception(err.value))
    assert "login refused: 535" in text
    for secret in (wrong, base64.b64encode(f"\0watcher\0{wrong}".encode()).decode()):
        assert secret not in text and secret not in repr(err.value.__dict__)


def test_a_request_error_names_no_api_key() -> None:
    """Connection refused: requests' own error quotes the URL, api_key and all; what the
    watcher raises (and its whole chain) must not."""
    client = make_client(f"http://127.0.0.1:{free_port()}/", api_key=API_KEY, retries=1)
    with pytest.raises(SourceError) as err:
        client.search("teplizumab", None, None)
    text = "".join(traceback.format_exception(err.value))
    assert "127.0.0.1" in text and API_KEY not in text


# --- a readable config holding a secret ------------------------------------------------------

PASSWORD_IN_FILE = "Pl41n-text-in-config"


def feed_config(tmp_path: Path, rss: str, base_url: str = "http://127.0.0.1:9/") -> Path:
    return write_config(
        tmp_path,
        base_url,
        f'[[subscription]]\nname = "feed"\nrss = "{rss}"\nrecipients = ["a@example.org"]\n',
    )


@pytest.mark.slow
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_readable_config_holding_a_password_is_warned_about_once(
    tmp_path: Path, mode: int
) -> None:
    cfg = feed_config(tmp_path, f"https://reader:{PASSWORD_IN_FILE}@feeds.example.org/rss/1")
    cfg.chmod(mode)
    out_dir = str(tmp_path / "out")
    for args in (("check",), ("status",), ("digest", "--dry-run", "--out", out_dir)):
        code, out, err = run("-c", str(cfg), *args)
        assert code == 0, err
        (warning,) = [line for line in err.splitlines() if "chmod 600" in line]
        assert f"{cfg}: subscription[0].rss holds a password or key" in warning
        assert f"`chmod 600 {cfg}`" in warning and f"(mode {mode:04o})" in warning
        assert PASSWORD_IN_FILE not in out + err


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        (
            f'[store]\nurl = "postgresql+psycopg://w:{PASSWORD_IN_FILE}@db.example.org/w"\n',
            "store.url",
        ),
        (
            f'[europepmc]\nbase_url = "https://u:{PASSWORD_IN_FILE}@mirror.example.org/"\n',
            "europepmc.base_url",
        ),
        (
            f'[clinicaltrials]\nbase_url = "https://ct.example.org/?token={PASSWORD_IN_FILE}"\n',
            "clinicaltrials.base_url",
        ),
    ],
)
def test_every_url_that_can_carry_a_secret_is_checked(tmp_path: Path, extra: str, key: str) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9/", SUB)
    cfg.write_text(extra + cfg.read_text())
    cfg.chmod(0o644)
    (warning,) = [w for w in load_config(cfg).warnings if "chmod 600" in w]
    assert f"{key} holds a password or key" in warning and PASSWORD_IN_FILE not in warning
    assert "readable by anyone on this machine" in warning


def test_no_warning_for_an_owner_only_file_or_one_without_secrets(tmp_path: Path) -> None:
    private = feed_config(tmp_path, f"https://reader:{PASSWORD_IN_FILE}@feeds.example.org/rss/1")
    private.chmod(0o600)
    assert load_config(private).warnings == ()
    (tmp_path / "b").mkdir()
    plain = feed_config(tmp_path / "b", "https://reader@feeds.example.org/rss/1?limit=50")
    plain.chmod(0o644)
    assert load_config(plain).warnings == ()


# --- email addresses -------------------------------------------------------------------------

WHERE = {
    "subscription[0].recipients[0]": lambda a: (
        "",
        f'[[subscription]]\nname = "x"\nquery = "y"\nrecipients = [{a}]\n',
    ),
    "mail.from": lambda a: (f"[mail]\nfrom = {a}\n", SUB),
    "mail.admin": lambda a: (f"[mail]\nadmin = {a}\n", SUB),
    "recipient[0].address": lambda a: ("", SUB + f"[[recipient]]\naddress = {a}\n"),
}
BAD = [
    ("a@example.org\r\nBcc: victim@example.net", "holds a line break or control character"),
    ("Ana\nBcc: v@example.net <a@example.org>", "holds a line break or control character"),
    ("ana lopez@example.org", "is not an email address"),
    ("ana@example", "'example' is not a domain name"),
    ("ana@example..org", "is not a domain name"),
    ("ana@-example.org", "is not a domain name"),
    ("x" * 65 + "@example.org", "the part before @ is 65 characters long; at most 64"),
    ("a@" + ".".join(["b" * 63] * 4) + ".org", "an address has at most 254"),
    ("zoë@example.org", "the part before @ must be ASCII"),
]


@pytest.mark.parametrize("key", list(WHERE))
@pytest.mark.parametrize(("address", "says"), BAD)
def test_a_bad_address_is_a_config_error_naming_file_and_key(
    tmp_path: Path, key: str, address: str, says: str
) -> None:
    top, subs = WHERE[key](json.dumps(address))
    cfg = write_config(tmp_path, "http://127.0.0.1:9/", subs)
    cfg.write_text(top + cfg.read_text())
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert (err.value.path, err.value.key) == (str(cfg), key)
    assert says in err.value.detail


def test_the_cli_refuses_an_injected_header_with_exit_2(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9/", SUB)
    cfg.write_text('[mail]\nfrom = "w@example.org\\r\\nBcc: v@example.net"\n' + cfg.read_text())
    code, _out, err = run("-c", str(cfg), "check")
    assert code == 2 and err.startswith(f"watcher: {cfg}: mail.from: ") and "Traceback" not in err


def test_ncbi_email_is_checked_the_same_way(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9/", SUB)
    cfg.write_text(cfg.read_text().replace("tests@example.org", "x" * 65 + "@example.org"))
    with pytest.raises(ConfigError, match="at most 64") as err:
        load_config(cfg)
    assert err.value.key == "ncbi.email"


def test_an_internationalised_domain_is_carried_in_punycode(tmp_path: Path) -> None:
    """SMTP without SMTPUTF8 carries ASCII only: bücher.example goes out as its IDNA form."""
    subs = SUB.replace('"a@example.org"', '"Ana <ana@bücher.example>"')
    cfg = write_config(tmp_path, "http://127.0.0.1:9/", subs)
    cfg.write_text('[mail]\nfrom = "Watcher <w@bücher.example>"\n' + cfg.read_text())
    config = load_config(cfg)
    assert config.subscriptions[0].recipients == ("ana@xn--bcher-kva.example",)
    assert config.mail.from_addr == "w@xn--bcher-kva.example"
    assert config.display_name("ana@xn--bcher-kva.example") == "Ana"


@pytest.mark.slow
def test_the_daemon_warns_once_and_never_logs_the_feed_password(
    tmp_path: Path, fake: FakeNCBI, daemons: list[Daemon]
) -> None:
    """`watcher run` on a 0644 config whose feed URL carries user:password@: the start-up
    warning, then polls of that feed (one answered 404), all at debug level, without it."""
    papers(fake, 100, 2)
    fake.feeds["t1d"] = [100, 101]
    url = fake.feed_url("t1d").replace("http://", f"http://reader:{PASSWORD_IN_FILE}@")
    cfg = feed_config(tmp_path, url, fake.base_url)
    cfg.write_text(cfg.read_text().replace("[defaults]\n", '[defaults]\npoll_every = "1s"\n'))
    cfg.chmod(0o644)
    fake.fault("rss", "status:404")
    d = Daemon(cfg, "--log-level", "debug")
    daemons.append(d)
    d.wait_for("poll feed: 2 found")
    assert d.stop() == 0
    log = d.log()
    assert log.count("chmod 600") == 1 and "subscription[0].rss holds a password" in log
    assert "poll feed failed: HTTP 404" in log
    assert PASSWORD_IN_FILE not in log
    assert PASSWORD_IN_FILE.encode() not in everything(tmp_path).replace(cfg.read_bytes(), b"")
