"""The starter queries of config.example.toml, run as PubMed would run them (the fake NCBI's term
matcher) against records of the field in PubMed's efetch XML."""

from __future__ import annotations

import re
import tempfile
import tomllib
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from lxml import etree

from watcher.cli import main
from watcher.config import Config, load_config
from watcher.sources.eutils import EUtils
from watcher.toml_reading import MAX_QUERY

from .conftest import REPO
from .fakes.ncbi import FakeNCBI, FakeRecord
from .fakes.query import compile_term, short_wildcards
from .fakes.records import FIXTURES, from_file, synthetic

EXAMPLE = REPO / "config.example.toml"
FIELD = FIXTURES / "field" / "t1d-antibodies.xml"
EXPECTED = tomllib.loads((FIXTURES / "example-queries.toml").read_text())["query"]
PRECLINICAL = "Preclinical: antibodies in NOD mice"
CLINICAL = [
    "Anti-CD3 in T1D",
    "Anti-CD20 in T1D",
    "IL-2R mAbs in islet transplantation",
    "Prevention in at-risk relatives",
    "Other antibodies and biologics in T1D",
]


def commented_subscriptions(text: str) -> str:
    """The subscriptions the example ships commented out, as a reader turns them on: each block
    from "# [[subscription]]" to the first line that is not a comment, its "# " taken off."""
    blocks = re.findall(r"^# \[\[subscription\]\]\n(?:#.*\n)*", text, re.M)
    return "\n".join("\n".join(line[2:] for line in b.splitlines()) for b in blocks)


def example_with_commented_subscriptions(folder: Path) -> Path:
    path = folder / "watcher.toml"
    text = EXAMPLE.read_text()
    path.write_text(f"{text}\n{commented_subscriptions(text)}\n")
    return path


def load_example() -> Config:
    with tempfile.TemporaryDirectory() as folder:
        return load_config(example_with_commented_subscriptions(Path(folder)))


QUERIES = {s.name: s.query for s in load_example().subscriptions if s.query is not None}
RECORDS = {r.pmid: r for r in from_file(FIELD, edat=date(2026, 11, 2))}
# The starter's anti-CD3 query before issue 12, kept to show what the rewrite fixes.
OLD_ANTI_CD3 = (
    '(teplizumab[tiab] OR otelixizumab[tiab] OR "anti-CD3"[tiab] OR '
    '"Antibodies, Monoclonal, Humanized"[MeSH Terms]) AND '
    '("Diabetes Mellitus, Type 1"[MeSH Terms] OR "type 1 diabetes"[tiab])'
)


# The prevention query's drug group before issue 24: a monoclonal antibody, or one by name.
OLD_PREVENTION_DRUGS = (
    '("Antibodies, Monoclonal"[mh] OR "monoclonal antibod*"[tiab] OR teplizumab[tw] OR '
    "hOKT3*[tw] OR Tzield[tw] OR otelixizumab[tw] OR ChAglyCD3[tw] OR rituximab[tw] OR "
    '"anti-CD3"[tiab] OR "anti-CD20"[tiab])'
)
# The islet query's islet group before issue 24.
OLD_ISLET = (
    '("Islets of Langerhans Transplantation"[mh] OR "islet transplant*"[tiab] OR '
    '"islet allotransplant*"[tiab] OR "islet cell transplant*"[tiab] OR '
    '"islet allograft*"[tiab] OR "Edmonton protocol"[tiab])'
)
DAY = date(2026, 11, 2)


def matches(query: str, record: FakeRecord) -> bool:
    return compile_term(query).match(record.indexed())


def without_animal_limits(query: str) -> str:
    """The query as it was before its two NOT clauses against animal studies."""
    head, sep, _ = query.partition(" NOT (animals[mh] NOT humans[mh])")
    assert sep, "no animal limit in this query"
    return head


def test_every_example_query_has_its_expectations() -> None:
    assert {e["subscription"] for e in EXPECTED} == set(QUERIES)
    assert all(set(e["match"]) <= set(RECORDS) for e in EXPECTED)
    assert PRECLINICAL in QUERIES and PRECLINICAL not in {
        s.name for s in load_config(EXAMPLE).subscriptions
    }  # shipped commented out


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


@pytest.mark.parametrize(
    ("name", "pmid"),
    [(e["subscription"], p) for e in EXPECTED for p in sorted(RECORDS) if p not in e["match"]],
)
def test_example_query_leaves_out_before_indexing_what_it_leaves_out_after(
    name: str, pmid: int
) -> None:
    assert not matches(QUERIES[name], before_indexing(RECORDS[pmid]))


def test_the_cd3_trial_that_never_says_anti_cd3_is_found() -> None:
    keymeulen = RECORDS[15972866]
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
        ("LADA", True),
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
        "foralumab",
        "NI-0401",
        "TZLS-401",
        "visilizumab",
        "HuM291",
        "Nuvion",
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
        ("Anti-CD20 in T1D", "Truxima"),
        ("Anti-CD20 in T1D", "Ruxience"),
        ("Anti-CD20 in T1D", "Riabni"),
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
        "islet-after-kidney transplantation",
        "islet after kidney transplantation",
        "simultaneous islet-kidney transplantation",
        "repeated islet infusions",
        "beta-cell replacement",
        "\u03b2-cell replacement",
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
        "stage 1 type 1 diabetes",
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


def test_abatacept_in_relatives_is_found_though_it_is_no_antibody() -> None:
    tn18 = RECORDS[98000005]
    assert not matches(OLD_PREVENTION_DRUGS, tn18)  # the old query required an antibody
    assert not matches(OLD_PREVENTION_DRUGS, RECORDS[38117469])  # ATG is polyclonal
    for record in (tn18, before_indexing(tn18)):
        assert matches(QUERIES["Prevention in at-risk relatives"], record)
        assert matches(QUERIES["Other antibodies and biologics in T1D"], record)


def test_islet_after_kidney_is_found_by_the_new_wordings_only() -> None:
    iak = RECORDS[98000010]
    names = "basiliximab[tw] OR Simulect[tw] OR daclizumab[tw] OR Zenapax[tw]"
    assert not matches(names, iak)  # the class, never a drug, as registry papers write it
    assert not matches(OLD_ISLET, before_indexing(iak))
    assert matches(QUERIES["IL-2R mAbs in islet transplantation"], before_indexing(iak))


def test_the_nod_mouse_study_is_kept_out_of_the_clinical_subscriptions() -> None:
    nod = RECORDS[8278351]
    anti_cd3 = QUERIES["Anti-CD3 in T1D"]
    for record in (nod, before_indexing(nod)):
        assert matches(without_animal_limits(anti_cd3), record)  # what the clinicians used to get
        assert not any(matches(QUERIES[name], record) for name in CLINICAL)
        assert matches(QUERIES[PRECLINICAL], record)


def test_a_mouse_study_whose_abstract_ends_on_patients_is_still_a_mouse_study() -> None:
    mice = RECORDS[98000013]
    assert "in patients" in mice.xml.decode() and not mice.indexed().mesh
    assert matches(without_animal_limits(QUERIES["Anti-CD3 in T1D"]), mice)
    assert not matches(QUERIES["Anti-CD3 in T1D"], mice)
    assert matches(QUERIES[PRECLINICAL], mice)


def test_a_trial_that_mentions_nod_mice_in_its_abstract_is_kept() -> None:
    foralumab = RECORDS[98000009]
    assert "NOD mice" in foralumab.xml.decode() and not foralumab.indexed().mesh
    assert matches(QUERIES["Anti-CD3 in T1D"], foralumab)
    assert not matches(QUERIES[PRECLINICAL], foralumab)


@pytest.mark.parametrize(
    ("title", "mesh"),
    [
        # the title names the mice and the patients: a translational paper
        ("Teplizumab in NOD mice and in patients with recent-onset type 1 diabetes", ()),
        # indexed for both: a study of mice and people stays, however its title reads
        ("Teplizumab-treated mice and the T cells of type 1 diabetes", ("Humans", "Mice")),
        # "murine" names the antibody's origin, not the animal studied
        ("A murine anti-CD3 antibody in new-onset type 1 diabetes", ()),
    ],
)
def test_human_papers_that_name_animals_are_kept(title: str, mesh: tuple[str, ...]) -> None:
    record = synthetic(7, title, edat=DAY, mesh=mesh)
    assert matches(QUERIES["Anti-CD3 in T1D"], record)


@pytest.mark.parametrize(
    "title",
    [
        "Teplizumab delays type 1 diabetes in non-obese diabetic mice",
        "Anti-CD3 F(ab')2 in NOD mouse islet grafts: type 1 diabetes",
        "Anti-CD3 and islet survival in type 1 diabetic rats",
        "Anti-CD3 in cynomolgus monkeys: a model of type 1 diabetes",
    ],
)
def test_a_title_that_names_the_animal_keeps_an_unindexed_study_out(title: str) -> None:
    record = synthetic(8, title, edat=DAY)
    assert not matches(QUERIES["Anti-CD3 in T1D"], record)
    assert matches(without_animal_limits(QUERIES["Anti-CD3 in T1D"]), record)


@pytest.mark.parametrize(
    "name",
    [
        "abatacept",
        "Orencia",
        "BMS-188667",
        "CTLA4-Ig",
        "CTLA-4-Ig",
        "CTLA4Ig",
        "alefacept",
        "Amevive",
        "LFA3TIP",
        "anti-thymocyte globulin",
        "antithymocyte globulins",
        "Thymoglobulin",
        "Thymoglobuline",
        "ATGAM",
        "Grafalon",
        "low-dose ATG",
        "golimumab",
        "Simponi",
        "CNTO 148",
        "ustekinumab",
        "Stelara",
        "CNTO 1275",
        "canakinumab",
        "Ilaris",
        "ACZ885",
        "frexalimab",
        "SAR441344",
        "tegoprubart",
        "AT-1501",
        "siplizumab",
        "MEDI-507",
        "TCD601",
        "anti-CD40L",
        "anti-CD154",
        "anti-CD2",
    ],
)
def test_other_biologics_by_any_of_their_names_in_keywords_only(name: str) -> None:
    record = synthetic(
        9,
        "C-peptide a year after treatment in new-onset type 1 diabetes",
        edat=DAY,
        keywords=(name,),
    )
    assert matches(QUERIES["Other antibodies and biologics in T1D"], record)


@pytest.mark.parametrize(
    "title",
    [
        "ATG5 and ATG7 autophagy genes in beta cells in type 1 diabetes",
        "An ATG start codon variant of the insulin gene in type 1 diabetes",
    ],
)
def test_atg_alone_is_not_anti_thymocyte_globulin(title: str) -> None:
    record = synthetic(10, title, edat=DAY)
    assert not matches(QUERIES["Other antibodies and biologics in T1D"], record)


@pytest.mark.parametrize(
    "wording",
    [
        "an IL-2 receptor antagonist",
        "interleukin-2 receptor antagonists",
        "IL-2R antagonist",
    ],
)
def test_il2_receptor_antagonist_wordings(wording: str) -> None:
    record = synthetic(11, f"Islet transplantation under {wording} induction", edat=DAY)
    assert matches(QUERIES["IL-2R mAbs in islet transplantation"], record)


def test_the_commented_subscriptions_pass_watcher_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = example_with_commented_subscriptions(tmp_path)
    assert main(["-c", str(path), "check"]) == 0
    assert PRECLINICAL in capsys.readouterr().out


def test_wildcards_have_four_characters_before_them() -> None:
    for name, query in QUERIES.items():
        assert short_wildcards(query) == [], name
        # "first-degree relative*" is safe; relative* on its own finds "relatively"
        assert not re.search(r'(?:^|\(|\b(?:OR|AND|NOT) )"?relative\*', query), name


def test_example_queries_through_the_fake_ncbi(fake: FakeNCBI, client: EUtils) -> None:
    fake.add(from_file(FIELD, edat=DAY))
    for e in EXPECTED:
        query = QUERIES[e["subscription"]]
        assert len(query) <= MAX_QUERY
        result = client.search(query, DAY - timedelta(days=3), DAY, indexed_since=DAY)
        assert sorted(result.pmids) == sorted(e["match"]), e["subscription"]
    assert fake.count("esearch") == len(EXPECTED)
    assert all(re.search(r'"2026/11/02"\[mhda\]', s.params["term"]) for s in fake.served)


def test_example_queries_go_as_get_under_2000_characters_or_by_post(
    fake: FakeNCBI, client: EUtils
) -> None:
    """NCBI's servers limit the URL: a long query goes in the body of a POST."""
    methods = {}
    for name, query in QUERIES.items():
        fake.served.clear()
        client.search(query, DAY - timedelta(days=3), DAY, indexed_since=DAY)
        (served,) = fake.served
        methods[name] = served.method
        if served.method == "GET":  # as sent with an API key, the URL's longest form
            params = {**served.params, "api_key": "k" * 36}
            url = f"https://eutils.ncbi.nlm.nih.gov/entrez/eutils/esearch.fcgi?{urlencode(params)}"
            assert len(url) < 2000, (name, len(url))
    assert methods["Anti-CD20 in T1D"] == "GET"
    assert methods["Prevention in at-risk relatives"] == "POST"
