"""ClinicalTrials.gov as a source, against a fake API v2 (and a fake NCBI) on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watcher.config import Config, load_config
from watcher.delivery import compose
from watcher.digest.render import Renderer
from watcher.identity import key
from watcher.mail import html_part_size
from watcher.models import TRIAL_CHANGE_KINDS, Article, TrialState
from watcher.poll import poll
from watcher.sources.clinicaltrials import ClinicalTrials, announcement, parse_study
from watcher.sources.http import Http
from watcher.store import Store
from watcher.trials import phase_words, trial_changes
from watcher.wiring import sources_for

from .conftest import make_client, write_config
from .fakes.clinicaltrials import FakeClinicalTrials, real_study, study
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


def configure(
    tmp_path: Path, fake: FakeNCBI, ctgov: FakeClinicalTrials, query: str | None = None
) -> Config:
    extra = f'[clinicaltrials]\nbase_url = "{ctgov.base_url}"\nrate_limit = 100\n'
    sub = SUB if query is None else SUB.replace("teplizumab OR otelixizumab", query)
    return load_config(write_config(tmp_path, fake.base_url, sub, extra=extra))


def run(config: Config, store: Store, fake: FakeNCBI, now: datetime) -> Any:
    store.polls.sync(config.subscriptions, NOW - timedelta(hours=1))
    sources = sources_for(make_client(fake.base_url), config.ncbi, config)
    return poll(config, store, sources, now)


def send(config: Config, store: Store, now: datetime) -> str | None:
    """The text part of the digest due now, marked sent (None when there is nothing to send)."""
    digest = compose(config, store, Renderer(), ("0 7 * * mon", "UTC"), RCPT, now)
    if digest is None:
        return None
    digest_id = store.outbox.create_digest(
        recipient=RCPT,
        schedule="k",
        message_id=digest.message_id,
        message=digest.message,
        items=list(digest.ctx.items),
        now=now,
    )
    assert store.outbox.mark_digest_sent(digest_id, now)
    return digest.ctx.subject + "\n" + digest.rendered.text + "\n" + digest.rendered.html


def recruiting(updated: str = "2026-11-10", **kw: Any) -> dict[str, Any]:
    return study(NCT, "Teplizumab in stage 2 type 1 diabetes", "RECRUITING", updated, **kw)


def test_first_poll_announces_each_study_once_for_one_request(tmp_path, fake, ctgov, store):
    ctgov.put(recruiting())
    ctgov.put(study("NCT09000002", "Insulin pumps", "RECRUITING", "2026-11-10", intervention="x"))
    config = configure(tmp_path, fake, ctgov)
    report = run(config, store, fake, NOW)
    assert report.requests == 1 and ctgov.count() == 1 and fake.served == []
    assert list(store.outbox.pending_papers(RCPT, ["Trials"])) == [key("nct", NCT)]
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
    store.articles.upsert([citing], NOW)
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
            phases=("PHASE3", "PHASE2"),
            why_stopped="Slow accrual",
            enrollment_type="ACTUAL",
        )
    )
    said = [c.what for c in trial_changes(old, changed)]
    assert said == [
        "Recruiting → Terminated: Slow accrual",
        "Phase 2 → Phase 2/3",
        "results first posted 2026-12-01",
        "primary completion moved 2027-06 → 2028-01",
        "enrolment 100 → 111 (actual)",
        "new arms: Drug, high dose",
    ]
    assert [c.kind for c in trial_changes(old, changed)] == list(TRIAL_CHANGE_KINDS)
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


# The real studies of ../shared/corpus/registries/ (ClinicalTrials.gov API v2, GET /studies/NCT…,
# saved by the AACT project): what each says, read from its JSON by hand. File → (NCT id,
# overallStatus, designModule.phases, statusModule.whyStopped, enrollmentInfo count and type).
WITHDRAWN_WHY = "recruiting or enrolling participants has halted prematurely and will not resume"
REAL = {
    "NCT00465816": ("NCT00465816", None, (), None, None, None),  # identification only
    "NCT00763412": ("NCT00763412", "COMPLETED", ("NA",), None, 31, "ACTUAL"),
    "NCT00973089": ("NCT00973089", "WITHDRAWN", ("NA",), WITHDRAWN_WHY, 0, "ACTUAL"),
    "NCT02210780": ("NCT02210780", "COMPLETED", ("PHASE2",), None, 194, "ACTUAL"),
    # Saved under NCT02278341, the record holds NCT02552212 (AACT's fixture named so).
    "NCT02278341": ("NCT02552212", "COMPLETED", ("PHASE3",), None, 317, "ACTUAL"),
    "NCT02552212": ("NCT02552212", "COMPLETED", ("PHASE3",), None, 317, "ACTUAL"),
    "NCT03418623": ("NCT03418623", "COMPLETED", ("PHASE2",), None, 24, "ACTUAL"),
    "NCT03453554": ("NCT03453554", None, (), None, None, None),  # identification only
    "NCT03475563": ("NCT03475563", "UNKNOWN", (), None, 100, "ESTIMATED"),  # observational
    "NCT03630471": ("NCT03630471", "COMPLETED", ("NA",), None, 250, "ACTUAL"),
    "NCT04207047": ("NCT04207047", "UNKNOWN", ("NA",), None, 3, "ACTUAL"),
    "NCT05594173": ("NCT05594173", "COMPLETED", (), None, 20, "ACTUAL"),  # observational
    "NCT06171568": ("NCT06171568", "NOT_YET_RECRUITING", (), None, 400, "ESTIMATED"),
}
# Answers of the classic API (FullStudiesResponse, APIVrs 1.01.x, retired in June 2024), read
# as the same studies: their words ("Not yet recruiting", "Phase 1", "Anticipated") as API v2's
# enumerations, by hand from the files.
CLASSIC = {
    "NCT00023673": ("NCT00023673", "COMPLETED", ("PHASE1", "PHASE2"), None, 63, "ACTUAL"),
    "NCT02028676": ("NCT02028676", "COMPLETED", ("PHASE4",), None, 1206, "ACTUAL"),
    "NCT04780763": ("NCT04780763", "NOT_YET_RECRUITING", ("NA",), None, 168, "ESTIMATED"),
}


def test_every_real_study_file_is_read(corpus: Path) -> None:
    files = sorted((corpus / "registries").glob("ctgov-*.json"))
    expected = {**REAL, **CLASSIC}
    assert sorted(f.stem.removeprefix("ctgov-aact-") for f in files) == sorted(expected)
    for f in files:
        name = f.stem.removeprefix("ctgov-aact-")
        s = parse_study(json.loads(f.read_text()))
        got = (s.nct, s.status, s.phases, s.why_stopped, s.enrollment, s.enrollment_type)
        assert got == expected[name], name


def test_a_classic_study_is_read_whole_as_api_v2_would_send_it(corpus: Path) -> None:
    s = parse_study(json.loads((corpus / "registries" / "ctgov-aact-NCT00023673.json").read_text()))
    assert s.title.startswith("Radiation Therapy Combined With Paclitaxel and Carboplatin")
    assert (s.last_update, s.results_posted, s.primary_completion) == (
        "2017-12-22",
        "2014-03-27",
        "2009-01",
    )
    assert s.arms[-1] == "Phase II: 74 Gy/37 fx + chemotherapy" and len(s.arms) == 4
    assert announcement(s).pub_date == (
        "Phase 1/2 · Completed · enrolment 63 (actual) · results posted"
    )


@pytest.mark.parametrize(
    ("phases", "said"),
    [
        (("PHASE2",), "Phase 2"),
        (("PHASE1", "PHASE2"), "Phase 1/2"),
        (("PHASE2", "PHASE3"), "Phase 2/3"),
        (("EARLY_PHASE1",), "Early Phase 1"),
        (("PHASE4",), "Phase 4"),
        (("NA",), "Phase N/A"),
        ((), None),
        (None, None),
    ],
)
def test_phases_are_said_as_the_registry_says_them(phases, said) -> None:
    assert phase_words(phases) == said


def test_a_study_announced_says_its_phase_status_and_enrolment(corpus: Path) -> None:
    cases = {
        "NCT02210780": "Phase 2 · Completed · enrolment 194 (actual) · results posted",
        "NCT00973089": f"Phase N/A · Withdrawn: {WITHDRAWN_WHY} · enrolment 0 (actual)",
        "NCT06171568": "Not yet recruiting · enrolment 400 (estimated)",
    }
    for nct, line in cases.items():
        art = announcement(parse_study(real_study(nct)))
        assert art.pub_date == line
        assert art.phase == phase_words(REAL[nct][2])


def test_a_kept_state_without_the_new_fields_gives_no_spurious_change(corpus: Path) -> None:
    """A state kept before phases, whyStopped and the enrolment type were read (its JSON as
    issue 15's store wrote it) against the study's next answer with all three."""
    new = parse_study(real_study("NCT02210780"))
    kept = {
        "nct": new.nct,
        "title": new.title,
        "status": new.status,
        "last_update": "2020-05-01",
        "results_posted": new.results_posted,
        "primary_completion": new.primary_completion,
        "enrollment": new.enrollment,
        "arms": list(new.arms),
    }
    old = TrialState.from_json(kept)
    assert (old.phases, old.why_stopped, old.enrollment_type) == (None, None, None)
    assert trial_changes(old, new) == []
    # Known on both sides, a phase change is news.
    later = parse_study(real_study("NCT02210780", Phase=["PHASE2", "PHASE3"]))
    assert [c.what for c in trial_changes(new, later)] == ["Phase 2 → Phase 2/3"]
    # A study that gives no phase, then one: not a change of phase either.
    assert trial_changes(replace(new, phases=()), new) == []
    assert TrialState.from_json(new.to_json()) == new


def test_the_search_asks_for_the_fields_it_reads(ctgov) -> None:
    ctgov.put(
        study(
            NCT,
            "Teplizumab in stage 2 type 1 diabetes",
            "SUSPENDED",
            "2026-11-10",
            phases=("PHASE1", "PHASE2"),
            why_stopped="Drug supply interrupted",
            enrollment_type="ACTUAL",
        )
    )
    source = ClinicalTrials(Http(user_agent="t"), ctgov.base_url, rate=100)
    (s,) = source.search("teplizumab", date(2026, 11, 1))
    # The fake trims each study to `fields`, as the API does: what is read was asked for.
    assert (s.phases, s.why_stopped, s.enrollment_type) == (
        ("PHASE1", "PHASE2"),
        "Drug supply interrupted",
        "ACTUAL",
    )
    asked = set(ctgov.served[0].params["fields"].split(","))
    assert {"Phase", "WhyStopped", "EnrollmentType"} <= asked


def _real_in_window(nct: str, updated: str, **changes: Any) -> dict[str, Any]:
    """A real study as a new version of it posted on `updated` (inside the poll's window)."""
    return real_study(nct, LastUpdatePostDate=updated, **changes)


def test_real_studies_reach_the_digest_with_phase_and_enrolment(
    tmp_path, fake, ctgov, store, corpus
) -> None:
    ctgov.put(_real_in_window("NCT02210780", "2026-11-10"))
    ctgov.put(_real_in_window("NCT02552212", "2026-11-11"))
    config = configure(tmp_path, fake, ctgov, query="dupilumab OR certolizumab")
    report = run(config, store, fake, NOW)
    assert report.outcomes[0].new_matches == 2 and report.requests == 1
    text = send(config, store, NOW)
    assert text is not None
    assert "Study of Dupilumab and Immune Responses in Adults With Atopic Dermatitis (AD)" in text
    assert (
        "ClinicalTrials.gov · Phase 2 · Completed · enrolment 194 (actual) · results posted" in text
    )
    assert (
        "ClinicalTrials.gov · Phase 3 · Completed · enrolment 317 (actual) · results posted" in text
    )
    stored = store.articles.records([key("nct", "NCT02210780")])[key("nct", "NCT02210780")]
    assert stored.phase == "Phase 2"


def test_a_real_study_terminated_says_why_once(tmp_path, fake, ctgov, store, corpus) -> None:
    """NCT03418623 (Phase 2) as it stood while recruiting, then terminated with a reason."""
    ctgov.put(
        _real_in_window(
            "NCT03418623",
            "2026-11-10",
            OverallStatus="RECRUITING",
            EnrollmentCount=60,
            EnrollmentType="ESTIMATED",
        )
    )
    config = configure(tmp_path, fake, ctgov, query="GET73")
    run(config, store, fake, NOW)
    first = send(config, store, NOW)
    assert first is not None and "Phase 2 · Recruiting · enrolment 60 (estimated)" in first
    later = NOW + timedelta(days=7)
    ctgov.put(
        _real_in_window(
            "NCT03418623",
            "2026-11-20",
            OverallStatus="TERMINATED",
            WhyStopped="Slow accrual",
        )
    )
    report = run(config, store, fake, later)
    assert report.outcomes[0].changes == 2
    text = send(config, store, later)
    assert text is not None and "Trial registry updates" in text
    assert "NCT03418623 (Phase 2): Effect of GET73" in text
    assert "Recruiting → Terminated: Slow accrual" in text
    assert "enrolment 60 → 24 (actual)" in text
    run(config, store, fake, later + timedelta(hours=6))
    assert send(config, store, later + timedelta(hours=6)) is None


def test_a_real_withdrawal_is_told_with_the_sponsors_reason(
    tmp_path, fake, ctgov, store, corpus
) -> None:
    """NCT00973089 first seen not yet recruiting; its real record (withdrawn, and why) next.
    The reason runs past the store's 64-character date column and is told whole."""
    ctgov.put(_real_in_window("NCT00973089", "2026-11-10", OverallStatus="NOT_YET_RECRUITING"))
    config = configure(tmp_path, fake, ctgov, query="caries")
    run(config, store, fake, NOW)
    send(config, store, NOW)
    later = NOW + timedelta(days=7)
    ctgov.put(_real_in_window("NCT00973089", "2026-11-20"))
    run(config, store, fake, later)
    text = send(config, store, later)
    assert text is not None
    assert f"Not yet recruiting → Withdrawn: {WITHDRAWN_WHY}" in " ".join(text.split())


def test_a_state_kept_by_the_previous_release_survives_the_upgrade(
    tmp_path, fake, ctgov, store_url, corpus
) -> None:
    """A store at revision 0007 holding a study's state as issue 15 kept it, migrated to the
    head and polled with the study's next answer: no change is announced for the fields the
    kept state never had."""
    from sqlalchemy import create_engine, insert

    from watcher.schema import trial_states
    from watcher.store import migrate

    engine = create_engine(store_url)
    migrate(engine, "0007")
    study_json = _real_in_window("NCT02210780", "2026-11-10")
    old = parse_study(study_json)
    kept = {
        k: v
        for k, v in old.to_json().items()
        if k not in ("phases", "why_stopped", "enrollment_type")
    }
    with engine.begin() as conn:
        conn.execute(
            insert(trial_states).values(
                nct=old.nct,
                state={**kept, "last_update": "2026-10-01"},
                last_update="2026-10-01",
                seen_at=NOW - timedelta(days=40),
            )
        )
    engine.dispose()
    store = Store.open(store_url)
    try:
        ctgov.put(study_json)
        config = configure(tmp_path, fake, ctgov, query="dupilumab")
        report = run(config, store, fake, NOW)
        assert report.outcomes[0].changes == 0
        (state,) = [TrialState.from_json(s) for s in _kept_states(store)]
        assert state.phases == ("PHASE2",) and state.enrollment_type == "ACTUAL"
    finally:
        store.close()


def _kept_states(store: Store) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from watcher.schema import trial_states

    with store.engine.connect() as conn:
        return list(conn.execute(select(trial_states.c.state)).scalars())


def test_a_study_update_is_kept_as_its_own_record_with_each_change_whole(store) -> None:
    """Each change is a row of its own: two new arms are one change, told on one line (packed
    into one string, as before, they were split apart at their "; ")."""
    old = TrialState(NCT, "Teplizumab", "RECRUITING", "2026-11-10", arms=("Drug",))
    new = replace(old, status="COMPLETED", last_update="2026-11-20", arms=("Drug", "A", "B"))
    store.trials.record([old], NOW)
    store.trials.record([new], NOW + timedelta(days=7))
    item = f"trial-change:{NCT}@2026-11-20"
    (update,) = store.trials.updates([item, key("nct", NCT)]).values()
    assert (update.nct, update.last_update, update.title) == (NCT, "2026-11-20", "Teplizumab")
    assert [(c.kind, c.what) for c in update.changes] == [
        ("status", "Recruiting → Completed"),
        ("arms", "new arms: A; B"),
    ]
    assert store.articles.records([item]) == {}  # not an article any more


def test_trial_changes_stored_as_articles_move_to_their_own_table(
    tmp_path, fake, ctgov, store_url
) -> None:
    """A store at revision 0008 holding study changes as the previous release did (an articles
    row whose pub_date packs the changes with "; "), migrated to the head: the changes move to
    trial_changes under the same keys, the digest shows them exactly as before, one already
    delivered is not told again and one waiting in a pending digest stays there."""
    from sqlalchemy import create_engine, insert, select

    from watcher import schema as db
    from watcher.digest.context import TrialUpdate
    from watcher.store import article_rows, migrate

    engine = create_engine(store_url)
    migrate(engine, "0008")
    packed = {
        # study → (its update, the changes as the previous release packed them, its phase)
        "NCT09000001": ("2026-11-20", "Recruiting → Completed; enrolment 60 → 24 (actual)", None),
        "NCT09000002": ("2026-11-12", "Recruiting → Terminated: Slow accrual", "Phase 2"),
        "NCT09000003": ("2026-11-14", "new arms: Drug, high dose; Placebo", "Phase 3"),
        "NCT09000004": ("2026-11-15", "results first posted 2026-11-15", "Phase 1/2"),
    }
    items = {nct: f"trial-change:{nct}@{day}" for nct, (day, _, _) in packed.items()}
    records = {
        items[nct]: Article(
            pmid=None,
            title=f"Study {nct}",
            journal="ClinicalTrials.gov",
            pub_date=said,
            nct=nct,
            phase=phase,
        )
        for nct, (_, said, phase) in packed.items()
    }
    before = NOW - timedelta(days=2)
    # What the previous digest made of them: the packed string split at "; ".
    expected = {
        item: TrialUpdate(
            a.nct or "", a.url, a.title, tuple((a.pub_date or "").split("; ")), (), a.phase
        )
        for item, a in records.items()
    }
    delivered, waiting = items["NCT09000002"], items["NCT09000003"]
    with engine.begin() as conn:
        for item, a in records.items():
            conn.execute(insert(db.articles), article_rows([a], before, {key("nct", a.nct): item}))
        conn.execute(
            insert(db.matches),
            [
                dict(subscription="Trials", item=i, source="trials", matched_at=NOW, deliver=True)
                for i in records
            ],
        )
        digests = [(1, "sent", delivered), (2, "pending", waiting)]
        for digest_id, state, item in digests:
            conn.execute(
                insert(db.digests).values(
                    id=digest_id,
                    recipient=RCPT,
                    schedule="k",
                    message_id=f"<{digest_id}@x>",
                    state=state,
                    created_at=before,
                    attempts=0,
                    paper_count=1,
                    message=b"m",
                )
            )
            conn.execute(insert(db.digest_items).values(digest_id=digest_id, item=item))
        conn.execute(
            insert(db.deliveries).values(
                recipient=RCPT, item=delivered, digest_id=1, delivered_at=before
            )
        )
    engine.dispose()
    store = Store.open(store_url)
    try:
        with store.engine.connect() as conn:
            left = conn.execute(select(db.articles.c.item)).scalars().all()
        assert left == []
        moved = store.trials.updates(records)
        assert set(moved) == set(records)
        assert [c.kind for c in moved[items["NCT09000003"]].changes] == ["arms", "arms"]
        assert [c.kind for c in moved[items["NCT09000001"]].changes] == ["status", "enrolment"]
        config = configure(tmp_path, fake, ctgov)
        store.polls.sync(config.subscriptions, NOW - timedelta(hours=1))
        assert store.articles.awaited(["Trials"]) == {}
        assert store.outbox.undelivered_counts(stored=False) == {RCPT: 0}
        (pending,) = store.outbox.pending_digests()
        assert pending.items == (waiting,)
        digest = compose(config, store, Renderer(), ("0 7 * * mon", "UTC"), RCPT, NOW)
        assert digest is not None
        told = [items["NCT09000001"], items["NCT09000004"]]
        assert digest.ctx.trial_updates == tuple(expected[i] for i in told)
        assert digest.ctx.items == tuple(told)
        again = Renderer().render(
            replace(digest.ctx, trial_updates=tuple(expected[i] for i in told)),
            html_size=html_part_size,
        )
        assert digest.rendered.text == again.text and digest.rendered.html == again.html
        assert store.outbox.mark_digest_sent(pending.id, NOW)
        assert waiting in store.outbox.delivered_items(RCPT)
    finally:
        store.close()
