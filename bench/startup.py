"""Figure 5: start-up. `watcher --help`, `check` and `status` wall time beside a bare
`python -c pass`, median of repeated runs in the same session; with `--baseline SRC`, the same
commands from another checkout (e.g. `git worktree add /tmp/base main`) run alternately with
this one, each on its own store, so both see the same machine.

    python bench/startup.py [--baseline /tmp/base] [--runs 21] [--instructions]

`check` loads the config, opens the store (migrated already: the usual case) and computes the
next runs; `status` loads the config and reads the store. Both pay for SQLAlchemy's import, measured
alone beside them (`python -c 'import sqlalchemy'`: SQLAlchemy Core, which is all the store uses);
`--help` imports nothing beyond argparse.

Each checkout's `watcher` package is byte-compiled first, as an installed one is (pip compiles on
install; a checkout run without PYTHONDONTWRITEBYTECODE writes its own `__pycache__` on the first
run). Without it, where PYTHONDONTWRITEBYTECODE is set (as on the shared VM), every run would
compile the watcher's sources again, a cost no installed copy pays.

Wall times on a shared machine move by 10-20% from one run to the next, ratios with them. With
`--instructions` (valgrind's callgrind, where installed), each command's instruction count is
added: the same figure every time for the same code, whatever else the machine does. It leaves
out what instructions do not show (waiting on the disk, caches), so it is a second figure, not
the goal's.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
GOAL = 0.5  # check and status at most half the baseline's time
# What any command that opens a SQLite store through SQLAlchemy pays before the watcher runs.
FLOOR = "import sqlalchemy.dialects.sqlite.pysqlite"


def run(args: list[str], cwd: Path, src: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    subprocess.run(
        args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    return time.perf_counter() - start


def instructions(args: list[str], cwd: Path, src: Path) -> int:
    """Instructions the command executes, counted by callgrind."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind: {proc.stderr[-500:]}")
    return int(found.group(1))


def prepare(src: Path) -> Path:
    folder = Path(tempfile.mkdtemp())
    watcher = [sys.executable, "-m", "watcher"]
    env = {**os.environ, "PYTHONPATH": str(src)}
    # Into the checkout's __pycache__ folders (ignored by git), read by every timed run.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(src / "watcher")],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*watcher, "init", "w.toml"], cwd=folder, env=env, check=True, capture_output=True
    )
    # The store exists and is migrated before timing: the usual case.
    subprocess.run(
        [*watcher, "-c", "w.toml", "check"], cwd=folder, env=env, check=True, capture_output=True
    )
    return folder


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", type=Path, help="another checkout's root, run side by side")
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument(
        "--instructions", action="store_true", help="add callgrind's counts (about 2 minutes)"
    )
    args = ap.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        ap.error("--instructions needs valgrind")
    sides = {"this": HERE}
    if args.baseline:
        sides["baseline"] = args.baseline.resolve()
    folders = {name: prepare(src) for name, src in sides.items()}
    commands = {
        "watcher --help": ["--help"],
        "watcher check": ["-c", "w.toml", "check"],
        "watcher status": ["-c", "w.toml", "status"],
    }
    times: dict[tuple[str, str], list[float]] = {}
    bare = []
    floor = []  # what any command that opens the store through SQLAlchemy pays first
    for _ in range(args.runs):  # alternate, so a busy moment hits every contender alike
        bare.append(run([sys.executable, "-c", "pass"], HERE, HERE))
        floor.append(run([sys.executable, "-c", FLOOR], HERE, HERE))
        for label, argv in commands.items():
            for name, src in sides.items():
                t = run([sys.executable, "-m", "watcher", *argv], folders[name], src)
                times.setdefault((label, name), []).append(t)
    base = statistics.median(bare)
    print(f"median of {args.runs} runs each, alternated; wall time\n")
    header = "| command | median | vs python -c pass |"
    if args.baseline:
        header += " baseline | this vs baseline | goal |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    print(f"| python -c pass | {base * 1000:.0f} ms | 1.0x |" + (" | | |" if args.baseline else ""))
    t = statistics.median(floor)
    row = f"| python -c '{FLOOR}' | {t * 1000:.0f} ms | {t / base:.1f}x |"
    if args.baseline:
        b = statistics.median(times[("watcher check", "baseline")])
        row += f" | {t / b:.2f}x of the baseline's check | |"
    print(row)
    for label in commands:
        t = statistics.median(times[(label, "this")])
        row = f"| {label} | {t * 1000:.0f} ms | {t / base:.1f}x |"
        if args.baseline:
            b = statistics.median(times[(label, "baseline")])
            goal = ""
            if label != "watcher --help":
                ratio = t / b
                goal = (
                    f"≤ {GOAL}x: met"
                    if ratio <= GOAL
                    else f"≤ {GOAL}x: missed by {ratio / GOAL - 1:.0%}"
                )
            row += f" {b * 1000:.0f} ms | {t / b:.2f}x | {goal} |"
        print(row)
    if args.instructions:
        print_instructions(sides, folders, commands)
    return 0


def print_instructions(
    sides: dict[str, Path], folders: dict[str, Path], commands: dict[str, list[str]]
) -> None:
    count = {
        "pass": instructions([sys.executable, "-c", "pass"], HERE, HERE),
        "floor": instructions([sys.executable, "-c", FLOOR], HERE, HERE),
    }
    for label, argv in commands.items():
        for name, src in sides.items():
            count[f"{label} {name}"] = instructions(
                [sys.executable, "-m", "watcher", *argv], folders[name], src
            )
    print("\ninstructions (valgrind callgrind, one run each: the count does not vary)\n")
    baseline = "baseline" in sides
    header = "| command | this | " + ("baseline | this vs baseline |" if baseline else "")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for label, code in (("pass", "pass"), ("floor", FLOOR)):
        row = f"| python -c '{code}' | {count[label] / 1e6:,.0f} M |"
        if baseline:
            row += f" | {count[label] / count['watcher check baseline']:.2f}x of its check |"
        print(row)
    for label in commands:
        this = count[f"{label} this"]
        row = f"| {label} | {this / 1e6:,.0f} M |"
        if baseline:
            other = count[f"{label} baseline"]
            row += f" {other / 1e6:,.0f} M | {this / other:.2f}x |"
        print(row)


if __name__ == "__main__":
    raise SystemExit(main())
