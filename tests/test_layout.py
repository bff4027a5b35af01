"""The code's shape, held: imports run one way (no cycles, and config → sources → store →
digest → mail, the drivers above), sources do not import each other, neither the sources nor
mail import the digest, no module passes ~400 lines, only the store (watcher/store/, the schema
and the migrations) imports SQLAlchemy, the environment is read in one module, nobody above the
store inspects exception modules, migrations are named by their change in one chain, and no
test imports bench/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

WATCHER = Path(__file__).resolve().parent.parent / "watcher"


def _module(path: Path) -> str:
    parts = path.relative_to(WATCHER.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module → the watcher modules it imports anywhere (at the top or inside functions)."""
    modules = {_module(p): p for p in WATCHER.rglob("*.py") if "migrations" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found.update(t for t in targets if t in modules and t != name)
        graph[name] = found - {"watcher"}
    return graph


def absolute_imports(path: Path) -> list[str]:
    """The modules `path` imports by absolute name, anywhere in it (`from x import y` gives x)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module or "")
        elif isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
    return names


def test_imports_have_no_cycles() -> None:
    graph = _imports()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            raise AssertionError(" -> ".join([*path[path.index(node) :], node]))
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for module in sorted(graph):
        visit(module, [])


# The stages data flows through, config → sources → store → digest → mail, and around them the
# shared parts every stage uses (records, errors, text helpers …) and the drivers (cli, daemon,
# wiring) that build and run the rest. A module imports its own stage's modules and those of the
# stages listed for it, never a later stage's: the sources are given their settings (never the
# config), the digest takes data and returns data (never a source or the store), and the outbox
# (delivery.py) hands mail what it sends.
MAY_IMPORT = {
    "shared": set(),
    "config": {"shared"},
    "sources": {"shared"},
    "store": {"shared", "config", "sources"},
    "digest": {"shared", "config"},
    "mail": {"shared", "config", "store", "digest"},
    "drive": {"shared", "config", "sources", "store", "digest", "mail"},
}
# Each module's stage, by its name under watcher/ (a package stands for every module in it);
# what is not listed is shared.
STAGES = {
    "config": {
        "config",
        "config_authors",
        "config_include",
        "config_keys",
        "config_subscriptions",
        "drug_table",
    },
    "sources": {"sources", "trials"},
    "store": {
        "store",
        "schema",
        "poll",
        "poll_fetch",
        "poll_locks",
        "poll_report",
        "backfill",
        "followups",
    },
    "digest": {"digest"},
    "mail": {"mail", "transports", "delivery"},
    "drive": {"cli", "check", "status", "daemon", "wiring", "__main__"},
}
# Plain constants the config's defaults and the sources share (the registries' roots and paces).
SHARED = {"watcher.sources.endpoints"}


def _stage(module: str) -> str:
    if module in SHARED:
        return "shared"
    first = module.removeprefix("watcher.").split(".")[0]
    return next((stage for stage, names in STAGES.items() if first in names), "shared")


def test_imports_run_one_way_through_the_stages() -> None:
    wrong = [
        f"{module} ({_stage(module)}) imports {target} ({_stage(target)})"
        for module, targets in _imports().items()
        for target in sorted(targets)
        if _stage(target) != _stage(module) and _stage(target) not in MAY_IMPORT[_stage(module)]
    ]
    assert not wrong, "\n".join(wrong)
    assert {_stage(m) for m in _imports()} == set(MAY_IMPORT)


def test_neither_the_sources_nor_mail_import_the_digest() -> None:
    """A source shares helpers with the digest through watcher/text/ and models; mail is handed
    rendered parts and the RIS text by the outbox."""
    for module, targets in _imports().items():
        if module.startswith(("watcher.sources", "watcher.transports")) or module == "watcher.mail":
            digest = sorted(
                t for t in targets if t == "watcher.digest" or t.startswith("watcher.digest.")
            )
            assert not digest, (module, digest)


MAX_LINES = 400


def test_no_module_passes_about_400_lines() -> None:
    """A module past ~400 lines is holding two things (STYLE.md); migrations are history, left
    as they are."""
    over = {
        str(path.relative_to(WATCHER)): lines
        for path in WATCHER.rglob("*.py")
        if "migrations" not in path.parts
        and (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not over, over


def test_only_the_store_imports_sqlalchemy() -> None:
    """The database is the store's: watcher/store/, the tables (schema.py) and the migrations
    import SQLAlchemy, nobody else (its errors become StoreError at the store's boundary)."""
    allowed = (WATCHER / "store", WATCHER / "migrations")
    for path in WATCHER.rglob("*.py"):
        if path.is_relative_to(allowed[0]) or path.is_relative_to(allowed[1]):
            continue
        if path == WATCHER / "schema.py":
            continue
        names = absolute_imports(path)
        assert not any(n == "sqlalchemy" or n.startswith("sqlalchemy.") for n in names), path


def test_sources_do_not_import_each_other_nor_the_config() -> None:
    graph = _imports()
    sources = {
        "watcher.sources.pubmed_search",
        "watcher.sources.rss",
        "watcher.sources.europepmc",
        "watcher.sources.clinicaltrials",
    }
    for source in sources:
        assert not graph[source] & (sources | {"watcher.config", "watcher.poll"}), source
    transports = {"watcher.transports.smtp", "watcher.transports.maildir"}
    for transport in transports:
        assert not graph[transport] & (transports | {"watcher.config"}), transport


def _readme_tree() -> set[str]:
    """The modules README's "How the code is laid out" draws, as paths under watcher/: the
    first code block there, a folder's entries indented under it, "a.py, b.py" on one line."""
    readme = (WATCHER.parent / "README.md").read_text()
    block = readme[readme.index("## How the code is laid out") :].split("```\n", 2)[1]
    entry = re.compile(r"\w+(?:\.py|/)(?:, \w+(?:\.py|/))*")
    found: set[str] = set()
    folders: list[tuple[int, str]] = []
    for line in block.splitlines()[1:]:
        names = line.strip().split("  ")[0]
        if not entry.fullmatch(names):
            continue  # a heading or a description's second line
        indent = len(line) - len(line.lstrip())
        folders = [(i, f) for i, f in folders if i < indent]
        for name in names.split(", "):
            if name.endswith("/"):
                folders.append((indent, name))
            else:
                found.add("".join(f for _, f in folders) + name)
    return found


def test_readme_draws_every_module_and_only_those() -> None:
    modules = {
        str(path.relative_to(WATCHER))
        for path in WATCHER.rglob("*.py")
        if path.name != "__init__.py" and "migrations" not in path.parts
    }
    drawn = _readme_tree()
    assert drawn == modules, (sorted(modules - drawn), sorted(drawn - modules))


def test_only_wiring_reads_the_environment_and_nobody_checks_exception_modules() -> None:
    for path in WATCHER.rglob("*.py"):
        text = path.read_text()
        if path.name != "wiring.py":
            assert "os.environ" not in text and "getenv" not in text, path
        assert "__module__" not in text, path


MIGRATIONS = WATCHER / "migrations" / "versions"


def test_migrations_are_named_by_their_change_and_form_one_line() -> None:
    """A file says what it changes (0005_one_json_copy.py), never the issue it came from; its
    revision id is its number, and each revises the one before, so a store migrates along a
    single chain to a single head."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    files = sorted(p.name for p in MIGRATIONS.glob("[0-9]*.py"))
    for name in files:
        assert re.fullmatch(r"\d{4}_[a-z]+(?:_[a-z]+)*\.py", name), name
        assert "issue" not in name, name
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS.parent))
    script = ScriptDirectory.from_config(cfg)
    assert len(script.get_heads()) == 1, script.get_heads()
    chain = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert chain == [name[:4] for name in files]
    for revision in script.walk_revisions():
        assert revision.branch_labels == set(), revision.revision
        assert not revision.is_merge_point, revision.revision
        assert not revision.is_branch_point, revision.revision


def test_no_test_imports_bench() -> None:
    """The benchmarks import the tests' harness (tests/harness/), never the other way round: a
    test runs whatever state bench/ is in, and bench/ is not shipped with the tests' guarantees."""
    tests = Path(__file__).resolve().parent
    for path in tests.rglob("*.py"):
        names = absolute_imports(path)
        assert not any(n == "bench" or n.startswith("bench.") for n in names), path
