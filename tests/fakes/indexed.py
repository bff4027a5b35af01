"""The fake NCBI for rounds of thousands of subscriptions. FakeNCBI matches every record against
each search (its matcher is thorough, not fast): at 5,000 searches over 10,000 records the fake,
not the watcher, would set the pace. Here each search names one topic word (topic00042x) and
only the records that hold it are matched, by the same matcher: the same answer, sooner.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from .ncbi import FakeNCBI, FakeRecord

TOPIC = re.compile(r"topic\d+x")


def topic(n: int) -> str:
    """The word of topic `n`: what a test's subscription searches and its papers hold."""
    return f"topic{n:05d}x"


@dataclass
class IndexedNCBI(FakeNCBI):
    by_topic: dict[str, set[int]] = field(default_factory=dict)

    def add(self, records: Iterable[FakeRecord]) -> None:
        records = list(records)
        super().add(records)
        for r in records:
            for word in set(TOPIC.findall(r.text)):
                self.by_topic.setdefault(word, set()).add(r.pmid)

    def search(
        self,
        term: str,
        datetype: str,
        mindate: date | None,
        maxdate: date | None,
        within: set[int] | None = None,
    ) -> tuple[list[int], list[str]]:
        word = TOPIC.search(term)
        if within is None and word:
            within = self.by_topic.get(word.group(0), set())
        return super().search(term, datetype, mindate, maxdate, within)
