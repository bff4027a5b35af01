from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from watcher.drugs import Drug, Vocabulary, looks_like_inn, shipped_drugs, vocabulary
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
