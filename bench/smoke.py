"""The quick benchmarks CI runs: a build breaks only on gross regressions (more requests than the
minimum or a 429, a parser below half the bare lxml floor or 0.7x a hand-written lxml parser or
past 200 MB, a 50-paper digest Gmail would clip, an ingest past 2x the bare driver).

    python bench/smoke.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent.parent / "shared" / "corpus"


def main() -> int:
    scripts = ["week.py"]
    if CORPUS.is_dir():
        scripts += ["parse.py", "digest.py", "store.py"]
    else:
        print(f"parse and digest smoke left out: no corpus at {CORPUS}")
    failed = []
    for script in scripts:
        print(f"== bench/{script} --smoke", flush=True)
        if subprocess.run([sys.executable, str(HERE / script), "--smoke"]).returncode != 0:
            failed.append(script)
    if failed:
        print(f"bench smoke FAILED: {', '.join(failed)}")
        return 1
    print("bench smoke: all within bounds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
