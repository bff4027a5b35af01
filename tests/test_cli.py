from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.subscriptions import reader_reference

from .conftest import FIXTURES, REPO


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
    """The real console entry point in a child process: exit code, stdout, stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "watcher", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_init_then_check_lists_the_example_subscriptions(tmp_path: Path) -> None:
    code, out, err = run("init", "x.toml", cwd=tmp_path)
    assert code == 0, err
    code, out, err = run("-c", "x.toml", "check", cwd=tmp_path)
    assert code == 0, err
    assert "OK, 9 subscriptions" in out
    for name in (
        "Anti-CD3 in T1D",
        "Anti-CD20 in T1D",
        "IL-2R mAbs in islet transplantation",
        "Prevention in at-risk relatives",
        "Other antibodies and biologics in T1D",
        "Teplizumab feed",
        "Preprints: antibodies in type 1 diabetes",
        "Trials: antibodies in type 1 diabetes",
        "Citing the anti-CD3 and anti-CD20 landmark trials",
    ):
        assert name in out
    assert out.count("next poll:   now (due)") == 9
    assert "next digest: 20" in out
    assert (tmp_path / "watcher.db").exists()  # the store is created beside the config


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text("keep me")
    assert main(["init", str(tmp_path / "x.toml")]) == 2
    assert (tmp_path / "x.toml").read_text() == "keep me"


def test_config_comes_from_the_environment(tmp_path: Path) -> None:
    run("init", "y.toml", cwd=tmp_path)
    code, out, _ = run("check", cwd=tmp_path, env={"WATCHER_CONFIG": "y.toml"})
    assert code == 0 and "y.toml: OK" in out


@pytest.mark.parametrize("name", ["01_toml_syntax", "08_bad_recipient", "15_password_in_file"])
def test_bad_config_exits_2_with_one_line_and_no_traceback(name: str) -> None:
    code, _out, err = run("-c", str(FIXTURES / "bad_configs" / f"{name}.toml"), "check")
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("watcher: ")


def test_usage_error_exits_2(capsys) -> None:
    assert main(["no-such-command"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and out.startswith("pubmed-watcher ")


def test_status_json_reports_every_subscription(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "w.toml"
    assert main(["init", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["-c", str(cfg), "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert next(s["name"] for s in data["subscriptions"]) == "Anti-CD3 in T1D"
    assert data["articles"] == 0 and data["daemon_heartbeat"] is None
    assert {r["address"] for r in data["recipients"]} == {
        "endocrinology-team@example.org",
        "clinician@example.org",
        "transplant-lab@example.org",
    }


def test_status_shows_papers_awaiting_their_record(tmp_path: Path, fake, capsys) -> None:
    from datetime import UTC, datetime

    from watcher.poll import ncbi_today

    from .conftest import write_config
    from .fakes.records import synthetic

    today = ncbi_today(datetime.now(UTC))
    fake.add([synthetic(i, f"teplizumab paper {i}", edat=today) for i in (41, 42)])
    fake.withheld.add(42)  # listed by esearch, absent from efetch
    cfg = write_config(
        tmp_path,
        fake.base_url,
        '[[subscription]]\nname = "t"\nquery = "teplizumab"\nrecipients = ["a@example.org"]\n',
    )
    assert main(["-c", str(cfg), "poll"]) == 0
    capsys.readouterr()
    assert main(["-c", str(cfg), "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["recipients"] == [
        {
            "address": "a@example.org",
            # what their requests to leave carry in the subject (issue 24)
            "reference": reader_reference("a@example.org"),
            "undelivered": 1,
            "awaiting_record": 1,
            "digests": [],
        }
    ]
    [owed] = data["awaiting_records"]
    assert owed["pmid"] == 42 and owed["subscriptions"] == ["t"] and owed["attempts"] == 1
    assert owed["reason"] == "not in NCBI's efetch answer" and owed["given_up"] is False
    assert main(["-c", str(cfg), "status"]) == 0
    text = capsys.readouterr().out
    assert (
        "a@example.org: 1 papers awaiting delivery, 1 awaiting a record "
        f"(reference {reader_reference('a@example.org')})"
    ) in text
    assert "PMID 42 (t): 1 try since " in text and "next try " in text


def test_status_says_which_matched_records_ncbi_deleted(tmp_path: Path, fake, capsys) -> None:
    from datetime import UTC, datetime

    from watcher.poll import ncbi_today

    from .conftest import write_config
    from .fakes.records import synthetic

    today = ncbi_today(datetime.now(UTC))
    fake.add([synthetic(i, f"teplizumab paper {i}", edat=today) for i in (41, 42)])
    fake.deleted.add(42)  # listed by esearch; efetch answers a DeleteCitation
    cfg = write_config(
        tmp_path,
        fake.base_url,
        '[[subscription]]\nname = "t"\nquery = "teplizumab"\nrecipients = ["a@example.org"]\n',
    )
    assert main(["-c", str(cfg), "poll"]) == 0
    err = capsys.readouterr().err
    assert "NCBI deleted 1 matched records from PubMed" in err and "pmid:42" in err
    assert main(["-c", str(cfg), "status"]) == 0
    text = capsys.readouterr().out
    assert "a@example.org: 1 papers awaiting delivery (reference " in text
    assert (
        "PMID 42 (t): deleted from PubMed by NCBI (a DeleteCitation in its efetch answer) on "
        in text
    )
    assert "; not asked for again" in text


def test_check_online_shows_translation_and_phrase_errors(tmp_path: Path, fake, capsys) -> None:
    from datetime import date

    from .conftest import write_config
    from .fakes.records import topic_records

    fake.add(topic_records(1, 4, "teplizumab", first_day=date(2026, 11, 2)))
    cfg = write_config(
        tmp_path,
        fake.base_url,
        """
[[subscription]]
name = "good"
query = "teplizumab[tiab]"
recipients = ["a@example.org"]

[[subscription]]
name = "typo"
query = "teplizumab AND tepliziumab"
recipients = ["a@example.org"]
""",
    )
    assert main(["-c", str(cfg), "check", "--online"]) == 1
    out = capsys.readouterr().out
    assert "good: 4 papers in all" in out
    assert "PubMed reads it as: teplizumab[tiab]" in out
    assert "typo: 0 papers in all" in out
    assert "ERROR: PhraseNotFound: tepliziumab" in out


def test_poll_command_reports_and_exits_1_when_a_subscription_failed(
    tmp_path, fake, capsys
) -> None:
    from datetime import date

    from .conftest import write_config
    from .fakes.records import topic_records

    fake.add(topic_records(1, 3, "rituximab", first_day=date.today() - timedelta(days=1)))
    cfg = write_config(
        tmp_path,
        fake.base_url,
        """
[[subscription]]
name = "ok"
query = "rituximab"
recipients = ["a@example.org"]

[[subscription]]
name = "broken"
query = "rituximab[nosuchfield]"
recipients = ["a@example.org"]
""",
    )
    fake.fault("esearch", "status:400")
    assert main(["-c", str(cfg), "poll"]) == 1
    out = capsys.readouterr().out
    assert "broken: FAILED: HTTP 400" in out or "ok: FAILED: HTTP 400" in out
    assert main(["-c", str(cfg), "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    errors = [s for s in status["subscriptions"] if s["last_error"]]
    assert len(errors) == 1
    assert main(["-c", str(cfg), "poll"]) == 0
    assert "0 records fetched" in capsys.readouterr().out


@pytest.mark.slow
def test_wheel_ships_templates_and_example_config(tmp_path: Path) -> None:
    """A plain (non-editable) install must find the templates and the drug table: build the
    wheel, unpack it outside the repo and look the files up from there."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    wheel = next(tmp_path.glob("pubmed_watcher-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "watcher/config.example.toml" in names
    assert any(n.startswith("watcher/templates/") for n in names)
    assert "watcher/data/antibodies.toml" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import watcher.paths as p, watcher.drug_table as d, sys; "
        "t = p.shipped('templates'); c = p.shipped('config.example.toml'); "
        "assert str(t).startswith(sys.argv[1]), t; assert t.is_dir(); assert c.is_file(); "
        "assert str(d.TABLE).startswith(sys.argv[1]), d.TABLE; "
        "assert 'teplizumab' in [x.inn for x in d.shipped_drugs()]; "
        "print(sorted(x.name for x in t.iterdir()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(site)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


def test_systemd_unit_runs_the_daemon_as_an_unprivileged_user() -> None:
    unit = (REPO / "contrib" / "pubmed-watcher.service").read_text()
    assert "ExecStart=/opt/pubmed-watcher/bin/watcher run" in unit
    assert "User=pubmed-watcher" in unit and "Restart=on-failure" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit


def test_readme_commands_exist_and_their_help_runs() -> None:
    import re

    readme = (REPO / "README.md").read_text()
    commands = set(re.findall(r"^\| `watcher (\w+)", readme, re.M))
    assert commands == {"init", "check", "poll", "digest", "backfill", "status", "run"}
    for command in sorted(commands):
        code, out, err = run(command, "--help")
        assert code == 0 and "usage: watcher" in out, err


def test_readme_reference_names_every_key_of_the_example_config() -> None:
    import re
    import tomllib

    readme = (REPO / "README.md").read_text()
    documented = set(re.findall(r"^\| `(\[[\w.\[\]]+\]) ([\w`, ]+)` \|", readme, re.M))
    keys = {(table, key.strip("` ")) for table, names in documented for key in names.split(",")}
    example = (REPO / "config.example.toml").read_text()
    uncommented = tomllib.loads(example)
    commented = tomllib.loads(
        re.sub(r"^# (\w+ = |\[\[?\w+(?:\.\w+)?\]\]?$)", r"\1", example, flags=re.M)
    )
    for source in (uncommented, commented):
        for table, values in source.items():
            rows = values if isinstance(values, list) else [values]
            for row in rows:
                for key, value in row.items():
                    if isinstance(value, dict):
                        for sub in value:
                            assert (f"[{table}.{key}]", sub) in keys, (table, key, sub)
                        continue
                    name = f"[[{table}]]" if isinstance(values, list) else f"[{table}]"
                    assert (name, key) in keys, (name, key)


def test_readme_layout_and_recipes_name_modules_and_registries_that_exist() -> None:
    import re

    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## How the code is laid out") :]
    # Every path to a Python file: in watcher/ (`wiring.py`, `digest/render.py`, and in the
    # recipes `watcher/sources/kinds.py`), or a test.
    paths = set(re.findall(r"`((?:\w+/)*\w+\.py)`", layout))
    modules = {p.removeprefix("watcher/") for p in paths if not p.startswith("tests/")}
    assert {"wiring.py", "sources/http.py", "delivery.py", "transports/kinds.py"} <= modules
    assert {"digest/build.py", "digest/render.py"} <= modules
    for module in modules:
        assert (REPO / "watcher" / module).is_file(), module
    for test in paths - modules:
        assert (REPO / test).is_file(), test
    from watcher.sources.kinds import SOURCES
    from watcher.transports.kinds import TRANSPORTS

    assert set(SOURCES) == {"query", "rss", "europepmc", "trials", "follow"}
    assert set(TRANSPORTS) == {"smtp", "maildir"}


def test_readme_set_up_commands_match_ci() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert ".venv/bin/pip install -e '.[test,postgres]' && .venv/bin/python -m pytest" in readme
    assert "pip install -q --disable-pip-version-check -e '.[test,postgres]'" in ci
    assert ci.rstrip().endswith('"$venv/bin/python" -m pytest')
    assert "watcher -c watcher.toml run" in readme


def test_log_json_writes_one_json_object_per_line(tmp_path: Path, fake) -> None:
    from .conftest import write_config

    cfg = write_config(
        tmp_path,
        fake.base_url,
        '[[subscription]]\nname = "x"\nquery = "y"\nrecipients = ["a@example.org"]\n',
    )
    code, _, err = run("--log-json", "-c", str(cfg), "poll")
    assert code == 0
    events = [json.loads(line) for line in err.splitlines() if line.strip()]
    done = [e for e in events if e.get("event") == "poll_done"]
    assert done and done[0]["requests"] == 1 and done[0]["level"] == "info"


def test_backfill_command_logs_progress_and_marks_papers_known(tmp_path: Path, fake) -> None:
    from datetime import date

    from .conftest import write_config
    from .fakes.records import topic_records

    fake.add(topic_records(1, 300, "daclizumab", first_day=date(2024, 1, 1), per_day=1))
    cfg = write_config(
        tmp_path,
        fake.base_url,
        '[[subscription]]\nname = "d"\nquery = "daclizumab"\nrecipients = ["a@example.org"]\n',
    )
    code, out, err = run("-c", str(cfg), "backfill", "--since", "2024-01-01")
    assert code == 0, err
    assert "d: 300 papers in 3 slices" in out and "(marked known, not mailed)" in out
    assert "backfill d: 1/3 slices" in err and "backfill d: 3/3 slices, 300 papers" in err
    code, out, _ = run("-c", str(cfg), "status", "--json")
    status = json.loads(out)
    assert status["articles"] == 300 and status["recipients"][0]["undelivered"] == 0
    code, _, err = run("-c", str(cfg), "backfill", "--since", "last year")
    assert code == 2 and "is not a date like 2009-01-01" in err


def test_a_store_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    run("init", "w.toml", cwd=tmp_path)
    (tmp_path / "watcher.db").write_bytes(b"this is not SQLite\n" * 100)
    code, _, err = run("-c", "w.toml", "status", cwd=tmp_path)
    assert code == 1 and "Traceback" not in err
    assert "cannot open store sqlite:///" in err and "file is not a database" in err


def test_debug_log_level_shows_the_traceback(tmp_path: Path) -> None:
    code, _, err = run("--log-level", "debug", "-c", str(tmp_path / "missing.toml"), "check")
    assert code == 2 and "Traceback" in err and "no such file" in err


def test_check_online_costs_one_request_per_query(tmp_path: Path, fake, capsys) -> None:
    from datetime import date

    from .conftest import write_config
    from .fakes.ncbi import FakeRecord

    # Past esearch's 9,999 cap: listing these PMIDs would take a split into dated windows.
    day = date(2026, 11, 2)
    fake.add(
        FakeRecord(i, b"", day - timedelta(days=i % 400), day, "teplizumab")
        for i in range(1, 12_001)
    )
    cfg = write_config(
        tmp_path,
        fake.base_url,
        """
[[subscription]]
name = "big"
query = "teplizumab"
recipients = ["a@example.org"]

[[subscription]]
name = "typo"
query = "teplizumab AND tepliziumab"
recipients = ["a@example.org"]
""",
    )
    assert main(["-c", str(cfg), "check", "--online"]) == 1
    out = capsys.readouterr().out
    assert fake.count() == 2, [s.params for s in fake.served]
    assert all(s.params["retmax"] == "0" for s in fake.served)
    assert "big: 12000 papers in all" in out
    assert "PubMed reads it as: teplizumab" in out
    assert "ERROR: PhraseNotFound: tepliziumab" in out
    assert "warning: OutputMessage: No items found." in out


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('api_key_env = "WATCHER_TEST_UNSET_SECRET"\n', "ncbi.api_key_env"),
        (
            '[mail.smtp]\nhost = "127.0.0.1"\nport = 2525\nusername = "u"\n'
            'password_env = "WATCHER_TEST_UNSET_SECRET"\n',
            "mail.smtp.password_env",
        ),
    ],
)
def test_an_unset_secret_variable_is_refused_at_start(
    tmp_path: Path, command: str, extra: str, key: str
) -> None:
    from .conftest import write_config

    cfg = write_config(
        tmp_path,
        "http://127.0.0.1:9/entrez/eutils/",
        '[[subscription]]\nname = "x"\nquery = "y"\nrecipients = ["a@example.org"]\n',
        extra=extra,
    )
    env = {k: v for k, v in os.environ.items() if k != "WATCHER_TEST_UNSET_SECRET"}
    # `run` would otherwise start and poll; the timeout turns that into a failure, not a hang.
    proc = subprocess.run(
        [sys.executable, "-m", "watcher", "-c", str(cfg), command],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"watcher: {cfg}: {key}: environment variable WATCHER_TEST_UNSET_SECRET is not set "
        f"(it should hold {'the NCBI API key' if key.startswith('ncbi') else 'the SMTP password'})"
    ]
    assert proc.stdout == ""


def test_a_maildir_blocked_by_a_file_is_named_and_exits_1(tmp_path: Path) -> None:
    from .conftest import write_config

    # Tests run as root, for whom permission bits mean nothing; a file standing where the
    # folder should be fails for every user, root included.
    (tmp_path / "blocker").write_text("not a folder")
    cfg = write_config(
        tmp_path,
        "http://127.0.0.1:9/entrez/eutils/",
        '[[subscription]]\nname = "x"\nquery = "y"\nrecipients = ["a@example.org"]\n',
        extra='[mail]\nmaildir = "blocker"\n',
    )
    code, _out, err = run("-c", str(cfg), "digest")
    assert code == 1 and "internal error" not in err
    assert [line for line in err.splitlines() if line.startswith("watcher: ")] == [
        f"watcher: cannot use {tmp_path / 'blocker'} as the maildir (mail.maildir): "
        f"{tmp_path / 'blocker' / 'tmp'}: Not a directory (a file stands where a folder is needed)"
    ]


@pytest.mark.parametrize("out", ["blocker", "blocker/preview"])
def test_an_unusable_out_folder_is_named_and_exits_1(tmp_path: Path, out: str) -> None:
    from .conftest import write_config

    (tmp_path / "blocker").write_text("not a folder")  # a file in its place, or on its path
    cfg = write_config(
        tmp_path,
        "http://127.0.0.1:9/entrez/eutils/",
        '[[subscription]]\nname = "x"\nquery = "y"\nrecipients = ["a@example.org"]\n',
    )
    code, _out, err = run("-c", str(cfg), "digest", "--dry-run", "--out", out, cwd=tmp_path)
    assert code == 1 and "internal error" not in err
    reason = "File exists" if out == "blocker" else "Not a directory"
    assert [line for line in err.splitlines() if line.startswith("watcher: ")] == [
        f"watcher: cannot use {out} as the --out folder: {reason} "
        "(a file stands where a folder is needed)"
    ]


def test_check_online_counts_registry_queries_in_one_request_each(
    tmp_path: Path, fake, capsys
) -> None:
    from datetime import date

    from .conftest import write_config
    from .fakes.clinicaltrials import FakeClinicalTrials, study
    from .fakes.europepmc import FakeEuropePmc, load_record

    epmc, ctgov = FakeEuropePmc().start(), FakeClinicalTrials().start()
    try:
        for n in range(3):
            epmc.add({**load_record("europepmc-preprint.json"), "id": f"PPR{n}"}, date(2026, 11, 1))
        ctgov.put(study("NCT09000001", "Teplizumab", "RECRUITING", "2026-11-10"))
        extra = (
            f'[europepmc]\nbase_url = "{epmc.base_url}"\nrate_limit = 100\n'
            f'[clinicaltrials]\nbase_url = "{ctgov.base_url}"\nrate_limit = 100\n'
        )
        subs = (
            '[[subscription]]\nname = "pre"\neuropepmc = "teplizumab"\n'
            'recipients = ["a@example.org"]\n'
            '[[subscription]]\nname = "reg"\ntrials = "teplizumab"\n'
            'recipients = ["a@example.org"]\n'
        )
        cfg = write_config(tmp_path, fake.base_url, subs, extra=extra)
        assert main(["-c", str(cfg), "check", "--online"]) == 0
        out = capsys.readouterr().out
        assert "pre: 3 preprints in all" in out and "reg: 1 studies in all" in out
        assert epmc.count() == 1 and ctgov.count() == 1 and fake.count() == 0
        epmc.fault("status:404")
        assert main(["-c", str(cfg), "check", "--online"]) == 1
        assert "pre: ERROR: HTTP 404" in capsys.readouterr().out
    finally:
        epmc.stop()
        ctgov.stop()


# Neither command needs the ORM (the store is written in SQLAlchemy Core), the HTTP client,
# Alembic (for a store already migrated), the XML and feed parsers or the templates.
NEVER_AT_START = {
    "sqlalchemy.orm",
    "alembic",
    "requests",
    "lxml",
    "feedparser",
    "jinja2",
    "watcher.poll",
    "watcher.sources.http",
    "watcher.digest",
    "watcher.drug_table",  # a config that adds no drugs
}


@pytest.mark.parametrize(
    ("command", "unused"),
    [
        ("status", NEVER_AT_START | {"apscheduler"}),
        ("check", NEVER_AT_START | {"watcher.followups"}),
    ],
)
def test_check_and_status_import_only_what_they_use(
    tmp_path: Path, command: str, unused: set[str]
) -> None:
    """Start-up time is mostly imports: status validates crontab lines without APScheduler (check
    asks it for the next digest times), and check reads no follow-ups."""
    cfg = tmp_path / "w.toml"
    assert main(["init", str(cfg)]) == 0
    assert main(["-c", str(cfg), "check"]) == 0  # the store exists and is migrated
    probe = (
        "import json, sys; from watcher.cli import main; code = main(sys.argv[1:]); "
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr); "
        "raise SystemExit(code)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, "-c", str(cfg), command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stderr.strip().splitlines()[-1])
    found = {m for m in loaded for u in unused if m == u or m.startswith(u + ".")}
    assert not found, found
    assert "sqlalchemy.engine" in loaded  # the probe saw the store opened
