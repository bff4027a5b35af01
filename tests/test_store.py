from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select, text

from watcher.identity import pmid_key as k
from watcher.models import AbstractSection, Article, Author, Change, MeshHeading
from watcher.schema import articles, identifiers, matches
from watcher.store import SCHEMA_REVISION, Store, migrate
from watcher.store.engine import BUSY_TIMEOUT
from watcher.store.items import IDENTIFIERS, MATCHES
from watcher.subscriptions import Schedule, Subscription

from .conftest import PG_ENV, _pg_schema_url, postgres_url

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
T1 = timedelta(minutes=20)
WEEKLY = Schedule(timedelta(hours=6), "0 7 * * mon", "UTC", 30)


def keys(*pmids: int) -> list[str]:
    return [k(p) for p in pmids]


def sub(name: str, query: str, recipients: list[str]) -> Subscription:
    """A subscription as the config makes it; its query stands for what it searches."""
    return Subscription(name, tuple(recipients), WEEKLY, query=query)


def article(pmid: int, title: str = "A trial", **kw) -> Article:
    return Article(
        pmid=pmid,
        title=title,
        doi=f"10.1000/{pmid}",
        authors=(Author("Herold", "Kevan C", "KC"), Author(collective_name="TrialNet")),
        abstract=(AbstractSection("BACKGROUND", "Why."), AbstractSection("RESULTS", "What.")),
        mesh=(MeshHeading("Diabetes Mellitus, Type 1", True, ("prevention & control",)),),
        publication_types=("Randomized Controlled Trial",),
        journal="N Engl J Med",
        pub_year=2019,
        pub_date="2019 Aug 15",
        epub_date=date(2019, 6, 9),
        **kw,
    )


def test_upsert_is_idempotent_and_updates_in_place(store: Store) -> None:
    store.articles.upsert([article(1), article(2)], T0)
    store.articles.upsert([article(1, "A trial (revised)"), article(2)], T0 + timedelta(days=1))
    assert store.articles.count() == 2
    got = store.articles.records([k(1), k(2)])
    assert got[k(1)].title == "A trial (revised)"
    assert got[k(2)] == article(2)
    with store.engine.connect() as conn:
        row = conn.execute(select(articles).where(articles.c.item == k(1))).one()
        assert row.first_seen == T0
        assert row.last_updated == T0 + timedelta(days=1)
        assert row.record["title"] == "A trial (revised)"  # the one copy of every field
        assert [x["text"] for x in row.record["abstract"]] == ["Why.", "What."]


def test_articles_round_trip_every_field(store: Store) -> None:
    a = replace(
        article(7),
        pmcid="PMC123",
        trial_ids=("NCT00378508",),
        keywords=("anti-CD3",),
        language="eng",
        vernacular_title="Un essai",
        is_book=False,
    )
    store.articles.upsert([a], T0)
    assert store.articles.records([k(7)])[k(7)] == a


def test_known_items_handles_large_lists(store: Store) -> None:
    store.articles.upsert([article(i) for i in range(1, 2001)], T0)
    assert store.articles.known(map(k, range(1500, 2500))) == set(map(k, range(1500, 2001)))


def test_matches_are_recorded_once(store: Store) -> None:
    store.polls.sync([sub("s", "f1", ["a@example.org"])], T0)
    assert (
        store.polls.commit(
            "s",
            keys(1, 2, 3),
            source="esearch",
            deliver=True,
            now=T0,
            window_end=date(2026, 11, 2),
            found=3,
        )
        == 3
    )
    assert (
        store.polls.commit(
            "s",
            keys(2, 3, 4),
            source="esearch",
            deliver=True,
            now=T0,
            window_end=date(2026, 11, 3),
            found=3,
        )
        == 1
    )
    assert store.polls.match_counts() == {"s": 4}
    state = store.polls.state("s")
    assert state is not None and state.window_end == date(2026, 11, 3) and state.last_new == 1


def test_changed_fingerprint_restarts_the_window(store: Store) -> None:
    store.polls.sync([sub("s", "f1", ["a@example.org"])], T0)
    store.polls.commit(
        "s", keys(1), source="esearch", deliver=True, now=T0, window_end=date(2026, 11, 2), found=1
    )
    changes = store.polls.sync([sub("s", "f2", ["a@example.org"])], T0)
    assert any("window restarts" in c for c in changes)
    state = store.polls.state("s")
    assert (
        state is not None
        and state.window_end is None
        and state.fingerprint == sub("s", "f2", []).fingerprint
    )


def test_pending_digest_flow_delivers_each_paper_once(store: Store) -> None:
    store.polls.sync([sub("s", "f", ["A@example.org"]), sub("t", "g", ["a@example.org"])], T0)
    store.articles.upsert([article(1), article(2), article(3)], T0)
    later = T0 + timedelta(minutes=1)
    store.polls.commit(
        "s", keys(1, 2), source="esearch", deliver=True, now=later, window_end=None, found=2
    )
    store.polls.commit(
        "t", keys(2, 3), source="rss", deliver=True, now=later, window_end=None, found=2
    )
    papers = store.outbox.pending_papers("a@example.org", ["s", "t"])
    assert papers == {k(1): ["s"], k(2): ["s", "t"], k(3): ["t"]}

    digest = store.outbox.create_digest(
        recipient="a@example.org",
        schedule="k",
        message_id="<m1@x>",
        message=b"bytes",
        items=sorted(papers),
        now=later,
    )
    # Papers waiting in a pending digest are not offered again.
    assert store.outbox.pending_papers("a@example.org", ["s", "t"]) == {}
    assert [d.message_id for d in store.outbox.pending_digests()] == ["<m1@x>"]
    assert store.outbox.mark_digest_sent(digest, later) is True
    assert store.outbox.mark_digest_sent(digest, later) is False  # the claim succeeds only once
    assert store.outbox.delivered_items("a@example.org") == set(keys(1, 2, 3))
    assert store.outbox.pending_digests() == []


def test_received_says_when_and_under_which_subscriptions_a_reader_got_each_paper(
    store: Store,
) -> None:
    """What a follow-up says (issue 24): the day of delivery, and the reader's subscriptions
    that matched the paper for them (not another reader's, not one they joined later)."""
    store.polls.sync(
        [sub("s", "f", ["a@example.org"]), sub("t", "g", ["a@example.org", "b@example.org"])], T0
    )
    store.articles.upsert([article(1), article(2), article(3)], T0)
    later = T0 + timedelta(minutes=1)
    for name, pmids in (("s", (1, 2)), ("t", (2, 3))):
        store.polls.commit(
            name, keys(*pmids), source="esearch", deliver=True, now=later, window_end=None, found=2
        )
    sent = T0 + timedelta(days=3)
    for rcpt, items in (("a@example.org", keys(1, 2, 3)), ("b@example.org", keys(3))):
        digest = store.outbox.create_digest(
            recipient=rcpt, schedule="k", message_id=f"<{rcpt}>", message=b"", items=items, now=sent
        )
        assert store.outbox.mark_digest_sent(digest, sent)
    got = store.outbox.received("A@example.org", keys(1, 2, 3, 4))
    assert got == {k(1): (sent, ["s"]), k(2): (sent, ["s", "t"]), k(3): (sent, ["t"])}
    assert store.outbox.received("b@example.org", keys(1, 2, 3)) == {k(3): (sent, ["t"])}


def test_liked_papers_are_matched_never_to_be_delivered(store: Store) -> None:
    """A paper a subscription `like`s is known to its readers from the start: found by its
    query, it is matched but not due, even when an earlier poll matched it for delivery."""
    store.polls.sync([sub("s", "f", ["a@example.org"])], T0)
    store.articles.upsert([article(1), article(2), article(3)], T0)
    store.polls.commit(
        "s", keys(3), source="esearch", deliver=True, now=T0, window_end=None, found=1
    )
    assert set(store.outbox.pending_papers("a@example.org", ["s"])) == {k(3)}
    store.polls.commit(
        "s",
        keys(1, 2, 3),
        source="esearch",
        deliver=True,
        now=T0 + T1,
        window_end=None,
        found=3,
        known=keys(2, 3),  # 3 was liked after the first poll matched it
    )
    assert set(store.outbox.pending_papers("a@example.org", ["s"])) == {k(1)}


def test_a_digest_keeps_its_bytes_only_while_it_may_be_sent_again(store: Store) -> None:
    store.polls.sync([sub("s", "f", ["a@example.org"])], T0)
    store.articles.upsert([article(1), article(2)], T0)
    store.polls.commit(
        "s", keys(1, 2), source="esearch", deliver=True, now=T0, window_end=None, found=2
    )
    message = b"Message-ID: <m@x>\r\n\r\n" + b"x" * 10_000
    sent, refused = (
        store.outbox.create_digest(
            recipient="a@example.org",
            schedule="k",
            message_id=f"<m{n}@x>",
            message=message,
            items=keys(n),
            now=T0,
        )
        for n in (1, 2)
    )
    store.outbox.mark_digest_attempt(sent, "451 try later", permanent=False)
    assert [d.message for d in store.outbox.pending_digests()] == [message, message]  # resent as is
    store.outbox.mark_digest_sent(sent, T0)
    store.outbox.mark_digest_attempt(refused, "550 no such user", permanent=True)
    with store.engine.connect() as conn:
        kept = dict(conn.execute(text("SELECT message_id, length(message) FROM digests")).all())
    assert kept == {"<m1@x>": 0, "<m2@x>": 0}
    assert store.outbox.delivered_items("a@example.org") == {k(1)}


def test_baseline_matches_and_late_recipients_get_nothing_old(store: Store) -> None:
    store.polls.sync([sub("s", "f", ["a@example.org"])], T0)
    store.articles.upsert([article(1), article(2)], T0)
    store.polls.commit(
        "s", keys(1), source="baseline", deliver=False, now=T0, window_end=None, found=1
    )
    store.polls.commit(
        "s", keys(2), source="esearch", deliver=True, now=T0, window_end=None, found=1
    )
    assert store.outbox.pending_papers("a@example.org", ["s"]) == {k(2): ["s"]}
    store.polls.sync(
        [sub("s", "f", ["a@example.org", "late@example.org"])], T0 + timedelta(hours=1)
    )
    assert store.outbox.pending_papers("late@example.org", ["s"]) == {}


def test_undelivered_counts_agree_with_each_recipients_due_papers(store: Store) -> None:
    """`status` counts every recipient's due papers in one query; each count must be what the
    digest would list: not before they joined, not delivered, not in a pending digest, not a
    notice told as a change, and (stored=False) only those still awaiting their record."""
    a, b, late = "a@example.org", "B@example.org", "late@example.org"
    store.polls.sync([sub("s", "f", [a, b]), sub("t", "g", [a])], T0)
    store.articles.upsert([article(p) for p in range(1, 7)], T0)
    store.polls.commit(
        "s", keys(1, 2, 3, 4, 8), source="esearch", deliver=True, now=T0, window_end=None, found=5
    )
    store.polls.commit(
        "t", keys(3, 5, 6, 9), source="rss", deliver=True, now=T0, window_end=None, found=4
    )
    store.polls.commit(
        "t", keys(7), source="baseline", deliver=False, now=T0, window_end=None, found=1
    )
    store.polls.sync([sub("s", "f", [a, b, late]), sub("t", "g", [a])], T0 + T1)
    sent = store.outbox.create_digest(
        recipient=a, schedule="k", message_id="<1@x>", message=b"", items=keys(1), now=T0
    )
    store.outbox.mark_digest_sent(sent, T0)
    store.outbox.create_digest(
        recipient=b, schedule="k", message_id="<2@x>", message=b"", items=keys(2), now=T0
    )
    notice = Change(k(1), "erratum", "pmid:6", None, "Erratum in …", notice_item=k(6))
    store.changes.record([notice], T0)

    follows = {a: ["s", "t"], b.lower(): ["s"], late: ["s"]}
    for stored in (True, False):
        counts = store.outbox.undelivered_counts(stored=stored)
        listed = {
            r: len(store.outbox.pending_papers(r, subs, stored=stored))
            for r, subs in follows.items()
        }
        assert counts == listed
    assert store.outbox.undelivered_counts() == {
        a: 4,
        b.lower(): 3,
        late: 0,
    }  # a: 2 3 4 5; b: 1 3 4
    assert store.outbox.undelivered_counts(stored=False) == {a: 2, b.lower(): 1, late: 0}  # 8 9; 8


def test_permanent_failure_makes_papers_due_again(store: Store) -> None:
    store.polls.sync([sub("s", "f", ["a@example.org"])], T0)
    store.articles.upsert([article(1)], T0)
    store.polls.commit(
        "s", keys(1), source="esearch", deliver=True, now=T0, window_end=None, found=1
    )
    d = store.outbox.create_digest(
        recipient="a@example.org",
        schedule="k",
        message_id="<m@x>",
        message=b"",
        items=keys(1),
        now=T0,
    )
    store.outbox.mark_digest_attempt(d, "451 try later", permanent=False)
    assert store.outbox.pending_digests()[0].attempts == 1
    store.outbox.mark_digest_attempt(d, "550 no such user", permanent=True)
    assert store.outbox.pending_digests() == []
    assert store.outbox.pending_papers("a@example.org", ["s"]) == {k(1): ["s"]}


def test_meta_and_digest_runs_upsert(store: Store) -> None:
    store.facts.set("heartbeat", "1")
    store.facts.set("heartbeat", "2")
    assert store.facts.get("heartbeat") == "2"
    assert store.outbox.last_digest_run("k") is None
    store.outbox.set_digest_run("k", T0)
    store.outbox.set_digest_run("k", T0 + timedelta(days=7))
    assert store.outbox.last_digest_run("k") == T0 + timedelta(days=7)


def test_sqlite_store_uses_wal(tmp_path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    store.close()


def test_reopening_a_store_keeps_its_data(store_url: str) -> None:
    first = Store.open(store_url)
    first.articles.upsert([article(42)], T0)
    first.close()
    again = Store.open(store_url)
    assert again.articles.known([k(42)]) == {k(42)}
    again.close()


@pytest.mark.parametrize("populated", [False, True], ids=["empty", "populated"])
def test_migration_upgrades_an_old_store_without_loss(store_url: str, populated: bool) -> None:
    from watcher.store import SCHEMA_REVISION

    engine = create_engine(store_url)
    migrate(engine, "0001")
    if populated:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO subscriptions (name, fingerprint, created_at, window_end) "
                    "VALUES ('old', 'f', :t, :d)"
                ),
                {"t": T0.replace(tzinfo=None), "d": date(2026, 1, 1)},
            )
    cols = {c["name"] for c in inspect(engine).get_columns("subscriptions")}
    assert "last_requests" not in cols
    engine.dispose()

    store = Store.open(store_url)
    cols = {c["name"] for c in inspect(store.engine).get_columns("subscriptions")}
    assert "last_requests" in cols
    with store.engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == SCHEMA_REVISION
    assert inspect(store.engine).has_table("awaited_records")
    assert inspect(store.engine).has_table("trial_states")
    if populated:
        state = store.polls.state("old")
        assert state is not None and state.window_end == date(2026, 1, 1)
    store.close()


def test_article_rows_hold_searchable_columns(store: Store) -> None:
    store.articles.upsert([article(5)], T0)
    with store.engine.connect() as conn:
        row = conn.execute(select(articles.c.doi, articles.c.journal, articles.c.pub_year)).one()
    assert tuple(row) == ("10.1000/5", "N Engl J Med", 2019)


def test_schema_revision_constant_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    import watcher.migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(watcher.migrations.__file__).parent))
    assert ScriptDirectory.from_config(cfg).get_current_head() == SCHEMA_REVISION


def test_migrations_build_exactly_the_declared_tables(store: Store) -> None:
    """schema.py's Core tables and the migrations agree: Alembic's autogenerate compare of a
    migrated store with them finds nothing to change, types included."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from watcher.schema import metadata

    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_unchanged_record_keeps_its_last_updated(store: Store) -> None:
    store.articles.upsert([article(9)], T0)
    store.articles.upsert([article(9)], T0 + timedelta(days=3))
    with store.engine.connect() as conn:
        row = conn.execute(select(articles).where(articles.c.item == k(9))).one()
        assert row.last_updated == T0


def test_database_errors_surface_as_store_errors(tmp_path) -> None:
    from watcher.errors import StoreError

    store = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE matches"))  # a store broken under the daemon's feet
    with pytest.raises(StoreError, match=r"store error: .*matches"):
        store.outbox.undelivered_counts()  # read from the matches (their counts are kept apart)
    store.close()


def test_a_hostile_records_fields_are_cut_to_the_stores_bounds(store: Store) -> None:
    """A 3 MB title (and over-long everything) is stored cut, once in its column and once in
    the record, not whole twice; PostgreSQL's column widths are respected."""
    from watcher.store import MAX_ABSTRACT, MAX_ITEMS, MAX_TEXT, MAX_TITLE

    huge = replace(
        article(8, "T" * 3_000_000),
        doi="10.1000/" + "d" * 400,
        pmcid="PMC" + "9" * 50,
        pub_date="2019 " * 400,
        language="english-" * 10,
        abstract=(AbstractSection("A" * 5000, "x" * 100_000), AbstractSection(None, "y" * 10)),
        authors=tuple(Author("L" * 2000, "F", "I") for _ in range(MAX_ITEMS + 10)),
        keywords=("k" * 5000,),
    )
    store.articles.upsert([huge], T0)
    got = store.articles.records([k(8)])[k(8)]
    assert len(got.title) == MAX_TITLE and got.title.endswith("…")
    assert len(got.doi or "") == 255 and len(got.pmcid or "") == 32
    assert len(got.pub_date or "") == MAX_TEXT and len(got.language or "") == 16
    assert sum(len(s.text) for s in got.abstract) <= MAX_ABSTRACT
    assert len(got.abstract[0].label or "") == MAX_TEXT
    assert len(got.authors) == MAX_ITEMS and len(got.authors[0].last_name or "") == MAX_TEXT
    assert got.keywords == ("k" * (MAX_TEXT - 1) + "…",)
    with store.engine.connect() as conn:
        sizes = conn.execute(
            text(
                "SELECT length(title), length(pub_date), length(CAST(record AS TEXT)) FROM articles"
            )
        ).one()
    # pub_date's column holds 64 characters; the record keeps a registry's longer facts line.
    assert sizes[:2] == (MAX_TITLE, 64) and sizes[2] < 15_000_000  # was 3 MB in each, and more


def test_a_real_sized_record_is_stored_unchanged(store: Store) -> None:
    a = replace(article(9, "Effect of anti-CD3 " * 50), keywords=("x" * 900,))
    store.articles.upsert([a], T0)
    assert store.articles.records([k(9)])[k(9)] == a


def test_error_lines_are_stored_capped_and_redacted(store: Store) -> None:
    store.polls.sync([sub("s", "f", ["a@example.org"])], T0)
    store.polls.record_error("s", "HTTP 400 api_key=abcdef123456 " + "e" * 10_000_000, T0)
    state = store.polls.state("s")
    assert state is not None and state.last_error is not None
    assert len(state.last_error) == 500 and state.last_error.endswith("…")
    assert "abcdef123456" not in state.last_error and "api_key=[REDACTED]" in state.last_error
    store.articles.upsert([article(1)], T0)
    d = store.outbox.create_digest(
        recipient="a@example.org",
        schedule="k",
        message_id="<m@x>",
        message=b"",
        items=keys(1),
        now=T0,
    )
    store.outbox.mark_digest_attempt(d, "451 " + "w" * 100_000, permanent=False)
    (row,) = [r for r in store.outbox.digest_states() if r["id"] == d]
    assert len(row["last_error"]) == 500


def test_a_matched_paper_without_its_record_is_owed_until_stored(store: Store) -> None:
    store.polls.sync([sub("s", "f", ["a@example.org"])], T0)
    later = T0 + timedelta(hours=1)
    store.polls.commit(
        "s", keys(1, 2), source="esearch", deliver=True, now=later, window_end=None, found=2
    )
    store.polls.commit(
        "b", keys(3), source="baseline", deliver=False, now=later, window_end=None, found=1
    )
    store.articles.upsert([article(1)], later)
    assert list(store.articles.awaited(["s", "b"])) == [k(2)]  # a baseline owes nothing
    assert store.articles.awaited(["s"])[k(2)].attempts == 0
    store.articles.record_missing({k(2): "not in NCBI's efetch answer"}, later)
    store.articles.record_missing(
        {k(2): "record 1 (PMID 2) skipped: no Article element"}, later + T1
    )
    owed = store.articles.awaited(["s"])[k(2)]
    assert (owed.attempts, owed.first_missing_at, owed.last_attempt_at) == (2, later, later + T1)
    assert owed.reason == "record 1 (PMID 2) skipped: no Article element"
    assert store.articles.attempts(keys(1, 2)) == {k(2): (2, later, later + T1, None)}
    assert store.outbox.undelivered_counts(stored=False) == {"a@example.org": 1}
    store.articles.upsert([article(2)], later + T1)
    store.articles.forget_missing(keys(2))
    assert store.articles.awaited(["s"]) == {} and store.articles.attempts(keys(2)) == {}
    assert set(store.outbox.pending_papers("a@example.org", ["s"])) == set(keys(1, 2))


def test_a_record_its_source_deleted_is_owed_no_more(store: Store) -> None:
    store.polls.sync([sub("s", "f", ["a@example.org"])], T0)
    later = T0 + timedelta(hours=1)
    store.polls.commit(
        "s", keys(2), source="esearch", deliver=True, now=later, window_end=None, found=1
    )
    store.articles.record_missing({k(2): "not in NCBI's efetch answer"}, later)
    store.articles.record_deleted({k(2): "deleted from PubMed"}, later + T1)
    owed = store.articles.awaited(["s"])[k(2)]
    assert (owed.attempts, owed.reason, owed.deleted_at) == (2, "deleted from PubMed", later + T1)
    assert store.articles.attempts(keys(2)) == {k(2): (2, later, later + T1, later + T1)}
    # Nobody awaits it: it will never come.
    assert store.outbox.undelivered_counts(stored=False) == {"a@example.org": 0}


def _pre_0005_article(conn, a: Article) -> None:
    """An article as revision 0004 stored it: its JSON parts twice, the abstract flattened."""
    record = a.to_json()
    conn.execute(
        text(
            "INSERT INTO articles (item, pmid, version, doi, pmcid, title, abstract, authors, "
            "journal, pub_date, pub_year, epub_date, language, publication_types, mesh, keywords, "
            "record, first_seen, last_updated) VALUES (:item, :pmid, 1, :doi, NULL, :title, "
            ":abstract, :authors, :journal, NULL, 2019, NULL, 'eng', :types, :mesh, :keywords, "
            ":record, :t, :t)"
        ),
        {
            "item": k(a.pmid),
            "pmid": a.pmid,
            "doi": a.doi,
            "title": a.title,
            "abstract": a.abstract_text,
            "authors": json.dumps(record["authors"]),
            "journal": a.journal,
            "types": json.dumps(record["publication_types"]),
            "mesh": json.dumps(record["mesh"]),
            "keywords": json.dumps(record["keywords"]),
            "record": json.dumps(record),
            "t": T0.replace(tzinfo=None),
        },
    )


def test_migration_0005_keeps_one_json_copy_of_each_stored_article(store_url: str) -> None:
    """A populated 0004 store loses the duplicated columns, never a field of a record; going
    back to 0004 rebuilds the JSON copies from the record."""
    from importlib import resources

    from alembic import command
    from alembic.config import Config

    stored = [article(31, keywords=("teplizumab",)), article(32, "Another trial")]
    engine = create_engine(store_url)
    migrate(engine, "0004")
    with engine.begin() as conn:
        for a in stored:
            _pre_0005_article(conn, a)
    engine.dispose()

    store = Store.open(store_url)
    cols = {c["name"] for c in inspect(store.engine).get_columns("articles")}
    assert not cols & {"abstract", "authors", "publication_types", "mesh", "keywords"}
    assert {"item", "pmid", "doi", "title", "record"} <= cols
    assert store.articles.records([k(31), k(32)]) == {k(31): stored[0], k(32): stored[1]}
    assert store.articles.known_pmids([31, 32, 33]) == {31, 32}
    store.articles.upsert([article(33)], T0)  # and the migrated table takes new rows
    assert store.articles.count() == 3

    with (
        store.engine.begin() as conn,
        resources.as_file(resources.files("watcher") / "migrations") as folder,
    ):
        cfg = Config()
        cfg.set_main_option("script_location", str(folder))
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    with store.engine.connect() as conn:
        keywords = conn.execute(text("SELECT keywords FROM articles WHERE pmid = 31")).scalar_one()
    assert (json.loads(keywords) if isinstance(keywords, str) else keywords) == ["teplizumab"]
    store.close()


PROBES = {
    # table → its probe, the key prefix probed, and the IN list the probe replaced
    "identifiers": (
        IDENTIFIERS,
        "pmid",
        select(identifiers.c.value).where(
            identifiers.c.scheme == "pmid", identifiers.c.value.in_(["1", "2"])
        ),
    ),
    "matches": (
        MATCHES,
        "s",
        select(matches.c.item).where(matches.c.subscription == "s", matches.c.item.in_(["1", "2"])),
    ),
}


@pytest.mark.postgres
@pytest.mark.parametrize("table", sorted(PROBES))
@pytest.mark.parametrize("lookup", ["probe", "in-list"])
def test_postgres_key_lookups_probe_the_key_in_a_plan_made_while_small(
    lookup: str, table: str
) -> None:
    """PostgreSQL may make one plan for a prepared lookup while the store is nearly empty and
    keep it as the store grows: that plan must probe the primary key for each value, never
    scan the rows under the key's prefix (which cost 340 ms per identifier lookup at 40,000
    identifiers instead of 1.5 ms, and 55 s to record a new subscription's 50,000 matches)."""
    base = postgres_url()
    if base is None:
        pytest.skip(f"needs {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    schema_url = _pg_schema_url(base)
    store = Store.open(next(schema_url))
    probe, fixed, in_list = PROBES[table]
    try:
        store.articles.upsert([article(1)], T0)
        store.polls.commit(
            "s", [k(1)], source="esearch", deliver=True, now=T0, window_end=None, found=1
        )
        dialect = store.engine.dialect
        if lookup == "probe":
            compiled = probe.postgresql.compile(dialect=dialect)
            params = compiled.construct_params({"fixed": fixed, "values": ["1", "2"]})
        else:
            compiled = in_list.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
            params = compiled.params
        with store.engine.connect() as conn:
            conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
            plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN {compiled}", params).scalars())
        # Each value looks up an index on its own, rather than being one of a list (= ANY)
        # that every row under the prefix is compared with.
        lookups = [line for line in plan.splitlines() if "Index Cond" in line]
        probes = any(".value)" in line for line in lookups) and "ANY" not in plan
        assert probes == (lookup == "probe"), plan
        assert store.articles.known(keys(1, 2)) == {k(1)}
        # Recording the same matches again finds them all: nothing new.
        assert (
            store.polls.commit(
                "s", keys(1, 2), source="esearch", deliver=True, now=T0, window_end=None, found=2
            )
            == 1
        )
    finally:
        store.close()
        schema_url.close()  # drops the schema


@pytest.mark.postgres
def test_postgres_sessions_wait_for_locks_a_while_and_never_compile_queries() -> None:
    """Every connection of a PostgreSQL store: a lock held elsewhere fails after the busy
    timeout instead of hanging the daemon, and no query is JIT-compiled (on a big store the
    planner's estimate for status's counts passed jit_above_cost: 22 ms compiling a 30 ms
    query). Settings the URL gives itself are left as given."""
    base = postgres_url()
    if base is None:
        pytest.skip(f"needs {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    schema_url = _pg_schema_url(base)
    url = next(schema_url)
    try:
        for given, jit, timeout in (
            ("", "off", f"{BUSY_TIMEOUT:g}s"),
            ("%20-cjit%3Don%20-clock_timeout%3D7s", "on", "7s"),
        ):
            store = Store.open(url + given)
            try:
                with store.engine.connect() as conn:
                    conn.rollback()  # the pool's reset must not undo them
                    got = conn.execute(
                        text("SELECT current_setting('jit'), current_setting('lock_timeout')")
                    ).one()
                assert tuple(got) == (jit, timeout)
            finally:
                store.close()
    finally:
        next(schema_url, None)
