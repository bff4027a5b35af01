"""Europe PMC as a source, against a fake Europe PMC (and a fake NCBI) on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watcher.config import Config, load_config
from watcher.digest import build_digest, present_followups
from watcher.errors import RecordError, SourceError
from watcher.followups import PUBLISHED, published_as
from watcher.identity import key
from watcher.models import JournalVersion
from watcher.poll import poll
from watcher.sources.europepmc import EuropePmc, parse_record, scoped, windowed
from watcher.sources.http import Http
from watcher.store import Store
from watcher.wiring import sources_for

from .conftest import make_client, write_config
from .fakes.europepmc import FakeEuropePmc, load_record
from .fakes.ncbi import FakeNCBI
from .fakes.records import synthetic
from .test_cli import run as cli_run

NOW = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
RCPT = "a@example.org"


@pytest.fixture
def epmc() -> Iterator[FakeEuropePmc]:
    server = FakeEuropePmc().start()
    yield server
    server.stop()


def preprint(n: int, words: str = "teplizumab", **more: Any) -> dict[str, Any]:
    record = load_record("europepmc-preprint.json")
    record.update(id=f"PPR9{n:05d}", doi=f"10.1101/2026.11.02.2630{n:04d}")
    record["title"] = f"Preprint {n} on {words}"
    return {**record, **more}


def configure(tmp_path: Path, fake: FakeNCBI, epmc: FakeEuropePmc, subs: str) -> Config:
    extra = f'[europepmc]\nbase_url = "{epmc.base_url}"\nrate_limit = 100\n'
    return load_config(write_config(tmp_path, fake.base_url, subs, extra=extra))


EPMC_SUB = (
    f'[[subscription]]\nname = "Preprints"\neuropepmc = "teplizumab"\nrecipients = ["{RCPT}"]\n'
)
PUBMED_SUB = f'[[subscription]]\nname = "PubMed"\nquery = "teplizumab"\nrecipients = ["{RCPT}"]\n'
OTHER = "b@example.org"
OTHER_SUB = f'[[subscription]]\nname = "Other"\nquery = "otelixizumab"\nrecipients = ["{OTHER}"]\n'


def run(config: Config, store: Store, fake: FakeNCBI, now: datetime = NOW) -> Any:
    store.sync_subscriptions(config.subscriptions, NOW - timedelta(hours=1))
    client = make_client(fake.base_url)
    sources = sources_for(client, config.ncbi, config)
    return poll(config, store, sources, now)


def deliver_all(
    store: Store, rcpt: str = RCPT, subs: Sequence[str] = ("Preprints", "PubMed")
) -> None:
    items = list(store.pending_papers(rcpt, list(subs)))
    assert items
    digest = store.create_digest(
        recipient=rcpt,
        schedule="k",
        message_id=f"<{rcpt}-{len(items)}@x>",
        message=b"",
        items=items,
        now=NOW,
    )
    assert store.mark_digest_sent(digest, NOW)


def test_first_poll_stores_preprints_whole_in_one_request(tmp_path, fake, epmc, store) -> None:
    epmc.add(preprint(1), TODAY - timedelta(days=2))
    other = preprint(2, "otelixizumab", abstractText="Anti-CD3 otelixizumab.")  # another topic
    epmc.add(other, TODAY - timedelta(days=2))
    config = configure(tmp_path, fake, epmc, EPMC_SUB)
    report = run(config, store, fake)
    assert report.requests == 1 and epmc.count() == 1 and fake.served == []
    pending = store.pending_papers(RCPT, ["Preprints"])
    assert list(pending) == [key("ppr", "PPR900001")]
    art = store.articles(pending)[key("ppr", "PPR900001")]
    assert art.pmid is None and art.preprint_server == "medRxiv" and art.version == 1
    assert art.doi == "10.1101/2026.11.02.26300001"
    assert art.authors[0].display == "Lopez A" and "teplizumab" in art.abstract_text
    assert art.url == "https://europepmc.org/article/PPR/PPR900001"
    query = epmc.served[0].params
    assert query["resultType"] == "core" and query["format"] == "json"
    assert query["cursorMark"] == "*" and query["pageSize"] == "1000"
    assert (
        "SRC:PPR" in query["query"] and "FIRST_IDATE:[2026-10-17 TO 2026-11-16]" in query["query"]
    )


def test_repeat_poll_finds_nothing_new_for_one_request(tmp_path, fake, epmc, store) -> None:
    epmc.add(preprint(1), TODAY - timedelta(days=1))
    config = configure(tmp_path, fake, epmc, EPMC_SUB)
    run(config, store, fake)
    again = run(config, store, fake, NOW + timedelta(hours=6))
    assert again.requests == 1 and again.new_matches == 0
    # The window reaches back overlap_days behind the last one, as PubMed's does.
    assert "FIRST_IDATE:[2026-11-13 TO 2026-11-16]" in epmc.served[-1].params["query"]


def test_paging_follows_next_cursor_mark_past_one_page(epmc) -> None:
    for n in range(5):
        epmc.add(preprint(n), TODAY)
    source = EuropePmc(Http(user_agent="t", backoff=0.001), epmc.base_url, rate=100, page_size=2)
    found = list(source.search(windowed("teplizumab", TODAY, TODAY)))
    assert len({a.ppr for a in found}) == 5
    # Three pages; the third gives back the cursor it was asked with, so no fourth request.
    assert epmc.count() == 3
    cursors = [s.params["cursorMark"] for s in epmc.served]
    assert cursors[0] == "*" and len(set(cursors)) == 3


def test_faults_are_retried(epmc) -> None:
    epmc.add(preprint(1), TODAY)
    epmc.fault("status:503")
    epmc.fault("status:429", retry_after="0")
    epmc.fault("notjson")
    source = EuropePmc(Http(user_agent="t", backoff=0.001), epmc.base_url, rate=100)
    assert len(list(source.search(windowed("teplizumab", TODAY, TODAY)))) == 1
    assert epmc.count() == 4


def test_a_failing_subscription_is_recorded_on_its_own_row(tmp_path, fake, epmc, store) -> None:
    config = configure(tmp_path, fake, epmc, EPMC_SUB)
    epmc.fault("status:500", times=10)
    report = run(config, store, fake)
    assert [o.name for o in report.failed] == ["Preprints"]
    state = store.poll_state("Preprints")
    assert state is not None and "HTTP 500" in (state.last_error or "")


def test_count_is_one_request_of_one_record(epmc) -> None:
    for n in range(3):
        epmc.add(preprint(n), TODAY)
    source = EuropePmc(Http(user_agent="t"), epmc.base_url, rate=100)
    assert source.count("teplizumab") == 3
    assert epmc.count() == 1 and epmc.served[0].params["pageSize"] == "1"


def test_a_query_naming_its_sources_is_not_restricted_to_preprints() -> None:
    assert scoped("teplizumab") == "(teplizumab) AND SRC:PPR"
    assert scoped("teplizumab AND (SRC:MED OR SRC:PPR)") == "teplizumab AND (SRC:MED OR SRC:PPR)"


def test_preprint_of_a_pubmed_record_names_its_journal_version() -> None:
    link = {"id": "9001", "source": "MED", "type": "Preprint of", "reference": "Diabetes Care 2027"}
    art = parse_record(preprint(1, commentCorrectionList={"commentCorrection": [link]}))
    assert (
        art is not None and art.published_pmid == 9001 and art.published_in == "Diabetes Care 2027"
    )
    with pytest.raises(RecordError, match="no PPR id, PMID or DOI"):
        parse_record({"source": "PPR", "title": "no id"})


def test_preprint_then_its_pubmed_record_is_one_work_told_once(tmp_path, fake, epmc, store) -> None:
    epmc.add(preprint(1), TODAY - timedelta(days=1))
    # Someone else, who received another paper but not the preprint.
    fake.add([synthetic(9100, "Otelixizumab in new-onset type 1 diabetes", edat=TODAY)])
    config = configure(tmp_path, fake, epmc, EPMC_SUB + PUBMED_SUB + OTHER_SUB)
    run(config, store, fake)
    deliver_all(store)
    deliver_all(store, OTHER, ["Other"])
    # Weeks later Europe PMC links the preprint to its journal version, which PubMed now holds.
    later = NOW + timedelta(days=20)
    link = {"id": "9001", "source": "MED", "type": "Preprint of", "reference": "Diabetes Care"}
    epmc.update("PPR900001", {"commentCorrectionList": {"commentCorrection": [link]}}, later.date())
    fake.add([synthetic(9001, "Teplizumab delays type 1 diabetes", edat=later.date())])
    report = run(config, store, fake, later)
    assert not report.failed
    assert store.pending_papers(RCPT, ["Preprints", "PubMed"]) == {}
    # What issue 14's follow-ups tell as "published in JOURNAL", found once.
    ppr = key("ppr", "PPR900001")
    assert report.journal_versions == [JournalVersion(ppr, "PPR900001", 9001, "Diabetes Care")]
    assert report.changes == 1
    again = run(config, store, fake, later + timedelta(hours=6))
    assert again.journal_versions == [] and again.changes == 0
    work = store.resolve([key("ppr", "PPR900001"), "pmid:9001"])
    assert work[key("ppr", "PPR900001")] == work["pmid:9001"]
    # The work's record is now the journal version's.
    assert store.articles([work["pmid:9001"]])[work["pmid:9001"]].pmid == 9001
    # Issue 14's follow-up: the preprint's reader is told once that it is published, under
    # the key PubMed's UpdateIn on the preprint would give (so the two are one change).
    told = store.pending_changes(RCPT)
    assert [(c.change.item, c.change.kind, c.change.notice) for c in told] == [
        (work["pmid:9001"], PUBLISHED, "pmid:9001")
    ]
    assert told[0].change.url == "https://pubmed.ncbi.nlm.nih.gov/9001/"
    shown = present_followups(told, store.articles([work["pmid:9001"]]))
    assert [f.what for f in shown] == ["Published in Diabetes Care"]
    assert store.record_changes([told[0].change], later) == 0
    assert store.pending_changes(OTHER) == []
    digest = store.create_digest(
        recipient=RCPT,
        schedule="k",
        message_id="<followup@x>",
        message=b"",
        items=[],
        now=later,
        changes=[told[0].id],
    )
    assert store.mark_digest_sent(digest, later)
    assert store.pending_changes(RCPT) == []


def test_a_journal_version_is_the_change_pubmeds_update_in_gives() -> None:
    c = published_as("ppr:PPR900001", 9001, "Nat Med. 2021 Mar;27(3):456-460.")
    assert (c.kind, c.notice, c.detail) == (PUBLISHED, "pmid:9001", "published in Nat Med")
    assert published_as("ppr:PPR900001", 9001, None).detail == "published in a journal"


def test_pubmed_record_then_its_preprint_is_one_work_told_once(tmp_path, fake, epmc, store) -> None:
    fake.add([synthetic(9001, "Teplizumab delays type 1 diabetes", edat=TODAY)])
    config = configure(tmp_path, fake, epmc, EPMC_SUB + PUBMED_SUB)
    run(config, store, fake)
    deliver_all(store)
    link = {"id": "9001", "source": "MED", "type": "Preprint of", "reference": "Diabetes Care"}
    epmc.add(preprint(1, commentCorrectionList={"commentCorrection": [link]}), TODAY)
    report = run(config, store, fake, NOW + timedelta(hours=6))
    assert report.journal_versions == []  # told as the journal paper already: no follow-up
    assert store.pending_papers(RCPT, ["Preprints", "PubMed"]) == {}
    assert store.resolve([key("ppr", "PPR900001")])[key("ppr", "PPR900001")] == "pmid:9001"
    assert store.articles(["pmid:9001"])["pmid:9001"].pmid == 9001


def test_a_preprint_in_a_digest_has_no_pmid_in_its_ris_nor_in_the_pmid_list(
    tmp_path, fake, epmc
) -> None:
    config = configure(tmp_path, fake, epmc, EPMC_SUB)
    pre = parse_record(preprint(1))
    assert pre is not None
    pub = replace(pre, pmid=9001, ppr=None, preprint_server=None, doi="10.1/x", title="Paper")
    arts = {key("ppr", "PPR900001"): pre, "pmid:9001": pub}
    ctx = build_digest(
        RCPT,
        {k: ["Preprints"] for k in arts},
        arts,
        config.subscriptions,
        config.mail,
        config.path,
        NOW,
    )
    assert ctx.total == 2 and ctx.pmids == (9001,)
    assert (
        ctx.ris.count("ER  - ") == 2
        and "M2  - PMID: 9001" in ctx.ris
        and "PMID: None" not in ctx.ris
    )


def test_windowed_query_covers_first_index_and_update_dates() -> None:
    q = windowed("x", date(2026, 11, 1), date(2026, 11, 16))
    assert q == (
        "(x) AND SRC:PPR AND (FIRST_IDATE:[2026-11-01 TO 2026-11-16] "
        "OR UPDATE_DATE:[2026-11-01 TO 2026-11-16])"
    )


def test_an_answer_that_is_not_an_object_is_an_error(epmc) -> None:
    class List(FakeEuropePmc):
        def answer(self, path: str, params: dict[str, str]) -> tuple[int, Any]:
            return 200, []

    server = List().start()
    try:
        with pytest.raises(SourceError, match="not a JSON object"):
            EuropePmc(Http(user_agent="t"), server.base_url).count("x")
    finally:
        server.stop()


def test_status_gives_one_line_per_failing_registry_subscription(
    tmp_path, fake, epmc, capsys
) -> None:
    from watcher.cli import main

    from .fakes.clinicaltrials import FakeClinicalTrials

    ctgov = FakeClinicalTrials().start()
    try:
        extra = (
            f'[europepmc]\nbase_url = "{epmc.base_url}"\nrate_limit = 100\n'
            f'[clinicaltrials]\nbase_url = "{ctgov.base_url}"\nrate_limit = 100\n'
        )
        trials = f'[[subscription]]\nname = "Trials"\ntrials = "x"\nrecipients = ["{RCPT}"]\n'
        cfg = write_config(tmp_path, fake.base_url, EPMC_SUB + trials, extra=extra)
        epmc.fault("status:503", times=10)  # Europe PMC down, ClinicalTrials.gov fine
        assert main(["-c", str(cfg), "poll"]) == 1
        capsys.readouterr()
        assert main(["-c", str(cfg), "status"]) == 0
        out = capsys.readouterr().out
        errors = [line for line in out.splitlines() if "LAST ERROR" in line]
        assert len(errors) == 1 and "HTTP 503" in errors[0]
    finally:
        ctgov.stop()


def test_records_owed_are_fetched_by_their_ids(epmc) -> None:
    epmc.add(preprint(1), TODAY)
    epmc.add(preprint(2), TODAY)
    source = EuropePmc(Http(user_agent="t"), epmc.base_url, rate=100)
    got = list(source.fetch_items([key("ppr", "PPR900002"), "nct:NCT01234567"]))
    assert [a.ppr for a in got] == ["PPR900002"] and epmc.count() == 1
    assert epmc.served[0].params["query"] == "(EXT_ID:PPR900002 AND SRC:PPR)"
    assert list(source.fetch_items(["nct:NCT01234567"])) == [] and epmc.count() == 1


def test_a_malformed_record_is_skipped_in_one_line_and_the_others_delivered(
    tmp_path, fake, epmc
) -> None:
    """A changed or hostile Europe PMC: a record whose fields have the wrong shape is read
    leniently, one that names nothing to know it by is skipped with one warning; the real
    `watcher poll` and `watcher digest` deliver the rest, with no traceback."""
    today = datetime.now(UTC).date()
    epmc.add(preprint(1), today)
    odd = preprint(2, authorList="Lopez A", pubTypeList={"pubType": 7}, journalInfo=[1])
    epmc.add(odd, today)
    epmc.add({"source": "PPR", "title": "Unknown teplizumab preprint", "authorList": "x"}, today)
    epmc.add(preprint(3), today)
    cfg = write_config(
        tmp_path,
        fake.base_url,
        EPMC_SUB,
        extra=f'[europepmc]\nbase_url = "{epmc.base_url}"\nrate_limit = 100\n',
    )
    code, out, err = cli_run("-c", str(cfg), "poll", cwd=tmp_path)
    assert (code, out.splitlines()[0]) == (0, "Preprints: 3 found, 3 new"), err
    assert "Traceback" not in err and "internal error" not in err
    said = [line for line in err.splitlines() if "skipped" in line]
    assert len(said) == 1 and said[0].endswith(
        "WARNING watcher.sources.json_api: Europe PMC record 3 (id ?) skipped: "
        "no PPR id, PMID or DOI to know it by"
    )
    code, _, err = cli_run("-c", str(cfg), "digest", cwd=tmp_path)
    assert code == 0 and "Traceback" not in err, err
    (mail,) = (tmp_path / "mail" / "new").iterdir()
    text = mail.read_text()
    assert all(f"Preprint {n} on teplizumab" in text for n in (1, 2, 3))
    assert "Unknown teplizumab preprint" not in text
