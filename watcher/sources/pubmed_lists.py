"""The lists a PubMed record carries, each read from its element: abstract sections with NLM's
categories, authors, MeSH headings, the CommentsCorrections a reader must not miss, trial
registry numbers (DataBankList and the abstract's text), substances. Pure."""

from __future__ import annotations

from typing import Any

from watcher.models import AbstractSection, Author, Correction, MeshHeading
from watcher.sources.pubmed_elements import children, clean, text_of
from watcher.text.trial_numbers import find_ids

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


def abstract(el: Any) -> tuple[AbstractSection, ...]:
    if el is None:
        return ()
    sections = []
    for part in el:
        if part.tag != "AbstractText":
            continue
        text = clean(part)
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


def authors(el: Any) -> tuple[Author, ...]:
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
                collective = clean(part)
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


_MESH_TAGS = ("MeshHeading", "DescriptorName", "QualifierName")


def mesh(el: Any) -> tuple[MeshHeading, ...]:
    """The headings, found with their parts in one walk in C (as authors)."""
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
                q = text_of(part)
                if q:
                    quals.append(q)
            major = major or part.get("MajorTopicYN") == "Y"
    if name:
        out.append(MeshHeading(name.strip(), major, tuple(quals)))
    return tuple(out)


def corrections(el: Any) -> tuple[Correction, ...]:
    if el is None:
        return ()
    out = []
    for c in el:
        if c.tag != "CommentsCorrections":
            continue
        kind = c.get("RefType")
        if kind in _CORRECTION_TYPES:
            parts = children(c)
            out.append(
                Correction(kind, text_of(parts.get("PMID")), clean(parts.get("RefSource")) or None)
            )
    return tuple(out)


def trial_ids(banks: Any, abstract: tuple[AbstractSection, ...]) -> tuple[str, ...]:
    ids: dict[str, None] = {}
    if banks is not None:
        for bank in banks.iterchildren("DataBank"):
            if text_of(bank.find("DataBankName")) not in TRIAL_REGISTRIES:
                continue  # GEO, PDB, SRA… hold data, not trials
            for acc in bank.iterfind("AccessionNumberList/AccessionNumber"):
                text = text_of(acc)
                if text:
                    ids[text] = None
    # Many trials are named only in the abstract ("ClinicalTrials.gov NCT01030861", "ISRCTN
    # 12345678", "EudraCT 2004-000123-45"), in any registry's format.
    if abstract:
        for found in find_ids("\n".join(section.text for section in abstract)):
            ids[found] = None
    return tuple(ids)


def substances(chemicals: Any, suppl: Any) -> tuple[str, ...]:
    names: dict[str, None] = {}
    if chemicals is not None:
        for chemical in chemicals.iterchildren("Chemical"):
            for name in chemical.iterchildren("NameOfSubstance"):
                text = text_of(name)
                if text:
                    names[text] = None
    if suppl is not None:
        for name in suppl.iterchildren("SupplMeshName"):
            text = text_of(name)
            if text:
                names[text] = None
    return tuple(names)
