"""Two `watcher poll` at once on one store (issue 28's scenario), against a fake NCBI that
enforces NCBI's limit as NCBI does (HTTP 429 past 3 requests in any second from an address, or
past 10 from an API key): requests, the peak in any second, 429s, failed subscriptions, wall
and processor time of the processes.

    python bench/shared_budget.py                        # 150 subscriptions, no key
    python bench/shared_budget.py --key --subs 300       # with an API key
    python bench/shared_budget.py --tree /work/main      # the watcher of another checkout
    python bench/shared_budget.py --store postgresql     # on WATCHER_TEST_POSTGRES_URL

Each subscription matches one new paper, so the minimum for the whole run is one esearch per
subscription and one efetch per 500 papers a process fetches. `--tree` runs the processes with
that checkout first on PYTHONPATH (the "before" figures: each process kept its own limiter and
searched every subscription). Processor time is that of the child processes (the machine is
shared; wall time is the rate's, processor time is not).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.ncbi import FakeNCBI
from tests.fakes.records import synthetic
from watcher.poll import ncbi_today

KEY = "bench-key-0123456789"


def config(folder: Path, fake: FakeNCBI, subs: int, store_url: str, key: bool) -> Path:
    path = folder / "watcher.toml"
    lines = [
        f'[ncbi]\nemail = "bench@example.org"\nbase_url = "{fake.base_url}"\n',
        'api_key_env = "BENCH_NCBI_KEY"\n' if key else "",
        f'[store]\nurl = "{store_url}"\n',
        f'[mail]\nfrom = "w@example.org"\nmaildir = "{folder / "mail"}"\n',
        '[defaults]\ntimezone = "UTC"\n',
    ]
    lines += [
        f'[[subscription]]\nname = "s{i:04d}"\nquery = "topic{i:04d}"\n'
        'recipients = ["a@example.org"]\n'
        for i in range(subs)
    ]
    path.write_text("".join(lines))
    return path


def store_url(kind: str, folder: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'store.db'}", None
    base = os.environ["WATCHER_TEST_POSTGRES_URL"]
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    from sqlalchemy import create_engine, text

    with create_engine(base, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}", schema


def drop(schema: str | None) -> None:
    if schema is None:
        return
    from sqlalchemy import create_engine, text

    with create_engine(
        os.environ["WATCHER_TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT"
    ).connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def run(args: argparse.Namespace) -> dict[str, float]:
    fake = FakeNCBI(rate_limit=3).start()
    today = ncbi_today(datetime.now(UTC))
    fake.add(
        synthetic(100_000 + i, f"topic{i:04d} paper", edat=today, abstract="x")
        for i in range(args.subs)
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.key:
        env["BENCH_NCBI_KEY"] = KEY
    if args.tree:
        env["PYTHONPATH"] = str(Path(args.tree).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        url, schema = store_url(args.store, Path(tmp))
        try:
            cfg = config(Path(tmp), fake, args.subs, url, args.key)
            watcher = [sys.executable, "-m", "watcher", "-c", str(cfg)]
            # Run from the temporary folder: `python -m` puts the working folder first on
            # sys.path, before PYTHONPATH, and this checkout's watcher would win over --tree's.
            subprocess.run([*watcher, "check"], env=env, check=True, capture_output=True, cwd=tmp)
            fake.reset_counts()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.monotonic()
            procs = [
                subprocess.Popen(
                    [*watcher, "poll"],
                    env=env,
                    cwd=tmp,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                for _ in range(args.processes)
            ]
            outputs = [p.communicate()[0] for p in procs]
            wall = time.monotonic() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        finally:
            drop(schema)
    fake.stop()
    failed = sum(len(re.findall(r"^\S+: FAILED", out, re.M)) for out in outputs)
    skipped = sum(len(re.findall(r"^\S+: skipped", out, re.M)) for out in outputs)
    searches = fake.count("esearch")
    return {
        "requests": len(fake.served),
        "esearch": searches,
        "efetch": fake.count("efetch"),
        "minimum": args.subs + -(-args.subs // 500),
        "peak/s": fake.peak(window=1.0),
        "429": fake.too_many,
        "failed subs": failed,
        "skipped subs": skipped,
        "exit codes": int("".join(str(p.returncode) for p in procs)),
        "wall s": round(wall, 1),
        "cpu s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--subs", type=int, default=150)
    p.add_argument("--key", action="store_true", help="with an API key (10/s)")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--tree", help="run the watcher of this checkout instead")
    p.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    args = p.parse_args()
    figures = run(args)
    label = (
        f"{args.processes} x `watcher poll`, {args.subs} subscriptions, "
        f"{'key (10/s)' if args.key else 'no key (3/s)'}, {args.store}, "
        f"{args.tree or 'this checkout'}"
    )
    print(label)
    print(" | ".join(f"{k}: {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
