"""Reading a TOML config: the bounds on what it may hold, `key()` (a key declared once, on the
dataclass field it fills) and a reader whose typed getters name the file and the key path in
every error (`subscription[2].recipients[0]`).

Nothing here knows a particular key: config.py and config_subscriptions.py hold their rules.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import MISSING, fields
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from watcher.errors import ConfigError

# Bounds on what a config may hold, far above any sensible value: a runaway value (a pasted file,
# a generated query) is refused at load instead of travelling into URLs, logs and the store.
MAX_CONFIG_BYTES = 1024 * 1024  # per file: the main one and each it includes
# All files together: 20,000 subscriptions with queries as long as the starter config's (about
# 650 characters, some 840 bytes a subscription with its name and recipients) take 17 MB.
MAX_TOTAL_CONFIG_BYTES = 64 * 1024 * 1024
MAX_INCLUDED_FILES = 5_000
MAX_STRING = 2_000  # URLs, addresses, paths, names, crontab lines
MAX_QUERY = 20_000  # systematic-review search strategies run to a few thousand characters

NUMBER = (int, float)  # a TOML integer or float, read as a float
TomlType = type | tuple[type, ...]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


REQUIRED: Any = _Marker("REQUIRED")  # the file must set it
INHERITED: Any = _Marker("INHERITED")  # no default of its own: the table above's, or worked out


def key(
    toml: TomlType,
    help: str,
    *,
    name: str | None = None,
    max_length: int = MAX_STRING,
    inherited: bool = False,
) -> dict[str, Any]:
    """A dataclass field's metadata that makes it a config key: the TOML type it is written in,
    a line saying what it does, its name in the file when that is not the field's, the longest
    string it may hold. Its default is the field's; a field without one is REQUIRED, or
    `inherited` (from the table above, or worked out from other keys).

        batch_size: int = field(default=500, metadata=key(int, "PMIDs per efetch request"))
    """
    return {
        "help": help,
        "toml": toml,
        "name": name,
        "max_length": max_length,
        "default": INHERITED if inherited else REQUIRED,
    }


class Key(NamedTuple):
    name: str  # as written in the file
    attr: str  # the dataclass field it fills
    toml: TomlType
    default: Any
    help: str
    max_length: int


def keys(cls: type, *only: str, defaults: object = None) -> tuple[Key, ...]:
    """The fields of dataclass `cls` whose metadata is a key(), in their order: those named in
    `only` if any, their defaults taken from the instance `defaults` if given."""
    found = []
    for f in fields(cls):
        meta = f.metadata
        if "help" not in meta or (only and f.name not in only):
            continue  # a value worked out from keys, not a key
        default = meta["default"] if f.default is MISSING else f.default
        if defaults is not None:
            default = getattr(defaults, f.name)
        name = meta["name"] or f.name
        found.append(Key(name, f.name, meta["toml"], default, meta["help"], meta["max_length"]))
    return tuple(found)


def inherited(declared: Sequence[Key]) -> tuple[Key, ...]:
    """The same keys in a table where each takes the table above's value when not written."""
    return tuple(k._replace(default=INHERITED) for k in declared)


def names(declared: Sequence[Key]) -> set[str]:
    return {k.name for k in declared}


def read_document(path: Path) -> dict[str, Any]:
    """The file's TOML, or a ConfigError naming the file and what is wrong with it."""
    return parse_document(path, read_config_bytes(path))


def read_config_bytes(path: Path) -> bytes:
    """The file's bytes, at most MAX_CONFIG_BYTES of them (each file of a config on its own)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("no such file (create one with `watcher init`)", path=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=str(path)) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"is {len(raw):,} bytes; a config file holds at most {MAX_CONFIG_BYTES:,} "
            "(put subscriptions in files of their own: `include`)",
            path=str(path),
        )
    return raw


def parse_document(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", path=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"TOML syntax error: {exc}", path=str(path)) from None


def parse_duration(text: str) -> timedelta:
    """'45s', '30m', '6h', '1d', '2w' → timedelta. Raises ValueError with a readable reason."""
    m = _DURATION.match(text)
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like '45s', '30m', '6h', '1d' or '1w'")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def format_duration(delta: timedelta) -> str:
    """A timedelta as the config writes it (parse_duration's inverse): 6h, 1w, 90m, 45s."""
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def suggest(name: str, options: Collection[str]) -> str:
    import difflib  # only for a config with a mistyped key: not on every start

    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class TableReader:
    """Walks the parsed TOML, checking each value against what it may be."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.parent.resolve()
        self.warnings: list[str] = []

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, path=str(self.path), key=key)

    def table(self, data: Any, key: str, allowed: Collection[str]) -> Mapping[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise self.fail(key, f"must be a table, not {_kind(data)}")
        for name in data:
            if name not in allowed:
                raise self.fail(_path(key, name), f"unknown key{suggest(name, allowed)}")
        return data

    def values(
        self, data: Mapping[str, Any], key: str, declared: Sequence[Key], parent: object = None
    ) -> dict[str, Any]:
        """Field → value for each declared key: as written (of its type), else `parent`'s
        value of the same field, else its default; INHERITED ones not written are left out."""
        out: dict[str, Any] = {}
        for k in declared:
            if k.name in data:
                value = self.typed(_path(key, k.name), data[k.name], k.toml, k.max_length)
                out[k.attr] = float(value) if k.toml == NUMBER else value
            elif parent is not None and hasattr(parent, k.attr):
                out[k.attr] = getattr(parent, k.attr)
            elif k.default is REQUIRED:
                raise self.fail(_path(key, k.name), "is required")
            elif k.default is not INHERITED:
                out[k.attr] = k.default
        return out

    def read(
        self, raw: Any, key: str, declared: Sequence[Key], parent: object = None
    ) -> dict[str, Any]:
        """A table's values: unknown keys refused, then `values`."""
        return self.values(self.table(raw, key, names(declared)), key, declared, parent)

    def get(self, data: Mapping[str, Any], key: str, name: str, typ: TomlType) -> Any:
        """The value of `name` if written (of type `typ`), else None."""
        return self.typed(_path(key, name), data[name], typ) if name in data else None

    def typed(self, where: str, value: Any, typ: TomlType, max_length: int = MAX_STRING) -> Any:
        if typ is date:
            if not isinstance(value, date) or isinstance(value, datetime):
                raise self.fail(where, "must be a date, written 2026-09-01 (no quotes)")
            return value
        # bool is an int in Python; a TOML `true` is never a valid number here.
        if isinstance(value, bool) and bool not in _as_tuple(typ):
            raise self.fail(where, f"must be {_type_name(typ)}, not a boolean")
        if not isinstance(value, typ):
            raise self.fail(where, f"must be {_type_name(typ)}, not {_kind(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            # TOML has nan and inf; every bound check is False for nan, so refuse here.
            raise self.fail(where, f"must be a finite number, not {value}")
        if isinstance(value, str):
            if not value.strip():
                raise self.fail(where, "must not be empty")
            self.short(where, value, max_length)
        return value

    def short(self, where: str, value: str, limit: int = MAX_STRING) -> None:
        if len(value) > limit:
            raise self.fail(
                where, f"is {len(value):,} characters long; at most {limit:,} are allowed"
            )

    def checked(self, where: str, value: Any, check: Callable[[Any], Any]) -> Any:
        try:
            return check(value)
        except ValueError as exc:
            raise self.fail(where, str(exc)) from None

    def within(self, where: str, value: float, low: int, high: int, note: str = "") -> None:
        if not low <= value <= high:
            raise self.fail(where, f"must be between {low} and {high}{note}")

    def choice(self, where: str, value: str, options: Sequence[str]) -> Any:
        if value not in options:
            raise self.fail(
                where,
                f"{value!r} is not one of "
                f"{', '.join(repr(o) for o in options)}{suggest(value, options)}",
            )
        return value

    def positive(self, where: str, value: float) -> None:
        if value <= 0:
            raise self.fail(where, "must be a positive number of seconds")

    def env_name(self, where: str, value: str | None) -> None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise self.fail(
                where,
                f"{value!r} is not an environment variable name "
                "(secrets never go in the file, only the variable's name)",
            )

    def http_url(self, where: str, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self.fail(where, f"{url!r} is not an http(s) URL")

    def local_path(self, text: str | Path) -> Path:
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.base / path


def _path(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _as_tuple(typ: TomlType) -> tuple[type, ...]:
    return typ if isinstance(typ, tuple) else (typ,)


def _type_name(typ: TomlType) -> str:
    words = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "an array",
        dict: "a table",
    }
    return " or ".join(dict.fromkeys(words.get(t, t.__name__) for t in _as_tuple(typ)))


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        str: "a string",
        int: "an integer",
        float: "a number",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)
