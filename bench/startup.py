"""Figure 5: start-up. `watcher --help` and `watcher check` wall time beside a bare
`python -c pass`, median of repeated runs in the same session.

    python bench/startup.py

`check` loads the config, opens (and if needed migrates) the store and computes the next runs,
so it pays for SQLAlchemy's import; `--help` imports nothing beyond argparse.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def median_time(args: list[str], cwd: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    folder = Path(tempfile.mkdtemp())
    watcher = shutil.which("watcher", path=str(Path(sys.executable).parent)) or "watcher"
    subprocess.run([watcher, "init", "w.toml"], cwd=folder, check=True, capture_output=True)
    subprocess.run(
        [watcher, "-c", "w.toml", "check"], cwd=folder, check=True, capture_output=True
    )  # the store exists: check measures the usual case
    bare = median_time([sys.executable, "-c", "pass"], folder, 21)
    rows = [
        ("python -c pass", bare),
        ("watcher --help", median_time([watcher, "--help"], folder, 21)),
        ("watcher check", median_time([watcher, "-c", "w.toml", "check"], folder, 11)),
    ]
    print("| command | median wall time | vs python -c pass | goal |")
    print("|---|---|---|---|")
    for name, t in rows:
        goal = "" if name.startswith("python") else "within 4x"
        print(f"| {name} | {t * 1000:.0f} ms | {t / bare:.1f}x | {goal} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
