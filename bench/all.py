"""Run every benchmark once, in one go, and write their tables into bench/README.md.

python bench/all.py     # about three minutes; PostgreSQL rows need WATCHER_TEST_POSTGRES_URL
"""

from __future__ import annotations

import platform
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
]
START, END = "<!-- results -->", "<!-- /results -->"


def main() -> int:
    parts = [
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}"
        f", {platform.machine()}, by `python bench/all.py`.\n"
    ]
    for title, script in SCRIPTS:
        print(f"== {script}", flush=True)
        proc = subprocess.run([sys.executable, str(HERE / script)], capture_output=True, text=True)
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
