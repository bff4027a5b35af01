"""A fake Europe PMC REST search (https://europepmc.org/RestfulWebService#!/Europe32PMC32Articles32RESTful32API/search)
on 127.0.0.1: GET /search with query, format=json, resultType=core, pageSize and
cursorMark/nextCursorMark paging (the last page gives back the cursor it was asked with).

What it understands of the query syntax is what the watcher sends: `(TERMS) AND SRC:PPR AND
(FIRST_IDATE:[a TO b] OR UPDATE_DATE:[a TO b])`, where TERMS are words or "phrases" joined by OR,
matched case-insensitively against title and abstract; and `(EXT_ID:x AND SRC:PPR) OR …` for
records by id. The first-index and update dates are the fake's own bookkeeping (the core JSON
does not need to carry them). Records are core-result dicts: real ones from Europe PMC's own
answers (../shared/corpus/registries, corpus_records) or written ones (tests/fixtures/registries).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from .jsonapi import FakeJsonApi

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "registries"
# The shared corpus beside the repository (tests/conftest.py's CORPUS).
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "registries"
_WINDOW = re.compile(
    r"\s*AND\s*\(FIRST_IDATE:\[(\S+) TO (\S+)\] OR UPDATE_DATE:\[(\S+) TO (\S+)\]\)\s*$"
)
_IDS = re.compile(r"EXT_ID:(\w+) AND SRC:(\w+)")


@dataclass
class Preprint:
    record: dict[str, Any]  # a resultType=core result
    first_index: date
    updated: date | None = None

    @property
    def text(self) -> str:
        return f"{self.record.get('title', '')} {self.record.get('abstractText', '')}".lower()


def load_record(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def results(path: Path) -> list[dict[str, Any]]:
    """The results of a saved answer (resultList.result), or of a file that lists them."""
    data = json.loads(path.read_text())
    found: list[dict[str, Any]] = data if isinstance(data, list) else data["resultList"]["result"]
    return found


def corpus_files() -> list[Path]:
    """Europe PMC's real `core` answers in the shared corpus."""
    return sorted(CORPUS.glob("europepmc-*.json"))


def corpus_records() -> list[dict[str, Any]]:
    """Every result of those answers, as Europe PMC sent it."""
    return [r for path in corpus_files() for r in results(path)]


@dataclass
class FakeEuropePmc(FakeJsonApi):
    records: list[Preprint] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.root + "/europepmc/webservices/rest/"

    def add(self, record: dict[str, Any], first_index: date, updated: date | None = None) -> None:
        self.records.append(Preprint(record, first_index, updated))

    def add_all(self, records: list[dict[str, Any]], first_index: date) -> None:
        for record in records:
            self.add(record, first_index)

    def update(self, record_id: str, changes: dict[str, Any], when: date) -> None:
        for p in self.records:
            if p.record.get("id") == record_id:
                p.record = {**p.record, **changes}
                p.updated = when

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, Any]:
        if not path.endswith("/search"):
            return 404, {"errMsg": "not found"}
        query = params.get("query", "")
        hits = self.matching(query)
        size = int(params.get("pageSize", "25"))
        cursor = params.get("cursorMark", "*")
        start = 0 if cursor == "*" else int(base64.b64decode(cursor))
        page = hits[start : start + size]
        following = (
            base64.b64encode(str(start + size).encode()).decode()
            if start + size < len(hits)
            else cursor
        )
        return 200, {
            "version": "6.9",
            "hitCount": len(hits),
            "nextCursorMark": following,
            "request": {
                "queryString": query,
                "resultType": params.get("resultType", "lite"),
                "cursorMark": cursor,
                "pageSize": size,
                "sort": "",
                "synonym": False,
            },
            "resultList": {"result": [p.record for p in page]},
        }

    def matching(self, query: str) -> list[Preprint]:
        ids = _IDS.findall(query)
        if ids:
            wanted = {(i.upper(), s.upper()) for i, s in ids}
            return [p for p in self.records if (str(p.record["id"]), p.record["source"]) in wanted]
        window = _WINDOW.search(query)
        if window:
            query = query[: window.start()]
        src = re.search(r"AND SRC:(\w+)$", query)
        if src:
            query = query[: src.start()]
        terms = [t.strip(' ()"').lower() for t in re.split(r"\bOR\b", query)]
        out = []
        for p in self.records:
            if src and p.record.get("source") != src.group(1):
                continue
            if window and not _in_window(p, *(date.fromisoformat(d) for d in window.groups())):
                continue
            if any(t and t in p.text for t in terms):
                out.append(p)
        return out


def _in_window(p: Preprint, a: date, b: date, c: date, d: date) -> bool:
    return a <= p.first_index <= b or (p.updated is not None and c <= p.updated <= d)
