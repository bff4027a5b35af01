"""The code's shape, held: imports run one way (no cycles), the environment is read in one
module, sources do not import each other, nobody above the store inspects exception modules,
migrations are named by their change in one chain, and no test imports bench/."""

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
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(n == "bench" or n.startswith("bench.") for n in names), path
