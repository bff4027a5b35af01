"""Figure 5: start-up. `watcher --help`, `check` and `status` wall time beside a bare
`python -c pass`, median of repeated runs in the same session; with `--baseline SRC`, the same
commands from another checkout (e.g. `git worktree add /tmp/base main`) run alternately with
this one, each on its own store, so both see the same machine.

    python bench/startup.py [--baseline /tmp/base] [--runs 21]

`check` loads the config, opens the store (migrated already: the usual case) and computes the
next runs; `status` loads the config and reads the store. Both pay for SQLAlchemy's import, measured
alone beside them (`python -c 'import sqlalchemy'`: SQLAlchemy Core, which is all the store uses);
`--help` imports nothing beyond argparse.

Each checkout's `watcher` package is byte-compiled first, as an installed one is (pip compiles on
install; a checkout run without PYTHONDONTWRITEBYTECODE writes its own `__pycache__` on the first
run). Without it, where PYTHONDONTWRITEBYTECODE is set (as on the shared VM), every run would
compile the watcher's sources again, a cost no installed copy pays.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
GOAL = 0.5  # check and status at most half the baseline's time


def run(args: list[str], cwd: Path, src: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    subprocess.run(
        args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    return time.perf_counter() - start


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
    args = ap.parse_args()
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
        floor.append(run([sys.executable, "-c", "import sqlalchemy"], HERE, HERE))
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
    row = f"| python -c 'import sqlalchemy' | {t * 1000:.0f} ms | {t / base:.1f}x |"
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
