"""A fake iCite API (NIH Office of Portfolio Analysis, https://icite.od.nih.gov/api) on 127.0.0.1,
answering from the NIH Open Citation Collection's part of a CitationGraph (tests/fakes/citations.py),
the graph the fake NCBI's elink answers from PMC's part of.

What it imitates, and on what authority (docs/citations.md has the sources):
- GET /api/pubs?pmids=a,b,c[&fl=f1,f2]: {"meta": {"pmids": …[, "fl": …]}, "links": {"self": …},
  "data": [...]}, one object per PMID it holds, NOT in the order asked (pmidcite's note);
  a PMID it does not hold is simply absent from "data" (no error entry, no 404).
- at most `max_pmids` PMIDs a request: 200 in iCite's support page today (1000 on the older
  /api page). What iCite does past it is documented nowhere: `over_limit` chooses "error" (HTTP
  400) or "truncate" (the first `max_pmids` only, silently), so a client can be tested against both.
- `fl` keeps only the named fields, in the order named; unknown names are left out.
- the record's fields as iCite writes them since mid-2025 (support page example, pmidcite 0.1.2):
  booleans for is_research_article/is_clinical/provisional, authors as a list of
  {"lastName", "fullName", "firstName"}, "_id" the PMID as a string, citedByPmidsByYear;
  `cited_by`/`cited_by_clin`/`references` lists of int PMIDs, or null when `null_lists` says so.
- GET /api/pubs/{pmid}: {"data": [record]} (pmidcite 0.1.2: the single-PMID form answers a list).
- faults on demand (tests/fakes/jsonapi.py): status codes with Retry-After, resets, slow, empty,
  cut-off and non-JSON answers; and, when `rate_limit` is set, HTTP 429 past that many requests in
  a second (iCite publishes no limit: the number is the test's).
Not imitated (a 400 that says so): the listing form (limit/offset/year), format=csv, legacy=false.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .citations import CitationGraph
from .jsonapi import FakeJsonApi
from .ncbi import FakeRecord

# iCite's support page, "Bulk Data and API" (support.icite.nih.gov, article 9513563045787).
DOCUMENTED_MAX_PMIDS = 200
# The fields of a record, in the support page's order (its example stops at citation_count; the
# rest are the older /api page's, which the 2025 answers still carry).
FIELDS = (
    "_id",
    "authors",
    "doi",
    "pmid",
    "title",
    "animal",
    "apt",
    "human",
    "citedByPmidsByYear",
    "citedByClinicalArticle",
    "year",
    "journal",
    "is_research_article",
    "relative_citation_ratio",
    "nih_percentile",
    "molecular_cellular",
    "is_clinical",
    "citation_count",
    "citations_per_year",
    "expected_citations_per_year",
    "field_citation_rate",
    "provisional",
    "x_coord",
    "y_coord",
    "cited_by_clin",
    "cited_by",
    "references",
    "last_modified",
)


@dataclass(frozen=True)
class Paper:
    """What iCite says of a paper besides its links (from PubMed, as iCite takes it)."""

    title: str = ""
    year: int | None = None
    journal: str = ""
    doi: str | None = None
    authors: tuple[str, ...] = ()  # "Last F" as PubMed lists them


@dataclass
class FakeICite(FakeJsonApi):
    graph: CitationGraph = field(default_factory=CitationGraph)
    papers: dict[int, Paper] = field(default_factory=dict)
    max_pmids: int = DOCUMENTED_MAX_PMIDS
    over_limit: str = "error"  # or "truncate"
    null_lists: bool = False  # empty cited_by/references/cited_by_clin as null instead of []
    rate_limit: float | None = None
    too_many: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._arrivals: deque[float] = deque()
        self._limit_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return self.root + "/api"

    def hold(self, *pmids: int) -> None:
        """iCite holds these papers' records even though no link touches them yet."""
        self.graph.occ_records.update(pmids)

    def describe(self, records: Iterable[FakeRecord]) -> None:
        """Take title, year, journal, DOI and authors from the fake NCBI's records, as iCite
        takes its metadata from PubMed (this does not make iCite hold them: see `hold`)."""
        for r in records:
            xml = r.xml.decode("utf-8", "replace")
            journal = re.search(r"<ISOAbbreviation>(.*?)</ISOAbbreviation>", xml)
            authors = re.findall(
                r"<LastName>(.*?)</LastName>\s*<ForeName>.*?</ForeName>\s*<Initials>(.*?)</Initials>",
                xml,
            )
            self.papers[r.pmid] = Paper(
                title=r.title,
                year=r.edat.year,
                journal=journal.group(1) if journal else "",
                doi=r.doi,
                authors=tuple(f"{last} {initials}" for last, initials in authors),
            )

    def held(self) -> set[int]:
        return self.graph.pmids("occ")

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, Any]:
        if self._over_rate():
            self.too_many += 1
            return 429, {"error": "Too Many Requests"}
        single = re.fullmatch(r"/api/pubs/(\d+)", path)
        if single:
            pmid = int(single.group(1))
            return 200, {"data": [self.record(pmid)] if pmid in self.held() else []}
        if path != "/api/pubs":
            return 404, {"error": "Not Found"}
        for unsupported in ("format", "legacy"):
            if unsupported in params:
                return 400, f"the fake iCite does not imitate {unsupported}="
        if "pmids" not in params:
            return 400, "the fake iCite imitates pmids= only, not limit/offset/year listings"
        asked = [t.strip() for t in params["pmids"].split(",") if t.strip()]
        if len(asked) > self.max_pmids:
            if self.over_limit == "error":
                return 400, {"error": f"Too many PMIDs: at most {self.max_pmids} per request"}
            asked = asked[: self.max_pmids]
        held = self.held()
        wanted = {int(t) for t in asked if t.isdigit() and int(t) in held}
        fl = [f for f in params.get("fl", "").split(",") if f]
        data = []
        for pmid in sorted(wanted, key=_scramble):
            record = self.record(pmid)
            data.append({f: record[f] for f in fl if f in record} if fl else record)
        meta = {"pmids": params["pmids"]}
        if fl:
            meta["fl"] = params["fl"]
        self_link = f"{self.base_url}/pubs?{urlencode({'pmids': params['pmids']})}"
        return 200, {"meta": meta, "links": {"self": self_link}, "data": data}

    def record(self, pmid: int) -> dict[str, Any]:
        paper = self.papers.get(pmid, Paper())
        cited_by = sorted(self.graph.cited_by(pmid, "occ"), key=_scramble)
        references = sorted(self.graph.references(pmid, "occ"), key=_scramble)
        by_year = [
            {str(c): self.papers[c].year}
            for c in cited_by
            if c in self.papers and self.papers[c].year
        ]
        values: dict[str, Any] = {
            "_id": str(pmid),
            "authors": [
                {
                    "lastName": a.rsplit(" ", 1)[0],
                    "fullName": _full(a),
                    "firstName": a.rsplit(" ", 1)[-1],
                }
                for a in paper.authors
            ],
            "doi": paper.doi,
            "pmid": pmid,
            "title": paper.title,
            "animal": 0,
            "apt": 0.05,
            "human": 1,
            "citedByPmidsByYear": by_year,
            "citedByClinicalArticle": False,
            "year": paper.year,
            "journal": paper.journal,
            "is_research_article": True,
            # With too few citations iCite gives no ratio (provisional or none at all).
            "relative_citation_ratio": None,
            "nih_percentile": None,
            "molecular_cellular": 0,
            "is_clinical": False,
            "citation_count": len(cited_by),
            "citations_per_year": None,
            "expected_citations_per_year": None,
            "field_citation_rate": None,
            "provisional": True,
            "x_coord": 0,
            "y_coord": 1,
            "cited_by_clin": self._list([]),
            "cited_by": self._list(cited_by),
            "references": self._list(references),
            "last_modified": "12/01/2026, 01:32:57",
        }
        return {f: values[f] for f in FIELDS}

    def _list(self, pmids: list[int]) -> list[int] | None:
        return None if (self.null_lists and not pmids) else pmids

    def _over_rate(self) -> bool:
        if self.rate_limit is None:
            return False
        with self._limit_lock:
            now = time.monotonic()
            while self._arrivals and now - self._arrivals[0] >= 1.0:
                self._arrivals.popleft()
            self._arrivals.append(now)
            return len(self._arrivals) > self.rate_limit


def _scramble(pmid: int) -> bytes:
    """A fixed order that is neither the order asked nor PMID order: iCite promises none."""
    return hashlib.sha1(str(pmid).encode()).digest()


def _full(author: str) -> str:
    last, _, first = author.rpartition(" ")
    return f"{last}, {first}" if last else author
