"""A simulated month of a `cites` subscription against the fake NCBI (elink, efetch) and the fake
iCite on 127.0.0.1: requests per poll beside the minimum.

    python bench/citations_month.py

10 followed papers with 2,000 existing citing papers between them (one in ten cites two; one in
five linked by iCite only, as Crossref's reference lists give it but no PMC full text), then 40
new citing papers a week (one in ten cites two). A new paper is in PubMed Central's
links (elink) the day it appears, nine in ten of them; the NIH Open Citation Collection (iCite)
takes every link of the month in a snapshot on day 28 (it is monthly), so the one new paper in
ten that PMC does not link is found only then. One poll a day for 30 days, `lookback_days = 30`
(the first poll announces the papers of the last 30 days and keeps the rest as seen).

The minimum of a poll: one by-id elink for the 10 papers, one iCite request (200 PMIDs a
request), ceil(records the store lacks / batch size) efetch; the first poll one elink more (the
same by-id elink limited to the lookback window: docs/citations.md's plan B), one esearch per
200 citing papers only iCite knows (dating them by `[uid]` over the same window), and the
followed papers' own records in its efetch. Counts are requests, not time: the machine is shared.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import make_client, write_config
from tests.fakes.icite import FakeICite
from tests.fakes.ncbi import FakeNCBI
from tests.fakes.records import synthetic
from watcher.config import load_config
from watcher.poll import poll
from watcher.store import Store
from watcher.wiring import sources_for

START = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
DAYS = 30
FOLLOWED = [97000000 + i for i in range(10)]
EXISTING = 2000
PER_WEEK = 40
SNAPSHOT_DAY = 28  # iCite's monthly snapshot lands


def paper(pmid: int, day: date) -> object:
    return synthetic(pmid, f"A paper citing a followed trial ({pmid})", edat=day)


def world() -> tuple[FakeNCBI, FakeICite, list[tuple[int, date, list[int], bool]]]:
    """The fakes with the followed papers and the 2,000 existing citing papers; and the month's
    new citing papers: (pmid, day, cited, in PMC)."""
    ncbi = FakeNCBI()
    ncbi.add(synthetic(p, f"Followed trial {p}", edat=date(2019, 6, 9)) for p in FOLLOWED)
    today = START.date()
    old = []
    for i in range(EXISTING):
        pmid = 96000000 + i
        # Mostly years old; the last 8 weeks' share at 40 a week, as a field citing steadily.
        day = (
            today - timedelta(days=1 + i * 7 // PER_WEEK) if i < 8 * PER_WEEK else date(2022, 1, 1)
        )
        old.append(paper(pmid, day))
        pmc = i % 5 != 4
        ncbi.graph.cite(pmid, FOLLOWED[i % 10], pmc=pmc)
        if i % 10 == 0:
            ncbi.graph.cite(pmid, FOLLOWED[(i + 1) % 10], pmc=pmc)
    ncbi.add(old)
    new = []
    for n in range(DAYS * PER_WEEK // 7):
        day = today + timedelta(days=n * 7 // PER_WEEK)
        cited = [FOLLOWED[n % 10]] + ([FOLLOWED[(n + 3) % 10]] if n % 10 == 5 else [])
        new.append((98000000 + n, day, cited, n % 10 != 7))
    return ncbi, FakeICite(graph=ncbi.graph), new


def main() -> int:
    ncbi, icite, new = world()
    ncbi.start()
    icite.start()
    folder = Path(tempfile.mkdtemp(prefix="citations-month-"))
    subs = (
        '[[subscription]]\nname = "Landmarks"\nrecipients = ["a@example.org"]\n'
        f'cites = {FOLLOWED}\npoll_every = "1d"\n'
    )
    extra = f'[icite]\nbase_url = "{icite.base_url}"\nrate_limit = 100\n'
    config = load_config(write_config(folder, ncbi.base_url, subs, extra=extra))
    store = Store.open(f"sqlite:///{folder / 'w.db'}")
    store.polls.sync(config.subscriptions, START - timedelta(hours=1))
    rows = []
    total = minimum = announced = 0
    cpu = time.process_time()
    try:
        for d in range(DAYS):
            now = START + timedelta(days=d)
            for pmid, day, cited, in_pmc in new:
                if day == now.date():
                    ncbi.add([paper(pmid, day)])
                    ncbi.graph.cite(pmid, cited, pmc=in_pmc, occ=False)
            if d == SNAPSHOT_DAY:
                for pmid, day, cited, _ in new:
                    if day <= now.date():
                        ncbi.graph.cite(pmid, cited, pmc=False, occ=True)
            lacking = _lacking(store, config.subscriptions[0].cites, ncbi, d == 0)
            ncbi.reset_counts()
            icite_before = icite.count()
            client = make_client(ncbi.base_url, clock=lambda now=now: now)
            report = poll(config, store, sources_for(client, config.ncbi, config), now)
            assert not report.failed, report.failed[0].error
            asked = {
                "elink": ncbi.count("elink"),
                "icite": icite.count() - icite_before,
                "esearch": ncbi.count("esearch"),
                "efetch": ncbi.count("efetch"),
            }
            least = (2 if d == 0 else 1) + math.ceil(len(FOLLOWED) / 200)
            if d == 0:
                least += math.ceil(EXISTING // 5 / 200)
            least += math.ceil(lacking / config.ncbi.batch_size)
            rows.append((d, asked, sum(asked.values()), least, report.new_matches))
            total += sum(asked.values())
            minimum += least
            announced += report.new_matches
    finally:
        cpu = time.process_time() - cpu
        seen = len(store.citations.seen("Landmarks"))
        store.close()
        icite.stop()
        ncbi.stop()
    print("day  elink  icite  esearch  efetch  requests  minimum  announced")
    for d, asked, n, least, got in rows:
        print(
            f"{d:>3}  {asked['elink']:>5}  {asked['icite']:>5}  {asked['esearch']:>7}  "
            f"{asked['efetch']:>6}  {n:>8}  {least:>7}  {got:>9}"
        )
    last = (START + timedelta(days=DAYS - 1)).date()
    snapshot = (START + timedelta(days=SNAPSHOT_DAY)).date()
    # The new papers the sources knew by the last poll: PMC's at once, the others at iCite's
    # snapshot (one after it waits for the next).
    known = sum(1 for _, day, _, pmc in new if day <= last and (pmc or day <= snapshot))
    recent = sum(1 for i in range(8 * PER_WEEK) if 1 + i * 7 // PER_WEEK <= 30)
    print(
        f"\n{DAYS} polls: {total} requests, minimum {minimum}; announced {announced} = {recent} "
        f"existing papers of the last 30 days (first poll) + {known} new ones the sources knew "
        f"(of {sum(1 for _, day, _, _ in new if day <= last)}); links kept as seen: {seen:,}; "
        f"{cpu:.1f} s of processor time"
    )
    if announced != recent + known:
        return 1
    return 0 if total == minimum else 1


def _lacking(store: Store, cites: tuple[int, ...], ncbi: FakeNCBI, first: bool) -> int:
    """How many records a poll must fetch at the least: the papers it will announce that the
    store lacks, and on the first poll the followed papers' own."""
    seen = store.citations.seen("Landmarks")
    linked = {(c, p) for c, p in ncbi.graph.pmc | ncbi.graph.occ if p in cites}
    if first:
        since = START.date() - timedelta(days=30)
        wanted = {c for c, _ in linked if ncbi.records[c].edat >= since} | set(cites)
    else:
        wanted = {c for c, p in linked if ("cites", p, c) not in seen}
    return len([p for p in wanted if not store.articles.known_pmids([p])])


if __name__ == "__main__":
    raise SystemExit(main())
