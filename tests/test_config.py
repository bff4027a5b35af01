from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from watcher.config import load_config, parse_duration
from watcher.errors import ConfigError

from .conftest import FIXTURES, REPO

BAD = sorted((FIXTURES / "bad_configs").glob("*.toml"))


def expected_message(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: '"
    return first.removeprefix("# expect: ")


def test_there_are_at_least_twenty_broken_configs() -> None:
    assert len(BAD) >= 20


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_broken_config_gives_one_clear_line(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert expected_message(path) in message
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_example_config_loads_with_every_section(tmp_path: Path) -> None:
    config = load_config(REPO / "config.example.toml")
    names = [s.name for s in config.subscriptions]
    assert "Anti-CD3 in T1D" in names
    assert sum(s.kind == "rss" for s in config.subscriptions) == 1
    assert all(s.recipients for s in config.subscriptions)
    teplizumab = config.subscription("Anti-CD3 in T1D")
    assert "teplizumab[tw]" in (teplizumab.query or "")
    assert config.subscription(
        "IL-2R mAbs in islet transplantation"
    ).schedule.poll_every == timedelta(days=1)
    assert config.defaults.timezone == "Europe/Paris"


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "w.toml"
    path.write_text(
        '[store]\nurl = "sqlite:///data/w.db"\n[ncbi]\nemail = "a@example.org"\n'
        '[mail]\nmaildir = "out"\n'
        '[[subscription]]\nname = "x"\nquery = "y"\nrecipients = ["r@example.org"]\n'
    )
    monkeypatch.chdir(tmp_path)
    config = load_config(path)
    assert config.store_url == f"sqlite:///{folder.resolve() / 'data/w.db'}"
    assert config.mail.maildir == folder.resolve() / "out"


def test_subscription_overrides_and_inherits_defaults(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(
        '[ncbi]\nemail = "a@example.org"\n'
        '[defaults]\npoll_every = "30m"\ntimezone = "America/New_York"\nlookback_days = 7\n'
        '[[subscription]]\nname = "x"\nquery = "y"\nrecipients = ["r@example.org"]\n'
        "lookback_days = 0\n"
    )
    sub = load_config(path).subscriptions[0]
    assert sub.schedule.poll_every == timedelta(minutes=30)
    assert sub.schedule.timezone == "America/New_York"
    assert sub.schedule.lookback_days == 0


def test_sub_minute_poll_is_allowed_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(
        '[ncbi]\nemail = "a@example.org"\n[defaults]\npoll_every = "45s"\n'
        '[[subscription]]\nname = "x"\nquery = "y"\nrecipients = ["r@example.org"]\n'
    )
    config = load_config(path)
    assert config.defaults.poll_every == timedelta(seconds=45)
    assert any("under a minute" in w for w in config.warnings)


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("watcher init")):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("45s", timedelta(seconds=45)),
        ("30m", timedelta(minutes=30)),
        ("6h", timedelta(hours=6)),
        ("1d", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "0s", "5", "1y", "-3h", "1.5h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_fingerprint_changes_with_the_query(tmp_path: Path) -> None:
    def sub(query: str):
        path = tmp_path / "w.toml"
        path.write_text(
            f'[ncbi]\nemail = "a@example.org"\n[[subscription]]\nname = "x"\n'
            f'query = "{query}"\nrecipients = ["r@example.org"]\n'
        )
        return load_config(path).subscriptions[0]

    assert sub("a").fingerprint == sub("a").fingerprint
    assert sub("a").fingerprint != sub("b").fingerprint


@pytest.mark.parametrize(
    "field,expected",
    [
        ("*", "*"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("0", "sun"),
        ("7", "sun"),
        ("mon", "mon"),
        ("sat,sun", "sun,sat"),
        ("5-7", "sun,fri,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("0-6", "*"),
    ],
)
def test_crontab_weekdays_count_from_sunday(field: str, expected: str) -> None:
    from watcher.schedule import crontab_weekdays

    assert crontab_weekdays(field) == expected


def test_digest_time_follows_daylight_saving() -> None:
    from datetime import UTC, datetime

    from watcher.schedule import next_digest_time

    # Europe/Paris leaves summer time on 2026-10-25: 07:00 local is 05:00 UTC before, 06:00 after
    before = next_digest_time("0 7 * * sun", "Europe/Paris", datetime(2026, 10, 12, tzinfo=UTC))
    after = next_digest_time("0 7 * * sun", "Europe/Paris", datetime(2026, 10, 19, tzinfo=UTC))
    assert before.astimezone(UTC).hour == 5 and after.astimezone(UTC).hour == 6
    assert before.weekday() == after.weekday() == 6  # crontab's 0/7 and 'sun' are Sunday


def test_missed_digest_counts_one_catch_up_however_many_periods() -> None:
    from datetime import UTC, datetime, timedelta

    from watcher.schedule import missed_digest

    last = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)  # a Monday digest
    assert not missed_digest("0 7 * * mon", "UTC", last, last + timedelta(days=6))
    assert missed_digest("0 7 * * mon", "UTC", last, last + timedelta(days=7))
    assert missed_digest("0 7 * * mon", "UTC", last, last + timedelta(days=40))
    assert not missed_digest("0 7 * * mon", "UTC", None, last)


def test_mail_from_and_recipients_accept_name_addr(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(
        '[ncbi]\nemail = "me@example.org"\n[mail]\nfrom = "PubMed Watcher <watcher@example.org>"\n'
        '[[subscription]]\nname = "A"\nquery = "x"\n'
        'recipients = ["Dr Ana Lopez <ana@example.org>", "ana@EXAMPLE.org", "b@example.org"]\n'
    )
    config = load_config(path)
    assert (config.mail.from_name, config.mail.from_addr) == (
        "PubMed Watcher",
        "watcher@example.org",
    )
    (sub,) = config.subscriptions
    assert sub.recipients == ("ana@example.org", "b@example.org")
    assert config.display_name("ANA@example.org") == "Dr Ana Lopez"
    assert config.display_name("b@example.org") is None


MINIMAL = """[ncbi]
email = "me@example.org"
{ncbi}
[[subscription]]
name = "A"
{source}
recipients = [{recipients}]
"""


def _write(
    tmp_path: Path, ncbi: str = "", source: str = 'query = "x"', recipients: str = ""
) -> Path:
    path = tmp_path / "w.toml"
    path.write_text(
        MINIMAL.format(ncbi=ncbi, source=source, recipients=recipients or '"a@example.org"')
    )
    return path


@pytest.mark.parametrize(
    ("ncbi", "source", "recipients", "key", "length"),
    [
        ('tool = "' + "t" * 2001 + '"', 'query = "x"', "", "ncbi.tool", 2001),
        ("", 'rss = "https://example.org/' + "f" * 5000 + '"', "", "subscription[0].rss", 5020),
        ("", 'query = "' + "q" * 20_001 + '"', "", "subscription[0].query", 20_001),
        (
            "",
            'query = "x"',
            '"' + "r" * 3000 + '@example.org"',
            "subscription[0].recipients[0]",
            3012,
        ),
    ],
)
def test_a_runaway_string_is_refused_naming_file_and_key(
    tmp_path: Path, ncbi: str, source: str, recipients: str, key: str, length: int
) -> None:
    path = _write(tmp_path, ncbi, source, recipients)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: is {length:,} characters long; at most")
    assert len(message) < 300


def test_a_long_but_sane_query_is_accepted(tmp_path: Path) -> None:
    query = " OR ".join(f'"term {i}"[tiab]' for i in range(1000))  # ~17,000 characters
    assert len(query) > 15_000
    config = load_config(_write(tmp_path, source=f"query = '{query}'"))
    assert config.subscriptions[0].query == query


def test_a_config_file_over_a_megabyte_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path)
    path.write_text(path.read_text() + "# " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(
        ConfigError, match=r"w\.toml: is 1,048,\d+ bytes; a config file holds at most"
    ):
        load_config(path)


def test_too_many_recipients_are_refused(tmp_path: Path) -> None:
    many = ", ".join(f'"r{i}@example.org"' for i in range(1001))
    with pytest.raises(ConfigError, match=r"recipients: lists 1,001; at most 1,000"):
        load_config(_write(tmp_path, recipients=many))


def test_max_response_mb_is_read_and_bounded(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path)).ncbi.max_response_mb == 128
    assert load_config(_write(tmp_path, "max_response_mb = 0.5")).ncbi.max_response_mb == 0.5
    with pytest.raises(ConfigError, match=r"ncbi\.max_response_mb: must be a number of MB above 0"):
        load_config(_write(tmp_path, "max_response_mb = 0"))


def test_drugs_from_a_file_and_from_drug_tables_extend_the_shipped_table(tmp_path: Path) -> None:
    from watcher.digest.drugs import vocabulary

    (tmp_path / "drugs.toml").write_text(
        '[[drug]]\ninn = "zorbalimab"\ntarget = "CD6"\ncodes = ["ZB-101"]\n', encoding="utf-8"
    )
    path = tmp_path / "w.toml"
    path.write_text(
        '[ncbi]\nemail = "a@example.org"\n[drugs]\nfile = "drugs.toml"\n'
        '[[drug]]\ninn = "quorvumab"\ntarget = "IL-7R"\nbrands = ["Quorva"]\n'
        '[[subscription]]\nname = "x"\nquery = "y"\nrecipients = ["r@example.org"]\n'
    )
    config = load_config(path)
    assert [d.inn for d in config.drugs] == ["zorbalimab", "quorvumab"]
    found = vocabulary(config.drugs).find(["ZB-101 and Quorva and MabThera"])
    assert [(m.inn, m.action) for m in found] == [
        ("zorbalimab", "anti-CD6"),
        ("quorvumab", "anti-IL-7R"),
        ("rituximab", "anti-CD20"),
    ]


def test_a_broken_drugs_file_names_its_entry(tmp_path: Path) -> None:
    (tmp_path / "drugs.toml").write_text('[[drug]]\ninn = "x"\ntarget = 3\n', encoding="utf-8")
    path = tmp_path / "w.toml"
    path.write_text(
        '[ncbi]\nemail = "a@example.org"\n[drugs]\nfile = "drugs.toml"\n'
        '[[subscription]]\nname = "x"\nquery = "y"\nrecipients = ["r@example.org"]\n'
    )
    with pytest.raises(ConfigError, match=r"drugs\.file: .*drugs\.toml: drug\[0\]\.target"):
        load_config(path)
