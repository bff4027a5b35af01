"""The digest's papers as RIS, the tagged format Zotero, EndNote and Mendeley import. Pure.

Each field goes in the tag Zotero's importer reads for it (zotero/translators, RIS.js, at commit
c7551c1a4d5b9623273119c7fbadf8735731dc92; tests/test_ris.py holds the mapping relied on), and,
where the RIS specification (Research Information Systems, 2012) names a field of a journal
article for it, in that tag too, for EndNote:

- TI the title; AU one author a line, "Last, First" (a group author alone on its line).
- T2 the journal's full title (Zotero: Publication; EndNote: Journal), J2 its ISO abbreviation
  (Zotero: Journal Abbr).
- PY the printed year, DA the printed issue's date as far as PubMed gives it (2018/05/17,
  2018/05, 2018): Zotero takes DA as the date and PY only when DA is absent, so the two must
  agree. The electronic date goes in ET, the specification's "Epub Date"; Zotero has no field
  for it on a journal article and drops it.
- M2 "PMID: N" and "PMCID: PMC…" lines: Zotero puts M2 in Extra, where it keeps a PMID and a
  PMCID as such lines (its own PubMed importer writes them there). Not AN: Zotero makes that
  "Loc. in Archive". C2 the PMCID too, the specification's PMCID field (Zotero ignores C2).
- KW the author's keywords and the MeSH headings NLM marked as major topics: not the check tags
  (Humans, Male, Adult…) that every record carries.
- DO, AB, LA, UR, and DP (Zotero: Library Catalog) for where the record came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from watcher.models import Article

_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# NLM's check tags: headings added to every record they apply to, whatever its subject
# (https://www.nlm.nih.gov/bsd/indexing/training/CHK_010.html). They are never a record's major
# topic, so the major-topic rule keeps them out already; the list guards a record that says so.
CHECK_TAGS = frozenset(
    {
        "Humans",
        "Animals",
        "Male",
        "Female",
        "Pregnancy",
        "Infant, Newborn",
        "Infant",
        "Child, Preschool",
        "Child",
        "Adolescent",
        "Young Adult",
        "Adult",
        "Middle Aged",
        "Aged",
        "Aged, 80 and over",
        "Cats",
        "Cattle",
        "Chick Embryo",
        "Cricetinae",
        "Dogs",
        "Guinea Pigs",
        "Mice",
        "Rabbits",
        "Rats",
    }
)


def ris(articles: Iterable[Article]) -> str:
    """One record per article, CRLF line ends (as the format was written for)."""
    return "".join(record(a) for a in articles)


def record(a: Article) -> str:
    """One article's record, ending in its ER line."""
    lines: list[tuple[str, str | None]] = [("TY", "BOOK" if a.is_book else "JOUR")]
    for author in a.authors:
        if author.collective_name:
            lines.append(("AU", author.collective_name))
        elif author.last_name:
            first = author.fore_name or author.initials
            lines.append(("AU", f"{author.last_name}, {first}" if first else author.last_name))
    lines += [("TI", a.title), ("T2", a.journal), ("J2", a.journal_iso)]
    lines += [("VL", a.volume), ("IS", a.issue)]
    start, end = pages(a.pages)
    lines += [("SP", start), ("EP", end)]
    lines += [("PY", str(a.pub_year) if a.pub_year else None), ("DA", print_date(a))]
    lines += [("ET", a.epub_date.strftime("%Y/%m/%d") if a.epub_date else None)]
    lines += [("DO", a.doi), ("C2", a.pmcid)]
    lines += [("M2", line) for line in extra(a)]
    if a.abstract:
        lines.append(("AB", " ".join(a.abstract_text.split("\n"))))
    lines += [("KW", k) for k in keywords(a)]
    lines += [("LA", a.language), ("UR", a.url), ("DP", catalogue(a)), ("ER", "")]
    return "".join(f"{tag}  - {_one_line(value)}\r\n" for tag, value in lines if value is not None)


def extra(a: Article) -> list[str]:
    """The lines Zotero keeps in Extra for identifiers it has no field for."""
    out = [f"PMID: {a.pmid}"] if a.pmid is not None else []
    return out + ([f"PMCID: {a.pmcid}"] if a.pmcid else [])


def keywords(a: Article) -> list[str]:
    """The author's keywords, then the major MeSH topics; each once, whatever its case."""
    major = (m.descriptor for m in a.mesh if m.major and m.descriptor not in CHECK_TAGS)
    seen: dict[str, str] = {}
    for k in (*a.keywords, *major):
        seen.setdefault(k.casefold(), k)
    return list(seen.values())


def catalogue(a: Article) -> str | None:
    """Where the record was found, as Zotero's own importers name it."""
    if a.pmid is not None:
        return "PubMed"
    if a.ppr:
        return "Europe PMC"
    return "ClinicalTrials.gov" if a.nct else None


def print_date(a: Article) -> str | None:
    """PubMed's printed date ("2018 May 17", "2019 Spring") as RIS's YYYY/MM/DD, as far as it
    goes: "2018/05/17", "2019"."""
    if not a.pub_year:
        return None
    parts = (a.pub_date or "").split()
    month = _MONTHS.get(parts[1][:3].lower(), 0) if len(parts) > 1 else 0
    if not month:
        return str(a.pub_year)
    day = parts[2] if len(parts) > 2 and parts[2].isdigit() else ""
    return f"{a.pub_year}/{month:02d}" + (f"/{int(day):02d}" if day else "")


def pages(text: str | None) -> tuple[str | None, str | None]:
    """MedlinePgn → (start, end): NLM drops an end page's leading digits ("1023-31" is 1023 to
    1031); a citation manager wants them whole."""
    if not text:
        return None, None
    first = text.split(",")[0].strip()
    start, sep, end = first.partition("-")
    start, end = start.strip(), end.strip()
    if not sep or not end:
        return start or None, None
    if start.isdigit() and end.isdigit() and len(end) < len(start):
        end = start[: len(start) - len(end)] + end
    return start, end


def _one_line(text: str) -> str:
    return " ".join(_CONTROL.sub(" ", text).split())
