"""The fake iCite answers as iCite's documentation says it does (no real answer is saved anywhere
public: tests/fixtures/icite/PROVENANCE.md), from the same citation graph as the fake NCBI's
elink, each source knowing its own part of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import requests

from .fakes.citations import CitationGraph
from .fakes.icite import DOCUMENTED_MAX_PMIDS, FakeICite
from .fakes.ncbi import FakeNCBI
from .fakes.records import FIXTURES, from_file, synthetic

HEROLD_2002, HEROLD_2019 = 12037148, 31180194
EXAMPLES = FIXTURES / "icite"
# pmidcite's CHANGELOG, 0.1.2 (2025-07-24): "These fields have True/False values rather than
# 'Yes' and 'No'"; and authors is a list of {firstName, lastName, fullName}, no longer a string.
BOOLEANS_SINCE_2025 = {"is_research_article", "is_clinical", "provisional"}


@pytest.fixture
def graph() -> CitationGraph:
    g = CitationGraph()
    g.cite(98100001, HEROLD_2019)  # both sources know it
    g.cite(98100003, [HEROLD_2002, HEROLD_2019])
    g.cite(98100005, HEROLD_2019, occ=False)  # in a PMC full text, not yet in the monthly OCC
    g.cite(98100006, HEROLD_2019, pmc=False)  # a Crossref reference list, no PMC full text
    return g


@pytest.fixture
def icite(graph: CitationGraph) -> Iterator[FakeICite]:
    fake = FakeICite(graph=graph)
    fake.describe(from_file(FIXTURES / "field" / "t1d-antibodies.xml", edat=date(2019, 6, 9)))
    fake.describe(
        [
            synthetic(p, "Teplizumab after screening: a cohort", edat=date(2026, 11, 10))
            for p in (98100001, 98100003, 98100006)
        ]
    )
    fake.start()
    yield fake
    fake.stop()


def pubs(icite: FakeICite, pmids: list[int] | str, **params: Any) -> requests.Response:
    joined = pmids if isinstance(pmids, str) else ",".join(str(p) for p in pmids)
    return requests.get(icite.base_url + "/pubs", params={"pmids": joined, **params}, timeout=10)


def by_pmid(answer: requests.Response) -> dict[int, dict[str, Any]]:
    return {d["pmid"]: d for d in answer.json()["data"]}


def test_an_answer_has_meta_links_and_data(icite: FakeICite) -> None:
    answer = pubs(icite, [HEROLD_2019])
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    doc = answer.json()
    assert list(doc) == ["meta", "links", "data"]
    assert doc["meta"] == {"pmids": str(HEROLD_2019)}
    assert doc["links"]["self"].endswith(f"/api/pubs?pmids={HEROLD_2019}")


def test_a_record_has_the_documented_fields_and_types(icite: FakeICite) -> None:
    new = json.loads((EXAMPLES / "support-page-2025-example.json").read_text())
    old = json.loads((EXAMPLES / "api-page-2022-example.json").read_text())
    (record,) = pubs(icite, [HEROLD_2019]).json()["data"]
    assert set(record) == set(new) | set(old)
    for key, example in {**old, **new}.items():  # the 2025 format wins where they differ
        value = record[key]
        if example is None or value is None:
            continue
        if isinstance(example, bool) or key in BOOLEANS_SINCE_2025:
            assert isinstance(value, bool), key
        elif isinstance(example, int | float):
            assert isinstance(value, int | float) and not isinstance(value, bool), key
        else:
            assert type(value) is type(example), key
    assert record["_id"] == str(HEROLD_2019) and record["pmid"] == HEROLD_2019
    assert record["authors"][0] == {
        "lastName": "Herold",
        "fullName": "Herold, KC",
        "firstName": "KC",
    }
    assert record["year"] == 2019 and record["journal"] == "N Engl J Med"


def test_cited_by_and_references_are_the_occs_links(icite: FakeICite) -> None:
    records = by_pmid(pubs(icite, [HEROLD_2002, HEROLD_2019, 98100003]))
    assert sorted(records[HEROLD_2019]["cited_by"]) == [98100001, 98100003, 98100006]
    assert records[HEROLD_2019]["citation_count"] == 3
    assert records[HEROLD_2002]["cited_by"] == [98100003]
    assert sorted(records[98100003]["references"]) == [HEROLD_2002, HEROLD_2019]
    assert all(isinstance(p, int) for p in records[HEROLD_2019]["cited_by"])
    by_year = records[HEROLD_2019]["citedByPmidsByYear"]
    assert sorted(by_year, key=lambda d: next(iter(d))) == [
        {"98100001": 2026},
        {"98100003": 2026},
        {"98100006": 2026},
    ]


def test_each_source_misses_what_the_other_has(graph: CitationGraph, icite: FakeICite) -> None:
    ncbi = FakeNCBI(graph=graph).start()
    try:
        answer = requests.get(
            ncbi.base_url + "elink.fcgi",
            params={
                "dbfrom": "pubmed",
                "db": "pubmed",
                "id": str(HEROLD_2019),
                "linkname": "pubmed_pubmed_citedin",
                "retmode": "json",
            },
            timeout=10,
        ).json()
    finally:
        ncbi.stop()
    from_pmc = {int(p) for p in answer["linksets"][0]["linksetdbs"][0]["links"]}
    from_occ = set(by_pmid(pubs(icite, [HEROLD_2019]))[HEROLD_2019]["cited_by"])
    assert from_pmc == {98100001, 98100003, 98100005}
    assert from_occ == {98100001, 98100003, 98100006}
    assert from_pmc | from_occ == {98100001, 98100003, 98100005, 98100006}


def test_a_pmid_it_does_not_hold_is_absent(icite: FakeICite) -> None:
    # 98100005 is in PubMed and cited in PMC, but not yet in the monthly snapshot.
    answer = pubs(icite, [HEROLD_2019, 98100005, 99999999])
    assert answer.status_code == 200
    assert set(by_pmid(answer)) == {HEROLD_2019}
    alone = requests.get(f"{icite.base_url}/pubs/99999999", timeout=10)
    assert alone.status_code == 200 and alone.json() == {"data": []}
    icite.hold(98100005)  # the next month's snapshot holds it, uncited
    assert by_pmid(pubs(icite, [98100005]))[98100005]["cited_by"] == []


def test_the_single_pmid_form_answers_a_list(icite: FakeICite) -> None:
    doc = requests.get(f"{icite.base_url}/pubs/{HEROLD_2002}", timeout=10).json()
    assert list(doc) == ["data"] and [d["pmid"] for d in doc["data"]] == [HEROLD_2002]


def test_data_does_not_come_in_the_order_asked(icite: FakeICite) -> None:
    asked = [98100001, 98100003, 98100006, HEROLD_2002, HEROLD_2019]
    got = [d["pmid"] for d in pubs(icite, asked).json()["data"]]
    assert sorted(got) == sorted(asked)
    assert got not in (asked, sorted(asked), sorted(asked, reverse=True))


def test_fl_keeps_the_named_fields(icite: FakeICite) -> None:
    answer = pubs(icite, [HEROLD_2019], fl="pmid,cited_by,no_such_field")
    doc = answer.json()
    assert doc["meta"] == {"pmids": str(HEROLD_2019), "fl": "pmid,cited_by,no_such_field"}
    (record,) = doc["data"]
    assert list(record) == ["pmid", "cited_by"]


def test_at_most_the_documented_number_of_pmids(icite: FakeICite) -> None:
    assert DOCUMENTED_MAX_PMIDS == 200  # the support page's number today (1000 before)
    many = [HEROLD_2019] + [40000000 + i for i in range(DOCUMENTED_MAX_PMIDS - 1)]
    assert pubs(icite, many).status_code == 200
    over = pubs(icite, [*many, HEROLD_2002])
    assert over.status_code == 400 and "200" in over.json()["error"]
    icite.over_limit = "truncate"  # what iCite does past it is documented nowhere
    cut = pubs(icite, [*many, HEROLD_2002])
    assert cut.status_code == 200 and set(by_pmid(cut)) == {HEROLD_2019}


def test_empty_lists_can_be_null(icite: FakeICite) -> None:
    icite.null_lists = True
    record = by_pmid(pubs(icite, [HEROLD_2002]))[HEROLD_2002]
    assert record["cited_by"] == [98100003]
    assert record["references"] is None and record["cited_by_clin"] is None


def test_forms_it_does_not_imitate_are_refused_plainly(icite: FakeICite) -> None:
    for params in (
        {"limit": "10"},
        {"pmids": "1", "format": "csv"},
        {"pmids": "1", "legacy": "false"},
    ):
        answer = requests.get(icite.base_url + "/pubs", params=params, timeout=10)
        assert answer.status_code == 400 and "imitate" in answer.json()
    assert requests.get(icite.root + "/api/other", timeout=10).status_code == 404


def test_faults_on_demand(icite: FakeICite) -> None:
    icite.fault("status:429", retry_after="3")
    limited = pubs(icite, [HEROLD_2019])
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    icite.fault("status:503")
    assert pubs(icite, [HEROLD_2019]).status_code == 503
    icite.fault("truncated")
    with pytest.raises(json.JSONDecodeError):
        json.loads(pubs(icite, [HEROLD_2019]).content)
    icite.fault("notjson")
    assert pubs(icite, [HEROLD_2019]).text.startswith("<html>")
    icite.fault("reset")
    with pytest.raises(requests.ConnectionError):
        pubs(icite, [HEROLD_2019])
    assert pubs(icite, [HEROLD_2019]).status_code == 200  # the faults are spent
    assert icite.count() == 6
    icite.fault("slow", delay=1.0)
    with pytest.raises(requests.Timeout):
        requests.get(icite.base_url + "/pubs", params={"pmids": "1"}, timeout=0.2)


def test_a_rate_limit_when_a_test_sets_one(icite: FakeICite) -> None:
    icite.rate_limit = 2
    statuses = [pubs(icite, [HEROLD_2019]).status_code for _ in range(3)]
    assert statuses == [200, 200, 429] and icite.too_many == 1
