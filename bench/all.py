"""Run every benchmark once, in one go, and write their tables into bench/README.md.

python bench/all.py [--baseline SRC]   # about ten minutes; PostgreSQL rows need
                                        # WATCHER_TEST_POSTGRES_URL

With --baseline (another checkout's root, e.g. `git worktree add /tmp/base main`), the parser and
the start-up are also measured from that checkout, side by side, and the start-up goal (half of
the baseline's time) is judged; where valgrind is installed, the start-up's instruction counts are
added (about two more minutes).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    ("1. Parse", "parse.py"),
    ("2. Requests", "week.py"),
    ("3. Store", "store.py"),
    ("4. Digest", "digest.py"),
    ("5. Start-up", "startup.py"),
    ("6. Follow-ups", "followups.py"),
    ("7. Digest size as sent", "digest_size.py"),
]
WITH_BASELINE = ("parse.py", "startup.py")
START, END = "<!-- results -->", "<!-- /results -->"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", help="another checkout's root, measured beside this one")
    args = ap.parse_args()
    parts = [
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}"
        f", {platform.machine()}, by `python bench/all.py`.\n"
    ]
    for title, script in SCRIPTS:
        print(f"== {script}", flush=True)
        extra = ["--baseline", args.baseline] if args.baseline and script in WITH_BASELINE else []
        if script == "startup.py" and shutil.which("valgrind"):
            extra.append("--instructions")  # the figure that does not move with the machine
        proc = subprocess.run(
            [sys.executable, str(HERE / script), *extra], capture_output=True, text=True
        )
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr)
            return 1
        print(proc.stdout)
        parts.append(f"### {title} (`bench/{script}`)\n\n{proc.stdout.strip()}\n")
    readme = HERE / "README.md"
    text = readme.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    readme.write_text(f"{head}{START}\n" + "\n".join(parts) + f"{END}{tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
