"""Following papers (issue 27): `cites` and `similar` subscriptions polled against the fake NCBI's
elink and the fake iCite, stored, and shown in digests."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from watcher.config import Config, load_config
from watcher.delivery import compose
from watcher.digest.render import Renderer
from watcher.errors import ConfigError
from watcher.identity import pmid_key as k
from watcher.poll import poll
from watcher.store import Store
from watcher.wiring import sources_for

from .conftest import FIXTURES, make_client, write_config
from .fakes.icite import FakeICite
from .fakes.ncbi import FakeNCBI
from .fakes.records import from_file, synthetic

NOW = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
HEROLD_2002, HEROLD_2019, PESCOVITZ_2009 = 12037148, 31180194, 19940299
RCPT = "a@example.org"


def citing(pmid: int, day: date, title: str = "") -> object:
    return synthetic(
        pmid,
        title or f"Teplizumab and beta-cell function: cohort {pmid}",
        edat=day,
        abstract="Relatives at risk of type 1 diabetes were treated with teplizumab.",
        authors=("Sample AB",),
        journal="Diabetologia",
        iso="Diabetologia",
    )


@pytest.fixture
def world() -> Iterator[tuple[FakeNCBI, FakeICite]]:
    """The landmark trials, two papers citing them this week (one cites both), one from 2024
    (old news), one only iCite knows, and similar articles."""
    ncbi = FakeNCBI()
    ncbi.add(from_file(FIXTURES / "field" / "t1d-antibodies.xml", edat=date(2019, 6, 9)))
    ncbi.add(
        [
            citing(98200001, TODAY - timedelta(days=3)),
            citing(98200002, TODAY - timedelta(days=2), "Anti-CD3 twenty years on"),
            citing(98200003, date(2024, 3, 5)),
            citing(98200004, TODAY - timedelta(days=40)),
        ]
    )
    g = ncbi.graph
    g.cite(98200001, HEROLD_2019)
    g.cite(98200002, [HEROLD_2002, HEROLD_2019])
    g.cite(98200003, HEROLD_2002)
    g.cite(98200004, HEROLD_2002, pmc=False)  # the OCC knows it, PMC does not
    g.similar(HEROLD_2019, 98000001, 41000000)
    g.similar(HEROLD_2019, 98000004, 38000000)
    icite = FakeICite(graph=g)
    ncbi.start()
    icite.start()
    yield ncbi, icite
    icite.stop()
    ncbi.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    yield s
    s.close()


def setup(
    tmp_path: Path, ncbi: FakeNCBI, icite: FakeICite, subs: str, defaults: str = ""
) -> Config:
    extra = f'[icite]\nbase_url = "{icite.base_url}"\nrate_limit = 100\n'
    return load_config(write_config(tmp_path, ncbi.base_url, subs, extra=extra, defaults=defaults))


def follow(name: str = "Landmarks", body: str = f"cites = [{HEROLD_2002}, {HEROLD_2019}]") -> str:
    return f'[[subscription]]\nname = "{name}"\nrecipients = ["{RCPT}"]\n{body}\n'


def run(config: Config, store: Store, ncbi: FakeNCBI, now: datetime = NOW):
    store.polls.sync(config.subscriptions, now - timedelta(hours=1))
    client = make_client(ncbi.base_url, clock=lambda: now)
    return poll(config, store, sources_for(client, config.ncbi, config), now)


def cli(*args: str) -> int:
    """`watcher ARGS…`, with the root logger's handlers put back afterwards (main() sets up
    logging as the command line does, onto this test's stderr)."""
    from watcher.cli import main

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return main(list(args))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def digest_text(config: Config, store: Store, now: datetime = NOW) -> tuple[str, str]:
    (key,) = config.digests
    composed = compose(config, store, Renderer(None), key, RCPT, now)
    assert composed is not None
    return composed.rendered.text, composed.rendered.html


def test_first_poll_announces_recent_citing_papers_and_keeps_the_rest_as_seen(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store: Store
) -> None:
    ncbi, icite = world
    config = setup(tmp_path, ncbi, icite, follow())
    report = run(config, store, ncbi)
    assert not report.failed
    pending = store.outbox.pending_papers(RCPT, ["Landmarks"])
    # This week's two; not the 2024 one, nor the one 40 days old that only iCite knows.
    assert set(pending) == {k(98200001), k(98200002)}
    seen = store.citations.seen("Landmarks")
    assert seen == {
        ("cites", HEROLD_2019, 98200001),
        ("cites", HEROLD_2019, 98200002),
        ("cites", HEROLD_2002, 98200002),
        ("cites", HEROLD_2002, 98200003),
        ("cites", HEROLD_2002, 98200004),
    }
    # Plan B: a by-id elink, the same in the window, one iCite request, one efetch (the two
    # new papers and the followed papers the digest names).
    assert ncbi.count("elink") == 2 and icite.count() == 1 and ncbi.count("efetch") == 1
    # And one esearch dating the one citing paper only iCite knows (40 days old: not news).
    assert ncbi.count("esearch") == 1
    assert next(s.ids for s in ncbi.served if s.endpoint == "elink") == (
        str(HEROLD_2002),
        str(HEROLD_2019),
    )


def test_later_polls_announce_only_new_links_at_one_elink_and_one_icite_request(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store: Store
) -> None:
    ncbi, icite = world
    config = setup(tmp_path, ncbi, icite, follow())
    run(config, store, ncbi)
    later = NOW + timedelta(days=1)
    ncbi.add([citing(98200005, TODAY + timedelta(days=1))])
    ncbi.graph.cite(98200005, HEROLD_2002)
    ncbi.graph.cite(98200006, HEROLD_2019, pmc=False)  # iCite's monthly snapshot brings it
    ncbi.add([citing(98200006, date(2026, 9, 1))])
    ncbi.reset_counts()
    icite_before = icite.count()
    report = run(config, store, ncbi, later)
    assert not report.failed
    assert report.new_matches == 2
    assert ncbi.count("elink") == 1 and icite.count() - icite_before == 1
    assert ncbi.count("efetch") == 1
    again = run(config, store, ncbi, later + timedelta(hours=7))
    assert again.new_matches == 0 and ncbi.count("efetch") == 1


def test_a_paper_citing_two_followed_papers_is_one_entry_naming_both(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store: Store
) -> None:
    ncbi, icite = world
    config = setup(tmp_path, ncbi, icite, follow())
    run(config, store, ncbi)
    text, html = digest_text(config, store)
    assert text.count("Anti-CD3 twenty years on") == 1
    assert "Cites Herold 2002, N Engl J Med and Herold 2019, N Engl J Med" in text
    assert "Cites Herold 2002, N Engl J Med and Herold 2019, N Engl J Med" in html
    assert "Cites Herold 2019, N Engl J Med" in text
    assert "teplizumab" in text  # drug tags and snippets as for any paper


def test_a_paper_found_by_a_search_and_citing_a_followed_paper_is_one_entry_saying_both(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store: Store
) -> None:
    ncbi, icite = world
    subs = f'[[subscription]]\nname = "Teplizumab"\nquery = "teplizumab"\nrecipients = ["{RCPT}"]\n'
    config = setup(tmp_path, ncbi, icite, subs + follow())
    run(config, store, ncbi)
    text, _ = digest_text(config, store)
    assert text.count("Anti-CD3 twenty years on") == 1
    entry = text[text.index("Anti-CD3 twenty years on") :][:900]
    assert "Cites Herold 2002" in entry and "Also in: Landmarks" in entry


def test_query_and_cites_in_one_subscription(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store: Store
) -> None:
    ncbi, icite = world
    body = f'query = "teplizumab"\ncites = [{HEROLD_2019}]'
    config = setup(tmp_path, ncbi, icite, follow("Both", body))
    report = run(config, store, ncbi)
    assert not report.failed
    assert config.subscriptions[0].kind == "follow"
    pending = store.outbox.pending_papers(RCPT, ["Both"])
    assert {k(98200001), k(98200002)} <= set(pending)
    text, _ = digest_text(config, store)
    assert text.count("Anti-CD3 twenty years on") == 1


def test_similar_keeps_the_top_neighbours_and_says_which_paper_they_resemble(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store: Store
) -> None:
    ncbi, icite = world
    ncbi.add([citing(98200007, TODAY - timedelta(days=1), "Teplizumab in stage 2 relatives")])
    ncbi.graph.similar(HEROLD_2019, 98200007, 45000000)
    ncbi.add([citing(98200008, TODAY - timedelta(days=1), "A distant neighbour")])
    ncbi.graph.similar(HEROLD_2019, 98200008, 1000)
    config = setup(tmp_path, ncbi, icite, follow("Like", f"similar = [{HEROLD_2019}]\ntop = 3"))
    run(config, store, ncbi)
    assert set(store.outbox.pending_papers(RCPT, ["Like"])) == {k(98200007)}
    assert icite.count() == 0  # similar needs no citations
    text, _ = digest_text(config, store)
    assert "Similar to Herold 2019, N Engl J Med" in text


def test_min_score_drops_neighbours_scored_below_it(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store: Store
) -> None:
    ncbi, icite = world
    config = setup(
        tmp_path, ncbi, icite, follow("Like", f"similar = [{HEROLD_2019}]\nmin_score = 40000000")
    )
    run(config, store, ncbi)
    seen = store.citations.seen("Like")
    assert seen == {("similar", HEROLD_2019, 98000001)}  # 98000004 scores 38,000,000


def test_lookback_zero_records_everything_and_announces_nothing(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store: Store
) -> None:
    ncbi, icite = world
    config = setup(tmp_path, ncbi, icite, follow(), defaults="lookback_days = 0")
    run(config, store, ncbi)
    assert store.outbox.pending_papers(RCPT, ["Landmarks"]) == {}
    assert len(store.citations.seen("Landmarks")) == 5
    assert ncbi.count("elink") == 1  # no window to look into


def test_a_pmid_icite_does_not_hold_is_reported_not_fatal(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store: Store
) -> None:
    ncbi, icite = world
    config = setup(tmp_path, ncbi, icite, follow(body=f"cites = [{PESCOVITZ_2009}, {HEROLD_2019}]"))
    report = run(config, store, ncbi)
    assert not report.failed
    assert any("iCite holds no record of PMID 19940299" in e for e in report.record_errors)
    assert set(store.outbox.pending_papers(RCPT, ["Landmarks"])) == {k(98200001), k(98200002)}


@pytest.mark.parametrize(
    ("body", "key", "says"),
    [
        ("cites = 31180194", "cites", "must be an array"),
        ('cites = ["31180194"]', "cites[0]", "is not a PMID"),
        ("cites = [0]", "cites[0]", "is not a PMID"),
        ("cites = [true]", "cites[0]", "is not a PMID"),
        ("cites = [31180194, 31180194]", "cites", "lists PMID 31180194 twice"),
        ("similar = [31180194]\ntop = 0", "top", "between 1 and 100"),
        ("similar = [31180194]\nmin_score = -5", "min_score", "between 1 and"),
        ("cites = [31180194]\ntop = 5", "top", "applies to `similar` only"),
        ('cites = [31180194]\nrss = "https://pubmed.ncbi.nlm.nih.gov/rss/x.xml"', None, "alone"),
        ('cites = [31180194]\ntrials = "teplizumab"', None, "not with `rss`"),
    ],
)
def test_a_wrong_follow_key_is_a_config_error_naming_file_and_key(
    tmp_path: Path, body: str, key: str | None, says: str
) -> None:
    path = write_config(tmp_path, "https://eutils.example.org/", follow(body=body))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.path == str(path)
    assert caught.value.key == "subscription[0]" + (f".{key}" if key else "")
    assert says in caught.value.detail
    assert cli("-c", str(path), "check") == 2


def test_too_many_followed_papers_is_a_config_error(tmp_path: Path) -> None:
    pmids = ", ".join(str(p) for p in range(1, 1002))
    path = write_config(tmp_path, "https://eutils.example.org/", follow(body=f"cites = [{pmids}]"))
    with pytest.raises(ConfigError, match="lists 1,001 PMIDs; at most 1000"):
        load_config(path)


def test_many_followed_papers_go_in_one_posted_elink_and_icite_batches_of_200(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store: Store
) -> None:
    ncbi, icite = world
    followed = [HEROLD_2019, *range(97300001, 97300250)]
    for n, p in enumerate(followed[1:]):
        ncbi.graph.cite(98300000 + n, p, pmc=n % 2 == 0)
    config = setup(tmp_path, ncbi, icite, follow(body=f"cites = {followed}"))
    report = run(config, store, ncbi)
    assert not report.failed
    elinks = [s for s in ncbi.served if s.endpoint == "elink"]
    assert len(elinks) == 2 and {s.method for s in elinks} == {"POST"}
    assert len(elinks[0].ids) == 250  # one id= per followed paper: by id
    asked = [len(s.params["pmids"].split(",")) for s in icite.served]
    assert asked == [200, 50]  # iCite's documented limit today, not the older page's 1,000
    assert len(store.citations.seen("Landmarks")) == 249 + 2


@pytest.mark.parametrize("mode", ["empty", "zero", "omit"])
def test_a_followed_pmid_elink_does_not_know_has_no_links(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store: Store, mode: str
) -> None:
    ncbi, icite = world
    ncbi.elink_unknown = mode
    config = setup(tmp_path, ncbi, icite, follow(body=f"cites = [99999999, {HEROLD_2019}]"))
    report = run(config, store, ncbi)
    assert not report.failed
    assert {f for _, f, _ in store.citations.seen("Landmarks")} == {HEROLD_2019}


def test_an_error_in_a_linkset_fails_the_poll_and_keeps_nothing(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store: Store
) -> None:
    ncbi, icite = world
    ncbi.elink_unknown = "error"
    config = setup(tmp_path, ncbi, icite, follow(body=f"cites = [99999999, {HEROLD_2019}]"))
    report = run(config, store, ncbi)
    assert [o.error for o in report.failed] == ["elink refused an id: Invalid uid 99999999"]
    assert store.citations.seen("Landmarks") == set()
    assert store.outbox.pending_papers(RCPT, ["Landmarks"]) == {}


def test_each_pmid_is_fetched_once_however_many_subscriptions_follow_it(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store: Store
) -> None:
    ncbi, icite = world
    subs = follow("One") + follow("Two", f"cites = [{HEROLD_2019}]\nsimilar = [{HEROLD_2019}]")
    config = setup(tmp_path, ncbi, icite, subs)
    run(config, store, ncbi)
    assert ncbi.count("efetch") == 1
    fetched = next(s for s in ncbi.served if s.endpoint == "efetch")
    ids = fetched.params["id"].split(",")
    assert len(ids) == len(set(ids))
    assert {"98200001", "98200002", str(HEROLD_2019)} <= set(ids)


def test_check_online_shows_per_followed_paper_how_many_cite_it_and_resemble_it(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], capsys: pytest.CaptureFixture[str]
) -> None:
    ncbi, icite = world
    body = f"cites = [{HEROLD_2002}, {HEROLD_2019}]\nsimilar = [{HEROLD_2019}]"
    config = setup(tmp_path, ncbi, icite, follow(body=body))
    capsys.readouterr()
    assert cli("-c", str(config.path), "check", "--online") == 0
    out = capsys.readouterr().out
    assert "Landmarks: follows 2 papers" in out
    # 98200002 and 98200003 in PMC and the OCC, 98200004 in the OCC only: merged, 3.
    assert f"PMID {HEROLD_2002}: 3 citing\n" in out
    assert f"PMID {HEROLD_2019}: 2 citing, 2 similar (top 20)\n" in out
    assert ncbi.count("elink") == 1 and icite.count() == 1  # one poll's worth, no window


def test_the_starter_config_follows_the_landmark_trials_by_citation(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store: Store
) -> None:
    """config.example.toml's `cites` names the five landmarks, each a record of the fixtures
    (written from the published papers: tests/fixtures/field/PROVENANCE.md), and a poll of them
    names each paper a new paper cites by its first author, year and journal."""
    from .conftest import REPO

    starter = load_config(REPO / "config.example.toml")
    (follows,) = [s for s in starter.subscriptions if s.follows]
    landmarks = {
        12037148: "Herold 2002",
        15972866: "Keymeulen 2005",
        19940299: "Pescovitz 2009",
        31180194: "Herold 2019",
        37861217: "Ramos 2023",
    }
    assert follows.cites == tuple(landmarks)
    ncbi, icite = world
    ncbi.add(from_file(FIXTURES / "field" / "protect-2023.xml", edat=date(2023, 10, 20)))
    for n, pmid in enumerate(landmarks):
        ncbi.add([citing(98400000 + n, TODAY - timedelta(days=1), f"Cohort {n} after anti-CD3")])
        ncbi.graph.cite(98400000 + n, pmid)
    body = f"cites = {list(follows.cites)}"
    config = setup(tmp_path, ncbi, icite, follow(follows.name, body))
    assert not run(config, store, ncbi).failed
    text, _ = digest_text(config, store)
    for name in landmarks.values():
        assert f"Cites {name}, N Engl J Med" in text


def test_a_paper_followed_later_starts_from_what_exists(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store: Store
) -> None:
    """Adding a PMID to `cites` after the first poll does not announce every paper that ever
    cited it: its links are kept as seen, and only later ones are news."""
    ncbi, icite = world
    config = setup(tmp_path, ncbi, icite, follow(body=f"cites = [{HEROLD_2019}]"))
    run(config, store, ncbi)
    config = setup(tmp_path, ncbi, icite, follow())  # Herold 2002 added
    later = NOW + timedelta(days=1)
    report = run(config, store, ncbi, later)
    assert not report.failed and report.new_matches == 0
    assert ("cites", HEROLD_2002, 98200003) in store.citations.seen("Landmarks")
    ncbi.add([citing(98200009, TODAY + timedelta(days=2))])
    ncbi.graph.cite(98200009, HEROLD_2002)
    report = run(config, store, ncbi, later + timedelta(days=1))
    assert report.new_matches == 1


def test_the_first_citing_paper_of_an_uncited_paper_is_news(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store: Store
) -> None:
    ncbi, icite = world
    config = setup(tmp_path, ncbi, icite, follow(body=f"cites = [{PESCOVITZ_2009}]"))
    assert run(config, store, ncbi).new_matches == 0
    ncbi.add([citing(98200010, TODAY + timedelta(days=1))])
    ncbi.graph.cite(98200010, PESCOVITZ_2009)
    report = run(config, store, ncbi, NOW + timedelta(days=1))
    assert report.new_matches == 1
    assert set(store.outbox.pending_papers(RCPT, ["Landmarks"])) == {k(98200010)}


def test_icite_down_fails_its_subscription_alone_not_the_pubmed_searches(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store: Store
) -> None:
    ncbi, icite = world
    icite.fault("reset", times=1000)
    subs = f'[[subscription]]\nname = "Search"\nquery = "teplizumab"\nrecipients = ["{RCPT}"]\n'
    config = setup(tmp_path, ncbi, icite, follow() + subs)
    report = run(config, store, ncbi)
    assert [o.name for o in report.failed] == ["Landmarks"]
    assert "iCite pubs: gave up after 5 tries" in (report.failed[0].error or "")
    assert store.outbox.pending_papers(RCPT, ["Search"])
    assert store.citations.seen("Landmarks") == set()


def test_a_recent_paper_only_icite_knows_is_announced_on_the_first_poll(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store: Store
) -> None:
    ncbi, icite = world
    ncbi.add([citing(98200011, TODAY - timedelta(days=10), "Known to Crossref alone")])
    ncbi.graph.cite(98200011, HEROLD_2002, pmc=False)
    config = setup(tmp_path, ncbi, icite, follow())
    run(config, store, ncbi)
    assert set(store.outbox.pending_papers(RCPT, ["Landmarks"])) == {
        k(98200001),
        k(98200002),
        k(98200011),
    }
    (search,) = [s for s in ncbi.served if s.endpoint == "esearch"]
    assert "98200004[uid]" in search.params["term"] and "98200011[uid]" in search.params["term"]


def test_backfill_skips_a_subscription_following_papers_and_says_why(
    tmp_path: Path,
    world: tuple[FakeNCBI, FakeICite],
    store: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from watcher.poll import backfill

    ncbi, icite = world
    config = setup(tmp_path, ncbi, icite, follow())
    client = make_client(ncbi.base_url, clock=lambda: NOW)
    sources = sources_for(client, config.ncbi, config)
    with caplog.at_level(logging.WARNING):
        reports = backfill(
            config, store, sources, NOW, date(2026, 1, 1), subscriptions=config.subscriptions
        )
    assert reports == []
    assert "Landmarks: a subscription following papers has no history to backfill" in caplog.text
    assert ncbi.count() == 0


def test_following_on_either_store(
    tmp_path: Path, world: tuple[FakeNCBI, FakeICite], store_url: str
) -> None:
    """The first poll, a later one and the digest's lines on SQLite and on PostgreSQL."""
    ncbi, icite = world
    either = Store.open(store_url)
    try:
        config = setup(tmp_path, ncbi, icite, follow())
        assert run(config, either, ncbi).new_matches == 2
        ncbi.add([citing(98200012, TODAY + timedelta(days=1))])
        ncbi.graph.cite(98200012, [HEROLD_2002, HEROLD_2019])
        assert run(config, either, ncbi, NOW + timedelta(days=1)).new_matches == 1
        text, _ = digest_text(config, either, NOW + timedelta(days=1))
        assert text.count("Cites Herold 2002, N Engl J Med and Herold 2019, N Engl J Med") == 2
    finally:
        either.close()


def test_an_author_and_followed_papers_in_one_subscription(tmp_path: Path) -> None:
    """`author` becomes the subscription's query (issue 27 item 3), which goes with `cites`."""
    body = f'author = "Herold KC"\ncites = [{HEROLD_2019}]'
    path = write_config(tmp_path, "https://eutils.example.org/", follow(body=body))
    (sub,) = load_config(path).subscriptions
    assert sub.kind == "follow" and sub.cites == (HEROLD_2019,)
    assert sub.query is not None and "Herold KC" in sub.query
    bad = write_config(tmp_path, "https://eutils.example.org/", follow(body=body + '\nrss = "x"'))
    with pytest.raises(ConfigError, match="not with `rss`"):
        load_config(bad)
