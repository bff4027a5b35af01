"""A simulated week of the two registry sources against their fakes on 127.0.0.1: requests per
source beside the minimum (one search per subscription per poll, plus one per extra page).

    python bench/sources_week.py

Europe PMC: 2 preprint subscriptions, 4 new preprints a day (one shared by both), one preprint
linked to its journal version mid-week. ClinicalTrials.gov: 2 trial subscriptions over 40
studies, 3 re-posted a day (one with a status change, two with nothing meaningful). Polls every
6 hours for 7 days (28 polls). Prints the requests, the minimum, and what was announced.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import make_client, write_config
from tests.fakes.clinicaltrials import FakeClinicalTrials, study
from tests.fakes.europepmc import FakeEuropePmc, load_record
from tests.fakes.ncbi import FakeNCBI
from watcher.config import load_config
from watcher.poll import poll
from watcher.store import Store
from watcher.wiring import sources_for

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
POLLS = 28
STATUSES = ("RECRUITING", "ACTIVE_NOT_RECRUITING", "COMPLETED")


def subs() -> str:
    out = ""
    for name, kind, query in (
        ("pre-cd3", "europepmc", "teplizumab OR otelixizumab"),
        ("pre-cd20", "europepmc", "rituximab OR teplizumab"),
        ("trials-cd3", "trials", "teplizumab OR otelixizumab"),
        ("trials-cd20", "trials", "rituximab"),
    ):
        out += (
            f'[[subscription]]\nname = "{name}"\n{kind} = "{query}"\n'
            'recipients = ["a@example.org"]\nlookback_days = 0\n'
        )
    return out


def main() -> int:
    ncbi, epmc, ctgov = FakeNCBI().start(), FakeEuropePmc().start(), FakeClinicalTrials().start()
    folder = Path(tempfile.mkdtemp(prefix="sources-week-"))
    try:
        extra = (
            f'[europepmc]\nbase_url = "{epmc.base_url}"\nrate_limit = 50\n'
            f'[clinicaltrials]\nbase_url = "{ctgov.base_url}"\nrate_limit = 50\n'
        )
        config = load_config(write_config(folder, ncbi.base_url, subs(), extra=extra))
        store = Store.open(f"sqlite:///{folder / 'w.db'}")
        store.polls.sync(config.subscriptions, START - timedelta(hours=1))
        drugs = ("teplizumab", "otelixizumab", "rituximab")
        for n in range(40):
            ctgov.put(
                study(
                    f"NCT0{9000000 + n}",
                    f"Trial {n}",
                    "RECRUITING",
                    "2026-11-01",
                    intervention=drugs[n % 3],
                )
            )
        record = load_record("europepmc-preprint.json")
        new = changes = 0
        n_pre = 0
        for p in range(POLLS):
            now = START + timedelta(hours=6 * p)
            if p % 4 == 0:  # a day's new records and re-posts arrive overnight
                day = now.date()
                for i in range(4):
                    n_pre += 1
                    words = drugs[i % 3] + (" and teplizumab" if i == 0 else "")
                    epmc.add(
                        {
                            **record,
                            "id": f"PPR{n_pre}",
                            "doi": f"10.1101/x.{n_pre}",
                            "title": f"Preprint on {words}",
                            "abstractText": "",
                        },
                        day,
                    )
                if p == 12:
                    link = {"id": "777", "source": "MED", "type": "Preprint of"}
                    epmc.update(
                        "PPR1", {"commentCorrectionList": {"commentCorrection": [link]}}, day
                    )
                for i in range(3):
                    nct = f"NCT0{9000000 + (p + i) % 40}"
                    status = STATUSES[(p // 4) % 3] if i == 0 else "RECRUITING"
                    old = ctgov.studies[nct]["protocolSection"]
                    current = old["statusModule"]["overallStatus"]
                    ctgov.put(
                        study(
                            nct,
                            f"Trial {int(nct[-2:])}",
                            status if i == 0 else current,
                            day.isoformat(),
                            intervention=drugs[int(nct[-2:]) % 3],
                        )
                    )
            sources = sources_for(make_client(ncbi.base_url), config.ncbi, config)
            report = poll(config, store, sources, now)
            new += report.new_matches
            changes += sum(o.changes for o in report.outcomes)
        minimum = POLLS * 2  # one search per subscription per poll; every answer fits a page
        print(f"simulated week: {POLLS} polls x 2 subscriptions per source")
        print(f"  Europe PMC:          {epmc.count():3d} requests (minimum {minimum})")
        print(f"  ClinicalTrials.gov:  {ctgov.count():3d} requests (minimum {minimum})")
        print(f"  NCBI:                {ncbi.count():3d} requests")
        print(f"  new matches {new}, trial changes announced {changes}")
        store.close()
        return 0 if epmc.count() == minimum and ctgov.count() == minimum else 1
    finally:
        ncbi.stop()
        epmc.stop()
        ctgov.stop()


if __name__ == "__main__":
    raise SystemExit(main())
