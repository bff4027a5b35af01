"""`include`: an institution's subscriptions in one file per team, each file checked with its own
path in errors, bounded per file and in all; and `check` linear in the subscriptions."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from watcher.check import print_check
from watcher.config import load_config
from watcher.errors import ConfigError
from watcher.toml_reading import MAX_CONFIG_BYTES, MAX_TOTAL_CONFIG_BYTES
from watcher.wiring import open_store

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
MAIN = '[store]\nurl = "sqlite:///w.db"\n[ncbi]\nemail = "lib@example.org"\n[mail]\nmaildir = "m"\n'
# As long as the starter config's queries (about 650 characters).
QUERY = (
    '("Diabetes Mellitus, Type 1"[mh] OR "type 1 diabetes"[tiab] OR "T1D"[tiab] OR '
    '"autoimmune diabetes"[tiab]) AND (drug{i}[tw] OR "DRG-{i}"[tw] OR brand{i}[tw] OR '
    '("Antibodies, Monoclonal"[mh] AND "CD{i}"[tiab]) OR "anti-CD{i}"[tiab]) '
    "NOT (animals[mh] NOT humans[mh]) NOT ((mice[ti] OR mouse[ti] OR murine[ti] OR rats[ti] "
    'OR "NOD mice"[ti] OR primates[ti]) NOT (patient*[ti] OR participant*[tiab] OR '
    'people[ti] OR adults[ti] OR children[ti] OR adolescents[ti] OR "young people"[tiab]))'
)


def sub(name: str, query: str = "x", who: str = '"a@example.org"') -> str:
    return f"[[subscription]]\nname = \"{name}\"\nquery = '{query}'\nrecipients = [{who}]\n\n"


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder / "w.toml"


def refused(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "\n" not in str(info.value) and info.value.exit_code == 2
    return info.value


def test_included_files_add_their_subscriptions_in_sorted_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "w.toml": 'include = ["teams/*.toml", "shared.toml"]\n' + MAIN + sub("main"),
            "teams/b.toml": sub("b1") + sub("b2"),
            "teams/a.toml": sub("a1", who='"Dr Ana Lopez <ana@example.org>"'),
            "teams/.a.toml.swp": "not TOML",  # an editor's swap file: `*` skips dot files
            "shared.toml": sub("s1"),
        },
    )
    config = load_config(path)
    assert [s.name for s in config.subscriptions] == ["main", "a1", "b1", "b2", "s1"]
    assert [(f.path.relative_to(tmp_path).as_posix(), f.subscriptions) for f in config.files] == [
        ("w.toml", 1),
        ("teams/a.toml", 1),
        ("teams/b.toml", 2),
        ("shared.toml", 1),
    ]
    assert config.display_name("ana@example.org") == "Dr Ana Lopez"
    assert config.subscription("b2").schedule == config.defaults  # the main file's [defaults]


def test_the_main_file_may_hold_no_subscription_of_its_own(tmp_path: Path) -> None:
    path = write(tmp_path, {"w.toml": 'include = ["t/*.toml"]\n' + MAIN, "t/x.toml": sub("x")})
    assert [s.name for s in load_config(path).subscriptions] == ["x"]
    write(tmp_path, {"t/x.toml": "# this team has left\n"})
    assert "nothing to watch" in str(refused(path))


def test_an_error_in_an_included_file_names_that_file_and_its_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "w.toml": 'include = ["teams/*.toml"]\n' + MAIN + sub("main"),
            "teams/a.toml": sub("a1"),
            "teams/b.toml": sub("b1") + sub("b2", query="(unclosed"),
        },
    )
    message = str(refused(path))
    assert message == (
        f"{tmp_path / 'teams/b.toml'}: subscription[1].query: has a '(' that is never closed"
    )


def test_watcher_check_exits_2_with_one_line_naming_the_included_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "w.toml": 'include = ["teams/*.toml"]\n' + MAIN,
            "teams/a.toml": sub("a1") + '[[subscription]]\nname = "a2"\nquery = "y"\n',
        },
    )
    proc = subprocess.run(
        [sys.executable, "-m", "watcher", "-c", str(path), "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(
        f"{tmp_path / 'teams/a.toml'}: subscription[1].recipients: is required"
    )
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_name_in_two_files_names_both(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "w.toml": 'include = ["teams/*.toml"]\n' + MAIN + sub("Anti-CD3"),
            "teams/a.toml": sub("a1") + sub("Anti-CD3"),
        },
    )
    assert str(refused(path)) == (
        f"{tmp_path / 'teams/a.toml'}: subscription[1].name: 'Anti-CD3' is already the name "
        f"of subscription[0] in {tmp_path / 'w.toml'}"
    )


def test_a_pattern_that_matches_no_file_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"w.toml": 'include = ["teams/*.toml", "tems/*.toml"]\n' + MAIN, "teams/a.toml": sub("a")},
    )
    assert str(refused(path)) == (
        f"{path}: include[1]: 'tems/*.toml' matches no file (relative to {tmp_path})"
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[defaults]\npoll_every = "1h"\n', "defaults: belongs in"),
        ('[mail]\nmaildir = "x"\n', "mail: belongs in"),
        ('include = ["*.toml"]\n', "include: an included file includes nothing"),
        ('subscriptoin = "x"\n', "subscriptoin: unknown key (did you mean 'subscription'?)"),
        ('subscription = "x"\n', "subscription: must be an array of tables"),
    ],
)
def test_an_included_file_holds_only_subscriptions_and_recipients(
    tmp_path: Path, text: str, says: str
) -> None:
    path = write(tmp_path, {"w.toml": 'include = ["t.toml"]\n' + MAIN + sub("m"), "t.toml": text})
    message = str(refused(path))
    assert message.startswith(f"{tmp_path / 't.toml'}: {says}"), message


def test_include_must_be_an_array_of_patterns(tmp_path: Path) -> None:
    path = write(tmp_path, {"w.toml": 'include = "teams/*.toml"\n' + MAIN + sub("m")})
    assert "include: must be an array of glob patterns" in str(refused(path))
    path = write(tmp_path, {"w.toml": "include = [3]\n" + MAIN + sub("m")})
    assert "include[0]: must be a string, not an integer" in str(refused(path))


def test_a_reader_table_in_a_team_file_refines_any_files_reader(tmp_path: Path) -> None:
    files = {
        "w.toml": 'include = ["t/*.toml"]\n' + MAIN + sub("m", who='"ana@example.org"'),
        "t/a.toml": sub("a")
        + '[[recipient]]\naddress = "Ana Lopez <ana@example.org>"\norder = "evidence"\n',
    }
    config = load_config(write(tmp_path, files))
    assert config.recipient("ana@example.org").order == "evidence"
    assert config.display_name("ana@example.org") == "Ana Lopez"
    assert [f.recipients for f in config.files] == [0, 1]
    files["t/b.toml"] = sub("b") + '[[recipient]]\naddress = "ana@example.org"\n'
    assert str(refused(write(tmp_path, files))) == (
        f"{tmp_path / 't/b.toml'}: recipient[0].address: 'ana@example.org' has a table "
        f"already: recipient[0] in {tmp_path / 't/a.toml'}"
    )


def test_a_secret_in_a_team_file_others_may_read_is_warned_of_naming_that_file(
    tmp_path: Path,
) -> None:
    feed = "https://user:pw@feeds.example.org/pubmed"
    path = write(
        tmp_path,
        {
            "w.toml": 'include = ["t/*.toml"]\n' + MAIN + sub("m"),
            "t/a.toml": sub("a") + f'[[subscription]]\nname = "f"\nrss = "{feed}"\n'
            'recipients = ["a@example.org"]\n',
        },
    )
    team = tmp_path / "t/a.toml"
    team.chmod(0o644)
    path.chmod(0o600)
    (warning,) = load_config(path).warnings
    assert warning.startswith(f"{team}: subscription[1].rss holds a password or key")
    assert "pw" not in warning.replace("password", "")
    team.chmod(0o600)
    assert load_config(path).warnings == ()


def test_the_byte_bound_applies_to_each_file(tmp_path: Path) -> None:
    big = sub("b") + "# " + "x" * MAX_CONFIG_BYTES + "\n"
    path = write(tmp_path, {"w.toml": 'include = ["t/*.toml"]\n' + MAIN, "t/b.toml": big})
    assert str(refused(path)).startswith(f"{tmp_path / 't/b.toml'}: is 1,048,")


@pytest.mark.slow
def test_the_files_together_are_bounded(tmp_path: Path) -> None:
    files = {"w.toml": 'include = ["t/*.toml"]\n' + MAIN + sub("m")}
    filler = "# " + "x" * (MAX_CONFIG_BYTES - 10) + "\n"  # a comment costs little to parse
    for i in range(MAX_TOTAL_CONFIG_BYTES // MAX_CONFIG_BYTES + 1):
        files[f"t/{i:03d}.toml"] = filler
    message = str(refused(write(tmp_path, files)))
    assert message.startswith(f"{tmp_path / 'w.toml'}: include: its files come to more than")


def institution(folder: Path, size: int, per_file: int = 1000) -> Path:
    """`size` subscriptions with 650-character queries, `per_file` to a team's file; a reader
    for every two, three readers each (by name-addr), a [[recipient]] table for one in ten."""
    readers = max(1, size // 2)
    files = {}
    for start in range(0, size, per_file):
        files[f"teams/{start // per_file:03d}.toml"] = "".join(
            sub(
                f"Search {i}",
                QUERY.format(i=i),
                f'"Dr R{i % readers} <r{i % readers}@example.org>", '
                f'"r{(i * 7 + 1) % readers}@example.org", "lab{i % 50}@example.org"',
            )
            for i in range(start, min(size, start + per_file))
        )
    tables = "".join(
        f'[[recipient]]\naddress = "r{r}@example.org"\norder = "evidence"\n'
        for r in range(0, readers, 10)
    )
    files["w.toml"] = 'include = ["teams/*.toml"]\n' + MAIN + tables
    return write(folder, files)


def check_output(path: Path) -> str:
    config = load_config(path)
    store = open_store(config, NOW)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_check(config, store, NOW)
    store.close()
    return out.getvalue()


@pytest.mark.slow  # about 8 s idle: 18 MB of TOML, a store made to agree with it, the listing
def test_twenty_thousand_subscriptions_across_files_load_and_check(tmp_path: Path) -> None:
    path = institution(tmp_path, 20_000)
    assert sum(p.stat().st_size for p in (tmp_path / "teams").iterdir()) > MAX_CONFIG_BYTES * 10
    out = check_output(path)
    assert out.startswith(f"{path}: OK, 20000 subscriptions")
    assert out.count("\n  read ") == 21  # the main file and 20 teams' files, each listed
    assert f"  read {tmp_path / 'teams/019.toml'}: 1000 subscriptions\n" in out
    assert "  read " + str(path) + ": 0 subscriptions, 1000 [[recipient]] tables" in out
    assert out.count("\n  Search ") == 20_000
    assert (
        '  Search 19999 [query]\n    ("Diabetes Mellitus, Type 1"[mh] OR' in out
        # r9994 is written bare here, by name in Search 9994: the name is shown
        and "recipients: Dr R9999 <r9999@example.org>, Dr R9994 <r9994@example.org>, "
        "lab49@example.org\n"
        in out
    )


class Counted(tuple[Any, ...]):
    """A tuple that counts the walks over it."""

    walks = 0

    def __iter__(self) -> Any:
        Counted.walks += 1
        return super().__iter__()


def walks_in_check(tmp_path: Path, size: int) -> int:
    """How many times `check` walks the subscriptions and the reader tables."""
    folder = tmp_path / str(size)
    folder.mkdir()
    config = load_config(institution(folder, size, per_file=250))
    store = open_store(config, NOW)
    config = replace(
        config, subscriptions=Counted(config.subscriptions), recipients=Counted(config.recipients)
    )
    Counted.walks = 0
    with contextlib.redirect_stdout(io.StringIO()):
        print_check(config, store, NOW)
    store.close()
    return Counted.walks


def test_check_walks_the_subscriptions_a_fixed_number_of_times_whatever_their_number(
    tmp_path: Path,
) -> None:
    # A walk per mention (a display name looked up by scanning every subscription) made check
    # quadratic: 5,000 subscriptions, three readers each, walked them 15,000 times.
    small, large = walks_in_check(tmp_path, 100), walks_in_check(tmp_path, 1000)
    assert small == large <= 6
