"""What the watcher keeps of the shared registry answers (../shared/corpus/registries): every
Europe PMC and ClinicalTrials.gov file, read with the checkout's own readers. Run it with the
code to compare, e.g. before and after a change:

    /work/base/.venv/bin/python bench/registry_fields.py   # whatever `watcher` that venv imports
    .venv/bin/python bench/registry_fields.py
    .venv/bin/python bench/registry_fields.py FOLDER        # any folder of such answers

It imports the installed `watcher` (nothing is put on sys.path) and uses only what every version
since the registries were added has: europepmc.parse_record, clinicaltrials.parse_study and
announcement, and the Article's fields, each read where it exists (an older Article without a
field counts 0). Per file:

- records read: results read, of those the file holds (a refused one is counted out);
- abstract characters kept: of the source text's, where the source text is the abstract with
  its tags removed by the standard library's HTML parser and its entities decoded, the kept text
  the sections' labels and texts; both compared as a reader sees them (NFKC, so H₂S is H2S;
  whitespace and colons aside: a heading's colon is its label's), by difflib's matching blocks;
- abstracts in sections: abstracts read as more than one section, of those with an abstract;
- volume / issue / pages, MeSH: records with the field filled;
- corrections linked: records naming another record as PubMed's CommentsCorrections do (an
  erratum, retraction, expression of concern, update or comment, by PMID) or a preprint and its
  journal version;
- trial phases read / shown: studies whose state has phases (a field `phases` or `phase`, where
  the model has one) / whose digest entry (the announcement) says "Phase".
"""

from __future__ import annotations

import difflib
import json
import sys
import unicodedata
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from watcher.errors import RecordError
from watcher.sources.clinicaltrials import announcement, parse_study
from watcher.sources.europepmc import parse_record

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "registries"
COLUMNS = (
    "file",
    "records read",
    "abstract characters kept",
    "abstracts in sections",
    "volume / issue / pages",
    "MeSH",
    "corrections linked",
    "trial phases read / shown",
)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def source_text(html: str) -> str:
    """The abstract as written, tags removed by a real HTML parser, entities decoded."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def visible(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split()).replace(":", "")


def kept_of(source: str, kept: str) -> int:
    """How many of the source's characters the kept text holds, in order."""
    matcher = difflib.SequenceMatcher(None, source, kept, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks())


def europepmc_results(data: Any) -> list[Any]:
    if isinstance(data, list):
        return data
    found = ((data or {}).get("resultList") or {}).get("result")
    return found if isinstance(found, list) else [data]


def studies(data: Any) -> list[Any]:
    """A file's studies: an API v2 study, or the classic API's FullStudiesResponse."""
    classic = data.get("FullStudiesResponse") if isinstance(data, dict) else None
    if isinstance(classic, dict):
        return [s.get("Study", s) for s in classic.get("FullStudies") or []]
    return [data]


Counts = dict[str, int]


def europepmc_counts(data: Any) -> Counts:
    records = europepmc_results(data)
    n: Counts = dict.fromkeys(
        ("records", "read", "source", "kept", "abstracts", "sectioned", "mesh", "linked"), 0
    )
    n.update(volume=0, issue=0, pages=0, records=len(records))
    for record in records:
        try:
            art = parse_record(record)
        except RecordError:
            continue
        n["read"] += 1
        for name in ("volume", "issue", "pages", "mesh"):
            n[name] += bool(getattr(art, name, None))
        n["linked"] += linked(art)
        html = record.get("abstractText") if isinstance(record, dict) else None
        if not isinstance(html, str) or not html.strip():
            continue
        sections = getattr(art, "abstract", ())
        n["abstracts"] += 1
        n["sectioned"] += len(sections) > 1
        source = visible(source_text(html))
        n["source"] += len(source)
        n["kept"] += kept_of(source, visible("".join((s.label or "") + s.text for s in sections)))
    return n


def linked(art: Any) -> bool:
    named = any(getattr(c, "pmid", None) for c in getattr(art, "corrections", ()))
    versions = getattr(art, "published_pmid", None) or getattr(art, "preprints", ())
    return bool(named or versions)


def trials_counts(data: Any) -> Counts:
    found = studies(data)
    n: Counts = {"records": len(found), "read": 0, "phases": 0, "shown": 0}
    for study in found:
        try:
            state = parse_study(study)
        except RecordError:
            continue
        n["read"] += 1
        n["phases"] += bool(getattr(state, "phases", None) or getattr(state, "phase", None))
        n["shown"] += "phase" in _shown(announcement(state)).lower()
    return n


def _shown(art: Any) -> str:
    return " ".join(str(getattr(art, f, None) or "") for f in ("title", "pub_date", "journal"))


def row(name: str, n: Counts) -> list[str]:
    read = f"{n['read']} of {n['records']}"
    if "phases" in n:
        return [name, read, "—", "—", "—", "—", "—", f"{n['phases']} / {n['shown']}"]
    lost = n["source"] - n["kept"]
    return [
        name,
        read,
        f"{n['kept']:,} of {n['source']:,} ({lost:,} lost)",
        f"{n['sectioned']} of {n['abstracts']}",
        f"{n['volume']} / {n['issue']} / {n['pages']}",
        str(n["mesh"]),
        str(n["linked"]),
        "—",
    ]


def rows(folder: Path) -> Iterator[list[str]]:
    """A row per file, then each registry's totals."""
    totals: dict[str, tuple[int, Counts]] = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        if path.name.startswith("europepmc"):
            registry, n = "Europe PMC", europepmc_counts(data)
        elif path.name.startswith("ctgov"):
            registry, n = "ClinicalTrials.gov", trials_counts(data)
        else:
            continue
        yield row(path.name, n)
        files, total = totals.get(registry, (0, dict.fromkeys(n, 0)))
        totals[registry] = (files + 1, {k: total[k] + v for k, v in n.items()})
    for registry, (files, total) in totals.items():
        yield row(f"**{registry}, {files} file{'s' * (files != 1)}**", total)


def main() -> int:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS
    import watcher

    print(f"code: {Path(watcher.__file__).parent}")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows(folder):
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
