"""The digest's papers as RIS, the tagged format Zotero, EndNote and Mendeley import. Pure.

Tags as the RIS specification (Research Information Systems, 2012) and Zotero's importer read
them: https://en.wikipedia.org/wiki/RIS_(file_format).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from watcher.models import Article

MEDIA_TYPE = "application/x-research-info-systems"
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def ris(articles: Iterable[Article]) -> str:
    """One record per article, CRLF line ends (as the format was written for)."""
    return "".join(_record(a) for a in articles)


def _record(a: Article) -> str:
    lines: list[tuple[str, str | None]] = [("TY", "BOOK" if a.is_book else "JOUR")]
    for author in a.authors:
        if author.collective_name:
            lines.append(("AU", author.collective_name))
        elif author.last_name:
            first = author.fore_name or author.initials
            lines.append(("AU", f"{author.last_name}, {first}" if first else author.last_name))
    lines.append(("TI", a.title))
    if a.journal:
        lines.append(("T2", a.journal))
    if a.journal_iso or a.journal:
        lines.append(("JO", a.journal_iso or a.journal or ""))
    lines += [("VL", a.volume), ("IS", a.issue)]
    start, end = pages(a.pages)
    lines += [("SP", start), ("EP", end)]
    if a.pub_year:
        lines.append(("PY", str(a.pub_year)))
    lines.append(("DA", a.epub_date.strftime("%Y/%m/%d") if a.epub_date else print_date(a)))
    lines += [("DO", a.doi), ("AN", str(a.pmid) if a.pmid is not None else None)]
    if a.abstract:
        lines.append(("AB", " ".join(a.abstract_text.split("\n"))))
    lines += [("KW", k) for k in a.keywords]
    lines += [("KW", m.descriptor) for m in a.mesh]
    lines += [("LA", a.language), ("UR", a.url), ("ER", "")]
    return "".join(f"{tag}  - {_one_line(value)}\r\n" for tag, value in lines if value is not None)


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
