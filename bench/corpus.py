"""Build large efetch files from the real records in ../shared/corpus, each with a fresh PMID."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
OUT = Path(__file__).resolve().parent / "out"
_RECORD = re.compile(
    rb"<PubmedArticle>.*?</PubmedArticle>|<MedlineCitation .*?</MedlineCitation>", re.S
)
_PMID = re.compile(rb'<PMID Version="(\d+)">\d+</PMID>')
HEAD = (
    b'<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, '
    b'1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
    b"<PubmedArticleSet>\n"
)


# Biopython validates element placement against the DTD named in the DOCTYPE; records written
# under DTDs before 2018 (Affiliation directly in Author…) break it, so the shared pool holds the
# records of the 2018-2025 DTDs only, for every contender alike.
_MODERN_DTD = re.compile(rb"pubmed_(1[89]|2\d)0101\.dtd")


def real_records() -> list[bytes]:
    """Every PubmedArticle of the corpus's modern-DTD efetch files."""
    if not CORPUS.is_dir():
        raise SystemExit(f"the shared corpus is not at {CORPUS}")
    out = []
    for path in sorted(CORPUS.glob("*.xml*")):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        if b"<PubmedArticleSet" not in data[:3000] or not _MODERN_DTD.search(data[:3000]):
            continue
        for m in _RECORD.finditer(data):
            rec = m.group()
            out.append(
                rec
                if rec.startswith(b"<PubmedArticle>")
                else b"<PubmedArticle>" + rec + b"</PubmedArticle>"
            )
    return out


def efetch_file(n: int, start_pmid: int = 90_000_001) -> Path:
    """An n-record PubmedArticleSet of real records renumbered from `start_pmid` (cached)."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"efetch-{n}.xml"
    if path.exists():
        return path
    pool = real_records()
    with path.open("wb") as f:
        f.write(HEAD)
        for i in range(n):
            rec = _PMID.sub(
                lambda m, i=i: b'<PMID Version="%s">%d</PMID>' % (m.group(1), start_pmid + i),
                pool[i % len(pool)],
                count=1,
            )
            f.write(rec + b"\n")
        f.write(b"</PubmedArticleSet>\n")
    return path


def efetch_batches(n: int, size: int = 500, gz: bool = False) -> list[Path]:
    """The records of efetch_file(n) as efetch answers them: bodies of `size` records each,
    one file per body (gzipped too with `gz`, for parsers that only read .gz files)."""
    folder = OUT / f"efetch-{n}-by-{size}"
    if not folder.is_dir():
        data = efetch_file(n).read_bytes()
        records = [m.group() for m in _RECORD.finditer(data)]
        folder.mkdir()
        for i in range(0, len(records), size):
            body = HEAD + b"\n".join(records[i : i + size]) + b"\n</PubmedArticleSet>\n"
            (folder / f"{i // size:04d}.xml").write_bytes(body)
    paths = sorted(folder.glob("*.xml"))
    if gz:
        for p in paths:
            packed = p.with_name(p.name + ".gz")
            if not packed.exists():
                packed.write_bytes(gzip.compress(p.read_bytes(), compresslevel=1))
        return [p.with_name(p.name + ".gz") for p in paths]
    return paths
