"""The quick benchmarks CI runs: a build breaks only on gross regressions (more requests than the
minimum or a 429, a parser below a quarter of bare lxml, a 50-paper digest Gmail would clip).

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
        scripts += ["parse.py", "digest.py"]
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
