"""One PubMed record → an Article: a PubmedArticle (or a bare MedlineCitation) or a
PubmedBookArticle, its identifiers, dates and pages read here, its lists in pubmed_lists.py.
Pure."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from watcher.models import Article
from watcher.sources import pubmed_lists
from watcher.sources.pubmed_elements import children, clean, text_of

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def read_article(rec: Any) -> Article:
    if rec.tag == "PubmedBookArticle":
        return _book(rec)
    # One pass over the children, then dict look-ups: a find() per field would go through
    # lxml's ElementPath each time.
    top = children(rec) if rec.tag == "PubmedArticle" else None
    cit = top.get("MedlineCitation") if top is not None else rec
    if cit is None:
        raise ValueError("no MedlineCitation")
    c = children(cit)
    pmid, version = pmid_and_version(c.get("PMID"))
    art = c.get("Article")
    if art is None:
        raise ValueError("no Article element")
    a = children(art)
    data = top.get("PubmedData") if top is not None else None
    ids = _article_ids(children(data).get("ArticleIdList") if data is not None else None)
    doi = ids.get("doi") or _elocation_doi(art)
    journal = children(a["Journal"]) if "Journal" in a else {}
    issue = journal.get("JournalIssue")
    i = children(issue) if issue is not None else {}
    pub_date, pub_year = _pub_date(i.get("PubDate"))
    abstract = pubmed_lists.abstract(a.get("Abstract"))
    vernacular = clean(a.get("VernacularTitle")) or None
    types = a.get("PublicationTypeList")
    keywords = c.get("KeywordList")
    return Article(
        pmid=pmid,
        version=version,
        title=clean(a.get("ArticleTitle")) or vernacular or "",
        doi=doi,
        pmcid=ids.get("pmc"),
        vernacular_title=vernacular,
        abstract=abstract,
        authors=pubmed_lists.authors(a.get("AuthorList")),
        journal=text_of(journal.get("Title")),
        journal_iso=text_of(journal.get("ISOAbbreviation")),
        pub_date=pub_date,
        pub_year=pub_year,
        epub_date=_electronic_date(art) if "ArticleDate" in a else None,
        language=text_of(a.get("Language")),
        publication_types=tuple(t for t in map(text_of, types) if t) if types is not None else (),
        mesh=pubmed_lists.mesh(c.get("MeshHeadingList")),
        keywords=tuple(k for k in map(clean, keywords) if k) if keywords is not None else (),
        corrections=pubmed_lists.corrections(c.get("CommentsCorrectionsList")),
        trial_ids=pubmed_lists.trial_ids(a.get("DataBankList"), abstract),
        substances=pubmed_lists.substances(c.get("ChemicalList"), c.get("SupplMeshList")),
        status=cit.get("Status"),
        volume=text_of(i.get("Volume")),
        issue=text_of(i.get("Issue")),
        pages=_pages(a.get("Pagination")),
    )


def _pages(pagination: Any) -> str | None:
    """MedlinePgn as printed ("1-10", "e123"); StartPage-EndPage where only those are given."""
    if pagination is None:
        return None
    p = children(pagination)
    printed = text_of(p.get("MedlinePgn"))
    if printed:
        return printed
    start, end = text_of(p.get("StartPage")), text_of(p.get("EndPage"))
    return f"{start}-{end}" if start and end else start


def _book(rec: Any) -> Article:
    doc = rec.find("BookDocument")
    if doc is None:
        raise ValueError("no BookDocument")
    pmid, version = pmid_and_version(doc.find("PMID"))
    book = doc.find("Book")
    ids = _article_ids(rec.find("PubmedBookData/ArticleIdList"))
    ids.update({k: v for k, v in _article_ids(doc.find("ArticleIdList")).items() if k not in ids})
    book_title = clean(book.find("BookTitle")) if book is not None else ""
    pub_date, pub_year = _book_date(doc, book)
    authors = pubmed_lists.authors(doc.find("AuthorList"))
    if not authors and book is not None:
        authors = pubmed_lists.authors(book.find("AuthorList"))
    abstract = pubmed_lists.abstract(doc.find("Abstract"))
    return Article(
        pmid=pmid,
        version=version,
        title=clean(doc.find("ArticleTitle")) or book_title or "",
        doi=ids.get("doi"),
        pmcid=ids.get("pmc"),
        vernacular_title=clean(doc.find("VernacularTitle")) or None,
        abstract=abstract,
        authors=authors,
        journal=book_title or None,
        pub_date=pub_date,
        pub_year=pub_year,
        language=text_of(doc.find("Language")),
        publication_types=tuple(
            t for t in (text_of(p) for p in doc.iterfind("PublicationType")) if t
        )
        or ("Book Chapter",),
        keywords=tuple(k for k in (clean(x) for x in doc.iterfind("KeywordList/Keyword")) if k),
        trial_ids=pubmed_lists.trial_ids(None, abstract),
        is_book=True,
    )


def _book_date(doc: Any, book: Any) -> tuple[str | None, int | None]:
    """A chapter is dated as PubMed cites it, by its own dates, not by its book's PubDate (a
    series' first year: GeneReviews' 1993): "2000 Feb 7 [updated 2024 Mar 14]" from its
    ContributionDate and DateRevised; the year is the contribution's. A book without either is
    dated by its PubDate."""
    contributed, year = _pub_date(doc.find("ContributionDate"))
    revised, revised_year = _pub_date(doc.find("DateRevised"))
    if contributed and revised and revised != contributed:
        return f"{contributed} [updated {revised}]", year
    if contributed or revised:
        return contributed or revised, year or revised_year
    return _pub_date(book.find("PubDate") if book is not None else None)


def pmid_and_version(el: Any) -> tuple[int, int]:
    """PMID and its version (PubMed keeps versions of a few records, e.g. in PMC-born ones)."""
    text = text_of(el)
    # ASCII digits only ("²".isdigit() is true), and few enough for the store's 64-bit column
    # (real PMIDs have 8 digits): anything else is a bad record, reported on its own.
    if not text or not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ValueError(f"PMID {(text or '')[:40]!r} is not a PubMed identifier")
    version = el.get("Version")
    ok = version and version.isascii() and version.isdigit() and len(version) <= 9
    return int(text), int(version) if ok else 1


def _article_ids(el: Any) -> dict[str, str]:
    ids: dict[str, str] = {}
    if el is not None:
        # A loop over the children with a tag test, not iterchildren("ArticleId"): nearly
        # every child is an ArticleId, so there is little to filter (as in pubmed_lists'
        # abstract and corrections).
        for aid in el:
            if aid.tag != "ArticleId":
                continue
            kind, value = aid.get("IdType"), text_of(aid)
            if kind and value and kind not in ids:
                ids[kind] = value
    return ids


def _elocation_doi(art: Any) -> str | None:
    for loc in art.iterfind("ELocationID"):
        if loc.get("EIdType") == "doi" and loc.get("ValidYN", "Y") == "Y":
            return text_of(loc)
    return None


def _pub_date(el: Any) -> tuple[str | None, int | None]:
    """PubMed prints what the journal printed: '2019 Aug 15', '2018 Spring', '1998 Dec-1999 Jan'."""
    if el is None:
        return None, None
    parts_of = {child.tag: child.text for child in el}
    medline = (parts_of.get("MedlineDate") or "").strip() or None
    year = (parts_of.get("Year") or "").strip() or None
    if year is None:
        if medline:
            m = re.search(r"\d{4}", medline)
            return medline, int(m.group()) if m else None
        return None, None
    parts = [year]
    month = (parts_of.get("Month") or "").strip()
    season = (parts_of.get("Season") or "").strip()
    if month:
        parts.append(_month_name(month))
        day = (parts_of.get("Day") or "").strip()
        if day:
            parts.append(str(int(day)) if day.isdigit() else day)
    elif season:
        parts.append(season)
    return " ".join(parts), int(year) if year.isdigit() else None


def _month_name(month: str) -> str:
    if month.isdigit() and 1 <= int(month) <= 12:
        return _MONTH_NAMES[int(month) - 1]
    return month


def _electronic_date(art: Any) -> date | None:
    for d in art.iterchildren("ArticleDate"):
        if d.get("DateType", "Electronic") == "Electronic":
            ymd = {child.tag: (child.text or "").strip() for child in d}
            try:
                month = ymd.get("Month") or "1"
                m = int(month) if month.isdigit() else _MONTHS[month[:3].lower()]
                return date(int(ymd.get("Year") or 0), m, int(ymd.get("Day") or 1))
            except (ValueError, KeyError):
                return None
    return None
