"""`include`: a config's subscriptions, and their readers' [[recipient]] tables, in several
files (one per team, say), named by glob patterns relative to the main file's folder:

    include = ["teams/*.toml", "/srv/shared/watcher-searches.toml"]

Patterns are read in the order written, each one's files in sorted order; a file matched twice
is read once, and the main file never again. An included file holds only [[subscription]] and
[[recipient]] tables: [defaults], [mail] and the rest stay in the main file, the one place that
says how the watcher runs (a team's subscriptions take the main file's [defaults], and override
them per subscription as anywhere), and it includes nothing itself. Each file is checked on its
own: an error names that file and its own key path (`…/teams/b.toml: subscription[3].query`).
Names are unique across all files (a clash names both files); a [[recipient]] table in any file
may refine a reader of any file's subscriptions, once.

Bounds: MAX_CONFIG_BYTES for each file, MAX_TOTAL_CONFIG_BYTES for all of them together (the
main one included), MAX_INCLUDED_FILES. A pattern that matches no file is an error, not a
warning: a mistyped pattern would otherwise drop a team's searches without a word, and a
daemon's reload (SIGHUP) refuses it and keeps running the config it has.
"""

from __future__ import annotations

import glob
import os
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple

from watcher.config_keys import INCLUDED_TOP_LEVEL, TOP_LEVEL, ConfigFile, MailConfig
from watcher.config_subscriptions import SubscriptionReader
from watcher.subscriptions import Recipient, Schedule, Subscription
from watcher.toml_reading import (
    MAX_INCLUDED_FILES,
    MAX_TOTAL_CONFIG_BYTES,
    TableReader,
    parse_document,
    read_config_bytes,
    suggest,
)


class Part(NamedTuple):
    """One file's share of what is watched, as TOML gave it (checked by `read_watched`)."""

    path: Path
    subscriptions: Any
    recipients: Any
    size: int


def included_parts(main: TableReader, raw: Any, main_size: int) -> list[Part]:
    """The files `include` names, each read, parsed and its top-level keys checked."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise main.fail("include", 'must be an array of glob patterns: ["teams/*.toml"]')
    read = {main.path.resolve()}
    parts: list[Part] = []
    total = main_size
    for i, pattern in enumerate(raw):
        where = f"include[{i}]"
        main.typed(where, pattern, str)
        files = _files(main.base, pattern)
        if not files:
            raise main.fail(where, f"{pattern!r} matches no file (relative to {main.base})")
        for path in files:
            if path.resolve() in read:
                continue
            read.add(path.resolve())
            if len(read) > MAX_INCLUDED_FILES + 1:
                raise main.fail("include", f"names more than {MAX_INCLUDED_FILES:,} files")
            data = read_config_bytes(path)
            total += len(data)
            if total > MAX_TOTAL_CONFIG_BYTES:
                raise main.fail(
                    "include",
                    f"its files come to more than {MAX_TOTAL_CONFIG_BYTES:,} bytes with this one "
                    f"(reached at {path})",
                )
            parts.append(_part(path, parse_document(path, data), len(data), main.path))
    return parts


def _files(base: Path, pattern: str) -> list[Path]:
    """The regular files `pattern` matches, sorted (`**` spans folders; names starting with a
    dot, an editor's swap files, are not matched by `*`)."""
    pattern = os.path.expanduser(pattern)
    found = glob.glob(pattern, root_dir=base, recursive=True)
    return [path for path in (base / name for name in sorted(found)) if path.is_file()]


def _part(path: Path, data: dict[str, Any], size: int, main: Path) -> Part:
    reader = TableReader(path)
    for name in data:
        if name in INCLUDED_TOP_LEVEL:
            continue
        if name == "include":
            raise reader.fail(name, f"an included file includes nothing: list its files in {main}")
        if name in TOP_LEVEL:
            raise reader.fail(
                name,
                f"belongs in {main}: a file it includes holds only [[subscription]] and "
                "[[recipient]] tables",
            )
        raise reader.fail(name, f"unknown key{suggest(name, INCLUDED_TOP_LEVEL)}")
    return Part(path, data.get("subscription", []), data.get("recipient", []), size)


def read_watched(
    main: SubscriptionReader, parts: list[Part], defaults: Schedule, mail: MailConfig
) -> tuple[tuple[Subscription, ...], tuple[Recipient, ...], tuple[ConfigFile, ...]]:
    """Every file's subscriptions, then every file's [[recipient]] tables (a table may refine a
    reader of another file's subscriptions), and what each file held. The main file is
    `parts[0]`; each other file is checked by a reader of its own, so errors name it."""
    readers = [main] + [SubscriptionReader(part.path) for part in parts[1:]]
    for reader in readers[1:]:
        reader.warnings = main.warnings  # one list, in file order
    names: dict[str, tuple[Path, str]] = {}
    subs = [
        r.subscriptions(p.subscriptions, defaults, names)
        for r, p in zip(readers, parts, strict=True)
    ]
    subscriptions = tuple(chain.from_iterable(subs))
    if not subscriptions:
        where = " (here or in the files `include` names)" if len(parts) > 1 else ""
        raise main.fail("subscription", f"no [[subscription]] entries{where}: nothing to watch")
    listed = {address for sub in subscriptions for address in sub.recipients}
    tables: dict[str, tuple[Path, str]] = {}
    readers_tables = [
        r.recipients(p.recipients, listed, mail, defaults, tables)
        for r, p in zip(readers, parts, strict=True)
    ]
    files = tuple(
        ConfigFile(part.path, len(s), len(t), part.size)
        for part, s, t in zip(parts, subs, readers_tables, strict=True)
    )
    return subscriptions, tuple(chain.from_iterable(readers_tables)), files
