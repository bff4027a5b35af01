"""The starter queries of config.example.toml, run as PubMed would run them (the fake NCBI's term
matcher) against records of the field in PubMed's efetch XML."""

from __future__ import annotations

import re
import tomllib
from datetime import date, timedelta

import pytest
import requests
from lxml import etree

from watcher.config import load_config
from watcher.sources.eutils import EUtils, dated_term

from .conftest import REPO
from .fakes.ncbi import FakeNCBI, FakeRecord
from .fakes.query import compile_term, short_wildcards
from .fakes.records import FIXTURES, from_file, synthetic

FIELD = FIXTURES / "field" / "t1d-antibodies.xml"
EXPECTED = tomllib.loads((FIXTURES / "example-queries.toml").read_text())["query"]
QUERIES = {
    s.name: s.query
    for s in load_config(REPO / "config.example.toml").subscriptions
    if s.query is not None
}
RECORDS = {r.pmid: r for r in from_file(FIELD, edat=date(2026, 11, 2))}
# The previous starter's anti-CD3 query, kept to show what the rewrite fixes.
OLD_ANTI_CD3 = (
    '(teplizumab[tiab] OR otelixizumab[tiab] OR "anti-CD3"[tiab] OR '
    '"Antibodies, Monoclonal, Humanized"[MeSH Terms]) AND '
    '("Diabetes Mellitus, Type 1"[MeSH Terms] OR "type 1 diabetes"[tiab])'
)


def matches(query: str, record: FakeRecord) -> bool:
    return compile_term(query).match(record.indexed())


def test_every_example_query_has_its_expectations() -> None:
    assert {e["subscription"] for e in EXPECTED} == set(QUERIES)
    assert all(set(e["match"]) <= set(RECORDS) for e in EXPECTED)


@pytest.mark.parametrize(
    ("name", "pmid", "expected"),
    [(e["subscription"], pmid, pmid in e["match"]) for e in EXPECTED for pmid in sorted(RECORDS)],
)
def test_example_query_finds_exactly_its_papers(name: str, pmid: int, expected: bool) -> None:
    assert matches(QUERIES[name], RECORDS[pmid]) is expected


def before_indexing(record: FakeRecord) -> FakeRecord:
    """The record as PubMed first holds it: no MeSH headings, substances or publication types
    beyond "Journal Article"."""
    root = etree.fromstring(record.xml)
    for path in (".//MeshHeadingList", ".//ChemicalList", ".//SupplMeshList"):
        for el in root.iterfind(path):
            el.getparent().remove(el)
    for pt in root.iterfind(".//PublicationType"):
        if pt.text != "Journal Article":
            pt.getparent().remove(pt)
    return FakeRecord(record.pmid, etree.tostring(root), record.edat, record.crdt, "", record.title)


@pytest.mark.parametrize(
    ("name", "pmid"), [(e["subscription"], p) for e in EXPECTED for p in e["match"]]
)
def test_example_query_finds_its_papers_before_indexing(name: str, pmid: int) -> None:
    assert matches(QUERIES[name], before_indexing(RECORDS[pmid]))


def test_the_cd3_trial_that_never_says_anti_cd3_is_found() -> None:
    keymeulen = RECORDS[15972865]
    assert "anti-cd3" not in keymeulen.xml.decode().lower()
    assert matches(QUERIES["Anti-CD3 in T1D"], keymeulen)
    assert not matches(OLD_ANTI_CD3, keymeulen)  # the old starter missed it


def test_no_clause_takes_any_humanized_antibody_in_type_1_diabetes() -> None:
    canakinumab = RECORDS[23562090]
    assert matches(OLD_ANTI_CD3, canakinumab)  # the old starter's clause took it
    assert not matches(QUERIES["Anti-CD3 in T1D"], canakinumab)
    assert "Humanized" not in QUERIES["Anti-CD3 in T1D"]


def test_relatives_is_spelled_out_because_relative_star_finds_relatively() -> None:
    prevention = QUERIES["Prevention in at-risk relatives"]
    relatively = RECORDS[98000001]
    assert not matches(prevention, relatively)
    trap = prevention.replace("relatives[tiab]", "relative*[tiab]")
    assert trap != prevention and matches(trap, relatively)


TEPLIZUMAB_IN = "(teplizumab[tw]) AND {block}"


@pytest.mark.parametrize(
    ("wording", "expected"),
    [
        ("type 1 diabetes", True),
        ("type 1 diabetic children", True),
        ("type I diabetes mellitus", True),
        ("T1D", True),
        ("T1DM", True),
        ("IDDM", True),
        ("insulin-dependent diabetes mellitus", True),
        ("insulin dependent diabetes", True),
        ("juvenile diabetes", True),
        ("autoimmune diabetes", True),
        ("latent autoimmune diabetes in adults", True),
        # a known limit, said in the config: the phrase sits inside the type 2 disease's old name
        ("non-insulin-dependent diabetes mellitus", True),
        ("type 2 diabetes", False),
        ("diabetes insipidus", False),
        ("gestational diabetes", False),
        ("type 1 interferon signalling and diabetes", False),
    ],
)
def test_the_shared_type_1_diabetes_block(wording: str, expected: bool) -> None:
    query = QUERIES["Anti-CD3 in T1D"]
    record = synthetic(1, f"Teplizumab in {wording}", edat=date(2026, 11, 2))
    assert matches(query, record) is expected


@pytest.mark.parametrize(
    "name",
    [
        "hOKT3gamma1(Ala-Ala)",
        "hOKT3γ1(Ala-Ala)",
        "MGA031",
        "MGA-031",
        "PRV-031",
        "Tzield",
        "TZIELD",
        "otelixizumab",
        "ChAglyCD3",
        "TRX4",
        "muromonab-CD3 (OKT3)",
    ],
)
def test_anti_cd3_code_and_brand_names_in_keywords_only(name: str) -> None:
    record = synthetic(
        2,
        "C-peptide after a 12-day course in new-onset type 1 diabetes",
        edat=date(2026, 11, 2),
        keywords=(name,),
    )
    assert matches(QUERIES["Anti-CD3 in T1D"], record)


@pytest.mark.parametrize(
    ("name", "drug"),
    [
        ("Anti-CD20 in T1D", "Rituxan"),
        ("Anti-CD20 in T1D", "MabThera"),
        ("IL-2R mAbs in islet transplantation", "Simulect"),
        ("IL-2R mAbs in islet transplantation", "Zenapax"),
    ],
)
def test_brand_names_count(name: str, drug: str) -> None:
    record = synthetic(
        3,
        f"{drug} induction and C-peptide in type 1 diabetes after islet allotransplantation",
        edat=date(2026, 11, 2),
    )
    assert matches(QUERIES[name], record)


@pytest.mark.parametrize(
    "wording",
    [
        "islet transplantation",
        "islet transplants",
        "islet allotransplantation",
        "islet cell transplantation",
        "islet allografts",
        "the Edmonton protocol",
    ],
)
def test_islet_transplantation_wordings(wording: str) -> None:
    record = synthetic(4, f"Basiliximab induction in {wording}", edat=date(2026, 11, 2))
    assert matches(QUERIES["IL-2R mAbs in islet transplantation"], record)


@pytest.mark.parametrize(
    "people",
    [
        "relatives of patients",
        "first-degree relatives",
        "children at risk",
        "at-risk individuals",
        "islet autoantibody-positive adults",
        "people with multiple autoantibodies",
        "stage 2 type 1 diabetes",
        "presymptomatic type 1 diabetes",
    ],
)
def test_people_at_risk_wordings(people: str) -> None:
    record = synthetic(
        5, f"Teplizumab to delay type 1 diabetes in {people}", edat=date(2026, 11, 2)
    )
    assert matches(QUERIES["Prevention in at-risk relatives"], record)


def test_trialnet_as_group_author_counts_for_people_at_risk() -> None:
    record = synthetic(
        6,
        "Teplizumab to delay type 1 diabetes: follow-up",
        edat=date(2026, 11, 2),
        authors=("Sims EK",),
        collective="Type 1 Diabetes TrialNet Study Group",
    )
    assert matches(QUERIES["Prevention in at-risk relatives"], record)


def test_wildcards_have_four_characters_before_them() -> None:
    for name, query in QUERIES.items():
        assert short_wildcards(query) == [], name
        # "first-degree relative*" is safe; relative* on its own finds "relatively"
        assert not re.search(r'(?:^|\(|\b(?:OR|AND|NOT) )"?relative\*', query), name


def test_example_queries_fit_a_get_request() -> None:
    window = [("crdt", date(2026, 10, 1), date(2026, 11, 25))]
    window.append(("mhda", date(2026, 10, 1), date(2026, 11, 25)))
    for name, query in QUERIES.items():
        term = dated_term(query, window)
        url = (
            requests.Request(
                "GET",
                "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/esearch.fcgi",
                params={"db": "pubmed", "term": term, "api_key": "k" * 36, "retmax": 9999},
            )
            .prepare()
            .url
        )
        assert url is not None and len(url) < 2000, (name, len(url or ""))


def test_example_queries_through_the_fake_ncbi(fake: FakeNCBI, client: EUtils) -> None:
    day = date(2026, 11, 2)
    fake.add(from_file(FIELD, edat=day))
    for e in EXPECTED:
        query = QUERIES[e["subscription"]]
        result = client.search(query, day - timedelta(days=3), day, indexed_since=day)
        assert sorted(result.pmids) == sorted(e["match"]), e["subscription"]
    assert fake.count("esearch") == len(EXPECTED)
    assert all(re.search(r'"2026/11/02"\[mhda\]', s.params["term"]) for s in fake.served)
