"""Stress: two `watcher digest` processes overlapping on one store, round after round, against an
SMTP server that waits 1-2 s before answering DATA; and records that NCBI first leaves out or
sends unreadable, then fixes. Counts papers mailed twice (must be 0), papers never mailed (must
be 0, but for the one record NCBI never gives) and how the late records ended.

Each round: new papers arrive (four readable, one unreadable, one left out of efetch answers);
one poll (in this process, its clock an hour later each round, so the backoff lets records be
retried); then `python -m watcher digest` twice, the second started 0-1.5 s after the first,
so it lands while the first chooses papers or waits on the server. Records broken in a round
are fixed two rounds later, under a title the search no longer finds: only the poll's reach
back to owed records can deliver them. One record is never given (a deleted one).

    python bench/stress_digest.py                       # 20 rounds on SQLite, about 3 minutes
    python bench/stress_digest.py --store postgresql    # needs WATCHER_TEST_POSTGRES_URL
    python bench/stress_digest.py --rounds 5

Not part of the test suite (tests/test_concurrency.py holds the quick versions). Exits 1 when a
paper was mailed twice or a readable one never.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.ncbi import FakeNCBI, FakeRecord
from tests.fakes.records import synthetic
from tests.fakes.smtp import SmtpServer
from tests.harness.commands import start_watcher, store_url, write_config
from watcher.config import load_config
from watcher.identity import pmid_key
from watcher.poll import ncbi_today, poll
from watcher.store import Store
from watcher.wiring import make_sources

RECIPIENTS = ("alice@example.org", "bob@example.org", "carol@example.org")
DELETED = 99_999_999  # esearch lists it, efetch never returns it
FIX_AFTER = 2  # rounds a broken or missing record stays so


def broken(rec: FakeRecord) -> FakeRecord:
    return replace(rec, xml=re.sub(rb"<Article\b.*</Article>", b"", rec.xml, flags=re.S))


def digest(cfg: Path) -> subprocess.Popen[str]:
    return start_watcher(cfg, "digest")


def mailed(smtp: SmtpServer) -> Counter[tuple[str, int]]:
    """(recipient, PMID) → how many messages carried it."""
    seen: Counter[tuple[str, int]] = Counter()
    for r in smtp.received:
        body = r.message.get_body(("plain",))
        assert body is not None
        for pmid in dict.fromkeys(
            re.findall(r"pubmed\.ncbi\.nlm\.nih\.gov/(\d+)/", body.get_content())
        ):
            seen[(r.rcpt_tos[0], int(pmid))] += 1
    return seen


def run(kind: str, rounds: int, seed: int) -> int:
    rng = random.Random(seed)
    fake = FakeNCBI().start()
    smtp = SmtpServer().start()
    smtp.handler.data_delay = (1.0, 2.0)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, store_url(kind, Path(tmp)) as url:
        cfg = write_config(Path(tmp), url, fake, smtp, recipients=RECIPIENTS)
        config = load_config(cfg)
        t0 = datetime.now(UTC)
        clock = [t0]  # the polls' clock: an hour later each round
        sources = make_sources(config, clock=lambda: clock[0])
        store = Store.open(url)
        store.polls.sync(config.subscriptions, t0 - timedelta(days=1))
        today = ncbi_today(t0)
        fake.add([synthetic(DELETED, "teplizumab, deleted", edat=today)])
        fake.withheld.add(DELETED)
        readable: set[int] = set()
        late: dict[int, int] = {}  # PMID broken or left out → round it is fixed
        skips = overlaps = 0
        for n in range(rounds + FIX_AFTER + 1):
            extra = n >= rounds  # closing rounds: nothing new, the late records come in
            if not extra:
                base = 1000 + 10 * n
                fake.add(
                    synthetic(base + i, f"teplizumab paper {base + i}", edat=today)
                    for i in range(4)
                )
                readable.update(range(base, base + 4))
                fake.add([broken(synthetic(base + 4, f"teplizumab broken {base + 4}", edat=today))])
                fake.add([synthetic(base + 5, f"teplizumab late {base + 5}", edat=today)])
                fake.withheld.add(base + 5)
                late.update({base + 4: n + FIX_AFTER, base + 5: n + FIX_AFTER})
            for pmid, fixed in late.items():
                if fixed == n:  # fixed, under a title the search does not find any more
                    fake.withheld.discard(pmid)
                    fake.add([synthetic(pmid, f"revised record {pmid}", edat=today)])
            clock[0] = t0 + timedelta(hours=n)
            poll(config, store, sources, clock[0])
            first = digest(cfg)
            time.sleep(rng.uniform(0.0, 1.5))
            second = digest(cfg)
            outs = [p.communicate(timeout=300)[0] for p in (first, second)]
            overlaps += 1
            skips += sum(o.count("skipped: another watcher process") for o in outs)
            if any(p.returncode != 0 for p in (first, second)):
                print("\n----\n".join(outs), file=sys.stderr)
                return 1
        awaited = store.articles.awaited([s.name for s in config.subscriptions])
        store.close()
    seconds = time.monotonic() - started
    smtp.stop()
    fake.stop()

    seen = mailed(smtp)
    expected = readable | set(late)
    twice = sorted(k for k, c in seen.items() if c > 1)
    never = sorted((r, p) for r in RECIPIENTS for p in readable if (r, p) not in seen)
    late_once = sum(1 for r in RECIPIENTS for p in late if seen.get((r, p)) == 1)
    deleted_mailed = sum(seen.get((r, DELETED), 0) for r in RECIPIENTS)
    ids = [r.message["Message-ID"] for r in smtp.received]
    print(
        f"{rounds} rounds (+{FIX_AFTER + 1} closing) of two overlapping `watcher digest` on "
        f"{kind}, {len(RECIPIENTS)} recipients, SMTP answering DATA after 1-2 s, seed {seed}\n"
    )
    print("| figure | value | goal |\n|---|---|---|")
    print(f"| digest process pairs | {overlaps} | |")
    print(
        f"| messages received | {len(ids)} ({len(set(ids))} distinct Message-IDs) | all distinct |"
    )
    print(f"| recipients skipped by one process because the other held them | {skips} | |")
    print(
        f"| (recipient, paper) pairs mailed | {len(seen)} of "
        f"{len(expected) * len(RECIPIENTS)} | all |"
    )
    print(f"| papers mailed twice to one recipient | {len(twice)} | 0 |")
    print(f"| readable papers never mailed | {len(never)} | 0 |")
    print(
        f"| late records (unreadable or left out, fixed {FIX_AFTER} rounds later) delivered "
        f"exactly once | {late_once} of {len(late) * len(RECIPIENTS)} | all |"
    )
    still = awaited.get(pmid_key(DELETED))
    print(
        f"| record NCBI never gives: mailed / still listed as awaited (tries) | {deleted_mailed} / "
        f"{'yes' if still else 'no'} ({still.attempts if still else 0}) | 0 / yes |"
    )
    print(f"| wall time | {seconds:.0f} s | |")
    ok = (
        not twice
        and not never
        and len(ids) == len(set(ids))
        and late_once == len(late) * len(RECIPIENTS)
        and deleted_mailed == 0
        and still is not None
    )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    # The polls' warnings about the records broken on purpose would bury the table.
    logging.basicConfig(level=logging.ERROR)
    return run(args.store, args.rounds, args.seed)


if __name__ == "__main__":
    raise SystemExit(main())
