"""Crash trials: the real `watcher poll`, `watcher digest` and `watcher run` killed with SIGKILL at
random moments, restarted, and at the end left to finish; then every paper must have reached every
recipient, and every copy mailed twice must come from the one window no client can close: the
SMTP server had the message (it keeps what it received when DATA ended, as an MTA that queues
before running its filters does) but the watcher had not committed it as sent when it died.

Each cell (command x store) is one store and one sequence of trials. A trial: 1-3 new papers
appear at the fake NCBI; for `digest` a poll records them (in this process); the command starts
and is killed after a random delay (drawn from random.Random(seed)); the next trial restarts it.
The SMTP server (aiosmtpd, real sockets) answers DATA after 0.5-1.5 s, so many kills land while
it holds a message. After the last trial: `watcher poll` and `watcher digest` (`watcher run` for
the run cell, until all is mailed, then SIGTERM) run to the end.

    python bench/crash.py --trials 30 --seed 16          # the full run, SQLite and PostgreSQL
    python bench/crash.py --trials 3 --command digest --store sqlite

PostgreSQL needs WATCHER_TEST_POSTGRES_URL (each cell gets a fresh schema); without it the
PostgreSQL cells are skipped with a line saying so. Exits 1 when a paper was lost or a copy was
mailed twice outside the window. tests/test_crash.py runs a short version.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

# Run from a checkout: the harness lives in the tests (tests/harness/crash.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import PG_ENV, postgres_url
from tests.harness.crash import COMMANDS, DATA_DELAY, RECIPIENTS, STORES, run_cell, table


def _delay(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    try:
        return float(low), float(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not like 0.5-1.5") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--command", choices=COMMANDS, action="append")
    parser.add_argument("--store", choices=STORES, action="append")
    parser.add_argument(
        "--data-delay",
        type=_delay,
        default=DATA_DELAY,
        metavar="LOW-HIGH",
        help="seconds the SMTP server takes to answer DATA (default 0.5-1.5)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    stores = list(args.store or STORES)
    if "postgresql" in stores and postgres_url() is None:
        print(f"PostgreSQL cells skipped: {PG_ENV} is not set")
        stores.remove("postgresql")
    began = time.monotonic()
    cells = []
    for kind in stores:
        for command in args.command or COMMANDS:
            cell = run_cell(command, kind, args.trials, args.seed, data_delay=args.data_delay)
            print(f"{command} on {kind}: done in {cell.seconds:.0f} s", file=sys.stderr)
            for note in cell.notes:
                print(f"  copy again: {note}", file=sys.stderr)
            if cell.failure:
                print(f"{command} on {kind} FAILED:\n{cell.failure}", file=sys.stderr)
            cells.append(cell)
    print(
        f"{args.trials} SIGKILL trials per cell, seed {args.seed}, {len(RECIPIENTS)} recipients, "
        f"SMTP answering DATA after {args.data_delay[0]}-{args.data_delay[1]} s "
        "(and keeping what it held when the client died)\n"
    )
    print(table(cells))
    print(f"\nwall time {time.monotonic() - began:.0f} s")
    return 0 if all(c.ok for c in cells) else 1


if __name__ == "__main__":
    raise SystemExit(main())
