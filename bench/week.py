"""Figure 2: what a simulated week of polling costs in requests and wall time, against a fake
NCBI that enforces the keyless limit of 3 requests/s (HTTP 429 beyond it).

The week: 20 query subscriptions polled once a day; 2,000 new papers arrive over the 7 days;
30% of them match two subscriptions. Beside the watcher's count stand the lower bound
(requests / 3 per second) and what the obvious approaches would have spent on the same week:
one efetch per article (metapub's fetcher style) and one efetch per subscription per poll
(the Biopython tutorial's esearch → efetch of the id list).

    python bench/week.py           # the week: about 50 s
    python bench/week.py --smoke   # one poll of the same 2,000 papers; exits 1 on a regression
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.ncbi import FakeNCBI
from tests.fakes.records import synthetic
from watcher.config import load_config
from watcher.poll import ncbi_today, poll
from watcher.store import Store
from watcher.wiring import make_sources

SUBS = 20
PAPERS = 2000
SHARED = 0.30
RATE = 3.0


def papers_by_day(days: int, start: datetime) -> dict[int, list]:
    """2,000 papers over `days` days; 30% name two topics, so two subscriptions match them."""
    rng = random.Random(7)
    out: dict[int, list] = {d: [] for d in range(days)}
    for i in range(PAPERS):
        day = i * days // PAPERS
        first = rng.randrange(SUBS)
        topics = [first]
        if i < PAPERS * SHARED:
            topics.append((first + 1 + rng.randrange(SUBS - 1)) % SUBS)
        words = " and ".join(f"topic{t:02d}x" for t in topics)
        when = ncbi_today(start + timedelta(days=day))
        out[day].append(
            (
                synthetic(
                    40_000_000 + i,
                    f"Study {i} of {words}",
                    edat=when,
                    abstract=f"We report {words}.",
                ),
                topics,
            )
        )
    return out


def run(days: int) -> dict[str, float]:
    fake = FakeNCBI(rate_limit=RATE).start()
    folder = Path(tempfile.mkdtemp())
    subs = "".join(
        f'[[subscription]]\nname = "s{t:02d}"\nquery = "topic{t:02d}x"\n'
        f'recipients = ["r{t}@example.org"]\nlookback_days = 1\n'
        for t in range(SUBS)
    )
    (folder / "w.toml").write_text(
        f'[ncbi]\nemail = "bench@example.org"\nbase_url = "{fake.base_url}"\n{subs}'
    )
    config = load_config(folder / "w.toml")
    store = Store.open(f"sqlite:///{folder / 'w.db'}")
    start = datetime(2026, 11, 9, 23, 0, tzinfo=UTC)
    store.polls.sync(
        config.subscriptions,
        start - timedelta(days=1),
    )
    clock = [start]  # the simulated day's poll time, the client's clock too
    # NCBI's own limit: 3 requests/s without a key
    sources = make_sources(config, clock=lambda: clock[0])
    schedule = papers_by_day(days, start)
    matches = 0
    polls_with_news = 0
    began = time.monotonic()
    for day in range(days):
        fake.add(rec for rec, _ in schedule[day])
        matches += sum(len(t) for _, t in schedule[day])
        polls_with_news += len({t for _, ts in schedule[day] for t in ts})
        clock[0] = start + timedelta(days=day, hours=1)
        report = poll(config, store, sources, clock[0])
        assert not report.failed, report.failed
    wall = time.monotonic() - began
    fake.stop()
    requests = fake.count()
    assert store.articles.count() == PAPERS
    return {
        "days": days,
        "requests": requests,
        "esearch": fake.count("esearch"),
        "efetch": fake.count("efetch"),
        "too_many": fake.too_many,
        "wall": wall,
        "bound": requests / RATE,
        # one esearch per subscription per poll either way; then per article, or per subscription
        "per_article": days * SUBS + matches,
        "per_subscription": days * SUBS + polls_with_news,
        "minimum": days * SUBS + sum(math.ceil(len(schedule[d]) / 500) for d in range(days)),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    r = run(1 if args.smoke else 7)
    label = "one poll" if args.smoke else "a week of daily polls"
    print(
        f"{SUBS} subscriptions, {PAPERS} new papers, {SHARED:.0%} shared, {label}, "
        f"fake NCBI enforcing {RATE:g} requests/s\n"
    )
    print("| approach | requests | 429s | wall time | lower bound (requests / 3/s) | ratio |")
    print("|---|---|---|---|---|---|")
    print(
        f"| pubmed-watcher | {r['requests']} ({r['esearch']} esearch + {r['efetch']} efetch) "
        f"| {r['too_many']} | {r['wall']:.1f} s | {r['bound']:.1f} s "
        f"| {r['wall'] / r['bound']:.2f}x |"
    )
    print(f"| minimum possible | {r['minimum']} | | | {r['minimum'] / RATE:.1f} s | |")
    print(
        f"| efetch per subscription (Biopython tutorial) | {r['per_subscription']} | | | "
        f"{r['per_subscription'] / RATE:.1f} s | |"
    )
    print(
        f"| efetch per article (metapub style) | {r['per_article']} | | | "
        f"{r['per_article'] / RATE:.1f} s | |"
    )
    bad = r["too_many"] > 0 or r["requests"] > r["minimum"] or r["wall"] > 2 * r["bound"] + 2
    if args.smoke and bad:
        print("SMOKE FAIL: more requests than the minimum, a 429, or far slower than the limit")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
