"""Items beyond the PMID: stable keys, other identifiers, merges, and the migration that carries
a store written by the previous release (PMID-keyed, schema 0003) forward without loss."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import create_engine, select, text

from watcher.identity import identifiers, key, pmid_key, pmid_of
from watcher.models import Article, PollState
from watcher.poll import poll
from watcher.schema import identifiers as identifier_rows
from watcher.sources.base import Discovery, Records
from watcher.sources.eutils import EUtils
from watcher.sources.kinds import Kit, Sources
from watcher.store import Store, migrate
from watcher.subscriptions import Subscription

from .test_store import article, sub

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
DOI = "10.1000/Preprint.7"


def test_keys_have_one_normal_form() -> None:
    assert key("doi", " 10.1000/ABC ") == "doi:10.1000/abc"
    assert key("nct", "nct01030861") == "nct:NCT01030861"
    assert key("pmcid", "pmc123") == "pmcid:PMC123"
    assert pmid_key(42) == "pmid:42" and pmid_of("pmid:42") == 42 and pmid_of("doi:10.1/x") is None
    a = replace(article(5), doi="10.1000/X", pmcid="PMC9")
    assert list(identifiers(a)) == ["pmid:5", "doi:10.1000/x", "pmcid:PMC9"]


def test_a_paper_found_by_doi_keeps_its_key_when_its_pubmed_record_arrives(store: Store) -> None:
    store.polls.sync([sub("s", "q", ["a@example.org"])], T0)
    doi_item = key("doi", DOI)
    store.polls.commit(
        "s", [doi_item], source="esearch", deliver=True, now=T0, window_end=None, found=1
    )
    store.articles.upsert([replace(article(7), doi=DOI)], T0)
    # Found again, now by PMID: the same item, no second match.
    later = T0 + timedelta(hours=1)
    assert store.articles.known([pmid_key(7)]) == {pmid_key(7)}
    new = store.polls.commit(
        "s", [pmid_key(7)], source="esearch", deliver=True, now=later, window_end=None, found=1
    )
    assert new == 0
    assert store.items.resolve([pmid_key(7)]) == {pmid_key(7): doi_item}
    assert list(store.outbox.pending_papers("a@example.org", ["s"])) == [doi_item]
    assert store.articles.records([doi_item])[doi_item].pmid == 7


def test_two_items_proven_one_are_merged_and_never_announced_again(store: Store) -> None:
    store.polls.sync([sub("s", "q", ["a@example.org"]), sub("t", "r", ["a@example.org"])], T0)
    # The PubMed record was matched by s and delivered; a preprint server's DOI was matched by t.
    store.articles.upsert([replace(article(7), doi=None)], T0)
    store.polls.commit(
        "s", [pmid_key(7)], source="esearch", deliver=True, now=T0, window_end=None, found=1
    )
    digest = store.outbox.create_digest(
        recipient="a@example.org",
        schedule="k",
        message_id="<m@x>",
        message=b"",
        items=[pmid_key(7)],
        now=T0,
    )
    assert store.outbox.mark_digest_sent(digest, T0)
    store.polls.commit(
        "t", [key("doi", DOI)], source="rss", deliver=True, now=T0, window_end=None, found=1
    )
    # The revised PubMed record now carries the DOI: the two are one paper.
    store.articles.upsert([replace(article(7), doi=DOI)], T0 + timedelta(days=1))
    assert store.items.resolve([key("doi", DOI)]) == {key("doi", DOI): pmid_key(7)}
    assert store.polls.match_counts() == {"s": 1, "t": 1}
    assert store.outbox.pending_papers("a@example.org", ["s", "t"]) == {}
    assert store.outbox.delivered_items("a@example.org") == {pmid_key(7)}


def test_two_pubmed_records_sharing_a_doi_stay_two_items(store: Store) -> None:
    store.articles.upsert([replace(article(1), doi="10.1000/shared")], T0)
    store.articles.upsert([replace(article(2), doi="10.1000/SHARED")], T0)
    assert store.articles.count() == 2
    assert store.items.resolve([key("doi", "10.1000/shared")]) == {
        key("doi", "10.1000/shared"): pmid_key(1)
    }


class DoiSource:
    """A source of another kind of identifier (as Europe PMC would be): it finds DOIs and
    fetches records from memory."""

    def __init__(self, found: dict[str, list[str]], records: dict[str, Article]) -> None:
        self.found = found
        self.records: Records = MemoryRecords(records)

    def host(self, sub: Subscription) -> str:
        return "preprints.example.org"

    def find(self, sub: Subscription, state: PollState | None, now: datetime) -> Discovery:
        return Discovery(self.found[sub.name], "preprints")


class MemoryRecords:
    batch_size = 100

    def __init__(self, records: dict[str, Article]) -> None:
        self.by_key = records
        self.asked: list[list[str]] = []

    def fetch_items(
        self, keys: Sequence[str], on_error: object = None, on_deleted: object = None
    ) -> Iterator[Article]:
        self.asked.append(list(keys))
        return iter([self.by_key[k] for k in keys if k in self.by_key])


def test_poll_takes_any_registered_source(tmp_path, store: Store) -> None:
    from watcher.config import load_config

    from .conftest import make_client, write_config

    config = load_config(
        write_config(
            tmp_path,
            "http://127.0.0.1:9/",
            '[[subscription]]\nname = "s"\nquery = "x"\nrecipients = ["a@example.org"]\n',
        )
    )
    store.polls.sync(config.subscriptions, T0 - timedelta(hours=1))
    doi_item = key("doi", DOI)
    source = DoiSource({"s": [doi_item]}, {doi_item: replace(article(7), doi=DOI)})
    client: EUtils = make_client("http://127.0.0.1:9/")
    sources = Sources(Kit(client.http, client), kinds={"query": lambda kit: source})
    report = poll(config, store, sources, T0)
    assert [o.error for o in report.outcomes] == [None] and report.fetched == 1
    assert source.records.asked == [[doi_item]]  # type: ignore[attr-defined]
    # The record came before any match named the DOI: the item is the record's, its DOI an
    # identifier of it.
    assert store.items.resolve([doi_item, pmid_key(7)]) == {
        doi_item: pmid_key(7),
        pmid_key(7): pmid_key(7),
    }
    assert store.outbox.pending_papers("a@example.org", ["s"]) == {pmid_key(7): ["s"]}
    # The same paper under its PMID later: nothing new.
    source.found["s"] = [pmid_key(7)]
    again = poll(config, store, sources, T0 + timedelta(days=1))
    assert again.new_matches == 0 and again.fetched == 0


def _write_pmid_keyed_store(url: str) -> None:
    """A store as the previous release writes it: schema 0003, every table keyed by PMID."""
    engine = create_engine(url)
    migrate(engine, "0003")
    naive = T0.replace(tzinfo=None)
    with engine.begin() as conn:
        for pmid, doi in ((1, "10.1000/One"), (2, None), (3, "10.1000/one")):
            record = replace(article(pmid), doi=doi, pmcid="pmc5" if pmid == 2 else None)
            conn.execute(
                text(
                    "INSERT INTO articles (pmid, version, doi, pmcid, title, abstract, authors,"
                    " journal, pub_date, pub_year, epub_date, language, publication_types, mesh,"
                    " keywords, record, first_seen, last_updated) VALUES (:p, 1, :doi, :pmc,"
                    " :title, NULL, '[]', NULL, NULL, 2019, NULL, NULL, '[]', '[]', '[]', :rec,"
                    " :t, :t)"
                ),
                {
                    "p": pmid,
                    "doi": doi,
                    "pmc": record.pmcid,
                    "title": record.title,
                    "rec": json.dumps(record.to_json()),
                    "t": naive,
                },
            )
        conn.execute(
            text(
                "INSERT INTO subscriptions (name, fingerprint, created_at, window_end,"
                " last_requests) VALUES ('s', :f, :t, :d, 3)"
            ),
            {"f": sub("s", "q", []).fingerprint, "t": naive, "d": date(2026, 11, 1)},
        )
        conn.execute(
            text(
                "INSERT INTO subscribers (subscription, recipient, since)"
                " VALUES ('s', 'a@x.org', :t)"
            ),
            {"t": naive - timedelta(days=1)},
        )
        # 1 delivered, 2 waiting in a pending digest, 3 due, 9 a baseline never fetched.
        for pmid, deliver in ((1, True), (2, True), (3, True), (9, False)):
            conn.execute(
                text(
                    "INSERT INTO matches (subscription, pmid, source, matched_at, deliver)"
                    " VALUES ('s', :p, 'esearch', :t, :d)"
                ),
                {"p": pmid, "t": naive, "d": deliver},
            )
        for digest_id, state, pmid in ((1, "sent", 1), (2, "pending", 2)):
            conn.execute(
                text(
                    "INSERT INTO digests (id, recipient, schedule, message_id, state, created_at,"
                    " attempts, paper_count, message) VALUES (:i, 'a@x.org', 'k', :m, :s, :t, 0,"
                    " 1, :b)"
                ),
                {"i": digest_id, "m": f"<{digest_id}@x>", "s": state, "t": naive, "b": b"mime"},
            )
            conn.execute(
                text("INSERT INTO digest_items (digest_id, pmid) VALUES (:i, :p)"),
                {"i": digest_id, "p": pmid},
            )
        conn.execute(
            text(
                "INSERT INTO deliveries (recipient, pmid, digest_id, delivered_at)"
                " VALUES ('a@x.org', 1, 1, :t)"
            ),
            {"t": naive},
        )
        # 10 matched for delivery, its record not given by NCBI twice.
        conn.execute(
            text(
                "INSERT INTO matches (subscription, pmid, source, matched_at, deliver)"
                " VALUES ('s', 10, 'esearch', :t, TRUE)"
            ),
            {"t": naive},
        )
        conn.execute(
            text(
                "INSERT INTO awaited_records (pmid, first_missing_at, last_attempt_at, attempts,"
                " reason) VALUES (10, :t, :t, 2, 'not in the answer')"
            ),
            {"t": naive},
        )
    engine.dispose()


def test_migration_carries_a_pmid_keyed_store_forward_without_loss(store_url: str) -> None:
    _write_pmid_keyed_store(store_url)
    store = Store.open(store_url)
    try:
        assert store.articles.count() == 3
        assert store.articles.records([pmid_key(2)])[pmid_key(2)] == replace(
            article(2), doi=None, pmcid="pmc5"
        )
        assert store.outbox.delivered_items("a@x.org") == {pmid_key(1)}
        assert store.outbox.pending_papers("a@x.org", ["s"]) == {pmid_key(3): ["s"]}
        pending = store.outbox.pending_digests()
        assert [(d.message_id, d.items, d.message) for d in pending] == [
            ("<2@x>", (pmid_key(2),), b"mime")
        ]
        assert store.polls.match_counts() == {"s": 5}
        (owed,) = store.articles.awaited(["s"]).values()
        assert (owed.item, owed.attempts, owed.reason) == (pmid_key(10), 2, "not in the answer")
        state = store.polls.state("s")
        assert state is not None and state.window_end == date(2026, 11, 1)
        assert state.last_requests == 3
        with store.engine.connect() as conn:
            rows = set(
                conn.execute(
                    select(
                        identifier_rows.c.scheme, identifier_rows.c.value, identifier_rows.c.item
                    )
                )
            )
        assert rows == {
            ("pmid", "1", "pmid:1"),
            ("pmid", "2", "pmid:2"),
            ("pmid", "3", "pmid:3"),
            ("pmid", "9", "pmid:9"),
            ("pmid", "10", "pmid:10"),
            # Two records share a DOI (in two spellings): it stays with the first.
            ("doi", "10.1000/one", "pmid:1"),
            ("pmcid", "PMC5", "pmid:2"),
        }
        # The store keeps working after the upgrade: the baseline PMID is known as its item.
        assert store.items.resolve([pmid_key(9)]) == {pmid_key(9): pmid_key(9)}
    finally:
        store.close()
