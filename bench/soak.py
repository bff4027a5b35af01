"""Soak: hundreds of poll/digest cycles of the daemon's own jobs in one long-lived process, with
random faults at 10% of requests and messages, to show that memory, open file descriptors and
the database stay flat and that no cycle leaves the store inconsistent.

    python bench/soak.py                                # 500 cycles on SQLite
    python bench/soak.py --store postgresql             # needs WATCHER_TEST_POSTGRES_URL
    python bench/soak.py --cycles 50 --seed 3 --fault-rate 0.1

The watcher side is `watcher run`'s: one store, one set of sources (one HTTP session and its
rate limiters) and a `watcher.daemon.Daemon` whose jobs are called in turn each cycle —
`poll_job`, `followups_job`, `digest_job` for each digest schedule (a new SMTP transport each,
as the daemon makes), `heartbeat` — on a simulated clock one hour later each cycle (poll_every
is 1h, so every subscription is due each cycle), without APScheduler's threads. The backoff and
rate-limit waits the daemon would sleep are cut to at most 10 ms.

The world runs in a second process, so that this one holds only the watcher: the fake NCBI
(E-utilities and one RSS feed), the fake Europe PMC and ClinicalTrials.gov, and a real SMTP
server (aiosmtpd). Each cycle it adds a few papers, preprints and trials; with a fixed seed it
fails 10% of requests (NCBI: 429, 500/502/503, connection reset, a body shorter than its
Content-Length, XML cut in half, an HTML page or a JSON error under 200; Europe PMC and
ClinicalTrials.gov: 429/500/503, reset, not JSON) and of SMTP commands (421 at MAIL, 451 or
550 at RCPT, 451 or 552 at DATA, the connection dropped mid-DATA) and refuses 10% of digest
runs' connections (the server stopped). After the last cycle the faults stop and a few quiet
cycles deliver what is owed.

After each cycle the store is checked (`check_store`); at the end every (recipient, paper) owed
must have been received exactly once (the messages parsed with `email`). Measured per cycle in
this process: resident memory (/proc/self/statm), open file descriptors (/proc/self/fd) and the
database's size (the SQLite file and its WAL; on PostgreSQL pg_total_relation_size over the
store's schema). Exits 1 on an inconsistency, a paper lost or mailed twice, memory growing more
than --max-growth-mb after warm-up, or any open file descriptor more after warm-up than during it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

# Run from a checkout: the harness lives in the tests (tests/harness/soak.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness.soak import Cycle, report, run_soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument(
        "--max-growth-mb",
        type=float,
        default=8.0,
        help="resident memory may grow at most this much after warm-up",
    )
    parser.add_argument("--progress", action="store_true", help="a line per 50 cycles")
    args = parser.parse_args()
    # The faults' warnings and errors are expected by the thousand; they would bury the table.
    logging.basicConfig(level=logging.CRITICAL)

    def show(n: int, c: Cycle) -> None:
        if args.progress and n % 50 == 0:
            print(
                f"cycle {n}: rss {c.rss / 1048576:.1f} MB, fds {c.fds}, db {c.db / 1024:.0f} KB",
                file=sys.stderr,
            )

    result = run_soak(args.cycles, args.seed, args.store, args.fault_rate, show)
    lines, ok = report(result, args.max_growth_mb)
    print(f"seed {args.seed}, fault rate {args.fault_rate:g}")
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
