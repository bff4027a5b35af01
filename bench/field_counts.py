"""How many records of the shared corpus get what a reader scans for: drug tags, registry links
and a conclusion snippet. Run it with the code to compare, e.g. before and after a change:

    /work/venv/bin/python bench/field_counts.py          # whatever `watcher` that venv imports
    .venv/bin/python bench/field_counts.py
    .venv/bin/python bench/field_counts.py tests/fixtures/field   # any folder of efetch XML

It imports the installed `watcher` (nothing is put on sys.path), renders each record as the digest
does (`present_paper` in snippet mode) and judges the snippet against the XML itself, read here
with lxml, so the yardstick does not depend on the code measured:
- a structured abstract with a section NLM categorised CONCLUSIONS: the snippet is taken from it;
- otherwise: the snippet holds the abstract's last sentence (where unstructured abstracts conclude).
"""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

from lxml import etree

from watcher.digest import present_paper
from watcher.sources.pubmed_xml import parse_articles

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


def efetch_files(corpus: Path) -> list[Path]:
    """The efetch files the corpus README lists; in a folder without one, every *.xml file."""
    readme = corpus / "README.md"
    if not readme.exists():
        return sorted(corpus.glob("*.xml"))
    rows = re.findall(r"^\| (\S+) \| efetch-pubmed-xml \|", readme.read_text(), re.M)
    return [corpus / name for name in rows]


def read(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def yardsticks(data: bytes) -> dict[int, tuple[list[str], str]]:
    """PMID → (texts of its CONCLUSIONS sections, the end of its abstract)."""
    out: dict[int, tuple[list[str], str]] = {}
    root = etree.fromstring(data, etree.XMLParser(huge_tree=True, resolve_entities=False))
    for cit in root.iter("MedlineCitation", "BookDocument"):
        pmid = cit.findtext("PMID")
        if not pmid or not pmid.strip().isdigit():
            continue
        parts = cit.findall(".//Abstract/AbstractText")
        texts = [" ".join("".join(p.itertext()).split()) for p in parts]
        conclusions = [
            t for p, t in zip(parts, texts, strict=True) if p.get("NlmCategory") == "CONCLUSIONS"
        ]
        ending = " ".join(texts)[-40:] if texts else ""
        out[int(pmid)] = (conclusions, ending)
    return out


def main() -> int:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS
    import watcher

    totals = dict.fromkeys(
        (
            "records",
            "with an abstract",
            "drug tags",
            "registry ids",
            "registry ids linked",
            "conclusion snippet",
        ),
        0,
    )
    per_kind = {"structured (CONCLUSIONS)": [0, 0], "other abstracts": [0, 0]}
    for path in efetch_files(corpus):
        data = read(path)
        sticks = yardsticks(data)
        for art in parse_articles(data):
            paper = present_paper(art, ("x",), "snippet")
            totals["records"] += 1
            drugs = getattr(paper, "drugs", None) or getattr(paper, "mabs", ())
            totals["drug tags"] += bool(drugs)
            totals["registry ids"] += bool(paper.trials)
            totals["registry ids linked"] += any(t.url for t in paper.trials)
            if not art.abstract:
                continue
            totals["with an abstract"] += 1
            conclusions, ending = sticks.get(art.pmid, ([], ""))
            shown = " ".join(text for _, text in paper.abstract)
            if conclusions:
                ok = any(shown[:60] in c for c in conclusions) if shown else False
                kind = "structured (CONCLUSIONS)"
            else:
                ok = bool(ending) and ending[-25:] in shown
                kind = "other abstracts"
            per_kind[kind][0] += 1
            per_kind[kind][1] += ok
            totals["conclusion snippet"] += ok
    print(f"code: {Path(watcher.__file__).parent}")
    print("| figure | records |")
    print("|---|---|")
    for name, n in totals.items():
        print(f"| {name} | {n} |")
    for kind, (n, ok) in per_kind.items():
        print(f"| conclusion snippet, {kind} | {ok} of {n} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
