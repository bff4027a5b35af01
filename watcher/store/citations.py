"""The links of followed papers each subscription has seen (the `citation_links` table): a poll
announces the papers of links it had not seen, and keeps every link it saw; a digest reads which
followed papers each of its papers cites or resembles (issue 27)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select

from watcher import schema as db
from watcher.identity import ItemKey, pmid_key, pmid_of
from watcher.store.engine import CHUNK, Database, chunks, translated_errors
from watcher.subscriptions import Subscription

TYPE_CHECKING = False
if TYPE_CHECKING:  # sources/base.py reads PubMed XML: `watcher status` must not load lxml
    from watcher.sources.base import CitationLink

LinkKey = tuple[str, int, int]  # kind, followed, pmid
# A followed paper's row with this as the far end says the subscription has taken stock of its
# links (its first poll): from then on, a link not seen is news.
_TAKEN = 0


class Citations:
    def __init__(self, database: Database) -> None:
        self.db = database

    @translated_errors
    def seen(self, subscription: str) -> set[LinkKey]:
        """Every link the subscription has seen."""
        c = db.citation_links.c
        query = select(c.kind, c.followed, c.pmid).where(
            c.subscription == subscription, c.pmid != _TAKEN
        )
        with self.db.engine.connect() as conn:
            return {(k, int(f), int(p)) for k, f, p in conn.execute(query)}

    @translated_errors
    def taken(self, subscription: str) -> set[tuple[str, int]]:
        """The (kind, followed) whose links the subscription has taken stock of."""
        c = db.citation_links.c
        query = select(c.kind, c.followed).where(c.subscription == subscription, c.pmid == _TAKEN)
        with self.db.engine.connect() as conn:
            return {(k, int(f)) for k, f in conn.execute(query)}

    @translated_errors
    def record(
        self,
        subscription: str,
        links: Sequence[CitationLink],
        now: datetime,
        sub: Subscription | None = None,
    ) -> int:
        """Keep `links` as seen (those seen already are left as they were), and the papers `sub`
        follows as taken stock of; how many links were new."""
        found = [(x.kind, x.followed, x.pmid, x.score) for x in links]
        marks = [] if sub is None else [(k, p, _TAKEN, None) for k, p in _followed(sub)]
        rows = [
            dict(subscription=subscription, kind=k, followed=f, pmid=p, score=s, seen_at=now)
            for k, f, p, s in [*found, *marks]
        ]
        before = len(self.seen(subscription))
        with self.db.engine.begin() as conn:
            for part in chunks(rows):
                conn.execute(self.db.insert(db.citation_links).on_conflict_do_nothing(), part)
        return len(self.seen(subscription)) - before

    def news(
        self, sub: Subscription, items: Sequence[ItemKey], links: Sequence[CitationLink]
    ) -> list[ItemKey]:
        """The papers of `links` the subscription had not seen, not already in `items` (a
        first poll announces only recent ones: sources/following.py). A paper added to `cites`
        or `similar` since the first poll starts from what exists: its links are kept as seen,
        and only those after are news."""
        seen, taken = self.seen(sub.name), self.taken(sub.name)
        skip = set(items) | {pmid_key(p) for p in sub.followed}
        new = [
            pmid_key(x.pmid)
            for x in links
            if (x.kind, x.followed) in taken and (x.kind, x.followed, x.pmid) not in seen
        ]
        return [i for i in dict.fromkeys(new) if i not in skip]

    @translated_errors
    def of_items(
        self, items: Iterable[ItemKey], subscriptions: Sequence[str]
    ) -> dict[ItemKey, list[tuple[str, int]]]:
        """Item → (kind, followed PMID) for each link of those subscriptions it is the far end
        of: "cites" first, then "similar", each in PMID order."""
        by_pmid = {p: i for i in items if (p := pmid_of(i)) is not None}
        out: dict[ItemKey, set[tuple[str, int]]] = {}
        c = db.citation_links.c
        with self.db.engine.connect() as conn:
            for part in chunks(list(by_pmid), CHUNK):
                query = select(c.pmid, c.kind, c.followed).where(
                    c.pmid.in_(part), c.subscription.in_(list(subscriptions))
                )
                for pmid, kind, followed in conn.execute(query):
                    out.setdefault(by_pmid[int(pmid)], set()).add((kind, int(followed)))
        return {
            item: sorted(links, key=lambda x: (x[0] != "cites", x[1]))
            for item, links in out.items()
        }

    @translated_errors
    def counts(self, subscription: str) -> dict[tuple[str, int], int]:
        """(kind, followed) → how many links the subscription has seen."""
        out: dict[tuple[str, int], int] = {}
        for kind, followed, _ in self.seen(subscription):
            out[(kind, followed)] = out.get((kind, followed), 0) + 1
        return out


def _followed(sub: Subscription) -> list[tuple[str, int]]:
    return [("cites", p) for p in sub.cites] + [("similar", p) for p in sub.similar]
