"""Figure 4: how long a 500-paper digest takes to render (HTML with inlined CSS, and text), and
how big a 50-paper digest is beside Gmail's 102 KB clipping point.

    python bench/digest.py            # best of 5
    python bench/digest.py --smoke    # exits 1 if a 50-paper digest reaches 102 KB

Papers are real records from ../shared/corpus (the longest titles and abstracts first for the
size figure, so it is a worst case), with snippets as the default config mails them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from corpus import real_records

from tests.conftest import write_config
from watcher.config import load_config
from watcher.digest.build import build_digest
from watcher.digest.render import Renderer
from watcher.mail import build_message
from watcher.sources.pubmed_xml import parse_articles

GMAIL_CLIP = 102 * 1024
NOW = datetime(2026, 11, 16, 7, tzinfo=UTC)
SUBS = "".join(
    f'[[subscription]]\nname = "{name}"\nquery = "x"\nrecipients = ["reader@example.org"]\n'
    for name in ("Anti-CD3 in T1D", "Anti-CD20 in T1D", "IL-2R mAbs in islet transplantation")
)


def papers(n: int, longest_first: bool) -> list:
    body = b"<PubmedArticleSet>" + b"".join(real_records()) + b"</PubmedArticleSet>"
    pool = list(parse_articles(body))
    if longest_first:
        pool.sort(key=lambda a: -len(a.title + a.abstract_text))
    return [replace(pool[i % len(pool)], pmid=60_000_000 + i) for i in range(n)]


def digest(n: int, config, longest_first: bool = False, max_items: int | None = None):
    arts = papers(n, longest_first)
    names = [s.name for s in config.subscriptions]
    matched = {
        a.pmid: [names[i % 3]] + ([names[(i + 1) % 3]] if i % 4 == 0 else [])
        for i, a in enumerate(arts)
    }
    mail = config.mail if max_items is None else replace(config.mail, max_items=max_items)
    return build_digest(
        "reader@example.org",
        matched,
        {a.pmid: a for a in arts},
        config.subscriptions,
        mail,
        config.path,
        NOW,
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    config = load_config(write_config(Path(tempfile.mkdtemp()), "http://127.0.0.1:9/", SUBS))
    renderer = Renderer()
    renderer.render(digest(5, config))  # templates compiled once, as in a running daemon

    fifty = renderer.render(digest(50, config, longest_first=True))
    html_size = len(fifty.html.encode())
    message = build_message(fifty, "watcher@example.org", "reader@example.org", "<m@x>", NOW)

    big = digest(500, config, max_items=500)
    runs = 1 if args.smoke else 5
    best = min(_timed(lambda: renderer.render(big)) for _ in range(runs))
    capped = digest(500, config)  # the default max_items = 50: the rest as title links
    best_capped = min(_timed(lambda: renderer.render(capped)) for _ in range(runs))

    print("| figure | value | goal |")
    print("|---|---|---|")
    print(
        f"| 50-paper digest, HTML part (longest records) | {html_size / 1024:.1f} KB "
        f"| under 102 KB (Gmail clips past it) |"
    )
    print(
        f"| 50-paper digest, whole message (text + HTML, quoted-printable) "
        f"| {len(message) / 1024:.1f} KB | |"
    )
    print(f"| render 500 papers in full (HTML + text) | {best * 1000:.0f} ms | |")
    print(f"| render 500 papers, default max_items = 50 | {best_capped * 1000:.0f} ms | |")
    if html_size >= GMAIL_CLIP:
        print("SMOKE FAIL: a 50-paper digest reaches Gmail's clipping size")
        return 1
    return 0


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    raise SystemExit(main())
