"""PubMed XML's byte-level pre-pass: the parts of an efetch body no field comes from, found
by bytes.find and cut before lxml sees the bytes (ReferenceLists, History, NLM's processing
dates, grants, MedlineJournalInfo). Pure."""

from __future__ import annotations

import re


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
