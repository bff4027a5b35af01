"""Figure 1: records/s of the watcher's PubMed XML parser against a bare lxml iterparse that
extracts nothing (the practical limit) and Biopython's Entrez.read, with peak memory.

    python bench/parse.py            # 10,000 records (Biopython on a 2,000-record slice)
    python bench/parse.py --smoke    # 1,000 records; exits 1 on a gross regression

Each contender runs in its own process so peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import efetch_file


def worker(kind: str, path: str) -> None:
    import gc

    gc.collect()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with open(path, "rb") as f:
        if kind == "watcher":
            from watcher.sources.pubmed_xml import parse_articles

            n = sum(1 for _ in parse_articles(f))
        elif kind == "lxml":
            from lxml import etree

            n = 0
            events = etree.iterparse(f, events=("end",), tag="PubmedArticle", huge_tree=True)
            for n, (_, el) in enumerate(events, 1):  # noqa: B007 (n is the count)
                el.clear(keep_tail=False)
                while el.getprevious() is not None:
                    del el.getparent()[0]
        elif kind == "biopython":
            from Bio import Entrez

            n = len(Entrez.read(f, validate=False)["PubmedArticle"])
        else:
            raise SystemExit(f"unknown kind {kind}")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "records": n,
                "seconds": seconds,
                "peak_mb": peak / 1024,
                "growth_mb": (peak - base_rss) / 1024,
            }
        )
    )


def measure(kind: str, path: Path) -> dict[str, float] | None:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", kind, str(path)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        if "No module named 'Bio'" in proc.stderr:
            return None
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "FILE"))
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return 0
    n = 1000 if args.smoke else 10_000
    big = efetch_file(n)
    slice_ = efetch_file(min(n, 2000))
    rows = []
    for kind, path in (("lxml", big), ("watcher", big), ("biopython", slice_)):
        best = None
        for _ in range(1 if args.smoke else 3):  # best of three: the least disturbed run
            r = measure(kind, path)
            if r is None:
                break
            if best is None or r["seconds"] < best["seconds"]:
                best = r
        rows.append((kind, best))
    lxml_rate = rows[0][1]["records"] / rows[0][1]["seconds"]  # type: ignore[index]
    print("| parser | file | records/s | vs bare lxml | peak RSS MB |")
    print("|---|---|---|---|---|")
    for kind, r in rows:
        if r is None:
            print(f"| {kind} | - | not installed (pip install '.[bench]') | | |")
            continue
        rate = r["records"] / r["seconds"]
        print(
            f"| {kind} | {int(r['records'])} records | {rate:,.0f} | {rate / lxml_rate:.2f}x "
            f"| {r['peak_mb']:.0f} |"
        )
    watcher = rows[1][1]
    assert watcher is not None
    ratio = (watcher["records"] / watcher["seconds"]) / lxml_rate
    bio = rows[2][1]
    if bio is not None:
        print(
            f"\nwatcher vs Biopython: "
            f"{(watcher['records'] / watcher['seconds']) / (bio['records'] / bio['seconds']):.1f}x"
        )
    slower_than_peer = bio is not None and (watcher["records"] / watcher["seconds"]) < (
        bio["records"] / bio["seconds"]
    )
    if args.smoke and (ratio < 0.25 or watcher["peak_mb"] > 200 or slower_than_peer):
        print(f"SMOKE FAIL: parser at {ratio:.2f}x bare lxml or {watcher['peak_mb']:.0f} MB peak")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
