"""A digest run for an institution: many readers, each with a few subscriptions, whose papers
come from one shared pool (the same paper reaches many readers). CPU time of `send_digests` per
reader and per (reader, paper) pair, and a cProfile top-10 of the run.

    python bench/digest_scale.py                          # 500 readers, 1,000 subscriptions
    python bench/digest_scale.py --readers 2500           # the issue's 2,500 / 5,000
    python bench/digest_scale.py --store postgresql       # needs WATCHER_TEST_POSTGRES_URL
    python bench/digest_scale.py --profile                # cProfile top-10 instead of timing

Papers are real records from ../shared/corpus, renumbered into a pool of --pool papers; each
subscription matches --papers of them (seeded), each reader follows two subscriptions. Messages
go to a transport that keeps their bytes; the run prints a fingerprint of every message (Message-ID
and MIME boundaries scrubbed), so two versions of the code can be shown to mail the same bytes.

CPU time (time.process_time) of this process: the machine is shared, so wall time says more
about the other processes than about this code. On PostgreSQL the server's own CPU is not in it.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import logging
import pstats
import random
import re
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from corpus import real_records

from tests.harness.commands import store_url
from watcher import delivery
from watcher.config import load_config
from watcher.delivery import send_digests
from watcher.digest.render import Renderer
from watcher.followups import notices_found
from watcher.identity import pmid_key
from watcher.sources.pubmed_xml import parse_articles
from watcher.store import Store
from watcher.store.articles import Articles
from watcher.store.changes import Changes
from watcher.store.outbox import Outbox
from watcher.transports.base import OutgoingDigest

NOW = datetime(2026, 11, 16, 7, tzinfo=UTC)
SUBS_PER_READER = 2


class Keep:
    """A transport that keeps what it is given."""

    def __init__(self) -> None:
        self.sent: list[OutgoingDigest] = []

    def send(self, digest: OutgoingDigest) -> None:
        self.sent.append(digest)

    def close(self) -> None:
        pass


def scrub(message: bytes) -> bytes:
    """The message without what changes from run to run: its Message-ID, its MIME boundaries."""
    for boundary in set(re.findall(rb'boundary="([^"]+)"', message)):
        message = message.replace(boundary, b"BOUNDARY")
    return re.sub(rb"Message-ID: <[^>]+>", b"Message-ID: <scrubbed>", message)


def write_config(folder: Path, url: str, readers: int) -> Path:
    subs = []
    for j in range(readers * SUBS_PER_READER):
        reader = j // SUBS_PER_READER
        subs.append(
            f'[[subscription]]\nname = "Topic {j:05d}"\nquery = "topic {j}"\n'
            f'recipients = ["Reader {reader} <reader{reader:05d}@example.org>"]\n'
        )
    path = folder / "watcher.toml"
    path.write_text(
        '[ncbi]\nemail = "bench@example.org"\nbase_url = "http://127.0.0.1:9/"\n'
        f'[store]\nurl = "{url}"\n'
        '[mail]\nfrom = "watcher@example.org"\n[defaults]\ntimezone = "UTC"\n' + "".join(subs)
    )
    return path


def pool(n: int) -> list:
    body = b"<PubmedArticleSet>" + b"".join(real_records()) + b"</PubmedArticleSet>"
    records = [a for a in parse_articles(body) if a.pmid is not None]
    return [replace(records[i % len(records)], pmid=70_000_000 + i) for i in range(n)]


def fill(store: Store, config, papers: list, per_sub: int, seed: int) -> int:
    """The pool stored, each subscription's matches recorded; returns the (reader, paper) pairs."""
    rng = random.Random(seed)
    store.polls.sync(config.subscriptions, NOW - timedelta(days=2))
    store.articles.upsert(papers, NOW - timedelta(days=1))
    keys = [pmid_key(a.pmid) for a in papers]
    pairs: dict[str, set] = {}
    for sub in config.subscriptions:
        items = rng.sample(keys, per_sub)
        store.polls.commit(
            sub.name,
            items,
            source="esearch",
            deliver=True,
            now=NOW - timedelta(days=1),
            window_end=None,
            found=len(items),
        )
        for r in sub.recipients:
            pairs.setdefault(r, set()).update(items)
    return sum(map(len, pairs.values()))


# Where a digest run's CPU goes, by stage: (owner, attribute, label). Timed by wrapping each
# (--phases): a few calls per reader, so the wrapping costs nothing measurable, where cProfile's
# per-call overhead inflates the stages made of many small calls (the email package, Jinja2).
PHASES = (
    (delivery, "build_digest", "build_digest (choose, group, annotate, RIS)"),
    (Renderer, "render", "render (Jinja2, CSS inlining, text folding, HTML size check)"),
    (delivery, "build_message", "build_message (MIME: headers, quoted-printable, base64)"),
    (Outbox, "pending_papers", "store: pending_papers"),
    (Articles, "records", "store: articles (read and parse the records)"),
    (Outbox, "pending_digests", "store: pending_digests"),
    (Changes, "pending", "store: pending changes"),
    (Outbox, "create_digest", "store: create_digest"),
    (Outbox, "mark_digest_sent", "store: mark_digest_sent"),
)


def timed_phases() -> dict[str, float]:
    spent: dict[str, float] = {}
    for owner, name, label in PHASES:
        inner = getattr(owner, name)
        spent[label] = 0.0

        def wrapper(*a: Any, _inner: Any = inner, _label: str = label, **kw: Any) -> Any:
            started = time.process_time()
            try:
                return _inner(*a, **kw)
            finally:
                spent[_label] += time.process_time() - started

        setattr(owner, name, wrapper)
    return spent


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.ERROR)
    papers = pool(args.pool)
    with tempfile.TemporaryDirectory() as tmp, store_url(args.store, Path(tmp)) as url:
        config = load_config(write_config(Path(tmp), url, args.readers))
        store = Store.open(url)
        started = time.process_time()
        pairs = fill(store, config, papers, args.papers, args.seed)
        setup = time.process_time() - started
        transport = Keep()
        spent = timed_phases() if args.phases else {}
        # The profiler's own clock (the wall's): timing each call with the process's CPU clock
        # made the run ten times as long. Its shares are what to read, not its seconds.
        profiler = cProfile.Profile() if args.profile else None
        started = time.process_time()
        if profiler:
            profiler.enable()
        report = send_digests(config, store, transport, NOW)
        if profiler:
            profiler.disable()
        cpu = time.process_time() - started
        # A steady poll's notices_found: every paper it matched, looked over for notices.
        started = time.process_time()
        notices_found(store, [pmid_key(a.pmid) for a in papers], NOW)
        notices = time.process_time() - started
        store.close()
    fingerprint = hashlib.sha256()
    for digest in sorted(transport.sent, key=lambda d: d.recipient):
        fingerprint.update(scrub(digest.mime))
    size = sum(len(d.mime) for d in transport.sent)
    print(
        f"{args.readers} readers, {args.readers * SUBS_PER_READER} subscriptions, {args.papers} "
        f"papers each from a pool of {args.pool}, {args.store}"
        f"{' (under cProfile: times inflated)' if profiler else ''}\n"
    )
    print("| figure | value |\n|---|---|")
    print(f"| (reader, paper) pairs | {pairs:,} |")
    print(f"| digests sent | {len(report.sent):,} ({size / 1e6:.1f} MB) |")
    print(f"| setup (store the pool, record matches), CPU | {setup:.1f} s |")
    print(f"| digest run, CPU | {cpu:.1f} s |")
    print(f"| per reader, CPU | {1000 * cpu / args.readers:.1f} ms |")
    print(f"| per (reader, paper), CPU | {1000 * cpu / pairs:.2f} ms |")
    print(f"| notices_found over the pool's {args.pool:,} papers, CPU | {1000 * notices:.0f} ms |")
    print(f"| messages' fingerprint (scrubbed) | {fingerprint.hexdigest()[:16]} |")
    if spent:
        print("\nWhere the run's CPU went:\n")
        print("| stage | CPU | share | per reader |\n|---|---|---|---|")
        for label, cpu_s in [*spent.items(), ("the rest", cpu - sum(spent.values()))]:
            print(
                f"| {label} | {cpu_s:.1f} s | {100 * cpu_s / cpu:.0f}% "
                f"| {1000 * cpu_s / args.readers:.1f} ms |"
            )
    if profiler:
        print("\nTop 10 by own time (tottime), share of the run's profiled time:\n")
        stats = pstats.Stats(profiler)
        total = stats.total_tt  # type: ignore[attr-defined]
        rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:10]  # type: ignore[attr-defined]
        print("| function | own time | share | with callees |\n|---|---|---|---|")
        for (path, line, name), (_, _, tt, ct, _) in rows:
            where = f"{Path(path).name}:{line} {name}" if line else name
            print(f"| `{where}` | {tt:.1f} s | {100 * tt / total:.0f}% | {ct:.1f} s |")
        print("\nSelected, with callees (share of the run):\n")
        wanted = (
            "article_drugs",
            "present_paper",
            "digests",
            "build_message",
            "html_part_size",
            "render",
            "build_digest",
            "pending_papers",
            "articles",
            "ris",
            "record",
            "compose",
            "display_name",
            "sends_to",
            "recipient",
        )
        print("| function | with callees | share |\n|---|---|---|")
        for (path, line, name), (_, _, _, ct, _) in sorted(stats.stats.items()):  # type: ignore[attr-defined]
            if name in wanted and "watcher" in path:
                print(
                    f"| `{Path(path).name}:{line} {name}` | {ct:.1f} s | {100 * ct / total:.0f}% |"
                )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readers", type=int, default=500)
    ap.add_argument("--papers", type=int, default=10, help="papers each subscription matches")
    ap.add_argument("--pool", type=int, default=1000, help="distinct papers in all")
    ap.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--seed", type=int, default=28)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--phases", action="store_true", help="CPU time by stage of the run")
    return run(ap.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
