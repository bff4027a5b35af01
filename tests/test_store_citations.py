"""The store of followed papers' links (watcher/store/citations.py, store.citations), on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from watcher.identity import pmid_key as k
from watcher.sources.base import CitationLink
from watcher.store import Store
from watcher.subscriptions import Schedule, Subscription

NOW = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
FOLLOWS = Subscription("A", ("a@example.org",), Schedule(), cites=(1, 2), similar=(1,))


def test_links_are_kept_once_with_what_was_taken_stock_of(store: Store) -> None:
    links = store.citations
    got = [
        CitationLink("cites", 1, 10),
        CitationLink("cites", 2, 10),
        CitationLink("similar", 1, 11, 5),
    ]
    assert links.record("A", got, NOW, FOLLOWS) == 3
    assert links.record("A", [*got, CitationLink("cites", 1, 12)], NOW, FOLLOWS) == 1
    assert links.seen("A") == {
        ("cites", 1, 10),
        ("cites", 2, 10),
        ("similar", 1, 11),
        ("cites", 1, 12),
    }
    assert links.taken("A") == {("cites", 1), ("cites", 2), ("similar", 1)}
    assert links.seen("B") == set() and links.taken("B") == set()
    assert links.counts("A") == {("cites", 1): 2, ("cites", 2): 1, ("similar", 1): 1}


def test_a_digest_reads_what_each_paper_is_to_its_subscriptions_followed_papers(
    store: Store,
) -> None:
    links = store.citations
    links.record("A", [CitationLink("cites", 2, 10), CitationLink("cites", 1, 10)], NOW)
    links.record("A", [CitationLink("similar", 3, 10)], NOW)
    links.record("B", [CitationLink("cites", 4, 10), CitationLink("cites", 4, 11)], NOW)
    assert links.of_items([k(10), k(11), k(12)], ["A"]) == {
        k(10): [("cites", 1), ("cites", 2), ("similar", 3)]
    }
    assert links.of_items([k(10), k(11)], ["A", "B"]) == {
        k(10): [("cites", 1), ("cites", 2), ("cites", 4), ("similar", 3)],
        k(11): [("cites", 4)],
    }
    assert links.of_items([], ["A"]) == {}


def test_news_are_the_links_not_seen_of_papers_taken_stock_of(store: Store) -> None:
    links = store.citations
    links.record("A", [CitationLink("cites", 1, 10)], NOW, FOLLOWS)
    later = Subscription("A", ("a@example.org",), Schedule(), cites=(1, 2, 3), similar=(1,))
    now = [
        CitationLink("cites", 1, 10),  # seen
        CitationLink("cites", 1, 11),  # news
        CitationLink("cites", 2, 12),  # news: 2 was taken stock of, with no link then
        CitationLink("cites", 3, 13),  # 3 followed since: what exists is not news
        CitationLink("similar", 1, 2),  # a followed paper itself is never announced
    ]
    assert links.news(later, [k(11)], now) == [k(12)]
    assert links.news(later, [], now) == [k(11), k(12)]
