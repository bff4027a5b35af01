from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from watcher.redact import REDACTED, RedactingFormatter, redact, register_secret, safe_message
from watcher.transports.smtp import SmtpSettings, SmtpTransport

from .conftest import write_config
from .fakes.ncbi import FakeNCBI
from .test_cli import run

# Looks like an NCBI key (36 hex digits) but is not the one the fake accepts.
MISTYPED_KEY = "0f3c9a7e51d24b6e8a90c1d2e3f4a5b6c7d8"
GOOD_KEY = "9b8a7c6d5e4f30211203f4e5d6c7b8a9f0e1"


@pytest.mark.parametrize(
    "text",
    [
        f"GET /entrez/eutils/esearch.fcgi?db=pubmed&api_key={MISTYPED_KEY}&tool=t HTTP/1.1",
        f'{{"error":"API key invalid","api-key":"{MISTYPED_KEY}","type":"invalid"}}',
        f"db=pubmed&id=1%2C2&api_key={MISTYPED_KEY}",
        f"postgresql+psycopg://watcher:{MISTYPED_KEY}@db/watcher",
        f"https://:{MISTYPED_KEY}@feeds.example.org/rss/1",  # a password with no user
        f"feed https://feeds.example.org/rss/1?limit=50&token={MISTYPED_KEY}: HTTP 404",
        f"https://feeds.example.org/rss/1?access_token={MISTYPED_KEY}",
        f"https://feeds.example.org/rss/1?secret={MISTYPED_KEY}",
        json.dumps(
            {"message": f'HTTP 400: {{"error":"API key invalid","api-key":"{MISTYPED_KEY}"}}'}
        ),
    ],
)
def test_a_secret_is_redacted_by_name_wherever_it_is_quoted(text: str) -> None:
    assert MISTYPED_KEY not in redact(text) and REDACTED in redact(text)
    assert redact(redact(text)) == redact(text)  # stored lines are redacted again when shown


def test_prose_about_secrets_is_left_alone() -> None:
    for text in (
        "mail.smtp.password: secrets never go in the file",
        "ncbi.api_key_env names NCBI_API_KEY, which is not set",
        "NCBI error: API key invalid",
        "studies?query.term=x&pageToken=NF0g5JGBlPA: HTTP 503",  # a page cursor, no secret
    ):
        assert redact(text) == text


def test_a_registered_value_is_redacted_out_of_context() -> None:
    transport = SmtpTransport(SmtpSettings("127.0.0.1", 25), "a@example.org", "hunter2-smtp-pw")
    assert transport.password == "hunter2-smtp-pw"
    record = logging.LogRecord(
        "smtplib",
        logging.DEBUG,
        __file__,
        1,
        "send: AUTH failed for %s",
        ("hunter2-smtp-pw",),
        None,
    )
    line = RedactingFormatter(logging.Formatter("%(message)s")).format(record)
    assert line == f"send: AUTH failed for {REDACTED}"


def test_error_lines_are_capped_with_an_ellipsis() -> None:
    register_secret("short")  # five characters: registered
    line = safe_message("x" * 10_000)
    assert len(line) == 500 and line.endswith("…")
    assert safe_message("two\nlines") == "two lines"


def _everything(tmp_path: Path) -> bytes:
    """Every byte the runs left behind: the store, its WAL, the maildir, the config."""
    return b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_mistyped_api_key_appears_nowhere(tmp_path: Path, fake: FakeNCBI) -> None:
    """NCBI answers 400 to a key it does not know, quoting it back; every output, at every log
    level, and the store must be free of it."""
    from datetime import date

    from .fakes.records import topic_records

    fake.add(topic_records(1, 3, "teplizumab", first_day=date.today()))
    fake.api_keys = {GOOD_KEY}
    cfg = write_config(
        tmp_path,
        fake.base_url,
        '[[subscription]]\nname = "t"\nquery = "teplizumab"\nrecipients = ["a@example.org"]\n',
        extra='api_key_env = "WATCHER_TEST_NCBI_KEY"',
    )
    env = {"WATCHER_TEST_NCBI_KEY": MISTYPED_KEY}
    outputs = []
    for args in (
        ("poll",),
        ("--log-level", "debug", "poll"),
        ("--log-level", "debug", "--log-json", "poll"),
        ("status",),
        ("status", "--json"),
        ("check", "--online"),
        ("--log-level", "debug", "check", "--online"),
    ):
        code, out, err = run("-c", str(cfg), *args, env=env)
        outputs.append((args, code, out, err))
    assert fake.count() >= 5  # the key really was sent, and refused
    for args, _code, out, err in outputs:
        assert MISTYPED_KEY not in out + err, args
    assert MISTYPED_KEY.encode() not in _everything(tmp_path)
    # …while what went wrong is still said plainly.
    poll_out = outputs[0][2]
    assert "t: FAILED: HTTP 400 from esearch.fcgi" in poll_out and "API key invalid" in poll_out
    assert outputs[0][1] == 1 and outputs[5][1] == 1
    assert "HTTP 400" in outputs[3][2] and "API key invalid" in outputs[4][2]
    assert "api_key=[REDACTED]" in outputs[1][3]  # urllib3's request line, redacted


def test_a_valid_api_key_is_not_in_the_debug_log(tmp_path: Path, fake: FakeNCBI) -> None:
    fake.api_keys = {GOOD_KEY}
    cfg = write_config(
        tmp_path,
        fake.base_url,
        '[[subscription]]\nname = "t"\nquery = "teplizumab"\nrecipients = ["a@example.org"]\n',
        extra='api_key_env = "WATCHER_TEST_NCBI_KEY"',
    )
    code, out, err = run(
        "--log-level", "debug", "-c", str(cfg), "poll", env={"WATCHER_TEST_NCBI_KEY": GOOD_KEY}
    )
    assert code == 0, err
    assert GOOD_KEY not in out + err and "api_key=[REDACTED]" in err
    assert GOOD_KEY.encode() not in _everything(tmp_path)
