"""PubMed XML (efetch, MEDLINE files) → Article records. Pure.

An efetch body is parsed without the parts never read; a file streams one record at a
time, so memory stays bounded whatever its size. Element reference: https://www.nlm.nih.gov/bsd/licensee/elements_descriptions.html
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from datetime import date
from typing import IO, Any

from lxml import etree

from watcher.errors import SourceError
from watcher.models import AbstractSection, Article, Author, Correction, MeshHeading
from watcher.text.subscripts import subscript, superscript
from watcher.text.trial_numbers import find_ids

log = logging.getLogger(__name__)

ErrorSink = Callable[[str], None]
# Told each PMID a DeleteCitation names: NCBI deleted the record from PubMed.
DeletionSink = Callable[[int], None]

_RECORD_TAGS = ("PubmedArticle", "PubmedBookArticle", "MedlineCitation", "DeleteCitation")
# In a PubmedArticleSet (what efetch sends) a MedlineCitation is always inside its PubmedArticle
# (DTD: PubmedArticleSet holds PubmedArticle, PubmedBookArticle, DeleteCitation): its end event,
# one a record, would only be skipped.
_SET_TAGS = ("PubmedArticle", "PubmedBookArticle", "DeleteCitation")
_ARTICLE_SET = re.compile(rb"<PubmedArticleSet[\s>]")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Corrections a reader must not miss, and what a comment or letter is about (CommentOn); the
# many CommentIn of a much-discussed trial are left out.
_CORRECTION_TYPES = frozenset(
    {
        "CommentOn",
        "ErratumIn",
        "ErratumFor",
        "RetractionIn",
        "RetractionOf",
        "UpdateIn",
        "UpdateOf",
        "ExpressionOfConcernIn",
        "ExpressionOfConcernFor",
        "RepublishedIn",
        "RepublishedFrom",
    }
)
# DataBankName values of clinical-trial registries (NLM's list of secondary source IDs).
TRIAL_REGISTRIES = frozenset(
    {
        "ClinicalTrials.gov",
        "ISRCTN",
        "EudraCT",
        "ANZCTR",
        "ChiCTR",
        "CRiS",
        "CTRI",
        "DRKS",
        "IRCT",
        "JPRN",
        "NTR",
        "PACTR",
        "ReBec",
        "RPCEC",
        "SLCTR",
        "TCTR",
        "UMIN",
        "CTIS",
    }
)
_MATHML = "{http://www.w3.org/1998/Math/MathML}"


class XmlError(SourceError):
    """The bytes are not well-formed XML (e.g. a body cut off in transit)."""


# Safe parsing of what a server sends: no entity expansion (libxml2 also refuses an entity
# bomb outright), no DTD, no network or file access, and libxml2's default limits (nesting
# depth 256, text nodes of 10 MB), far above any real record.
_SAFE = {"huge_tree": False, "resolve_entities": False, "load_dtd": False, "no_network": True}


def parse_articles(
    source: bytes | IO[bytes],
    on_error: ErrorSink | None = None,
    on_deleted: DeletionSink | None = None,
) -> Iterator[Article]:
    """Yield the articles of a PubmedArticleSet or MedlineCitationSet, in document order.

    A record that cannot be read is reported to `on_error` and skipped; each PMID a
    DeleteCitation names is told to `on_deleted`; malformed XML raises XmlError (the caller
    decides whether to fetch again).

    An efetch body (bytes) is read without the parts of each record no field comes from (see
    kept_spans), fed to the parser _FEED bytes at a time, never copied whole; a stream (a
    MEDLINE file) is read with everything in it. Either way the parser
    hands over one record at a time, cleared once read, so memory stays bounded whatever the
    size, at no cost in speed (bench/README.md: design notes).
    """
    n = 0
    try:
        if isinstance(source, bytes):
            tags = _SET_TAGS if _ARTICLE_SET.search(source, 0, 4096) else _RECORD_TAGS
            parser = etree.XMLPullParser(events=("end",), tag=tags, **_SAFE)
            feed, events = parser.feed, parser.read_events
            # The kept parts, fed _FEED bytes at a time (records are read and freed as they
            # complete): each feed joins the pieces it holds, so the cuts in a record do not
            # each cost a call into the parser.
            view = memoryview(source)
            pieces: list[memoryview] = []
            size = 0
            for start, stop in kept_spans(source):
                for at in range(start, stop, _FEED):
                    piece = view[at : min(at + _FEED, stop)]
                    pieces.append(piece)
                    size += len(piece)
                    if size < _FEED:
                        continue
                    feed(b"".join(pieces))
                    pieces.clear()
                    size = 0
                    for article in _records(events(), on_error, on_deleted, n):
                        n += 1
                        if article is not None:
                            yield article
            feed(b"".join(pieces))
            pieces.clear()
            view.release()
            parser.close()
            pending = events()
        else:
            pending = etree.iterparse(source, events=("end",), tag=_RECORD_TAGS, **_SAFE)
        for article in _records(pending, on_error, on_deleted, n):
            n += 1
            if article is not None:
                yield article
    except etree.XMLSyntaxError as exc:
        raise XmlError(f"malformed PubMed XML after {n} records: {exc}") from None


# Bytes handed to the parser at a time; iterparse reads a stream 32 KB at a time.
_FEED = 1 << 15


def _records(
    events: Iterator[tuple[str, Any]],
    on_error: ErrorSink | None,
    on_deleted: DeletionSink | None,
    n: int,
) -> Iterator[Article | None]:
    """One item per record among `events` (None where it is a deletion or could not be read),
    each freed once read with the siblings before it; `n` counts the records before these."""
    for _event, el in events:
        tag = el.tag
        parent = el.getparent()
        # A MedlineCitation inside a PubmedArticle is read with its PubmedArticle.
        if tag == "MedlineCitation" and parent is not None and parent.tag == "PubmedArticle":
            continue
        n += 1
        if tag != "DeleteCitation":
            yield _read_record(el, n, on_error)
        else:
            _deleted(el, on_error, on_deleted)
            yield None
        # Free what was read: the record and the siblings before it.
        el.clear(keep_tail=False)
        if parent is not None:
            while el.getprevious() is not None:
                del parent[0]


def _deleted(el: Any, on_error: ErrorSink | None, on_deleted: DeletionSink | None) -> None:
    """The PMIDs of a DeleteCitation (DTD: DeleteCitation (PMID+)): the records NCBI deleted,
    in an efetch answer those asked for that PubMed no longer holds."""
    for child in el.iterchildren("PMID"):
        try:
            pmid, _version = _pmid(child)
        except ValueError as exc:
            if on_error is not None:
                on_error(f"a DeleteCitation skipped: {exc}")
            continue
        if on_deleted is not None:
            on_deleted(pmid)


def as_parsed(body: bytes) -> bytes:
    """`body` as the efetch path parses it: without what kept_spans leaves out."""
    return b"".join(body[start:stop] for start, stop in kept_spans(body))


def kept_spans(body: bytes) -> list[tuple[int, int]]:
    """(start, stop) of the parts of an efetch body the parser reads: all of it but the parts of
    each record no field comes from. In its <PubmedData>: <History> (the dates the record went
    through PubMed's stages) and the <ReferenceList> elements (the papers the article cites,
    about two thirds of a modern efetch body). In its <MedlineCitation>: NLM's processing dates
    (<DateCompleted>, <DateRevised>), the <GrantList> and the <MedlineJournalInfo>, a fifth of
    the elements left (see _citation_cuts).

    History is PubmedData's first child, ReferenceList its last (DTD 2019 on), so what is cut
    runs from <History> to </History>, and from the first <ReferenceList> to the last
    </ReferenceList>. A cut is made only where it lies inside one record's PubmedData, before
    its </PubmedData>, with no other PubmedData opening in between; anything else (a book's
    data, a garbled record) is left for the parser to judge as it is. One pass over the body,
    by bytes.find, with a few short searches around what it finds.
    """
    find = body.find
    cuts: list[tuple[int, int]] = []
    pos = 0  # where the search for the next record's PubmedData starts
    data = find(b"<PubmedData>")
    while data >= 0:
        _citation_cuts(body, pos, data, cuts)
        inside = data + 12
        first = find(b"<", inside)
        if first > 0 and body.startswith(b"<History>", first) and not body[inside:first].strip():
            end = find(b"</History>", first)
            if end > 0 and find(b"Pubmed", first, end) < 0:  # within this PubmedData
                cuts.append((first, end + 10))
                inside = end + 10
        close = _data_end(body, inside)
        if close < 0:  # this PubmedData never closes before another one opens
            pos = inside
            data = find(b"<PubmedData>", inside)
            continue
        refs = find(b"<ReferenceList", inside, close)
        if refs > 0 and body[refs + 14 : refs + 15] in (b">", b" "):
            last = body.rfind(b"</ReferenceList>", refs, close)
            if last > 0:
                cuts.append((refs, last + 16))
        pos = close
        data = find(b"<PubmedData>", close)
    spans = []
    pos = 0  # start of the part being kept
    for start, stop in cuts:
        spans.append((pos, start))
        pos = stop
    spans.append((pos, len(body)))
    return spans


def _citation_cuts(body: bytes, at: int, data: int, cuts: list[tuple[int, int]]) -> None:
    """Cut DateCompleted, DateRevised, GrantList and MedlineJournalInfo from the MedlineCitation
    between `at` and the PubmedData at `data`, each only where it is a whole element: its
    opening closes before the next element searched for, with no other opening or closing of it
    in between. No field comes from any of them.

    The dates follow the PMID; the GrantList ends the Article but for its PublicationTypeList,
    VernacularTitle and ArticleDate; the MedlineJournalInfo follows </Article> (DTD 2019 on).
    Each is found by a search of a few hundred bytes from the Article's opening or, backwards,
    from the PubmedData's."""
    find, rfind = body.find, body.rfind
    art = find(b"<Article ", at, data)
    if art < 0:
        return
    # From this record's own MedlineCitation: a book chapter before it has a DateRevised of
    # its own, which is read (its revision date).
    cit = rfind(b"<MedlineCitation", at, art)
    first = find(b"<Date", cit, art) if cit >= 0 else -1
    dates = _DATES.match(body, first, art) if first > 0 else None
    if dates:
        cuts.append((first, dates.end()))
    journal = rfind(b"<MedlineJournalInfo>", art, data)
    end = rfind(b"</Article>", art, journal) if journal > 0 else -1
    if end < 0 or body[end + 10 : journal].strip():
        return  # the journal's information is not the Article's next sibling
    # The grants, if they come just before the PublicationTypeList.
    types = rfind(b"<PublicationTypeList>", art, end)
    grants = rfind(b"</GrantList>", max(art, types - 64), types) if types > 0 else -1
    if grants > 0 and not body[grants + 12 : types].strip():
        start = rfind(b"<GrantList", art, grants)
        if start > 0 and _GRANTS.match(body, start, grants + 12):
            cuts.append((start, grants + 12))
    whole = _JOURNAL.match(body, journal, data)
    if whole:
        cuts.append((journal, whole.end()))


# What is cut from a MedlineCitation, as NLM writes it: elements of text-only elements, each
# closed as it opened, whitespace between. Anything else (a comment, other markup, a tag garbled
# or left open) fails to match and is left for the parser to judge.
_DATES = re.compile(
    rb"(?:\s*+<(Date(?:Completed|Revised|Created))>\s*+(?:<(\w++)>[^<]*+</\2>\s*+)*+</\1>)++"
)
_GRANTS = re.compile(
    rb"<GrantList(?: [^<>]*+)?>\s*+(?:<Grant>\s*+(?:<(\w++)>[^<]*+</\1>\s*+)*+</Grant>\s*+)*+"
    rb"</GrantList>"
)
_JOURNAL = re.compile(
    rb"<MedlineJournalInfo>\s*+(?:<(\w++)>[^<]*+</\1>\s*+)*+</MedlineJournalInfo>"
)


def _data_end(body: bytes, at: int) -> int:
    """Where the </PubmedData> after `at` begins, or -1 if another <PubmedData> opens first (the
    next article's, when this one never closes) or the end of the body comes first. One find
    serves both, with a needle long enough to skip through the references fast."""
    find = body.find
    hit = find(b"PubmedData>", at)
    while hit >= 0:
        before = body[hit - 2 : hit]
        if before == b"</":
            return hit - 2
        if before[1:] == b"<":
            return -1
        hit = find(b"PubmedData>", hit + 11)
    return -1


def _read_record(el: Any, n: int, on_error: ErrorSink | None) -> Article | None:
    """The record's article, or None once its fault is reported: one bad record never costs
    the others of its batch."""
    try:
        return _article(el)
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        pmid = _text(el.find(".//PMID")) or "?"
        message = f"record {n} (PMID {pmid}) skipped: {exc}"
        log.warning("%s", message)
        if on_error is not None:
            on_error(message)
        return None


def _article(rec: Any) -> Article:
    if rec.tag == "PubmedBookArticle":
        return _book(rec)
    # One pass over the children, then dict look-ups: a find() per field would go through
    # lxml's ElementPath each time.
    top = _children(rec) if rec.tag == "PubmedArticle" else None
    cit = top.get("MedlineCitation") if top is not None else rec
    if cit is None:
        raise ValueError("no MedlineCitation")
    c = _children(cit)
    pmid, version = _pmid(c.get("PMID"))
    art = c.get("Article")
    if art is None:
        raise ValueError("no Article element")
    a = _children(art)
    data = top.get("PubmedData") if top is not None else None
    ids = _article_ids(_children(data).get("ArticleIdList") if data is not None else None)
    doi = ids.get("doi") or _elocation_doi(art)
    journal = _children(a["Journal"]) if "Journal" in a else {}
    issue = journal.get("JournalIssue")
    i = _children(issue) if issue is not None else {}
    pub_date, pub_year = _pub_date(i.get("PubDate"))
    abstract = _abstract(a.get("Abstract"))
    vernacular = _clean(a.get("VernacularTitle")) or None
    types = a.get("PublicationTypeList")
    keywords = c.get("KeywordList")
    return Article(
        pmid=pmid,
        version=version,
        title=_clean(a.get("ArticleTitle")) or vernacular or "",
        doi=doi,
        pmcid=ids.get("pmc"),
        vernacular_title=vernacular,
        abstract=abstract,
        authors=_authors(a.get("AuthorList")),
        journal=_text(journal.get("Title")),
        journal_iso=_text(journal.get("ISOAbbreviation")),
        pub_date=pub_date,
        pub_year=pub_year,
        epub_date=_electronic_date(art) if "ArticleDate" in a else None,
        language=_text(a.get("Language")),
        publication_types=tuple(t for t in map(_text, types) if t) if types is not None else (),
        mesh=_mesh(c.get("MeshHeadingList")),
        keywords=tuple(k for k in map(_clean, keywords) if k) if keywords is not None else (),
        corrections=_corrections(c.get("CommentsCorrectionsList")),
        trial_ids=_trial_ids(a.get("DataBankList"), abstract),
        substances=_substances(c.get("ChemicalList"), c.get("SupplMeshList")),
        status=cit.get("Status"),
        volume=_text(i.get("Volume")),
        issue=_text(i.get("Issue")),
        pages=_pages(a.get("Pagination")),
    )


def _pages(pagination: Any) -> str | None:
    """MedlinePgn as printed ("1-10", "e123"); StartPage-EndPage where only those are given."""
    if pagination is None:
        return None
    p = _children(pagination)
    printed = _text(p.get("MedlinePgn"))
    if printed:
        return printed
    start, end = _text(p.get("StartPage")), _text(p.get("EndPage"))
    return f"{start}-{end}" if start and end else start


def _children(el: Any) -> dict[str, Any]:
    """First child element per tag (comments and processing instructions skipped)."""
    out: dict[str, Any] = {}
    for child in el:
        tag = child.tag
        if isinstance(tag, str) and tag not in out:
            out[tag] = child
    return out


def _book(rec: Any) -> Article:
    doc = rec.find("BookDocument")
    if doc is None:
        raise ValueError("no BookDocument")
    pmid, version = _pmid(doc.find("PMID"))
    book = doc.find("Book")
    ids = _article_ids(rec.find("PubmedBookData/ArticleIdList"))
    ids.update({k: v for k, v in _article_ids(doc.find("ArticleIdList")).items() if k not in ids})
    book_title = _clean(book.find("BookTitle")) if book is not None else ""
    pub_date, pub_year = _book_date(doc, book)
    authors = _authors(doc.find("AuthorList"))
    if not authors and book is not None:
        authors = _authors(book.find("AuthorList"))
    abstract = _abstract(doc.find("Abstract"))
    return Article(
        pmid=pmid,
        version=version,
        title=_clean(doc.find("ArticleTitle")) or book_title or "",
        doi=ids.get("doi"),
        pmcid=ids.get("pmc"),
        vernacular_title=_clean(doc.find("VernacularTitle")) or None,
        abstract=abstract,
        authors=authors,
        journal=book_title or None,
        pub_date=pub_date,
        pub_year=pub_year,
        language=_text(doc.find("Language")),
        publication_types=tuple(t for t in (_text(p) for p in doc.iterfind("PublicationType")) if t)
        or ("Book Chapter",),
        keywords=tuple(k for k in (_clean(x) for x in doc.iterfind("KeywordList/Keyword")) if k),
        trial_ids=_trial_ids(None, abstract),
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


def _pmid(el: Any) -> tuple[int, int]:
    """PMID and its version (PubMed keeps versions of a few records, e.g. in PMC-born ones)."""
    text = _text(el)
    # ASCII digits only ("²".isdigit() is true), and few enough for the store's 64-bit column
    # (real PMIDs have 8 digits): anything else is a bad record, reported on its own.
    if not text or not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ValueError(f"PMID {(text or '')[:40]!r} is not a PubMed identifier")
    version = el.get("Version")
    ok = version and version.isascii() and version.isdigit() and len(version) <= 9
    return int(text), int(version) if ok else 1


def _text(el: Any) -> str | None:
    if el is None:
        return None
    text = el.text
    return text.strip() or None if text else None


def _clean(el: Any) -> str:
    """An element's text with inline markup (<i>, <sup>, MathML…) turned into plain text."""
    if el is None:
        return ""
    text = (el.text or "") if len(el) == 0 else "".join(_flatten(el))
    if not text.isascii() or "\n" in text or "  " in text or "\t" in text:
        return " ".join(text.split())  # str.split knows Unicode spaces (NBSP, thin space)
    return text.strip()


def _flatten(el: Any) -> Iterator[str]:
    """The text of `el` and its descendants in document order, without recursion: a record
    with thousands of nested inline tags must not exhaust Python's stack."""
    # Each entry is an element still to open, or a tail string to emit once its element is done.
    todo: list[Any] = [el]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            yield item
            continue
        if item.text:
            tag = item.tag if isinstance(item.tag, str) else ""
            if tag == "sup" or tag == f"{_MATHML}msup":
                yield superscript(item.text)
            elif tag == "sub":
                yield subscript(item.text)
            else:
                yield item.text
        pending: list[Any] = []
        for child in item:
            if isinstance(child.tag, str):
                if child.tag == f"{_MATHML}math":
                    pending.append(child.get("alttext") or _math(child))
                else:
                    pending.append(child)
            if child.tail:
                pending.append(child.tail)
        todo.extend(reversed(pending))


# MathML nested deeper than this is read as its plain text: real formulas nest a dozen levels.
_MATH_DEPTH = 64


def _math(el: Any, depth: int = 0) -> str:
    """MathML as readable text: ³He, x², CO₂. Layout whitespace between elements is dropped."""
    tag = el.tag.removeprefix(_MATHML) if isinstance(el.tag, str) else ""
    kids = [c for c in el if isinstance(c.tag, str)]
    if tag in ("mi", "mn", "mo", "mtext", "ms") or depth > _MATH_DEPTH:
        return "".join(el.itertext())
    if tag == "none" or tag == "mprescripts":
        return ""
    if tag == "msup" and len(kids) == 2:
        return _math(kids[0], depth + 1) + superscript(_math(kids[1], depth + 1))
    if tag == "msub" and len(kids) == 2:
        return _math(kids[0], depth + 1) + subscript(_math(kids[1], depth + 1))
    if tag == "msubsup" and len(kids) == 3:
        return (
            _math(kids[0], depth + 1)
            + subscript(_math(kids[1], depth + 1))
            + superscript(_math(kids[2], depth + 1))
        )
    if tag == "mmultiscripts" and kids:
        split = next((i for i, k in enumerate(kids) if k.tag == f"{_MATHML}mprescripts"), len(kids))
        post, pre = kids[1:split], kids[split + 1 :]

        def scripts(pairs: list[Any]) -> str:
            return "".join(
                subscript(_math(sub, depth + 1)) + superscript(_math(sup, depth + 1))
                for sub, sup in zip(pairs[::2], pairs[1::2], strict=False)
            )

        return scripts(pre) + _math(kids[0], depth + 1) + scripts(post)
    return "".join(_math(k, depth + 1) for k in kids)


def _article_ids(el: Any) -> dict[str, str]:
    ids: dict[str, str] = {}
    if el is not None:
        # A loop over the children with a tag test, not iterchildren("ArticleId"): nearly
        # every child is an ArticleId, so there is little to filter (as in _abstract and
        # _corrections).
        for aid in el:
            if aid.tag != "ArticleId":
                continue
            kind, value = aid.get("IdType"), _text(aid)
            if kind and value and kind not in ids:
                ids[kind] = value
    return ids


def _elocation_doi(art: Any) -> str | None:
    for loc in art.iterfind("ELocationID"):
        if loc.get("EIdType") == "doi" and loc.get("ValidYN", "Y") == "Y":
            return _text(loc)
    return None


def _abstract(el: Any) -> tuple[AbstractSection, ...]:
    if el is None:
        return ()
    sections = []
    for part in el:
        if part.tag != "AbstractText":
            continue
        text = _clean(part)
        if text:
            label = part.get("Label")
            category = part.get("NlmCategory")
            sections.append(
                AbstractSection(label.strip() if label else None, text, category or None)
            )
    return tuple(sections)


# An author list's authors and their name parts, found in one walk in C rather than a loop in
# Python over each author's children, most of them affiliations never read.
_AUTHOR_TAGS = ("Author", "LastName", "ForeName", "Initials", "CollectiveName")


def _authors(el: Any) -> tuple[Author, ...]:
    if el is None:
        return ()
    out: list[Author] = []
    author = None  # the Author whose name parts are being read
    valid = False  # False where NLM itself marked the author's name as wrong (ValidYN="N")
    last = fore = initials = collective = None
    for part in el.iter(*_AUTHOR_TAGS):
        tag = part.tag
        if tag == "Author":
            if part.getparent() is not el:
                continue  # only the list's own authors, as iterchildren("Author") gave them
            if valid:
                _add_author(out, last, fore, initials, collective)
            author = part
            valid = part.get("ValidYN", "Y") == "Y"
            last = fore = initials = collective = None
        elif valid and part.getparent() is author:  # the author's own name parts only
            if tag == "LastName":
                last = part.text
            elif tag == "ForeName":
                fore = part.text
            elif tag == "Initials":
                initials = part.text
            else:
                collective = _clean(part)
    if valid:
        _add_author(out, last, fore, initials, collective)
    return tuple(out)


def _add_author(
    out: list[Author],
    last: str | None,
    fore: str | None,
    initials: str | None,
    collective: str | None,
) -> None:
    if collective:
        out.append(Author(collective_name=collective))
    elif last:
        out.append(
            Author(
                last.strip(),
                (fore and fore.strip()) or None,
                (initials and initials.strip()) or None,
            )
        )


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


_MESH_TAGS = ("MeshHeading", "DescriptorName", "QualifierName")


def _mesh(el: Any) -> tuple[MeshHeading, ...]:
    """The headings, found with their parts in one walk in C (as _authors)."""
    if el is None:
        return ()
    out = []
    heading = None
    name = None
    major = False
    quals: list[str] = []
    for part in el.iter(*_MESH_TAGS):
        tag = part.tag
        if tag == "MeshHeading":
            if part.getparent() is not el:
                continue
            if name:
                out.append(MeshHeading(name.strip(), major, tuple(quals)))
            heading = part
            name = None
            major = False
            quals = []
        elif part.getparent() is heading:
            if tag == "DescriptorName":
                name = part.text
            else:
                q = _text(part)
                if q:
                    quals.append(q)
            major = major or part.get("MajorTopicYN") == "Y"
    if name:
        out.append(MeshHeading(name.strip(), major, tuple(quals)))
    return tuple(out)


def _corrections(el: Any) -> tuple[Correction, ...]:
    if el is None:
        return ()
    out = []
    for c in el:
        if c.tag != "CommentsCorrections":
            continue
        kind = c.get("RefType")
        if kind in _CORRECTION_TYPES:
            parts = _children(c)
            out.append(
                Correction(kind, _text(parts.get("PMID")), _clean(parts.get("RefSource")) or None)
            )
    return tuple(out)


def _trial_ids(banks: Any, abstract: tuple[AbstractSection, ...]) -> tuple[str, ...]:
    ids: dict[str, None] = {}
    if banks is not None:
        for bank in banks.iterchildren("DataBank"):
            if _text(bank.find("DataBankName")) not in TRIAL_REGISTRIES:
                continue  # GEO, PDB, SRA… hold data, not trials
            for acc in bank.iterfind("AccessionNumberList/AccessionNumber"):
                text = _text(acc)
                if text:
                    ids[text] = None
    # Many trials are named only in the abstract ("ClinicalTrials.gov NCT01030861", "ISRCTN
    # 12345678", "EudraCT 2004-000123-45"), in any registry's format.
    if abstract:
        for found in find_ids("\n".join(section.text for section in abstract)):
            ids[found] = None
    return tuple(ids)


def _substances(chemicals: Any, suppl: Any) -> tuple[str, ...]:
    names: dict[str, None] = {}
    if chemicals is not None:
        for chemical in chemicals.iterchildren("Chemical"):
            for name in chemical.iterchildren("NameOfSubstance"):
                text = _text(name)
                if text:
                    names[text] = None
    if suppl is not None:
        for name in suppl.iterchildren("SupplMeshName"):
            text = _text(name)
            if text:
                names[text] = None
    return tuple(names)
