"""Europe PMC as a source, against a fake Europe PMC (and a fake NCBI) on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from watcher.config import Config, load_config
from watcher.digest.build import build_digest
from watcher.digest.present import present_followups, present_paper
from watcher.errors import RecordError, SourceError
from watcher.followups import changes_in, is_notice, notice_changes, published_as
from watcher.identity import identifiers, key
from watcher.models import (
    CONCERN,
    ERRATUM,
    PUBLISHED,
    RETRACTION,
    UPDATE,
    Correction,
    JournalVersion,
    MeshHeading,
)
from watcher.poll import poll
from watcher.sources.europepmc import REF_TYPES, EuropePmc, own, parse_record, scoped, windowed
from watcher.sources.http import Http
from watcher.store import Store
from watcher.wiring import sources_for

from .conftest import make_client, write_config
from .fakes.europepmc import (
    FIXTURES,
    FakeEuropePmc,
    corpus_files,
    corpus_records,
    load_record,
    results,
)
from .fakes.ncbi import FakeNCBI
from .fakes.records import synthetic
from .test_cli import run as cli_run

rispy = pytest.importorskip("rispy", reason="the RIS checks need rispy (the test extra)")

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
    store.polls.sync(config.subscriptions, NOW - timedelta(hours=1))
    client = make_client(fake.base_url)
    sources = sources_for(client, config.ncbi, config)
    return poll(config, store, sources, now)


def deliver_all(
    store: Store, rcpt: str = RCPT, subs: Sequence[str] = ("Preprints", "PubMed")
) -> None:
    items = list(store.outbox.pending_papers(rcpt, list(subs)))
    assert items
    digest = store.outbox.create_digest(
        recipient=rcpt,
        schedule="k",
        message_id=f"<{rcpt}-{len(items)}@x>",
        message=b"",
        items=items,
        now=NOW,
    )
    assert store.outbox.mark_digest_sent(digest, NOW)


def test_first_poll_stores_preprints_whole_in_one_request(tmp_path, fake, epmc, store) -> None:
    epmc.add(preprint(1), TODAY - timedelta(days=2))
    other = preprint(2, "otelixizumab", abstractText="Anti-CD3 otelixizumab.")  # another topic
    epmc.add(other, TODAY - timedelta(days=2))
    config = configure(tmp_path, fake, epmc, EPMC_SUB)
    report = run(config, store, fake)
    assert report.requests == 1 and epmc.count() == 1 and fake.served == []
    pending = store.outbox.pending_papers(RCPT, ["Preprints"])
    assert list(pending) == [key("ppr", "PPR900001")]
    art = store.articles.records(pending)[key("ppr", "PPR900001")]
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
    state = store.polls.state("Preprints")
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
    with pytest.raises(RecordError, match="no PPR id, PMID, DOI or PMCID"):
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
    assert store.outbox.pending_papers(RCPT, ["Preprints", "PubMed"]) == {}
    # What issue 14's follow-ups tell as "published in JOURNAL", found once.
    ppr = key("ppr", "PPR900001")
    assert report.journal_versions == [JournalVersion(ppr, "PPR900001", 9001, "Diabetes Care")]
    assert report.changes == 1
    again = run(config, store, fake, later + timedelta(hours=6))
    assert again.journal_versions == [] and again.changes == 0
    work = store.items.resolve([key("ppr", "PPR900001"), "pmid:9001"])
    assert work[key("ppr", "PPR900001")] == work["pmid:9001"]
    # The work's record is now the journal version's.
    assert store.articles.records([work["pmid:9001"]])[work["pmid:9001"]].pmid == 9001
    # Issue 14's follow-up: the preprint's reader is told once that it is published, under
    # the key PubMed's UpdateIn on the preprint would give (so the two are one change).
    told = store.changes.pending(RCPT)
    assert [(c.change.item, c.change.kind, c.change.notice) for c in told] == [
        (work["pmid:9001"], PUBLISHED, "pmid:9001")
    ]
    assert told[0].change.url == "https://pubmed.ncbi.nlm.nih.gov/9001/"
    shown = present_followups(told, store.articles.records([work["pmid:9001"]]))
    assert [f.what for f in shown] == ["Published in Diabetes Care"]
    assert store.changes.record([told[0].change], later) == 0
    assert store.changes.pending(OTHER) == []
    digest = store.outbox.create_digest(
        recipient=RCPT,
        schedule="k",
        message_id="<followup@x>",
        message=b"",
        items=[],
        now=later,
        changes=[told[0].id],
    )
    assert store.outbox.mark_digest_sent(digest, later)
    assert store.changes.pending(RCPT) == []


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
    assert store.outbox.pending_papers(RCPT, ["Preprints", "PubMed"]) == {}
    assert store.items.resolve([key("ppr", "PPR900001")])[key("ppr", "PPR900001")] == "pmid:9001"
    assert store.articles.records(["pmid:9001"])["pmid:9001"].pmid == 9001


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
        "no PPR id, PMID, DOI or PMCID to know it by"
    )
    code, _, err = cli_run("-c", str(cfg), "digest", cwd=tmp_path)
    assert code == 0 and "Traceback" not in err, err
    (mail,) = (tmp_path / "mail" / "new").iterdir()
    text = mail.read_text()
    assert all(f"Preprint {n} on teplizumab" in text for n in (1, 2, 3))
    assert "Unknown teplizumab preprint" not in text


# Europe PMC's real answers (../shared/corpus/registries), read whole.


def real(corpus: Path) -> dict[int | None, Any]:
    """The real `core` results by PMID, read (the corpus fixture skips without the corpus)."""
    return {a.pmid: a for a in map(parse_record, corpus_records())}


def written() -> dict[str, Any]:
    return {own(a): a for a in map(parse_record, results(FIXTURES / "europepmc-written.json"))}


def lite() -> dict[str, Any]:
    found = results(FIXTURES / "europepmc-pyeuropepmc-lite.json")
    return {own(a): a for a in map(parse_record, found)}


def _visible(text: str) -> str:
    """Characters as a reader sees them: H₂S is H2S, spaces aside."""
    return "".join(unicodedata.normalize("NFKC", text).split())


class _Stripped(HTMLParser):
    """The yardstick: an abstract with its tags removed by a real HTML parser."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_every_real_record_is_read_whole(corpus: Path) -> None:
    files = corpus_files()
    assert files, "no europepmc-*.json in the shared corpus"
    records = corpus_records()
    assert len(records) == 25
    for record in records:
        art = parse_record(record)  # none refused: each has a PMID
        assert art.pmid == int(record["pmid"]) and art.title == record["title"]
        source = record.get("abstractText")
        if not source:
            assert art.abstract == ()
            continue
        stripped = _Stripped()
        stripped.feed(source)
        stripped.close()
        # Every character of the abstract is kept, headings as labels ("Keywords:" is the
        # label Keywords): nothing eaten.
        kept = "".join((s.label or "") + s.text for s in art.abstract)
        visible = _visible("".join(stripped.text))
        assert _visible(kept).replace(":", "") == visible.replace(":", ""), art.pmid


def test_a_literal_less_than_is_text_not_a_tag(corpus: Path) -> None:
    arts = real(corpus)
    results_40468710 = {s.label: s.text for s in arts[40468710].abstract}["Results"]
    assert results_40468710.startswith(
        "Cross-sectional hierarchical regression analyses showed Time-point 1 psychological "
        "flexibility significantly (at p < .001) predicted anxiety, depression, stress, fatigue "
        "interference, fear of cancer recurrence, quality of life and pain interference. "
    )
    results_40245290 = {s.label: s.text for s in arts[40245290].abstract}["Results"]
    assert results_40245290.endswith(
        "aligning with the availability of new FDA-approved treatments for advanced or "
        "metastatic disease with a median overall survival of <1 year."
    )
    (results_26037986,) = [s for s in written()["pmid:26037986"].abstract if s.label == "Results"]
    assert (
        "477 laparotomies were performed in 446 patients. 57% were aged <70 and 43% aged >70 "
        "years. 30-day mortality was 12, 4% in those aged <70 years and 22% in those >70 years "
        "(p < 0.001)." in results_26037986.text
    )


def test_structured_abstracts_have_their_sections_and_the_snippet_is_the_conclusion(
    corpus: Path,
) -> None:
    arts = real(corpus)
    assert [(s.label, s.category) for s in arts[40468710].abstract] == [
        ("Objective", "OBJECTIVE"),
        ("Design", "METHODS"),
        ("Methods", "METHODS"),
        ("Results", "RESULTS"),
        ("Conclusions", "CONCLUSIONS"),
    ]
    paper = present_paper(arts[40468710], ("Cancer",), "snippet")
    assert paper.abstract == (
        (
            "Conclusions",
            "The findings show that psychological flexibility predicts key psychosocial outcomes "
            "relevant for people in remission from cancer. This study provides evidence for the "
            "relevance of psychological processes targeted in ACT-based interventions in the "
            "context of people living with and beyond cancer.",
        ),
    )
    # Sixteen of the 21 abstracts are structured: 15 with <h4> headings, one with a <b> one.
    structured = [a for a in arts.values() if len(a.abstract) > 1]
    assert len(structured) == 16 and sum(bool(a.abstract) for a in arts.values()) == 21
    assert [s.label for s in arts[40476859].abstract] == [None, "Keywords"]
    # A Lancet-style label takes NLM's category: "Findings" is the results.
    assert present_paper(arts[40518973], ("Cancer",), "snippet").abstract[0][0] == "Findings"
    assert "H₂S" in arts[40511629].abstract[0].text


def test_titles_with_escaped_markup_read_as_markup() -> None:
    arts = lite()
    assert arts["pmid:40505930"].title.startswith(
        "circADARB1 enhances ZEB1 expression in an m⁶A-dependent manner"
    )
    assert arts["pmid:40451289"].title.startswith("Associations between ATM c.7271T>G and cancer")
    assert arts["pmid:40450633"].title.startswith(
        "Breast imaging recommendations for young females (age < 40 years) with ≥ 20% lifetime"
    )
    assert arts["pmid:40498841"].title.startswith(
        "Caspase-1-dependent pyroptosis converts αSMA⁺ CAFs into collagen-IIIʰⁱᵍʰ iCAFs"
    )
    assert not [a.title for a in arts.values() if "&" in a.title or re.search("</?[a-z]", a.title)]


def test_the_journal_issue_is_read_as_pubmed_prints_it(corpus: Path) -> None:
    a = real(corpus)[40468710]
    assert (a.journal, a.journal_iso) == (
        "British journal of health psychology",
        "Br J Health Psychol",
    )
    assert (a.volume, a.issue, a.pages, a.pub_date, a.pub_year) == (
        "30",
        "3",
        "e12807",
        "2025 Sep",
        2025,
    )
    assert a.epub_date is None  # printed only: no electronicPublicationDate
    early = real(corpus)[40464630]
    assert (early.pub_date, early.epub_date, early.issue) == (
        "2025 Aug",
        date(2025, 8, 22),
        "Forthcoming",
    )
    # The issue's date, not the first publication's.
    old = written()["pmid:26037986"]
    assert (old.pub_date, old.pub_year, old.epub_date) == ("2015 Aug", 2015, date(2014, 9, 23))
    # Without dateOfPublication, the issue's year and month from its print date.
    record = next(r for r in corpus_records() if r["id"] == "40527231")
    undated = {k: v for k, v in record["journalInfo"].items() if k != "dateOfPublication"}
    assert parse_record({**record, "journalInfo": undated}).pub_date == "2025 Jun"
    arts = real(corpus).values()
    assert sum(bool(a.volume) for a in arts) == 19
    assert sum(bool(a.issue) for a in arts) == 20
    assert sum(bool(a.pages) for a in arts) == 22


def test_mesh_chemicals_and_keywords_are_read(corpus: Path) -> None:
    arts = real(corpus)
    paclitaxel = arts[40511629]
    assert (
        MeshHeading("Neoplasms, Glandular and Epithelial", True, ("drug therapy", "pathology"))
        in paclitaxel.mesh
    )
    assert MeshHeading("Animals", False, ()) in paclitaxel.mesh
    assert paclitaxel.substances == (
        "Antineoplastic Agents, Phytogenic",
        "Sulfides",
        "Reactive Oxygen Species",
        "Hydrogen Sulfide",
        "Paclitaxel",
    )
    assert arts[40468710].keywords[:2] == ("Cancer", "Acceptance And Commitment Therapy")
    assert sum(bool(a.mesh) for a in arts.values()) == 13
    # A qualifier marked major makes its heading major, as PubMed's MajorTopicYN is read.
    trial = written()["pmid:91000001"]
    assert trial.mesh[1] == MeshHeading(
        "Antibodies, Monoclonal, Humanized", True, ("therapeutic use",)
    )
    assert trial.substances == ("Antibodies, Monoclonal, Humanized", "teplizumab")
    assert trial.trial_ids == ("NCT03875729",)  # named in the abstract: trial_numbers.find_ids


def test_comment_corrections_are_read_as_pubmeds_both_ways(corpus: Path) -> None:
    from watcher.sources.pubmed_lists import _CORRECTION_TYPES

    # The same RefTypes the PubMed reader keeps, no more.
    assert set(REF_TYPES.values()) == _CORRECTION_TYPES
    erratum = real(corpus)[39709208]  # "Department of Error." (Lancet)
    assert erratum.corrections == (
        Correction(
            "ErratumFor",
            "39293462",
            "Lancet. 2024 Sep 28;404(10459):1227-1239. doi: 10.1016/S0140-6736(24)01653-2.",
        ),
    )
    assert is_notice(erratum)
    (change,) = notice_changes("pmid:39709208", erratum, {"pmid:39293462": "pmid:39293462"})
    assert (change.item, change.kind, change.notice) == ("pmid:39293462", ERRATUM, "pmid:39709208")
    # The paper's side: each notice it names becomes the change PubMed's would give.
    arts = written()
    paper = arts["pmid:91000001"]
    assert [(c.ref_type, c.pmid) for c in paper.corrections] == [
        ("ErratumIn", "91000003"),
        ("ExpressionOfConcernIn", "91000004"),
        ("RetractionIn", "91000002"),
        ("UpdateIn", "91000005"),
    ]  # the "Comment in" left out, as PubMed's CommentIn is
    assert [(c.kind, c.notice) for c in changes_in("pmid:91000001", paper)] == [
        (ERRATUM, "pmid:91000003"),
        (CONCERN, "pmid:91000004"),
        (RETRACTION, "status:retracted"),
        (UPDATE, "pmid:91000005"),
    ]
    # The notices' side: each links the paper it concerns.
    resolve = {"pmid:91000001": "pmid:91000001"}
    told = [
        (c.item, c.kind, c.notice)
        for n in ("pmid:91000002", "pmid:91000004", "pmid:91000005")
        for c in notice_changes(n, arts[n], resolve)
    ]
    assert told == [
        ("pmid:91000001", RETRACTION, "status:retracted"),
        ("pmid:91000001", CONCERN, "pmid:91000004"),
        ("pmid:91000001", UPDATE, "pmid:91000005"),
    ]
    # "Preprint of" and "Preprint in": a preprint and its journal version know each other.
    assert (arts["ppr:PPR880001"].published_pmid, paper.preprints) == (91000001, ("PPR880001",))
    assert key("ppr", "PPR880001") in identifiers(paper)


def test_a_pmc_only_record_is_known_by_its_pmcid(epmc: FakeEuropePmc) -> None:
    arts = lite()
    pmc = arts["pmcid:PMC12175493"]
    assert (pmc.pmid, pmc.doi, pmc.pmcid) == (None, None, "PMC12175493")
    assert pmc.url == "https://europepmc.org/article/PMC/PMC12175493"
    assert pmc.label == "PMC12175493"
    assert len(arts) == 21  # every lite record read; only one without any id is refused
    with pytest.raises(RecordError, match="no PPR id, PMID, DOI or PMCID"):
        parse_record({"source": "PMC", "id": "not-a-pmcid", "title": "no id"})
    epmc.add_all(results(FIXTURES / "europepmc-pyeuropepmc-lite.json"), TODAY)
    source = EuropePmc(Http(user_agent="t"), epmc.base_url, rate=100)
    (again,) = source.fetch_items([key("pmcid", "pmc12175493")])
    assert again.pmcid == "PMC12175493"
    assert epmc.served[0].params["query"] == "(EXT_ID:PMC12175493 AND SRC:PMC)"


def test_a_journal_record_naming_its_preprint_joins_it_and_tells_its_readers_once(
    tmp_path: Path, fake: FakeNCBI, epmc: FakeEuropePmc, store: Store
) -> None:
    """Europe PMC's "Preprint in" on the journal version: the preprint delivered before and the
    journal version are one work, not mailed again, and the preprint's reader is told once
    that it is published."""
    records = {r["id"]: r for r in results(FIXTURES / "europepmc-written.json")}
    preprint_only = {k: v for k, v in records["PPR880001"].items() if k != "commentCorrectionList"}
    epmc.add(preprint_only, TODAY - timedelta(days=1))
    journals = (
        f'[[subscription]]\nname = "Journals"\neuropepmc = "teplizumab AND SRC:MED"\n'
        f'recipients = ["{RCPT}"]\n'
    )
    config = configure(tmp_path, fake, epmc, EPMC_SUB + journals)
    run(config, store, fake)
    deliver_all(store, RCPT, ["Preprints"])
    later = NOW + timedelta(days=30)
    link = {"id": "PPR880001", "source": "PPR", "type": "Preprint in", "orderIn": 10002}
    journal = {
        **records["91000001"],
        "pubTypeList": {"pubType": ["Randomized Controlled Trial", "Journal Article"]},
        "commentCorrectionList": {"commentCorrection": [link]},
    }
    epmc.add(journal, later.date())
    report = run(config, store, fake, later)
    ppr = key("ppr", "PPR880001")
    assert report.journal_versions == [JournalVersion(ppr, "PPR880001", 91000001, "Diabetes Care")]
    work = store.items.resolve([ppr, "pmid:91000001", "doi:10.5555/t1d.2026.0001"])
    assert len(set(work.values())) == 1
    assert store.outbox.pending_papers(RCPT, ["Preprints", "Journals"]) == {}
    told = store.changes.pending(RCPT)
    assert [(c.change.kind, c.change.notice) for c in told] == [(PUBLISHED, "pmid:91000001")]
    assert [f.what for f in present_followups(told, store.articles.records(work.values()))] == [
        "Published in Diabetes Care"
    ]
    again = run(config, store, fake, later + timedelta(hours=6))
    assert again.journal_versions == [] and again.changes == 0


def test_a_poll_of_the_real_answers_mails_their_sections_issue_and_corrections(
    tmp_path: Path, fake: FakeNCBI, epmc: FakeEuropePmc
) -> None:
    """The fake Europe PMC answers with every real record of the shared corpus; the real
    `watcher poll` and `watcher digest` mail them: the conclusion as the snippet, every section
    in full, the issue in the RIS, the erratum linked to the paper it corrects."""
    today = datetime.now(UTC).date()
    epmc.add_all(corpus_records(), today)
    full = "b@example.org"
    sub = (
        '[[subscription]]\nname = "Cancer"\n'
        'europepmc = "(cancer OR carcinoma OR error) AND SRC:MED"\n'
        f'recipients = ["{RCPT}", "{full}"]\n'
        f'[[recipient]]\naddress = "{full}"\nabstract = "full"\n'
    )
    extra = f'[europepmc]\nbase_url = "{epmc.base_url}"\nrate_limit = 100\n'
    cfg = write_config(tmp_path, fake.base_url, sub, extra=extra)
    code, out, err = cli_run("-c", str(cfg), "poll", cwd=tmp_path)
    assert (code, out.splitlines()[0]) == (0, "Cancer: 25 found, 25 new"), err
    code, _, err = cli_run("-c", str(cfg), "digest", cwd=tmp_path)
    assert code == 0 and "Traceback" not in err, err
    mails = {}
    for path in (tmp_path / "mail" / "new").iterdir():
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        mails[str(message["To"])] = message
    snippet, whole = mails[RCPT], mails[full]

    def text(message: Any) -> str:
        return " ".join(message.get_body(("plain",)).get_content().split())

    def html(message: Any) -> str:
        return str(message.get_body(("html",)).get_content())

    shown = text(snippet)
    assert (
        "Br J Health Psychol · 2025 Sep Conclusions: The findings show that psychological "
        "flexibility predicts key psychosocial outcomes relevant for people in remission from "
        "cancer." in shown
    )
    assert (
        "Department of Error. Lancet · 2025 Dec [Erratum] Erratum for: Lancet. 2024 Sep "
        "28;404(10459):1227-1239. doi: 10.1016/S0140-6736(24)01653-2. "
        "https://pubmed.ncbi.nlm.nih.gov/39293462/" in shown
    )
    html_part = html(snippet)
    assert re.search(
        r'<a href="https://pubmed.ncbi.nlm.nih.gov/39293462/"[^>]*>Erratum for: Lancet\.', html_part
    )
    every = text(whole)
    assert (
        "Objective: This study investigated whether psychological flexibility" in every
        and "Design: This was an online, prospective" in every
        and "significantly (at p < .001) predicted anxiety" in every
        and "with a median overall survival of <1 year. Conclusions: This research confirms"
        in every
    )
    assert "median overall survival of &lt;1 year." in html(whole)
    (attachment,) = snippet.iter_attachments()
    # M2 is Zotero's Extra (RIS.js), which holds "PMID: N" (tests/test_ris.py has the map)
    records = rispy.loads(
        attachment.get_content().decode(),
        mapping={**rispy.TAG_KEY_MAPPING, "M2": "extra"},
        list_tags=[*rispy.LIST_TYPE_TAGS, "M2"],
    )
    entries = {e["extra"][0].removeprefix("PMID: "): e for e in records}
    assert len(entries) == 25
    bjhp = entries["40468710"]
    assert (bjhp["volume"], bjhp["number"], bjhp["start_page"], bjhp["year"]) == (
        "30",
        "3",
        "e12807",
        "2025",
    )
    lancet = entries["39709209"]
    assert (lancet["volume"], lancet["number"], lancet["start_page"], lancet["end_page"]) == (
        "404",
        "10471",
        "2603",
        "2604",
    )
    assert sum(1 for e in entries.values() if e.get("volume")) == 19
