"""ClinicalTrials.gov as a source, against a fake API v2 (and a fake NCBI) on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watcher.config import Config, load_config
from watcher.delivery import compose
from watcher.digest import Renderer
from watcher.identity import key
from watcher.models import Article, TrialState
from watcher.poll import poll
from watcher.sources.clinicaltrials import ClinicalTrials, parse_study
from watcher.sources.http import Http
from watcher.store import Store
from watcher.trials import trial_changes
from watcher.wiring import sources_for

from .conftest import make_client, write_config
from .fakes.clinicaltrials import FakeClinicalTrials, study
from .fakes.ncbi import FakeNCBI
from .test_cli import run as cli_run

NOW = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
RCPT = "a@example.org"
SUB = (
    '[[subscription]]\nname = "Trials"\ntrials = "teplizumab OR otelixizumab"\n'
    f'recipients = ["{RCPT}"]\n'
)
NCT = "NCT09000001"


@pytest.fixture
def ctgov() -> Iterator[FakeClinicalTrials]:
    server = FakeClinicalTrials().start()
    yield server
    server.stop()


def configure(tmp_path: Path, fake: FakeNCBI, ctgov: FakeClinicalTrials) -> Config:
    extra = f'[clinicaltrials]\nbase_url = "{ctgov.base_url}"\nrate_limit = 100\n'
    return load_config(write_config(tmp_path, fake.base_url, SUB, extra=extra))


def run(config: Config, store: Store, fake: FakeNCBI, now: datetime) -> Any:
    store.sync_subscriptions(config.subscriptions, NOW - timedelta(hours=1))
    sources = sources_for(make_client(fake.base_url), config.ncbi, config)
    return poll(config, store, sources, now)


def send(config: Config, store: Store, now: datetime) -> str | None:
    """The text part of the digest due now, marked sent (None when there is nothing to send)."""
    digest = compose(config, store, Renderer(), ("0 7 * * mon", "UTC"), RCPT, now)
    if digest is None:
        return None
    digest_id = store.create_digest(
        recipient=RCPT,
        schedule="k",
        message_id=digest.message_id,
        message=digest.message,
        items=list(digest.ctx.items),
        now=now,
    )
    assert store.mark_digest_sent(digest_id, now)
    return digest.ctx.subject + "\n" + digest.rendered.text + "\n" + digest.rendered.html


def recruiting(updated: str = "2026-11-10", **kw: Any) -> dict[str, Any]:
    return study(NCT, "Teplizumab in stage 2 type 1 diabetes", "RECRUITING", updated, **kw)


def test_first_poll_announces_each_study_once_for_one_request(tmp_path, fake, ctgov, store):
    ctgov.put(recruiting())
    ctgov.put(study("NCT09000002", "Insulin pumps", "RECRUITING", "2026-11-10", intervention="x"))
    config = configure(tmp_path, fake, ctgov)
    report = run(config, store, fake, NOW)
    assert report.requests == 1 and ctgov.count() == 1 and fake.served == []
    assert list(store.pending_papers(RCPT, ["Trials"])) == [key("nct", NCT)]
    params = ctgov.served[0].params
    assert params["query.term"] == "teplizumab OR otelixizumab"
    assert params["filter.advanced"] == "AREA[LastUpdatePostDate]RANGE[2026-10-17,MAX]"
    assert "OverallStatus" in params["fields"] and params["pageSize"] == "1000"
    text = send(config, store, NOW)
    assert text is not None and "Teplizumab in stage 2 type 1 diabetes" in text
    assert f"ClinicalTrials.gov: https://clinicaltrials.gov/study/{NCT}" in text


def test_repeat_poll_costs_one_request_and_announces_nothing(tmp_path, fake, ctgov, store):
    ctgov.put(recruiting())
    config = configure(tmp_path, fake, ctgov)
    run(config, store, fake, NOW)
    send(config, store, NOW)
    again = run(config, store, fake, NOW + timedelta(hours=6))
    assert again.requests == 1 and again.new_matches == 0
    assert again.outcomes[0].changes == 0
    assert (
        ctgov.served[-1]
        .params["filter.advanced"]
        .startswith("AREA[LastUpdatePostDate]RANGE[2026-11-13,")
    )
    assert send(config, store, NOW + timedelta(hours=6)) is None


def test_a_status_change_is_announced_once_with_the_papers_citing_the_study(
    tmp_path, fake, ctgov, store
):
    ctgov.put(recruiting())
    config = configure(tmp_path, fake, ctgov)
    run(config, store, fake, NOW)
    send(config, store, NOW)
    citing = Article(pmid=4242, title="Design of the T1D prevention trial", trial_ids=(NCT,))
    store.upsert_articles([citing], NOW)
    later = NOW + timedelta(days=7)
    ctgov.put(study(NCT, "Teplizumab in stage 2 type 1 diabetes", "COMPLETED", "2026-11-20"))
    report = run(config, store, fake, later)
    assert report.outcomes[0].changes == 1
    text = send(config, store, later)
    assert text is not None
    assert "Trial registry updates" in text and "Recruiting → Completed" in text
    assert text.startswith("PubMed Watcher: 1 trial registry update\n")
    assert "Design of the T1D prevention trial" in text and "pubmed.ncbi.nlm.nih.gov/4242" in text
    # The same answer again (the overlap window) tells nobody anything new.
    run(config, store, fake, later + timedelta(hours=6))
    assert send(config, store, later + timedelta(hours=6)) is None


def test_an_update_that_changes_nothing_meaningful_announces_nothing(tmp_path, fake, ctgov, store):
    ctgov.put(recruiting())
    config = configure(tmp_path, fake, ctgov)
    run(config, store, fake, NOW)
    send(config, store, NOW)
    # Reposted with a new LastUpdatePostDate, enrolment within 10%, same arms and dates.
    ctgov.put(recruiting("2026-11-21", enrollment=105))
    report = run(config, store, fake, NOW + timedelta(days=7))
    assert report.outcomes[0].changes == 0
    assert send(config, store, NOW + timedelta(days=7)) is None


def test_meaningful_changes_are_named_as_a_reader_says_them() -> None:
    old = parse_study(recruiting())
    assert trial_changes(old, parse_study(recruiting("2026-12-01"))) == []
    changed = parse_study(
        study(
            NCT,
            "T",
            "TERMINATED",
            "2026-12-01",
            enrollment=111,
            arms=("Drug", "Placebo", "Drug, high dose"),
            primary_completion="2028-01",
            results="2026-12-01",
        )
    )
    said = [c.what for c in trial_changes(old, changed)]
    assert said == [
        "Recruiting → Terminated",
        "results first posted 2026-12-01",
        "primary completion moved 2027-06 → 2028-01",
        "enrolment 100 → 111",
        "new arms: Drug, high dose",
    ]
    same = TrialState(NCT, "T", "RECRUITING", "2026-12-02", enrollment=110)
    assert trial_changes(TrialState(NCT, "T", "RECRUITING", "x", enrollment=100), same) == []


def test_paging_follows_next_page_token(ctgov) -> None:
    for n in range(5):
        ctgov.put(study(f"NCT0900000{n}", f"Teplizumab {n}", "RECRUITING", "2026-11-10"))
    source = ClinicalTrials(
        Http(user_agent="t", backoff=0.001), ctgov.base_url, rate=100, page_size=2
    )
    found = list(source.search("teplizumab", date(2026, 11, 1)))
    assert len({s.nct for s in found}) == 5 and ctgov.count() == 3
    assert "pageToken" not in ctgov.served[0].params and "pageToken" in ctgov.served[2].params


def test_faults_are_retried(ctgov) -> None:
    ctgov.put(recruiting())
    ctgov.fault("status:429", retry_after="0")
    ctgov.fault("status:502")
    ctgov.fault("reset")
    source = ClinicalTrials(Http(user_agent="t", backoff=0.001), ctgov.base_url, rate=100)
    assert [s.nct for s in source.search("teplizumab", date(2026, 11, 1))] == [NCT]
    assert ctgov.count() == 4


def test_count_is_one_request_with_count_total(ctgov) -> None:
    for n in range(3):
        ctgov.put(study(f"NCT0900000{n}", f"Teplizumab {n}", "RECRUITING", "2026-11-10"))
    source = ClinicalTrials(Http(user_agent="t"), ctgov.base_url, rate=100)
    assert source.count("teplizumab") == 3
    assert ctgov.count() == 1 and ctgov.served[0].params["countTotal"] == "true"


def test_a_slow_answer_is_a_timeout_retried(ctgov) -> None:
    ctgov.put(recruiting())
    ctgov.fault("slow", delay=1.5)
    http = Http(user_agent="t", backoff=0.001, timeout=0.5)
    source = ClinicalTrials(http, ctgov.base_url, rate=100)
    assert [s.nct for s in source.search("teplizumab", date(2026, 11, 1))] == [NCT]
    assert http.counters.retries == 1


def test_studies_owed_are_fetched_by_their_nct_ids(ctgov) -> None:
    ctgov.put(recruiting())
    ctgov.put(study("NCT09000002", "Other", "COMPLETED", "2026-11-10"))
    source = ClinicalTrials(Http(user_agent="t"), ctgov.base_url, rate=100)
    got = list(source.fetch_items([key("nct", NCT), "pmid:1"]))
    assert [a.nct for a in got] == [NCT] and got[0].pmid is None
    assert ctgov.count() == 1 and ctgov.served[0].params["filter.ids"] == NCT


def test_a_malformed_study_is_skipped_in_one_line_and_the_others_delivered(
    tmp_path, fake, ctgov
) -> None:
    """A changed or hostile ClinicalTrials.gov: a study whose fields have the wrong shape (an
    enrollment of NaN, which json.loads reads, arms given as a string) is read leniently; one
    whose NCT id cannot be read is skipped with one warning, where before it failed the whole
    subscription. The real `watcher poll` and `watcher digest` deliver the rest."""
    today = datetime.now(UTC).date().isoformat()
    ctgov.put(study("NCT09000001", "Teplizumab first study", "RECRUITING", today))
    odd = study("NCT09000002", "Teplizumab second study", "RECRUITING", today)
    odd["protocolSection"]["designModule"]["enrollmentInfo"]["count"] = float("nan")
    odd["protocolSection"]["armsInterventionsModule"]["armGroups"] = "Drug"
    ctgov.put(odd)
    bad = study("NCT09000003", "Teplizumab unknown study", "RECRUITING", today)
    bad["protocolSection"]["identificationModule"]["nctId"] = ["NCT09000003"]
    ctgov.studies["bad"] = bad
    extra = f'[clinicaltrials]\nbase_url = "{ctgov.base_url}"\nrate_limit = 100\n'
    cfg = write_config(tmp_path, fake.base_url, SUB, extra=extra)
    code, out, err = cli_run("-c", str(cfg), "poll", cwd=tmp_path)
    assert (code, out.splitlines()[0]) == (0, "Trials: 2 found, 2 new"), err
    assert "Traceback" not in err and "internal error" not in err
    said = [line for line in err.splitlines() if "skipped" in line]
    assert len(said) == 1 and said[0].endswith(
        "WARNING watcher.sources.json_api: ClinicalTrials.gov study 3 (NCT id ?) skipped: no NCT id"
    )
    code, _, err = cli_run("-c", str(cfg), "digest", cwd=tmp_path)
    assert code == 0 and "Traceback" not in err, err
    (mail,) = (tmp_path / "mail" / "new").iterdir()
    text = mail.read_text()
    assert "Teplizumab first study" in text and "Teplizumab second study" in text
    assert "Teplizumab unknown study" not in text
