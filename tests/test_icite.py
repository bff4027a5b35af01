"""The iCite client (watcher/sources/icite.py) against the fake iCite (tests/fakes/icite.py),
which answers as iCite's documentation and its clients' notes say (docs/citations.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from watcher.errors import SourceError
from watcher.sources.http import Http
from watcher.sources.icite import MAX_PMIDS, ICite

from .fakes.citations import CitationGraph
from .fakes.icite import FakeICite


@pytest.fixture
def icite() -> Iterator[FakeICite]:
    graph = CitationGraph()
    graph.cite(11, [1, 2])
    graph.cite(12, 1)
    graph.cite(13, 2, pmc=True, occ=False)  # PMC's link, not the OCC's
    fake = FakeICite(graph=graph, null_lists=True)
    fake.hold(3)  # a paper nobody cites yet: cited_by is null
    fake.start()
    yield fake
    fake.stop()


def client(fake: FakeICite, retries: int = 2) -> ICite:
    http = Http(user_agent="tests", retries=retries, backoff=0.001, sleep=lambda s: None)
    return ICite(http, fake.base_url, rate=100)


def test_citing_papers_per_paper_and_the_papers_it_does_not_hold(icite: FakeICite) -> None:
    got = client(icite).cited_by([1, 2, 3, 4])
    assert got.citing == {1: {11, 12}, 2: {11}, 3: set()}
    assert got.unknown == [4]  # absent from `data`: not "uncited"
    assert icite.served[0].params["fl"] == "pmid,cited_by,cited_by_clin"


def test_never_more_than_200_pmids_a_request(icite: FakeICite) -> None:
    icite.over_limit = "error"
    pmids = list(range(100, 100 + 2 * MAX_PMIDS + 1))
    got = client(icite).cited_by(pmids)
    assert [len(s.params["pmids"].split(",")) for s in icite.served] == [200, 200, 1]
    assert len(got.unknown) == len(pmids)


def test_429_is_waited_out(icite: FakeICite) -> None:
    icite.fault("status:429", times=2, retry_after="0")
    assert client(icite).cited_by([1]).citing == {1: {11, 12}}
    assert len(icite.served) == 3


def test_a_body_that_is_not_json_past_the_retries_is_an_error(icite: FakeICite) -> None:
    icite.fault("notjson", times=10)
    with pytest.raises(SourceError, match="iCite pubs: gave up after 3 tries"):
        client(icite).cited_by([1])
