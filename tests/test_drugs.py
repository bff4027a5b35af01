from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from watcher.digest.drugs import Vocabulary, looks_like_inn, vocabulary
from watcher.drug_table import TABLE, Drug, name_key, shipped_drugs
from watcher.models import AbstractSection, Article
from watcher.sources.pubmed_xml import parse_articles

FIELD = Path(__file__).parent / "fixtures" / "field" / "t1d-presentation.xml"


def inns(text: str, vocab: Vocabulary | None = None) -> list[str]:
    return [m.inn for m in (vocab or vocabulary()).find([text])]


@pytest.mark.parametrize(
    ("text", "inn"),
    [
        ("a 14-day course of hOKT3γ1(Ala-Ala)", "teplizumab"),
        ("hOKT3gamma1 (Ala-Ala) was given", "teplizumab"),
        ("HOKT3GAMMA1(ALA-ALA)", "teplizumab"),
        ("MGA031 and PRV-031 are the same antibody", "teplizumab"),
        ("TZIELD approved", "teplizumab"),
        ("teplizumab-mzwv", "teplizumab"),
        ("a humanized antibody against CD3 (ChAglyCD3)", "otelixizumab"),
        ("TRX4 in new-onset diabetes", "otelixizumab"),
        ("Orthoclone OKT3 in kidney rejection", "muromonab-CD3"),
        ("muromonab CD3", "muromonab-CD3"),
        ("MabThera (Roche)", "rituximab"),
        ("RITUXIMAB IN TYPE 1 DIABETES", "rituximab"),
        ("Rituxan infusions", "rituximab"),
        ("induction with Zenapax", "daclizumab"),
        ("induction with Simulect", "basiliximab"),
        ("CTLA4-Ig (abatacept)", "abatacept"),
        ("LEA29Y in islet recipients", "belatacept"),
        ("anti-thymocyte globulin (ATG)", "anti-thymocyte globulin"),
        ("Thymoglobulin induction", "anti-thymocyte globulin"),
        ("NNC0114-0006, an anti-IL-21 antibody", "NNC0114-0006"),
        ("anti-interleukin-1β antibody canakinumab", "canakinumab"),
        ("the AT-1501 trial", "tegoprubart"),
        # names the starter config's queries search (config.example.toml)
        ("TCD601 in islet transplant recipients", "siplizumab"),
        ("Thymoglobuline induction", "anti-thymocyte globulin"),
    ],
)
def test_table_names_codes_and_brands_find_the_inn(text: str, inn: str) -> None:
    assert inn in inns(text)


def test_the_target_is_shown_beside_the_inn() -> None:
    (m,) = vocabulary().find(["hOKT3γ1(Ala-Ala)"])
    assert (m.inn, m.action) == ("teplizumab", "anti-CD3")
    (m,) = vocabulary().find(["abatacept"])
    assert m.action == "CTLA4-Ig (CD80/CD86)"


@pytest.mark.parametrize(
    "text",
    [
        "hOKT3 was not given",  # not the whole code name; not OKT3 either (word boundary)
        "ATG5 and ATG7 are autophagy genes",
        "the start codon atg",  # abbreviations match in their own case only
        "CA2 expression",  # carbonic anhydrase 2, not infliximab's cA2
        "Rituximabs",
    ],
)
def test_no_drug_from_lookalikes(text: str) -> None:
    assert inns(text) == []


@pytest.mark.parametrize(
    "word",
    ["frobnizumab", "verekitug", "tobevibart", "rilvegostomig", "lunsekimig", "tarcocitament"],
)
def test_inn_stems_outside_the_table_count(word: str) -> None:
    assert looks_like_inn(word)
    assert inns(f"Patients received {word} or placebo.") == [word]


@pytest.mark.parametrize(
    "word",
    [
        "comment",
        "treatment",
        "segment",
        "management",
        "assessment",
        "environment",
        "supplement",
        "complement",
        "compliment",
        "refinement",
        "testament",
        "ligament",
        "sentiment",
        "tug",
        "Bart",
        "Hobart",
        "Lombart",
        "HuMab",
        "mab",
        "Sumig",
    ],
)
def test_ordinary_words_are_not_inns(word: str) -> None:
    assert not looks_like_inn(word.lower())
    assert inns(f"The {word} of {word}s in the {word} study.") == []


def test_substances_and_keywords_are_read(tmp_path: Path) -> None:
    records = {a.pmid: a for a in parse_articles(FIELD.read_bytes())}
    editorial = records[90100008]  # TZIELD in the title; the INN only in the keywords
    no_title = replace(editorial, title="Approval news", abstract=())
    assert [m.inn for m in vocabulary().article_drugs(no_title)] == ["teplizumab"]
    herold = records[90100005]
    assert "teplizumab" in herold.substances
    only_substances = replace(herold, title="Anti-CD3 in relatives", abstract=(), keywords=())
    assert [m.inn for m in vocabulary().article_drugs(only_substances)] == ["teplizumab"]


def test_user_entries_extend_and_replace_the_table() -> None:
    mine = (
        Drug("zorbalimab", "CD6", codes=("ZB-101",)),
        Drug("rituximab", "CD20", label="B-cell depletion", brands=("Rituxan",)),
    )
    vocab = vocabulary(mine)
    found = vocab.find(["ZB-101 then Rituxan"])
    assert [(m.inn, m.action) for m in found] == [
        ("zorbalimab", "anti-CD6"),
        ("rituximab", "B-cell depletion"),
    ]
    # the shipped entry's other names still find it, with the user's description
    assert [(m.inn, m.action) for m in vocab.find(["MabThera"])] == [
        ("rituximab", "B-cell depletion")
    ]
    assert vocabulary(mine) is vocab  # compiled once per run
    assert "zorbalimab" not in [d.inn for d in shipped_drugs()]


def test_the_shipped_table_has_the_fields_drugs() -> None:
    drugs = {d.inn: d for d in shipped_drugs()}
    for inn in (
        "teplizumab",
        "otelixizumab",
        "muromonab-CD3",
        "rituximab",
        "daclizumab",
        "basiliximab",
        "abatacept",
        "alefacept",
        "golimumab",
        "anakinra",
        "frexalimab",
    ):
        assert drugs[inn].target, inn
    assert "MabThera" in drugs["rituximab"].brands
    assert "ChAglyCD3" in drugs["otelixizumab"].codes


def test_five_hundred_abstracts_are_tagged_quickly() -> None:
    text = (
        "Type 1 diabetes results from autoimmune destruction of beta cells. We randomly assigned "
        "participants to a 14-day course of an Fc receptor-nonbinding anti-CD3 antibody or placebo "
        "and measured C-peptide responses to a mixed-meal tolerance test every 6 months. "
    ) * 6
    art = Article(
        pmid=1,
        title="A trial in new-onset type 1 diabetes",
        abstract=(AbstractSection("RESULTS", text, "RESULTS"),),
    )
    vocab = vocabulary()
    start = time.perf_counter()
    for _ in range(500):
        vocab.article_drugs(art)
    # generous for a shared 2-core machine; measured ~0.1 s
    assert time.perf_counter() - start < 3.0


# Names that double as laboratory words (issue 24)

ATG = "anti-thymocyte globulin"


@pytest.mark.parametrize(
    "text",
    [
        "Autophagy-related genes ATG5 and ATG7 are required for beta-cell survival.",
        "Deletion of ATG5/ATG7 in beta cells impaired insulin secretion in patients' islets.",
        "ATG 7 deficiency in beta cells of mice fed a high-fat diet.",
        "A heterozygous variant abolishing the ATG start codon of INS caused neonatal diabetes.",
        "The ATG initiation codon was mutated to prevent translation of the transgene.",
        "ATG proteins assemble on the phagophore membrane during starvation.",
        "Knockdown of ATG in INS-1 cells reduced glucose-stimulated insulin secretion.",
        "Loss of ATG-16L1 in Paneth cells of patients with Crohn disease",
    ],
)
def test_atg_the_gene_or_codon_is_not_anti_thymocyte_globulin(text: str) -> None:
    assert ATG not in inns(text)


@pytest.mark.parametrize(
    "text",
    [
        "Low-dose ATG (2.5 mg/kg) followed by pegylated G-CSF preserved C-peptide.",
        "Induction with ATG was followed by tacrolimus and mycophenolate in islet recipients.",
        "Recipients received rATG 6 mg/kg before the first islet infusion.",
        "ATG-F was given as induction before kidney transplantation.",
        "Anti-thymocyte globulin (ATG) in new-onset type 1 diabetes",
    ],
)
def test_atg_with_clinical_words_is_anti_thymocyte_globulin(text: str) -> None:
    assert inns(text) == [ATG]


@pytest.mark.parametrize(
    "text",
    [
        "PBMCs were stimulated with plate-bound anti-CD3 (OKT3, 1 µg/mL) and soluble anti-CD28.",
        "Cells were stained with anti-CD3 (clone OKT3) and analysed by flow cytometry.",
        "T cells expanded in culture with OKT3 and IL-2 were infused into the patients.",
        "OKT3-activated T cells released IFN-γ in vitro.",
    ],
)
def test_okt3_as_a_reagent_is_not_a_treatment(text: str) -> None:
    assert inns(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "OKT3 was given for 10 days to treat steroid-resistant rejection in kidney recipients.",
        "Prophylactic OKT3 induction in cadaveric renal transplantation",
        "Orthoclone OKT3 in vitro and in vivo",  # the brand names the medicine wherever it is
    ],
)
def test_okt3_given_to_patients_is_muromonab(text: str) -> None:
    assert inns(text) == ["muromonab-CD3"]


def test_a_reagent_is_not_read_back_from_the_substance_list() -> None:
    """NLM indexes a reagent under the drug's name: the abstract decides."""
    lab = Article(
        pmid=1,
        title="Regulatory T cells in new-onset type 1 diabetes",
        abstract=(
            AbstractSection(
                None,
                "CD4+ T cells were stimulated with plate-bound OKT3 and anti-CD28 for 72 hours.",
            ),
        ),
        substances=("Muromonab-CD3", "Antigens, CD3"),
    )
    assert vocabulary().article_drugs(lab) == ()
    given = replace(lab, title="OKT3 induction in islet transplant recipients")
    assert [m.inn for m in vocabulary().article_drugs(given)] == ["muromonab-CD3"]
    indexed_only = replace(lab, abstract=())
    assert [m.inn for m in vocabulary().article_drugs(indexed_only)] == ["muromonab-CD3"]


# Therapeutic antibodies outside the field show their target too.


@pytest.mark.parametrize(
    ("text", "inn", "action"),
    [
        ("Cetuximab plus FOLFIRI in RAS wild-type colorectal cancer", "cetuximab", "anti-EGFR"),
        ("alirocumab after acute coronary syndrome", "alirocumab", "anti-PCSK9"),
        ("Evolocumab and clinical outcomes (FOURIER)", "evolocumab", "anti-PCSK9"),
        (
            "Y-90 ibritumomab consolidation in follicular lymphoma",
            "ibritumomab tiuxetan",
            "anti-CD20",
        ),
        ("Zevalin after R-CHOP", "ibritumomab tiuxetan", "anti-CD20"),
        ("MK-3475 in advanced melanoma", "pembrolizumab", "anti-PD-1"),
        ("KEYTRUDA monotherapy", "pembrolizumab", "anti-PD-1"),
        ("T-DXd in HER2-low breast cancer", "trastuzumab deruxtecan", "anti-HER2"),
        ("Trastuzumab emtansine (T-DM1) after surgery", "trastuzumab emtansine", "anti-HER2"),
        ("denosumab (Prolia) in postmenopausal osteoporosis", "denosumab", "anti-RANKL"),
        ("Dupixent in moderate-to-severe atopic dermatitis", "dupilumab", "anti-IL-4Rα"),
        (
            "natalizumab and progressive multifocal leukoencephalopathy",
            "natalizumab",
            "anti-α4 integrin",
        ),
        ("Soliris in paroxysmal nocturnal haemoglobinuria", "eculizumab", "anti-C5"),
        ("Nirsevimab for RSV prevention in infants", "nirsevimab", "anti-RSV F protein"),
        ("emicizumab prophylaxis in haemophilia A", "emicizumab", "anti-FIXa/FX"),
        ("lecanemab in early Alzheimer's disease", "lecanemab", "anti-amyloid β protofibrils"),
        ("pemivibart pre-exposure prophylaxis", "pemivibart", "anti-SARS-CoV-2 spike"),  # -bart
        ("volrustomig plus chemotherapy", "volrustomig", "anti-PD-1/CTLA-4"),  # -mig
        (
            "aflibercept (Eylea) in neovascular AMD",
            "aflibercept",
            "VEGF trap, receptor–Fc fusion protein",
        ),
    ],
)
def test_antibodies_outside_the_field_show_their_target(text: str, inn: str, action: str) -> None:
    (m,) = vocabulary().find([text])
    assert (m.inn, m.action) == (inn, action)


def test_the_shipped_table_is_consistent() -> None:
    """At least 150 drugs; each INN once; each with a target or a label; no name of one drug
    is a name of another; a name without an antibody stem says what the drug is instead."""
    drugs = shipped_drugs()
    assert len(drugs) >= 150
    inn_keys = [name_key(d.inn) for d in drugs]
    assert len(set(inn_keys)) == len(inn_keys)
    owner: dict[str, str] = {}
    for d in drugs:
        assert d.target or d.label, d.inn
        for name in (d.inn, *d.codes, *d.brands, *d.abbreviations):
            key = name_key(name)
            assert owner.setdefault(key, d.inn) == d.inn, f"{name}: {owner[key]} and {d.inn}"
        stem = looks_like_inn(d.inn.split()[0].lower())
        assert stem or d.label or any(c.isdigit() for c in d.inn), d.inn
    header = TABLE.read_text(encoding="utf-8")
    for source in ("Antibody Society", "WHO", "FDA", "EMA"):
        assert source in header


def test_the_type_1_diabetes_entries_keep_their_names() -> None:
    drugs = {d.inn: d for d in shipped_drugs()}
    assert drugs["teplizumab"].codes[:3] == ("hOKT3γ1(Ala-Ala)", "hOKT3γ1 Ala-Ala", "MGA031")
    assert drugs["otelixizumab"].codes == ("ChAglyCD3", "TRX4", "TRX-4")
    assert drugs[ATG].abbreviations == ("ATG", "rATG", "ATG-F")
    assert drugs["rituximab"].brands == ("Rituxan", "MabThera", "Truxima", "Ruxience", "Riabni")
    assert drugs["basiliximab"].target == drugs["daclizumab"].target == "CD25/IL-2Rα"
