"""Europe PMC's HTML fragments read as text and sections, rendered as PubMed's XML is."""

from __future__ import annotations

from datetime import date

import pytest

from watcher.models import AbstractSection
from watcher.sources.html_text import abstract_sections, plain_text
from watcher.sources.pubmed_xml import parse_articles
from watcher.text.section_labels import category_of

from .fakes.records import synthetic


def pubmed_title(markup: str) -> str:
    """The title pubmed_xml reads from an ArticleTitle holding `markup`."""
    xml = synthetic(1, markup, edat=date(2026, 1, 1), raw_title=True).xml
    (article,) = parse_articles(b"<PubmedArticleSet>" + xml + b"</PubmedArticleSet>")
    return article.title


@pytest.mark.parametrize(
    "markup",
    [
        "Hydrogen sulfide (H<sub>2</sub>S) donors",
        "10<sup>3</sup> cells and CO<sub>2</sub>",
        "the 18<sup>th</sup> week",
        "PM<sub>2.5</sub> exposure",
        "CSF1R<sup>+</sup> cells and collagen-III<sup>high</sup> iCAFs",
        "interviews (<i>n</i> = 10) <b>in vitro</b> and <i>in vivo</i>",
        "[<sup>18</sup>F]FDG PET",
    ],
)
def test_markup_is_rendered_as_pubmed_renders_it(markup: str) -> None:
    assert plain_text(markup) == pubmed_title(markup)


@pytest.mark.parametrize(
    ("fragment", "text"),
    [
        ("57% were aged <70 and 43% aged >70 years.", "57% were aged <70 and 43% aged >70 years."),
        ("significantly (at p < .001) predicted", "significantly (at p < .001) predicted"),
        ("a median overall survival of <1 year.<h4>Conclusions</h4>", None),
        ("c.7271T>G &amp; R&D, &#8805;20% &lt;70", "c.7271T>G & R&D, ≥20% <70"),
        ("IC<sub>50</sub><IC90 and T>G", "IC₅₀<IC90 and T>G"),
        ("a <foo/> b </bar> c", "a <foo/> b </bar> c"),
    ],
)
def test_what_is_not_markup_is_text_as_written(fragment: str, text: str | None) -> None:
    if text is None:
        assert abstract_sections(fragment)[0].text == "a median overall survival of <1 year."
    else:
        assert plain_text(fragment) == text


def test_escaped_markup_is_read_as_markup() -> None:
    # Real titles (tests/fixtures/registries/europepmc-pyeuropepmc-lite.json).
    assert plain_text("in an m&lt;sup&gt;6&lt;/sup&gt;A-dependent manner") == (
        "in an m⁶A-dependent manner"
    )
    assert (
        plain_text("between &lt;i&gt;ATM&lt;/i&gt; c.7271T&gt;G and") == "between ATM c.7271T>G and"
    )
    assert plain_text("young females (age &lt;\u200940 years)") == "young females (age < 40 years)"


def test_h4_headings_are_labelled_sections_in_nlm_categories() -> None:
    fragment = (
        "Lead-in text.<h4>Aim</h4>To test.<h4>Patients and methods</h4>We randomised."
        "<h4>Findings</h4>It <i>worked</i>.<h4>Interpretation</h4>Use it.<h4>Funding</h4>NIH."
    )
    assert abstract_sections(fragment) == (
        AbstractSection(None, "Lead-in text.", None),
        AbstractSection("Aim", "To test.", "OBJECTIVE"),
        AbstractSection("Patients and methods", "We randomised.", "METHODS"),
        AbstractSection("Findings", "It worked.", "RESULTS"),
        AbstractSection("Interpretation", "Use it.", "CONCLUSIONS"),
        AbstractSection("Funding", "NIH.", "BACKGROUND"),
    )


def test_a_bold_run_in_is_a_heading_and_bold_words_in_a_sentence_are_text() -> None:
    fragment = (
        "<b>Background</b> Teplizumab delays onset. A <b>significant</b> delay was seen. "
        "<b>Keywords:</b> Teplizumab, CD3"
    )
    assert abstract_sections(fragment) == (
        AbstractSection(
            "Background", "Teplizumab delays onset. A significant delay was seen.", "BACKGROUND"
        ),
        AbstractSection("Keywords", "Teplizumab, CD3", "UNASSIGNED"),
    )
    # A bold sentence after another is text: only a short run ending in a colon is a heading.
    assert len(abstract_sections("One. <b>Two is bold.</b> Three.")) == 1


def test_a_tag_left_open_keeps_its_text() -> None:
    assert abstract_sections("Intro.<h4>Results") == (
        AbstractSection(None, "Intro. Results", None),
    )
    assert plain_text("x<sup>2 and <b>more") == "x^2 and more"
    assert abstract_sections("") == () and plain_text(None) == ""


def test_an_empty_heading_or_section_gives_nothing() -> None:
    assert abstract_sections("<h4></h4>Text.<h4>Methods</h4><h4>Results</h4>Found.") == (
        AbstractSection(None, "Text.", None),
        AbstractSection("Results", "Found.", "RESULTS"),
    )


@pytest.mark.parametrize(
    ("label", "category"),
    [
        ("Conclusion", "CONCLUSIONS"),
        ("Objective", "OBJECTIVE"),
        ("Design", "METHODS"),
        ("Issue addressed", "BACKGROUND"),
        ("Data sources", "METHODS"),
        ("Registration", "BACKGROUND"),
        ("Keywords", "UNASSIGNED"),
    ],
)
def test_europe_pmcs_labels_take_nlms_categories(label: str, category: str) -> None:
    assert category_of(label) == category
