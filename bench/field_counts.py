"""How many records of the shared corpus get what a reader scans for: drug tags (with their
targets), registry links, a conclusion snippet, the design their title states, and an RIS record
Zotero imports right. Run it with the code to compare,
e.g. before and after a change:

    /work/venv/bin/python bench/field_counts.py          # whatever `watcher` that venv imports
    .venv/bin/python bench/field_counts.py
    .venv/bin/python bench/field_counts.py tests/fixtures/field   # any folder of efetch XML

It imports the installed `watcher` (nothing is put on sys.path), renders each record as the digest
does (`present_paper` in snippet mode) and judges the snippet against the XML itself, read here
with lxml, so the yardstick does not depend on the code measured:
- a structured abstract with a section NLM categorised CONCLUSIONS: the snippet is taken from it;
- otherwise: the snippet holds the abstract's last sentence (where unstructured abstracts conclude).
The RIS record (`watcher.digest.ris.ris`) is read the way Zotero's RIS.js reads a journal article:
the date is DA, else PY; M2 lines go to Extra; KW lines are tags. The printed year is the XML's
PubDate (Year, else the first year of MedlineDate).
"""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

from lxml import etree

from watcher.digest.present import present_paper
from watcher.models import Article
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


# NLM's check tags that the issue found in the keywords (Humans, Male, Female) and their kin.
CHECK_TAGS = {"Humans", "Animals", "Male", "Female", "Adult", "Aged", "Middle Aged", "Adolescent"}


def yardsticks(data: bytes) -> dict[int, tuple[list[str], str, str]]:
    """PMID → (texts of its CONCLUSIONS sections, the end of its abstract, its printed year)."""
    out: dict[int, tuple[list[str], str, str]] = {}
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
        printed = cit.findtext(".//PubDate/Year") or cit.findtext(".//PubDate/MedlineDate") or ""
        year = re.search(r"\d{4}", printed)
        out[int(pmid)] = (conclusions, ending, year.group() if year else "")
    return out


def ris_fields(art: Article) -> dict[str, list[str]]:
    """The article's RIS record, tag → values."""
    from watcher.digest.ris import ris

    fields: dict[str, list[str]] = {}
    for line in ris([art]).splitlines():
        tag, _, value = line.partition("  - ")
        fields.setdefault(tag, []).append(value)
    return fields


def ris_counts(art: Article, printed: str, totals: dict[str, int]) -> None:
    f = ris_fields(art)
    py, da = f.get("PY", [""])[0], f.get("DA", [""])[0]
    totals["RIS: PY and DA name one year"] += bool(py) and da[:4] == py
    totals["RIS: Zotero's date (DA, else PY) is the printed year"] += (da or py)[:4] == printed
    totals["RIS: PMID in Zotero's Extra (M2)"] += any(
        v.startswith("PMID: ") for v in f.get("M2", [])
    )
    totals["RIS: keywords with a check tag"] += bool(CHECK_TAGS & set(f.get("KW", [])))


def main() -> int:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS
    import watcher

    totals = dict.fromkeys(
        (
            "records",
            "with an abstract",
            "drug tags",
            "drug tags without a target",
            "registry ids",
            "registry ids linked",
            "conclusion snippet",
            "design read from the title",
            "RIS: PY and DA name one year",
            "RIS: Zotero's date (DA, else PY) is the printed year",
            "RIS: PMID in Zotero's Extra (M2)",
            "RIS: keywords with a check tag",
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
            totals["drug tags without a target"] += any(not m.action for m in drugs)
            totals["registry ids"] += bool(paper.trials)
            totals["registry ids linked"] += any(t.url for t in paper.trials)
            totals["design read from the title"] += any(
                label.endswith("(from title)") for label, _ in paper.badges
            )
            conclusions, ending, printed = sticks.get(art.pmid, ([], "", ""))
            ris_counts(art, printed, totals)
            if not art.abstract:
                continue
            totals["with an abstract"] += 1
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
