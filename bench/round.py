"""A poll round of an institution: 5,000 query subscriptions polled together for the first time
against the fake NCBI enforcing the configured rate (HTTP 429 beyond it): requests beside the
minimum (one esearch per subscription + ⌈union of new PMIDs / efetch batch⌉), wall time beside
requests ÷ rate, the process's CPU time, and how much of the round is committed when half of its
requests are made (what a crash at that moment would keep).

NCBI's limits are 3 and 10 requests/s; at 3/s this round takes half an hour, so the rate is
scaled up (default 50/s, in both the fake and the config's `ncbi.rate_limit`): what is measured
is whether the round keeps up with the limiter, which a higher rate makes harder, not easier.

Every paper names one topic (30% two), and each subscription searches one topic; the fake
(tests/fakes/indexed.py) matches each search against the records that hold its topic word only
(the same answer as matching all of them, 100× sooner): otherwise the fake, not the watcher,
would set the pace. The fake runs in a process of its own. It answers in about 45 ms on
loopback (HTTP/1.1 keep-alive, its headers and body in two writes: Nagle and the delayed ACK),
which stands in for NCBI's 0.2-1 s.

    python bench/round.py                        # 5,000 subscriptions at 50/s: about 2 minutes
    python bench/round.py --subs 1000 --rate 20
    python bench/round.py --code /work/main      # the same round run by another checkout's code
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHARED = 0.30
PAPERS_PER_SUB = 2
FIRST = 60_000_000


def world(subs: int) -> tuple[list[Any], dict[str, set[int]]]:
    """The papers (2 per subscription, 30% naming a second topic) and each topic's PMIDs."""
    from tests.fakes.records import synthetic

    rng = random.Random(28)
    papers = []
    by_topic: dict[str, set[int]] = {}
    day = date(2026, 11, 30)
    for i in range(subs * PAPERS_PER_SUB):
        topics = [i % subs]
        if rng.random() < SHARED:
            topics.append(rng.randrange(subs))
        words = " and ".join(f"topic{t:05d}x" for t in topics)
        pmid = FIRST + i
        papers.append(synthetic(pmid, f"Study {i} of {words}", edat=day, abstract=f"On {words}."))
        for t in topics:
            by_topic.setdefault(f"topic{t:05d}x", set()).add(pmid)
    return papers, by_topic


def serve(conn: Connection, subs: int, rate: float) -> None:
    """The fake NCBI, in a process of its own (its threads would otherwise take turns with the
    watcher's for one interpreter lock): its URL, then its counts whenever asked."""
    from tests.fakes.indexed import IndexedNCBI

    fake = IndexedNCBI(rate_limit=rate)
    fake.add(world(subs)[0])
    fake.start()
    conn.send(fake.base_url)
    while conn.recv() == "count":
        conn.send((fake.count(), fake.count("esearch"), fake.count("efetch"), fake.too_many))
    fake.stop()


class Fake:
    """The parent's end of `serve`."""

    def __init__(self, subs: int, rate: float) -> None:
        self.conn, child = multiprocessing.Pipe()
        self.process = multiprocessing.Process(target=serve, args=(child, subs, rate))
        self.process.start()
        self.base_url: str = self.conn.recv()
        self.lock = threading.Lock()

    def counts(self) -> tuple[int, int, int, int]:
        """Requests, esearch, efetch, 429s."""
        with self.lock:
            self.conn.send("count")
            got: tuple[int, int, int, int] = self.conn.recv()
            return got

    def stop(self) -> None:
        self.conn.send("stop")
        self.process.join()


def run(subs: int, rate: float, store_url: str | None) -> dict[str, Any]:
    from watcher.config import load_config
    from watcher.poll import poll
    from watcher.store import Store
    from watcher.wiring import make_sources

    by_topic = world(subs)[1]
    fake = Fake(subs, rate)
    folder = Path(tempfile.mkdtemp())
    text = "".join(
        f'[[subscription]]\nname = "s{t:05d}"\nquery = "topic{t:05d}x"\n'
        f'recipients = ["r{t % 50}@example.org"]\nlookback_days = 7\n'
        for t in range(subs)
    )
    (folder / "w.toml").write_text(
        f'[ncbi]\nemail = "bench@example.org"\nbase_url = "{fake.base_url}"\n'
        f"rate_limit = {rate}\n{text}"
    )
    config = load_config(folder / "w.toml")
    store = Store.open(store_url or f"sqlite:///{folder / 'w.db'}")
    store.migrate()
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    store.polls.sync(config.subscriptions, now - timedelta(days=1))
    sources = make_sources(config, clock=lambda: now)
    union = len({p for pmids in by_topic.values() for p in pmids})
    minimum = subs + math.ceil(union / config.ncbi.batch_size)
    # What a crash halfway through would keep: subscriptions whose poll state is committed.
    half: dict[str, float] = {}

    def watch() -> None:
        while fake.counts()[0] < minimum // 2:
            time.sleep(0.05)
        half["requests"] = fake.counts()[0]
        half["committed"] = sum(
            1 for s in store.polls.states().values() if s.last_success_at is not None
        )

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    cpu, began = time.process_time(), time.monotonic()
    report = poll(config, store, sources, now)
    wall, cpu = time.monotonic() - began, time.process_time() - cpu
    watcher.join(5)
    requests, esearch, efetch, too_many = fake.counts()
    fake.stop()
    assert not report.failed, report.failed[:3]
    assert store.articles.count() == union, (store.articles.count(), union)
    return {
        "subs": subs,
        "rate": rate,
        "requests": requests,
        "esearch": esearch,
        "efetch": efetch,
        "minimum": minimum,
        "union": union,
        "too_many": too_many,
        "wall": wall,
        "cpu": cpu,
        "half_committed": half.get("committed", -1),
        "half_requests": half.get("requests", -1),
        "subscriptions": list(config.subscriptions),
    }


def commit_cost(subscriptions: list[Any], store_url: str | None) -> dict[str, tuple[float, float]]:
    """Committing `subs` subscriptions' first polls (2 new matches each, as in the round): one
    transaction per subscription (store.polls.commit), then, on a second store, one per batch
    of 100 (store.polls.commit_batch, where the code has it). Wall and processor time of each."""
    from watcher.identity import pmid_key
    from watcher.store import Store

    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    out: dict[str, tuple[float, float]] = {}
    for way in ("one per subscription", "one per batch of 100"):
        folder = Path(tempfile.mkdtemp())
        store = Store.open(store_url or f"sqlite:///{folder / 'c.db'}")
        store.migrate()
        if way != "one per subscription" and not hasattr(store.polls, "commit_batch"):
            break
        subs = len(subscriptions)
        names = [s.name for s in subscriptions]
        store.polls.sync(subscriptions, now)
        items = {
            n: [pmid_key(FIRST + 2 * t), pmid_key(FIRST + 2 * t + 1)] for t, n in enumerate(names)
        }
        cpu, began = time.process_time(), time.monotonic()
        if way == "one per subscription":
            for n in names:
                store.polls.commit(
                    n, items[n], source="esearch", deliver=True, now=now, window_end=None, found=2
                )
        else:
            from watcher.store import PollCommit

            for i in range(0, subs, 100):
                batch = [
                    PollCommit(n, items[n], "esearch", True, None, 2) for n in names[i : i + 100]
                ]
                store.polls.commit_batch(batch, now)
        out[way] = (time.monotonic() - began, time.process_time() - cpu)
        store.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subs", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=50.0, help="requests/s (fake and config)")
    ap.add_argument("--store", help="a store URL (default: a new SQLite file)")
    ap.add_argument("--code", type=Path, help="a checkout whose watcher package is measured")
    args = ap.parse_args()
    import tests  # this checkout's fakes, whichever checkout's watcher is measured

    assert Path(tests.__file__).parent.parent == ROOT
    if args.code:
        sys.path.insert(0, str(args.code.resolve()))
    import watcher

    r = run(args.subs, args.rate, args.store)
    bound = r["requests"] / r["rate"]
    print(
        f"code {Path(watcher.__file__).parent.parent}: {r['subs']:,} subscriptions, first poll, "
        f"{r['union']:,} papers, fake NCBI enforcing {r['rate']:g} requests/s\n"
    )
    # The budget spaces starts by a period ÷ rate (watcher/rate.py): 1.1 s at first, narrowing
    # to 1.02 s while the host answers without a 429. Its narrowest pace is 1.02 × requests ÷ rate.
    print(
        "| requests | minimum | over | 429s | wall | requests ÷ rate | wall ÷ that "
        "| wall ÷ the narrowest pace | CPU | committed at half the requests |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {r['requests']:,} ({r['esearch']:,} esearch + {r['efetch']} efetch) "
        f"| {r['minimum']:,} | {r['requests'] / r['minimum'] - 1:.2%} | {r['too_many']} "
        f"| {r['wall']:.1f} s | {bound:.1f} s | {r['wall'] / bound:.3f}x "
        f"| {r['wall'] / bound / 1.02:.3f}x | {r['cpu']:.1f} s "
        f"| {r['half_committed']:,} of {r['subs']:,} (at {r['half_requests']:,} requests) |"
    )
    print(f"\nCommitting {args.subs:,} subscriptions' first polls (2 new matches each):\n")
    print("| transactions | wall | CPU |")
    print("|---|---|---|")
    for way, (wall, cpu) in commit_cost(r["subscriptions"], args.store).items():
        print(f"| {way} | {wall:.1f} s | {cpu:.1f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
