"""Follow-ups: what refreshing 5,000 delivered papers costs, against a fake NCBI that enforces
the keyless limit of 3 requests/s (HTTP 429 beyond it).

5,000 papers are found and mailed (one poll, one digest); then the refresh runs twice: once when
nothing changed (it must cost ⌈5,000 / batch_size⌉ efetch and mail nothing), and once after
PubMed revised three of the records (a retraction and two errata: the same requests, and one
digest telling the recipient "1 retraction, 2 corrections").

    python bench/followups.py                  # about 15 s
    python bench/followups.py --html FILE      # also write the follow-up digest's HTML part
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.ncbi import FakeNCBI, FakeRecord
from tests.fakes.records import synthetic
from watcher.config import load_config
from watcher.delivery import send_digests
from watcher.poll import poll, refresh_followups
from watcher.store import Store
from watcher.wiring import make_sources, make_transport

PAPERS = 5000
RATE = 3.0
FIRST = 50_000_000
DAY = date(2026, 10, 30)


def paper(i: int, **kw: Any) -> FakeRecord:
    return synthetic(
        FIRST + i,
        f"Teplizumab cohort study number {i}",
        edat=DAY,
        abstract=f"We followed cohort {i} on teplizumab.",
        **kw,
    )


def mails(folder: Path) -> list[EmailMessage]:
    new = folder / "new"
    out = []
    for f in sorted(new.iterdir()) if new.is_dir() else []:
        msg = message_from_bytes(f.read_bytes(), policy=policy.default)
        assert isinstance(msg, EmailMessage)
        out.append(msg)
    return out


def run(html_out: Path | None) -> dict[str, object]:
    fake = FakeNCBI(rate_limit=RATE).start()
    folder = Path(tempfile.mkdtemp())
    (folder / "w.toml").write_text(
        f'[ncbi]\nemail = "bench@example.org"\nbase_url = "{fake.base_url}"\n'
        f'[mail]\nmaildir = "{folder / "mail"}"\nmax_items = 20\n'
        '[[subscription]]\nname = "Teplizumab"\nquery = "teplizumab"\n'
        'recipients = ["reader@example.org"]\n'
    )
    config = load_config(folder / "w.toml")
    store = Store.open(f"sqlite:///{folder / 'w.db'}")
    week1 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    clock = [week1]
    store.polls.sync(config.subscriptions, week1 - timedelta(hours=1))
    sources = make_sources(config, clock=lambda: clock[0])
    fake.add(paper(i) for i in range(PAPERS))
    assert not poll(config, store, sources, week1).failed
    transport = make_transport(config.mail, env={})
    assert len(send_digests(config, store, transport, week1).sent) == 1
    sent_before = len(mails(folder / "mail"))

    # Nothing changed: the refresh costs its efetch batches and mails nothing.
    clock[0] = week1 + timedelta(days=7)
    fake.reset_counts()
    began = time.monotonic()
    quiet = refresh_followups(config, store, sources, clock[0])
    quiet_wall = time.monotonic() - began
    quiet_requests, quiet_efetch = fake.count(), fake.count("efetch")
    quiet_sent = send_digests(config, store, transport, clock[0]).sent

    # PubMed revised three records: the same requests, one digest telling what changed.
    fake.add(
        [
            paper(
                7,
                pub_types=("Journal Article", "Retracted Publication"),
                corrections=[("RetractionIn", "N Engl J Med. 2026 Nov 12;395:1800.", 60_000_001)],
            ),
            paper(
                1234,
                corrections=[("ErratumIn", "N Engl J Med. 2026 Nov 13;395:1801.", 60_000_002)],
            ),
            paper(
                4321,
                corrections=[("ErratumIn", "N Engl J Med. 2026 Nov 14;395:1802.", 60_000_003)],
            ),
        ]
    )
    clock[0] = week1 + timedelta(days=14)
    fake.reset_counts()
    began = time.monotonic()
    changed = refresh_followups(config, store, sources, clock[0])
    changed_wall = time.monotonic() - began
    changed_requests = fake.count()
    told = send_digests(config, store, transport, clock[0]).sent
    transport.close()
    new = mails(folder / "mail")[sent_before:]
    fake.stop()
    subject = str(new[0]["Subject"]) if new else ""
    if html_out is not None and new:
        part = new[0].get_body(preferencelist=("html",))
        assert part is not None
        html_out.write_text(str(part.get_content()))
    return {
        "batch": config.ncbi.batch_size,
        "minimum": math.ceil(PAPERS / config.ncbi.batch_size),
        "quiet_requests": quiet_requests,
        "quiet_efetch": quiet_efetch,
        "quiet_papers": quiet.papers,
        "quiet_changes": quiet.changes,
        "quiet_sent": len(quiet_sent),
        "quiet_wall": quiet_wall,
        "changed_requests": changed_requests,
        "changed_changes": changed.changes,
        "changed_wall": changed_wall,
        "told": len(told),
        "subject": subject,
        "too_many": fake.too_many,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--html", type=Path, help="write the follow-up digest's HTML part here")
    args = ap.parse_args()
    r = run(args.html)
    print(
        f"{PAPERS} delivered papers refreshed, batch_size {r['batch']}, "
        f"fake NCBI enforcing {RATE:g} requests/s\n"
    )
    print("| refresh | requests | minimum ⌈papers / batch⌉ | changes | digests sent | wall time |")
    print("|---|---|---|---|---|---|")
    print(
        f"| nothing changed | {r['quiet_requests']} ({r['quiet_efetch']} efetch) "
        f"| {r['minimum']} | {r['quiet_changes']} | {r['quiet_sent']} | {r['quiet_wall']:.1f} s |"
    )
    print(
        f"| 3 records revised | {r['changed_requests']} | {r['minimum']} | "
        f"{r['changed_changes']} | {r['told']} | {r['changed_wall']:.1f} s |"
    )
    print(f"\nSubject of the follow-up digest: {r['subject']}; 429s: {r['too_many']}")
    ok = (
        r["quiet_requests"] == r["minimum"] == r["changed_requests"]
        and r["quiet_sent"] == 0
        and r["quiet_changes"] == 0
        and r["changed_changes"] == 3
        and r["told"] == 1
    )
    if not ok:
        print("FAIL: more requests than ⌈papers / batch⌉, or something sent when nothing changed")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
