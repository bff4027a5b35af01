"""iCite (NIH Office of Portfolio Analysis): who cites a paper, from the NIH Open Citation
Collection (Medline, PMC, Crossref and open full texts; refreshed monthly). The source NCBI's own
EDirect reads for `elink -cited`. What the API accepts and answers is docs/citations.md's account.

API: https://icite.od.nih.gov/api; support page "Bulk Data and API" (at most 200 PMIDs a request).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from watcher.errors import SourceError
from watcher.sources.http import Answer, Http
from watcher.sources.json_api import json_object, listed

log = logging.getLogger(__name__)

# iCite's support page today: "request up to 200 at a time" (the older API page said 1,000;
# pmidcite 0.3.0, Dec 2025: "NIH-OCC documentation lowered max PMIDs to 200").
MAX_PMIDS = 200
SERVICE = "iCite"


@dataclass
class CitedBy:
    """What iCite says cites each paper it holds, and the papers it holds no record of."""

    citing: dict[int, set[int]] = field(default_factory=dict)
    unknown: list[int] = field(default_factory=list)


class ICite:
    def __init__(self, http: Http, base_url: str, *, rate: float) -> None:
        self.http = http
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.rate = rate
        self._limited = False

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc

    def cited_by(self, pmids: Sequence[int]) -> CitedBy:
        """The citing papers of each of `pmids`, MAX_PMIDS a request. A PMID iCite does not
        hold is simply absent from its answer (no error): it is listed in `unknown`, which is
        not "uncited" (iCite lags PubMed by about a month)."""
        if not self._limited:
            # Set at the first request: every source is built in every process.
            self.http.set_rate(urlsplit(self.base_url).hostname or "", self.rate)
            self._limited = True
        out = CitedBy()
        wanted = list(dict.fromkeys(pmids))
        for i in range(0, len(wanted), MAX_PMIDS):
            batch = wanted[i : i + MAX_PMIDS]
            params = {"pmids": ",".join(map(str, batch)), "fl": "pmid,cited_by,cited_by_clin"}
            got = self.http.call(self.base_url + "pubs", _read, params=params, what="iCite pubs")
            for pmid in batch:
                if pmid in got:
                    out.citing[pmid] = got[pmid]
                else:
                    out.unknown.append(pmid)
        return out


def _read(answer: Answer) -> dict[int, set[int]]:
    """PMID → citing PMIDs. The records come in no promised order (keyed by `pmid`); a list
    may be null or missing since iCite's 2025 change; the clinical citing papers are taken with
    the others (pmidcite counts the union)."""
    data = json_object(answer, SERVICE)
    out: dict[int, set[int]] = {}
    for record in listed(data, "data", SERVICE):
        if not isinstance(record, dict):
            raise SourceError("iCite's answer lists a record that is not an object")
        pmid = _pmid(record.get("pmid"))
        if pmid is None:
            continue
        citing: set[int] = set()
        for name in ("cited_by", "cited_by_clin"):
            for value in record.get(name) or []:
                got = _pmid(value)
                if got is not None and got != pmid:
                    citing.add(got)
        out[pmid] = citing
    return out


def _pmid(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None
