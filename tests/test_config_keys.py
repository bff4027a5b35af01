"""Each config key is declared once, on the dataclass field it fills (watcher/config_keys.py,
subscriptions.py's Schedule, Subscription and Recipient): README's reference and
config.example.toml follow those declarations key by key, default by default, and the reader
takes its allowed keys, types and defaults from them."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from watcher.config_keys import TABLES
from watcher.errors import ConfigError
from watcher.toml_reading import (
    INHERITED,
    NUMBER,
    REQUIRED,
    Key,
    TableReader,
    key,
    keys,
    parse_duration,
)

from .conftest import REPO

DECLARED = [(table, k) for table, declared in TABLES.items() for k in declared]
IDS = [f"{table} {k.name}" for table, k in DECLARED]


def readme_defaults() -> dict[tuple[str, str], str]:
    """(table, key) → the default column of README's configuration reference."""
    readme = (REPO / "README.md").read_text()
    row = re.compile(r"^\| `(\[[\w.\[\]]+\]) ([\w`, ]+)` \| ([^|]*) \|", re.M)
    return {
        (table, name.strip("` ")): default.strip()
        for table, names, default in row.findall(readme)
        for name in names.split(",")
    }


def example_tables() -> list[tuple[str, dict[str, Any]]]:
    """(heading, table) for every table of config.example.toml, its commented keys and tables
    (`# rate_limit = 3`, `# [mail.smtp]`) read as if written."""
    text = (REPO / "config.example.toml").read_text()
    commented = re.sub(r"^# (\w+ = |\[\[?\w+(?:\.\w+)?\]\]?$)", r"\1", text, flags=re.M)
    found = []
    for doc in (tomllib.loads(text), tomllib.loads(commented)):
        for name, value in doc.items():
            for table in value if isinstance(value, list) else [value]:
                heading = f"[[{name}]]" if isinstance(value, list) else f"[{name}]"
                found.append((heading, table))
                found += [(f"[{name}.{k}]", v) for k, v in table.items() if isinstance(v, dict)]
    return found


def as_default(written: Any, default: Any) -> Any:
    """A value as README or the example writes it, read as the declared default's kind."""
    if isinstance(default, bool):
        return {"true": True, "false": False}.get(written, written)
    if isinstance(default, timedelta):
        return parse_duration(written)
    return type(default)(written)  # str, int, float, Path


def has_default(k: Key) -> bool:
    return k.default not in (REQUIRED, INHERITED, None, ())


@pytest.mark.parametrize(("table", "k"), DECLARED, ids=IDS)
def test_readme_gives_each_declared_key_its_declared_default(table: str, k: Key) -> None:
    if k.toml is dict:  # a table of its own ([mail] smtp is [mail.smtp]), with its own rows
        assert f"[{table.strip('[]')}.{k.name}]" in TABLES
        return
    default = readme_defaults().get((table, k.name))
    assert default is not None, f"README's reference has no row for {table} {k.name}"
    if k.default is REQUIRED:
        assert default.startswith("required"), default
    elif has_default(k):
        literal = re.fullmatch(r"`([^`]+)`", default)
        assert literal, f"{table} {k.name}: README gives {default!r}, declared {k.default!r}"
        assert as_default(literal.group(1), k.default) == k.default
    else:  # none, or worked out (from [defaults], by `security`, NCBI's limit)
        assert not default.startswith("`"), default


def test_readme_documents_no_key_the_declarations_do_not_have() -> None:
    declared = {(table, k.name) for table, k in DECLARED}
    documented = {row for row in readme_defaults() if row[0] in TABLES}
    assert documented <= declared, documented - declared


@pytest.mark.parametrize(("table", "k"), DECLARED, ids=IDS)
def test_the_example_shows_each_declared_key_with_its_default(table: str, k: Key) -> None:
    if k.default is INHERITED or k.toml is dict:
        return  # shown where it is declared with a default: [defaults], [mail]
    written = [t[k.name] for heading, t in example_tables() if heading == table and k.name in t]
    assert written, f"config.example.toml does not show {table} {k.name}"
    if not has_default(k) or as_default(written[0], k.default) == k.default:
        return
    # A value other than the default (a time zone to show one) says what the default is.
    shown = f'"{k.default}"' if isinstance(k.default, str) else str(k.default)
    text = (REPO / "config.example.toml").read_text()
    assert re.search(rf"^#? ?{k.name} = .*\(default {re.escape(shown)}\)", text, re.M), (
        f"config.example.toml shows {table} {k.name} = {written[0]!r} without its default"
    )


@dataclass(frozen=True, kw_only=True)
class Probe:
    """A table of every kind of key, as a new one would be declared."""

    name: str = field(metadata=key(str, "required"))
    size: float = field(default=2.0, metadata=key(NUMBER, "a number, read as a float"))
    every: timedelta = field(default=timedelta(days=1), metadata=key(str, "a duration"))
    port: int = field(metadata=key(int, "worked out by the reader", inherited=True))
    sender: str = field(default="a@example.org", metadata=key(str, "named", name="from"))
    derived: str | None = None  # no metadata: not a key


def test_a_declared_field_is_a_key_with_its_default_type_and_name() -> None:
    found = {k.attr: k for k in keys(Probe)}
    assert list(found) == ["name", "size", "every", "port", "sender"]
    assert found["name"].default is REQUIRED and found["port"].default is INHERITED
    assert found["sender"].name == "from" and found["every"].default == timedelta(days=1)
    assert [k.attr for k in keys(Probe, "size", "port")] == ["size", "port"]
    assert keys(Probe, "size", defaults=Probe(name="x", size=5.0, port=1))[0].default == 5.0


def test_the_reader_takes_allowed_keys_types_and_defaults_from_the_declaration(
    tmp_path: Path,
) -> None:
    reader = TableReader(tmp_path / "w.toml")
    declared = keys(Probe)
    assert reader.read({"name": "x", "size": 3}, "probe", declared) == {
        "name": "x",
        "size": 3.0,  # an integer where a number belongs is read as a float
        "every": timedelta(days=1),
        "sender": "a@example.org",
    }  # port, INHERITED and not written, is the reader's to work out
    parent = Probe(name="p", size=9.0, port=25)
    assert reader.read({}, "probe", declared, parent)["port"] == 25
    for raw, says in [
        ({}, "probe.name: is required"),
        ({"name": "x", "size": "big"}, "probe.size: must be an integer or a number, not a string"),
        ({"name": "x", "form": "y"}, "probe.form: unknown key (did you mean 'from'?)"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(says)):
            reader.read(raw, "probe", declared)
