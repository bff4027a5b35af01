"""Fixture records for the fake NCBI, in PubMed's real XML schema (pubmed_250101.dtd).

`synthetic()` writes a record element by element as efetch does; `from_file()` takes real records
saved from NCBI (tests/fixtures/efetch/, see its PROVENANCE) and can renumber them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

from lxml import etree

from .ncbi import FakeRecord

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def synthetic(
    pmid: int,
    title: str,
    *,
    edat: date,
    crdt: date | None = None,
    mhda: date | None = None,
    abstract: str | Sequence[tuple[str, str]] = "",
    authors: Sequence[str] = ("Herold KC", "Bundy BN"),
    collective: str | None = None,
    journal: str = "The New England journal of medicine",
    iso: str = "N Engl J Med",
    pub_types: Sequence[str] = ("Journal Article",),
    mesh: Sequence[str] = (),
    keywords: Sequence[str] = (),
    doi: str | None = None,
    pmc: str | None = None,
    trials: Sequence[str] = (),
    corrections: Sequence[tuple[str, str] | tuple[str, str, int]] = (),
    raw_title: bool = False,
) -> FakeRecord:
    """One PubmedArticle. `raw_title` puts the title in as XML (for inline markup tests).
    `corrections` are (RefType, RefSource) or (RefType, RefSource, PMID), as in
    CommentsCorrectionsList (the shape of real record PMID 35649368's ErratumIn).

    `mhda` is the MeSH date, when indexers added the headings (a "medline" PubMedPubDate);
    without it the record is as PubMed holds it before indexing (MeSH date = Entrez date).
    In <History>, "entrez" is the creation date (CRDT), "pubmed" the Entrez date (EDAT) and
    "medline" the MeSH date (MHDA): https://www.nlm.nih.gov/pubs/techbull/nd08/nd08_pm_new_date_field.html
    """
    crdt = crdt or edat
    doi = doi if doi is not None else f"10.1056/FAKE{pmid}"
    t = title if raw_title else escape(title)
    if isinstance(abstract, str):
        abstract_xml = f"<AbstractText>{escape(abstract)}</AbstractText>" if abstract else ""
    else:
        abstract_xml = "".join(
            f'<AbstractText Label="{escape(label)}" NlmCategory="{escape(label)}">'
            f"{escape(text)}</AbstractText>"
            for label, text in abstract
        )
    author_xml = "".join(
        f'<Author ValidYN="Y"><LastName>{escape(a.rsplit(" ", 1)[0])}</LastName>'
        f"<ForeName>{escape(a.rsplit(' ', 1)[-1])}</ForeName>"
        f"<Initials>{escape(a.rsplit(' ', 1)[-1])}</Initials></Author>"
        for a in authors
    )
    if collective:
        author_xml += (
            f'<Author ValidYN="Y"><CollectiveName>{escape(collective)}</CollectiveName></Author>'
        )
    types = "".join(
        f'<PublicationType UI="D000000">{escape(p)}</PublicationType>' for p in pub_types
    )
    mesh_xml = "".join(
        f'<MeshHeading><DescriptorName UI="D000000" MajorTopicYN="{"Y" if i == 0 else "N"}">'
        f"{escape(m)}</DescriptorName></MeshHeading>"
        for i, m in enumerate(mesh)
    )
    banks = ""
    if trials:
        banks = (
            '<DataBankList CompleteYN="Y"><DataBank><DataBankName>ClinicalTrials.gov'
            "</DataBankName><AccessionNumberList>"
            + "".join(f"<AccessionNumber>{t}</AccessionNumber>" for t in trials)
            + "</AccessionNumberList></DataBank></DataBankList>"
        )
    cc = ""
    if corrections:
        cc = (
            "<CommentsCorrectionsList>"
            + "".join(
                f'<CommentsCorrections RefType="{c[0]}"><RefSource>{escape(c[1])}</RefSource>'
                + (f'<PMID Version="1">{c[2]}</PMID>' if len(c) > 2 else "")
                + "</CommentsCorrections>"
                for c in corrections
            )
            + "</CommentsCorrectionsList>"
        )
    ids = f'<ArticleId IdType="pubmed">{pmid}</ArticleId><ArticleId IdType="doi">{escape(doi)}</ArticleId>'
    if pmc:
        ids += f'<ArticleId IdType="pmc">{pmc}</ArticleId>'
    kw = ""
    if keywords:
        kw = (
            '<KeywordList Owner="NOTNLM">'
            + "".join(f'<Keyword MajorTopicYN="N">{escape(k)}</Keyword>' for k in keywords)
            + "</KeywordList>"
        )
    xml = f"""<PubmedArticle>
  <MedlineCitation Status="MEDLINE" Owner="NLM" IndexingMethod="Automated">
    <PMID Version="1">{pmid}</PMID>
    <DateRevised><Year>{edat.year}</Year><Month>{edat.month:02d}</Month><Day>{edat.day:02d}</Day></DateRevised>
    <Article PubModel="Print-Electronic">
      <Journal>
        <ISSN IssnType="Electronic">1533-4406</ISSN>
        <JournalIssue CitedMedium="Internet"><Volume>381</Volume><Issue>7</Issue>
          <PubDate><Year>{edat.year}</Year><Month>{edat:%b}</Month><Day>{edat.day:02d}</Day></PubDate>
        </JournalIssue>
        <Title>{escape(journal)}</Title>
        <ISOAbbreviation>{escape(iso)}</ISOAbbreviation>
      </Journal>
      <ArticleTitle>{t}</ArticleTitle>
      <Pagination><StartPage>603</StartPage><EndPage>613</EndPage><MedlinePgn>603-613</MedlinePgn></Pagination>
      <ELocationID EIdType="doi" ValidYN="Y">{escape(doi)}</ELocationID>
      <Abstract>{abstract_xml}</Abstract>
      <AuthorList CompleteYN="Y">{author_xml}</AuthorList>
      <Language>eng</Language>
      {banks}
      <PublicationTypeList>{types}</PublicationTypeList>
      <ArticleDate DateType="Electronic"><Year>{edat.year}</Year><Month>{edat.month:02d}</Month><Day>{edat.day:02d}</Day></ArticleDate>
    </Article>
    <MedlineJournalInfo><Country>United States</Country><MedlineTA>N Engl J Med</MedlineTA><NlmUniqueID>0255562</NlmUniqueID><ISSNLinking>0028-4793</ISSNLinking></MedlineJournalInfo>
    {cc}
    <MeshHeadingList>{mesh_xml}</MeshHeadingList>
    {kw}
  </MedlineCitation>
  <PubmedData>
    <History>
      <PubMedPubDate PubStatus="pubmed"><Year>{edat.year}</Year><Month>{edat.month}</Month><Day>{edat.day}</Day><Hour>6</Hour><Minute>0</Minute></PubMedPubDate>
      <PubMedPubDate PubStatus="medline"><Year>{(mhda or edat).year}</Year><Month>{(mhda or edat).month}</Month><Day>{(mhda or edat).day}</Day><Hour>6</Hour><Minute>0</Minute></PubMedPubDate>
      <PubMedPubDate PubStatus="entrez"><Year>{crdt.year}</Year><Month>{crdt.month}</Month><Day>{crdt.day}</Day><Hour>6</Hour><Minute>0</Minute></PubMedPubDate>
    </History>
    <PublicationStatus>ppublish</PublicationStatus>
    <ArticleIdList>{ids}</ArticleIdList>
  </PubmedData>
</PubmedArticle>"""
    plain = re.sub(r"<[^>]+>", "", title)
    text = " ".join(
        [
            plain,
            abstract if isinstance(abstract, str) else " ".join(x for _, x in abstract),
            *mesh,
            *keywords,
        ]
    ).lower()
    return FakeRecord(pmid, xml.encode(), edat, crdt, text, plain, doi, mhda)


def from_file(path: Path, *, edat: date, renumber: Iterable[int] | None = None) -> list[FakeRecord]:
    """Real records from a saved efetch file, each optionally given a fresh PMID."""
    tree = etree.parse(str(path))
    numbers = iter(renumber) if renumber is not None else None
    out = []
    for rec in tree.getroot().iterfind("PubmedArticle"):
        pmid_el = rec.find("MedlineCitation/PMID")
        if numbers is not None:
            new = str(next(numbers))
            pmid_el.text = new
            for aid in rec.iterfind("PubmedData/ArticleIdList/ArticleId"):
                if aid.get("IdType") == "pubmed":
                    aid.text = new
        title = "".join(rec.find("MedlineCitation/Article/ArticleTitle").itertext())
        text = " ".join(rec.itertext()).lower()
        doi = next(
            (
                a.text
                for a in rec.iterfind("PubmedData/ArticleIdList/ArticleId")
                if a.get("IdType") == "doi"
            ),
            None,
        )
        out.append(FakeRecord(int(pmid_el.text), etree.tostring(rec), edat, edat, text, title, doi))
    return out


def topic_records(
    start_pmid: int, n: int, topic: str, *, first_day: date, per_day: int = 50
) -> list[FakeRecord]:
    """n synthetic papers about `topic`, spread over consecutive Entrez days."""
    return [
        synthetic(
            start_pmid + i,
            f"{topic} study number {i}",
            edat=first_day + timedelta(days=i // per_day),
            abstract=f"We studied {topic} in cohort {i}.",
            mesh=("Humans",),
        )
        for i in range(n)
    ]
