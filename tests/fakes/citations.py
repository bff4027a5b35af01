"""The world's citation and similarity links, as the fake NCBI (elink) and the fake iCite see them.

One graph serves both fakes so that tests can merge the two sources, and each source sees only its
own part of it, as in the world (docs/citations.md):
- `pmc`: links found in PubMed Central full texts, what elink's `pubmed_pubmed_citedin` and
  `pubmed_pubmed_refs` answer (updated daily, only papers whose citing text is in PMC);
- `occ`: links in the NIH Open Citation Collection, what iCite's `cited_by` and `references`
  answer (Medline, PMC, Crossref and machine-read full texts; a monthly snapshot).
`cite()` puts a link in both unless told otherwise, so a test can make a link known to one only.
Similar articles (`pubmed_pubmed`) are computed neighbours with an integer score; PubMed gives a
record itself as its first neighbour, at the largest score (2147483647 in real answers).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

SELF_SCORE = 2147483647  # what a record scores against itself in real neighbor_score answers

SOURCES = ("pmc", "occ")


@dataclass
class CitationGraph:
    pmc: set[tuple[int, int]] = field(default_factory=set)  # (citing, cited)
    occ: set[tuple[int, int]] = field(default_factory=set)  # (citing, cited)
    scores: dict[int, dict[int, int]] = field(default_factory=dict)  # pmid -> neighbour -> score
    # PMIDs iCite holds a record for without any link (a paper nobody cites yet).
    occ_records: set[int] = field(default_factory=set)

    def cite(
        self, citing: int, cited: int | Iterable[int], *, pmc: bool = True, occ: bool = True
    ) -> None:
        """`citing` cites `cited` (one PMID or several), as PMC and/or the OCC know it."""
        for c in [cited] if isinstance(cited, int) else cited:
            assert c != citing, f"PMID {citing} cannot cite itself"
            if pmc:
                self.pmc.add((citing, c))
            if occ:
                self.occ.add((citing, c))

    def uncite(self, citing: int, cited: int, *, pmc: bool = True, occ: bool = True) -> None:
        """The link is gone from a source (a retracted reference list, a corrected record)."""
        if pmc:
            self.pmc.discard((citing, cited))
        if occ:
            self.occ.discard((citing, cited))

    def similar(self, a: int, b: int, score: int, *, symmetric: bool = True) -> None:
        """PubMed computes `b` as a neighbour of `a` (and `a` of `b`) with this score."""
        assert a != b and 0 < score < SELF_SCORE, (a, b, score)
        self.scores.setdefault(a, {})[b] = score
        if symmetric:
            self.scores.setdefault(b, {})[a] = score

    def edges(self, source: str) -> set[tuple[int, int]]:
        assert source in SOURCES, source
        return self.pmc if source == "pmc" else self.occ

    def cited_by(self, pmid: int, source: str) -> set[int]:
        return {citing for citing, cited in self.edges(source) if cited == pmid}

    def references(self, pmid: int, source: str) -> set[int]:
        return {cited for citing, cited in self.edges(source) if citing == pmid}

    def neighbours(self, pmid: int) -> dict[int, int]:
        """The record's computed neighbours and their scores (without the record itself)."""
        return dict(self.scores.get(pmid, {}))

    def pmids(self, source: str) -> set[int]:
        """Every PMID the source has a record of: both ends of its links (and, for the OCC,
        the records it holds without links)."""
        found = {p for edge in self.edges(source) for p in edge}
        return found | self.occ_records if source == "occ" else found

    def linked(self) -> set[int]:
        """Every PMID that takes part in a citation or similarity link."""
        found = self.pmids("pmc") | self.pmids("occ") | set(self.scores)
        return found | {n for ns in self.scores.values() for n in ns}
