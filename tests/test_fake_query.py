"""The fake NCBI's term matcher reads PubMed's syntax as PubMed does, on the field's records."""

from __future__ import annotations

from datetime import date

import pytest

from .fakes.query import compile_term
from .fakes.records import FIXTURES, from_file, synthetic

RECORDS = {
    r.pmid: r for r in from_file(FIXTURES / "field" / "t1d-antibodies.xml", edat=date(2026, 11, 2))
}


# Title, abstract or keywords: the NOD-mouse studies (8278351, 98000013) and the nasal foralumab
# trial (98000009) say it too.
ANTI_CD3 = {12037148, 31180194, 98000001, 98000003, 98000009, 8278351, 98000013}


def found(query: str) -> set[int]:
    q = compile_term(query)
    return {pmid for pmid, r in RECORDS.items() if q.match(r.indexed())}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # [tiab] is title, abstract and author keywords; [tw] adds MeSH, substances, types
        ("teplizumab[tiab]", {31180194, 98000001, 98000004}),
        ("teplizumab[tw]", {12037148, 31180194, 98000001, 98000004}),
        ("teplizumab[nm]", {12037148, 31180194, 98000001}),
        ("Tzield[tiab]", {98000004}),  # a keyword only
        # [mh] explodes: "Antibodies, Monoclonal, Humanized" includes Daclizumab
        (
            '"Antibodies, Monoclonal, Humanized"[mh]',
            {31180194, 23562090, 98000001, 98000002, 98000003, 10911004, 17005949},
        ),
        ('"Antibodies, Monoclonal"[mh:noexp]', {12037148, 15972866, 33207093, 8278351}),
        ('"Diabetes Mellitus, Type 1/prevention and control"[mh]', {31180194, 98000005}),
        ('"Female"[majr]', set()),
        ('"Interleukin-1beta"[majr]', {23562090, 98000002}),  # major through its subheading
        ('"Islets of Langerhans Transplantation"[majr]', {10911004, 17005949, 27208344, 98000010}),
        ('"Clinical Trial, Phase III"[pt]', {27208344}),
        # [uid] / [pmid]: the record's PMID (how a client dates a list of PMIDs in one search)
        ("(31180194[uid] OR 12037148[pmid] OR 99999999[uid])", {31180194, 12037148}),
        ('"Clinical Islet Transplantation Consortium"[cn]', {27208344}),
        ('"Type 1 Diabetes TrialNet"[cn]', set()),  # a group name is matched whole
        ('"Type 1 Diabetes TrialNet*"[cn]', {19940299, 30967424, 31180194, 98000005}),
        ('"Pescovitz MD"[au]', {19940299}),
        # phrases are consecutive words; punctuation splits words
        ('"anti-CD3"[tiab]', ANTI_CD3),
        ('"anti CD3"[tiab]', ANTI_CD3),
        ('"hOKT3gamma1(Ala-Ala)"[tiab]', {12037148}),
        ('"monoclonal CD3"[tiab]', set()),
        # wildcards: any ending after at least four characters; shorter stems are literal
        ('"islet transplant*"[tiab]', {10911004, 17005949, 27208344, 98000007}),
        ("relative*[tiab]", {31180194, 98000001, 98000004, 98000005}),
        ("rel*[tiab]", set()),
        # left to right, NOT, parentheses
        ("rituximab[tw] NOT lymphoma[tiab]", {19940299}),
        ("lymphoma[tiab] OR daclizumab[tiab] AND 2006[tiab]", set()),
        ("lymphoma[tiab] OR (daclizumab[tiab] AND 2006[tiab])", {11807147}),
    ],
)
def test_field_tags_explosion_phrases_and_wildcards(query: str, expected: set[int]) -> None:
    assert found(query) == expected


def test_date_ranges_in_the_term() -> None:
    late = synthetic(1, "A paper", edat=date(2026, 9, 1), mhda=date(2026, 11, 10))
    q = compile_term('"2026/11/01"[mhda] : "2026/11/16"[mhda]')
    assert q.match(late.indexed())
    assert not compile_term('"2026/11/01"[crdt] : "2026/11/16"[crdt]').match(late.indexed())
    unindexed = synthetic(2, "A paper", edat=date(2026, 11, 5))  # MeSH date = Entrez date
    assert q.match(unindexed.indexed())


# Records as PubMed first holds them (no MeSH), and the one indexed for mice only.
NOT_YET_INDEXED = {40976248, 98000004, 98000006, 98000007, 98000008, 98000009, 98000011}
NOT_YET_INDEXED |= {98000012, 98000013}
INDEXED_FOR_HUMANS = set(RECORDS) - NOT_YET_INDEXED - {8278351}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # MeSH files Humans under Animals: animals[mh] holds every indexed record here
        ("animals[mh]", INDEXED_FOR_HUMANS | {8278351}),
        ("humans[mh]", INDEXED_FOR_HUMANS),
        ("animals[mh] NOT humans[mh]", {8278351}),  # the NOD-mouse study, indexed
        ("mice[mh]", {8278351}),
        # a NOT group in parentheses is one set; records not yet indexed are in neither
        ('"anti-CD3"[tiab] NOT (animals[mh] NOT humans[mh])', ANTI_CD3 - {8278351}),
        # without the parentheses, left to right: every indexed record goes
        ('"anti-CD3"[tiab] NOT animals[mh] NOT humans[mh]', {98000009, 98000013}),
        # the title only: 98000009 says "NOD mice" in its abstract
        ("mice[ti]", {8278351, 98000013}),
        ("mice[tiab]", {8278351, 98000009, 98000013}),
    ],
)
def test_animals_explode_to_humans_and_mice(query: str, expected: set[int]) -> None:
    assert found(query) == expected


def test_a_nod_mouse_heading_is_under_mice_and_animals() -> None:
    nod = synthetic(1, "A paper", edat=date(2026, 11, 2), mesh=("Mice, Inbred NOD",))
    person = synthetic(2, "A paper", edat=date(2026, 11, 2), mesh=("Humans",))
    for query in ("mice[mh]", "animals[mh]", '"Mice, Inbred Strains"[mh]'):
        assert compile_term(query).match(nod.indexed()), query
    assert not compile_term("mice[mh:noexp]").match(nod.indexed())
    assert compile_term("animals[mh]").match(person.indexed())
    assert not compile_term("animals[mh] NOT humans[mh]").match(person.indexed())
