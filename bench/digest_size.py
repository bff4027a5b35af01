"""The size of a digest's HTML part as sent, beside Gmail's clip (issue 24).

Gmail cuts any HTML body over 102 KB ("[Message clipped] View entire message"), and what it
cuts is the end: the title-only list, the PMID line and the footer with the way out. This
measures the text/html MIME part the way a mail client receives it: the bytes of its body after
its Content-Transfer-Encoding, in the message `watcher digest` builds (delivery.compose over a
SQLite store, the real path of a digest), for the cases the issue names:

- 28 papers: the records of tests/fixtures/field/t1d-antibodies.xml and t1d-presentation.xml
  and of tests/fixtures/efetch, as mailed by default (snippets, max_items = 50);
- 50 + 61: 111 records of the shared corpus, snippets, the default max_items = 50;
- 50 + 80, no abstracts: 130 records of the shared corpus, abstract = "none";
- 155 full abstracts: 155 records of the shared corpus, abstract = "full", max_items = 200;
- 200 in each abstract mode, max_items = 200.

Runnable on any checkout (it imports the `watcher` of the interpreter that runs it):

    .venv/bin/python bench/digest_size.py                  # this checkout
    /work/base/.venv/bin/python bench/digest_size.py       # the code before issue 24
    .venv/bin/python bench/digest_size.py --json           # the figures as JSON

Corpus records are PubMed records of ../shared/corpus (every efetch file, in file order, one
per PMID), renumbered so that no two collide.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

GMAIL_CLIP = 102 * 1024
NOW = datetime(2026, 11, 16, 7, tzinfo=UTC)
HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent.parent / "shared" / "corpus"
FIXTURES = HERE.parent / "tests" / "fixtures"
NAMES = ("Anti-CD3 in T1D", "Anti-CD20 in T1D", "IL-2R mAbs in islet transplantation")
READER = "reader@example.org"
# (label, where the records come from, how many, abstract mode, max_items)
CASES = (
    ("28 papers (test fixtures), snippets", "fixtures", 28, "snippet", 50),
    ("50 full + 61 title-only, snippets", "corpus", 111, "snippet", 50),
    ("50 full + 80 title-only, no abstracts", "corpus", 130, "none", 50),
    ("155 full abstracts", "corpus", 155, "full", 200),
    ("200 papers, no abstracts", "corpus", 200, "none", 200),
    ("200 papers, snippets", "corpus", 200, "snippet", 200),
    ("200 papers, full abstracts", "corpus", 200, "full", 200),
)


def _records(paths: list[Path]) -> list[Any]:
    from watcher.sources.pubmed_xml import parse_articles

    seen: set[int] = set()
    out = []
    for path in paths:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        if b"<PubmedArticleSet" not in data[:4000] and b"<MedlineCitationSet" not in data[:4000]:
            continue
        for art in parse_articles(data):
            if art.pmid is not None and art.pmid not in seen:
                seen.add(art.pmid)
                out.append(art)
    return out


def pool(kind: str) -> list[Any]:
    if kind == "fixtures":  # the 28 records the tests had when issue 24 was filed
        field = [FIXTURES / "field" / f"t1d-{n}.xml" for n in ("antibodies", "presentation")]
        return _records(field + sorted((FIXTURES / "efetch").glob("*.xml")))
    if not CORPUS.is_dir():
        raise SystemExit(f"the shared corpus is not at {CORPUS}")
    return _records(sorted(CORPUS.glob("*.xml*")))


def config_text(abstract: str, max_items: int, admin: bool) -> str:
    subs = "".join(
        f'[[subscription]]\nname = "{n}"\nquery = "x"\nrecipients = ["{READER}"]\n' for n in NAMES
    )
    mail = f'[mail]\nfrom = "watcher@lab.example.org"\nabstract = "{abstract}"\n'
    mail += f"max_items = {max_items}\n"
    if admin:
        mail += 'admin = "Lab Admin <admin@lab.example.org>"\n'
    return (
        '[ncbi]\nemail = "bench@example.org"\n'
        f'{mail}[defaults]\ntimezone = "UTC"\ndigest_cron = "0 7 * * mon"\n{subs}'
    )


def message_for(arts: list[Any], abstract: str, max_items: int, folder: Path) -> bytes:
    """The digest `watcher digest` would mail for `arts`, as bytes."""
    from watcher.config import load_config
    from watcher.delivery import compose
    from watcher.digest.render import Renderer
    from watcher.identity import pmid_key
    from watcher.store import Store

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "watcher.toml"
    path.write_text(config_text(abstract, max_items, admin=True))
    config = load_config(path)
    store = Store.open(f"sqlite:///{folder / 'w.db'}")
    try:
        store.polls.sync(config.subscriptions, NOW - timedelta(days=2))
        store.articles.upsert(arts, NOW - timedelta(days=1))
        for i, name in enumerate(NAMES):
            store.polls.commit(
                name,
                [pmid_key(a.pmid) for j, a in enumerate(arts) if j % 3 == i or j % 4 == 0],
                source="esearch",
                deliver=True,
                now=NOW - timedelta(days=1),
                window_end=None,
                found=len(arts),
            )
        digest = compose(config, store, Renderer(), ("0 7 * * mon", "UTC"), READER, NOW)
    finally:
        store.close()
    if digest is None:
        raise SystemExit("no digest composed")
    message: bytes = digest.message
    return message


def html_part(message: bytes) -> tuple[int, int, str]:
    """(the HTML part's body as sent in bytes, its decoded size, its decoded text)."""
    msg = message_from_bytes(message, policy=policy.SMTP)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(("html",))
    assert part is not None
    raw = part.as_bytes(policy=policy.SMTP)
    body = raw.split(b"\r\n\r\n", 1)[1]
    html = part.get_content()
    return len(body), len(html.encode()), html


def layout(html: str) -> tuple[int, int, int]:
    """(papers shown in full, title-only entries, papers said to be only in the attachment)."""
    full = len(re.findall(r'<td class="p"', html))
    titles = len(re.findall(r"<li[ >]", html))
    more = re.search(r"(\d+) more: all are in the attachment", html)
    return full, titles, int(more.group(1)) if more else 0


def style_share(html: str) -> float:
    """The share of the decoded HTML's bytes in style="…" attributes."""
    inline = sum(len(m.group().encode()) for m in re.finditer(r' style="[^"]*"', html))
    return inline / max(1, len(html.encode()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    pools = {kind: pool(kind) for kind in {c[1] for c in CASES}}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, kind, n, abstract, max_items) in enumerate(CASES):
            source = pools[kind]
            arts = [replace(source[j % len(source)], pmid=70_000_000 + j) for j in range(n)]
            if kind == "fixtures":
                arts = source[:n]
            start = time.perf_counter()
            message = message_for(arts, abstract, max_items, Path(tmp) / str(i))
            took = time.perf_counter() - start
            sent, decoded, html = html_part(message)
            full, titles, more = layout(html)
            rows.append(
                {
                    "case": label,
                    "papers": n,
                    "full": full,
                    "titles": titles,
                    "only_attached": more,
                    "compose_seconds": round(took, 2),
                    "html_part_sent": sent,
                    "html_decoded": decoded,
                    "inline_style_share": round(style_share(html), 3),
                    "message": len(message),
                    "footer_inside": sent <= GMAIL_CLIP and "Sent to " in html,
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        "| case | HTML part as sent | decoded | inline styles | full / titles / only attached "
        "| whole message | compose |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        flag = "" if r["html_part_sent"] <= GMAIL_CLIP else " (clipped)"
        print(
            f"| {r['case']} | {r['html_part_sent']:,} B ({r['html_part_sent'] / 1024:.1f} KB)"
            f"{flag} | {r['html_decoded'] / 1024:.1f} KB | {r['inline_style_share']:.0%} "
            f"| {r['full']} / {r['titles']} / {r['only_attached']} "
            f"| {r['message'] / 1024:.1f} KB | {r['compose_seconds']:.2f} s |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
