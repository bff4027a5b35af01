from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from watcher.backfill import backfill
from watcher.config import load_config
from watcher.errors import SourceError
from watcher.identity import pmid_key as k
from watcher.poll import due_subscriptions, ncbi_today, poll
from watcher.poll_locks import Claim
from watcher.store import Store
from watcher.store.engine import Database
from watcher.store.polls import Polls
from watcher.wiring import sources_for

from .conftest import make_client, write_config
from .fakes.ncbi import FakeNCBI, FakeRecord
from .fakes.records import synthetic

NOW = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
TODAY = ncbi_today(NOW)


def sub(name: str, query: str, *, rcpt: str = "a@example.org", extra: str = "") -> str:
    return (
        f'[[subscription]]\nname = "{name}"\nquery = "{query}"\nrecipients = ["{rcpt}"]\n{extra}\n'
    )


def paper(pmid: int, words: str, day: date, crdt: date | None = None):
    return synthetic(
        pmid, f"Paper {pmid} on {words}", edat=day, crdt=crdt, abstract=f"A study of {words}."
    )


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    yield s
    s.close()


def setup(tmp_path: Path, fake: FakeNCBI, subs: str, **kw):
    config = load_config(write_config(tmp_path, fake.base_url, subs, **kw))
    return config


def sync(store: Store, config, now: datetime = NOW) -> None:
    store.polls.sync(
        config.subscriptions,
        now - timedelta(hours=1),
    )


def window_of(params: dict[str, str], datetype: str = "crdt") -> tuple[date, date]:
    """The `datetype` range an esearch's term carries: ("YYYY/MM/DD"[crdt] : "YYYY/MM/DD"[crdt])."""
    m = re.search(rf'"([\d/]+)"\[{datetype}\] : "([\d/]+)"\[{datetype}\]', params["term"])
    assert m, params["term"]
    lo, hi = (datetime.strptime(x, "%Y/%m/%d").date() for x in m.groups())
    return lo, hi


def mark_delivered(store: Store, recipient: str, pmids: list[int]) -> None:
    """As a successful digest run leaves it: the papers delivered to `recipient`."""
    digest = store.outbox.create_digest(
        recipient=recipient,
        schedule="k",
        message_id="<x@y>",
        message=b"",
        items=[k(p) for p in pmids],
        now=NOW,
    )
    assert store.outbox.mark_digest_sent(digest, NOW)


def test_five_overlapping_subscriptions_cost_exactly_the_minimum(tmp_path, fake, store) -> None:
    topics = ["teplizumab", "otelixizumab", "rituximab", "basiliximab", "daclizumab"]
    pmid = 1000
    for i, topic in enumerate(topics):
        for _ in range(40):
            # every third paper also names the next topic: overlapping results
            words = topic + (f" and {topics[(i + 1) % 5]}" if pmid % 3 == 0 else "")
            fake.add([paper(pmid, words, TODAY - timedelta(days=pmid % 5))])
            pmid += 1
    config = setup(tmp_path, fake, "".join(sub(t, t) for t in topics), extra="batch_size = 50")
    sync(store, config)
    client = make_client(fake.base_url, batch_size=50)

    report = poll(config, store, sources_for(client, config.ncbi), NOW)

    unique = 200
    assert sum(o.found for o in report.outcomes) > unique  # the overlap is real
    assert fake.count("esearch") == 5
    assert fake.count("efetch") == math.ceil(unique / 50)
    assert report.requests == 5 + math.ceil(unique / 50)
    assert report.fetched == unique and store.articles.count() == unique
    assert not report.failed

    fake.reset_counts()
    again = poll(config, store, sources_for(client, config.ncbi), NOW + timedelta(hours=6))
    assert fake.count("efetch") == 0 and fake.count("esearch") == 5
    assert again.new_matches == 0


def test_window_uses_creation_date_with_overlap(tmp_path, fake, store) -> None:
    config = setup(tmp_path, fake, sub("t", "teplizumab"))
    sync(store, config)
    client = make_client(fake.base_url)
    poll(config, store, sources_for(client, config.ncbi), NOW)
    # lookback_days default, by creation date (and the same window of MeSH dates)
    assert window_of(fake.served[0].params) == (TODAY - timedelta(days=30), TODAY)
    assert "datetype" not in fake.served[0].params  # the window is in the term
    second = NOW + timedelta(days=1)
    fake.reset_counts()
    poll(config, store, sources_for(client, config.ncbi), second)
    assert window_of(fake.served[0].params) == (TODAY - timedelta(days=3), ncbi_today(second))


def test_late_record_dated_before_last_poll_is_caught(tmp_path, fake, store) -> None:
    config = setup(tmp_path, fake, sub("t", "teplizumab"))
    sync(store, config)
    client = make_client(fake.base_url)
    fake.add([paper(1, "teplizumab", TODAY)])
    poll(config, store, sources_for(client, config.ncbi), NOW)
    # Added to PubMed after that poll, but dated the day before it (late indexing)...
    fake.add([paper(2, "teplizumab", TODAY - timedelta(days=1))])
    # ...and one whose Entrez date is its publication date two years back, created yesterday.
    fake.add([paper(3, "teplizumab", TODAY - timedelta(days=730), crdt=TODAY - timedelta(days=1))])
    report = poll(config, store, sources_for(client, config.ncbi), NOW + timedelta(days=1))
    assert report.new_matches == 2
    assert store.outbox.pending_papers("a@example.org", ["t"]).keys() == {k(1), k(2), k(3)}


def test_a_poll_killed_between_fetch_and_commit_loses_nothing(tmp_path, fake, store) -> None:
    class Crash(Exception):
        pass

    class CrashingPolls(Polls):
        def commit_batch(self, *args, **kwargs):  # the process dies here
            raise Crash

    crashing = Store(store.engine)
    crashing.polls = CrashingPolls(Database(store.engine))

    fake.add([paper(i, "rituximab", TODAY) for i in range(1, 11)])
    config = setup(tmp_path, fake, sub("r", "rituximab") + sub("r2", "rituximab", rcpt="b@x.org"))
    sync(store, config)
    client = make_client(fake.base_url)
    with pytest.raises(Crash):
        poll(config, crashing, sources_for(client, config.ncbi), NOW)
    assert store.polls.match_counts() == {}
    state = store.polls.state("r")
    assert state is not None and state.window_end is None  # not advanced

    report = poll(config, store, sources_for(client, config.ncbi), NOW + timedelta(minutes=5))
    assert not report.failed
    assert store.polls.match_counts() == {"r": 10, "r2": 10}
    assert set(store.outbox.pending_papers("b@x.org", ["r2"])) == set(map(k, range(1, 11)))


def test_one_failing_subscription_does_not_stop_the_others(tmp_path, fake, store) -> None:
    fake.add([paper(1, "teplizumab", TODAY)])
    config = setup(tmp_path, fake, sub("bad", "teplizumab[badfield]") + sub("good", "teplizumab"))
    sync(store, config)
    fake.fault("esearch", "error", message="Invalid query")
    report = poll(config, store, sources_for(make_client(fake.base_url), config.ncbi), NOW)
    assert [o.name for o in report.failed] == ["bad"]
    bad, good = store.polls.state("bad"), store.polls.state("good")
    assert bad is not None and "Invalid query" in (bad.last_error or "")
    assert good is not None and good.last_error is None and good.last_found == 1


@pytest.mark.parametrize("depth", [1000, 2000])
def test_a_record_nested_thousands_deep_is_skipped_and_the_poll_goes_on(
    tmp_path, fake, store, depth: int
) -> None:
    fake.add([paper(p, "teplizumab", TODAY) for p in range(1, 6)])
    fake.add([paper(9, "rituximab", TODAY)])
    fake.poison(3, "deep", size=depth)
    config = setup(tmp_path, fake, sub("t", "teplizumab") + sub("r", "rituximab"))
    sync(store, config)
    report = poll(config, store, sources_for(make_client(fake.base_url), config.ncbi), NOW)
    assert not report.failed
    assert len(report.record_errors) == 1 and "PMID 3 skipped" in report.record_errors[0]
    assert sorted(store.articles.known_pmids([1, 2, 3, 4, 5, 9])) == [1, 2, 4, 5, 9]


def test_failed_efetch_holds_back_only_the_affected_subscriptions(tmp_path, fake, store) -> None:
    fake.add([paper(1, "teplizumab", TODAY), paper(2, "rituximab", TODAY)])
    config = setup(tmp_path, fake, sub("t", "teplizumab") + sub("r", "rituximab"))
    sync(store, config)
    client = make_client(fake.base_url, batch_size=1, retries=1)
    fake.fault("efetch", "status:503", times=2)  # the first batch fails twice: given up
    report = poll(config, store, sources_for(client, config.ncbi), NOW)
    assert len(report.failed) == 1
    failed = report.failed[0].name
    state = store.polls.state(failed)
    assert state is not None and state.window_end is None
    # `watcher status` shows this line alone: it says why, not only how many.
    assert state.last_error is not None
    assert state.last_error.startswith("1 records could not be fetched (efetch.fcgi: gave up")
    assert "HTTP 503" in state.last_error and state.last_error.endswith("; retried next poll")
    report = poll(config, store, sources_for(client, config.ncbi), NOW + timedelta(minutes=1))
    assert not report.failed
    assert store.articles.count() == 2


def test_same_paper_from_rss_and_search_is_one_article_two_matches(tmp_path, fake, store) -> None:
    fake.add([paper(7, "teplizumab", TODAY)])
    fake.feeds["tep"] = [7]
    config = setup(
        tmp_path,
        fake,
        sub("search", "teplizumab")
        + f'[[subscription]]\nname = "feed"\nrss = "{fake.feed_url("tep")}"\n'
        'recipients = ["a@example.org"]\n',
    )
    sync(store, config)
    report = poll(config, store, sources_for(make_client(fake.base_url), config.ncbi), NOW)
    assert report.fetched == 1 and fake.count("efetch") == 1
    assert store.polls.match_counts() == {"search": 1, "feed": 1}
    assert store.outbox.pending_papers("a@example.org", ["search", "feed"]) == {
        k(7): ["feed", "search"]
    }
    # An unchanged feed costs a 304 the next time.
    fake.reset_counts()
    poll(
        config,
        store,
        sources_for(make_client(fake.base_url), config.ncbi),
        NOW + timedelta(hours=1),
    )
    assert [s.status for s in fake.served if s.endpoint == "rss"] == [304]


def test_lookback_zero_records_a_baseline_and_mails_nothing_old(tmp_path, fake, store) -> None:
    fake.add([paper(1, "daclizumab", TODAY)])
    config = setup(tmp_path, fake, sub("d", "daclizumab", extra="lookback_days = 0"))
    sync(store, config)
    client = make_client(fake.base_url)
    poll(config, store, sources_for(client, config.ncbi), NOW)
    assert store.polls.match_counts() == {"d": 1}
    assert fake.count("efetch") == 0  # a baseline needs no records
    assert store.outbox.pending_papers("a@example.org", ["d"]) == {}
    fake.add([paper(2, "daclizumab", TODAY)])
    poll(config, store, sources_for(client, config.ncbi), NOW + timedelta(hours=6))
    assert store.outbox.pending_papers("a@example.org", ["d"]) == {k(2): ["d"]}


def test_revised_record_is_updated_in_place_and_not_announced_again(tmp_path, fake, store) -> None:
    fake.add([paper(1, "basiliximab", TODAY)])
    config = setup(tmp_path, fake, sub("b", "basiliximab"))
    sync(store, config)
    client = make_client(fake.base_url)
    poll(config, store, sources_for(client, config.ncbi), NOW)
    mark_delivered(store, "a@example.org", [1])
    # PubMed revises the record; the backfill refetches it (e.g. a second subscription's need).
    fake.add([synthetic(1, "Paper 1 on basiliximab (revised)", edat=TODAY)])
    store.articles.upsert(list(client.fetch([1])), NOW + timedelta(days=1))
    assert store.articles.records([k(1)])[k(1)].title == "Paper 1 on basiliximab (revised)"
    poll(config, store, sources_for(client, config.ncbi), NOW + timedelta(days=1))
    assert store.outbox.pending_papers("a@example.org", ["b"]) == {}


def test_changed_query_restarts_window_without_reannouncing(tmp_path, fake, store) -> None:
    fake.add([paper(1, "teplizumab otelixizumab", TODAY), paper(2, "otelixizumab", TODAY)])
    config = setup(tmp_path, fake, sub("cd3", "teplizumab"))
    sync(store, config)
    client = make_client(fake.base_url)
    poll(config, store, sources_for(client, config.ncbi), NOW)
    mark_delivered(store, "a@example.org", [1])
    edited = setup(tmp_path, fake, sub("cd3", "otelixizumab"))
    later = NOW + timedelta(hours=1)
    sync(store, edited, later + timedelta(hours=1))
    fake.reset_counts()
    poll(edited, store, sources_for(client, edited.ncbi), later)
    assert window_of(fake.served[0].params) == (TODAY - timedelta(days=30), TODAY)
    assert store.outbox.pending_papers("a@example.org", ["cd3"]) == {k(2): ["cd3"]}


def test_renamed_subscription_starts_clean(tmp_path, fake, store) -> None:
    fake.add([paper(1, "rituximab", TODAY)])
    config = setup(tmp_path, fake, sub("old name", "rituximab"))
    sync(store, config)
    poll(config, store, sources_for(make_client(fake.base_url), config.ncbi), NOW)
    renamed = setup(tmp_path, fake, sub("new name", "rituximab"))
    sync(store, renamed)
    assert due_subscriptions(renamed, store.polls.states(), NOW)[0].name == "new name"
    report = poll(renamed, store, sources_for(make_client(fake.base_url), renamed.ncbi), NOW)
    assert report.outcomes[0].new_matches == 1 and fake.count("efetch") == 1


def test_backfill_is_resumable_and_does_not_flood(tmp_path, fake, store) -> None:
    start = TODAY - timedelta(days=3 * 365)
    fake.add(
        [
            paper(10_000 + i, "islet transplantation", start + timedelta(days=i % 1000))
            for i in range(3000)
        ]
    )
    config = setup(tmp_path, fake, sub("islets", "islet transplantation"))
    sync(store, config)
    client = make_client(fake.base_url, retries=0)
    seen: list[tuple[int, int]] = []

    def progress(name: str, done: int, total: int, records: int) -> None:
        seen.append((done, total))
        if done == 2:  # NCBI fails the third slice's search: the run stops there
            fake.fault("esearch", "status:500")

    with pytest.raises(SourceError, match="HTTP 500"):
        backfill(
            config,
            store,
            sources_for(client, config.ncbi),
            NOW,
            start,
            subscriptions=config.subscriptions,
            progress=progress,
        )
    first_part = store.polls.match_counts()["islets"]
    assert 0 < first_part < 3000 and seen[:2] == [(1, 4), (2, 4)]

    reports = backfill(
        config,
        store,
        sources_for(client, config.ncbi),
        NOW,
        start,
        subscriptions=config.subscriptions,
    )
    assert reports[0].resumed_from is not None
    assert store.polls.match_counts()["islets"] == 3000 and store.articles.count() == 3000
    assert store.outbox.pending_papers("a@example.org", ["islets"]) == {}  # known, not news


def test_an_unreachable_ncbi_is_asked_once_per_poll(tmp_path, store) -> None:
    from .fakes.smtp import free_port

    dead = f"http://127.0.0.1:{free_port()}/entrez/eutils/"
    config = load_config(write_config(tmp_path, dead, sub("a", "x") + sub("b", "y")))
    sync(store, config)
    client = make_client(dead, retries=1)
    report = poll(config, store, sources_for(client, config.ncbi), NOW)
    assert [o.name for o in report.failed] == ["a", "b"]
    assert client.counters.requests == 2  # a's two tries; b was not tried
    assert "cannot connect to 127.0.0.1" in (report.failed[1].error or "")


def unreadable(rec: FakeRecord) -> FakeRecord:
    """The record as NCBI might send it broken: well-formed XML without its Article element."""
    return replace(rec, xml=re.sub(rb"<Article\b.*</Article>", b"", rec.xml, flags=re.S))


def efetched_ids(fake: FakeNCBI) -> list[list[int]]:
    return [
        [int(i) for i in s.params["id"].split(",")] for s in fake.served if s.endpoint == "efetch"
    ]


def test_an_unreadable_record_stays_due_and_is_delivered_once_it_reads(
    tmp_path, fake, store
) -> None:
    fake.add([paper(1, "teplizumab", TODAY), unreadable(paper(2, "teplizumab", TODAY))])
    config = setup(tmp_path, fake, sub("t", "teplizumab"))
    sync(store, config)
    client = make_client(fake.base_url)
    poll(config, store, sources_for(client, config.ncbi), NOW)
    assert store.outbox.pending_papers("a@example.org", ["t"]) == {k(1): ["t"]}
    owed = store.articles.awaited(["t"])
    assert list(owed) == [k(2)] and owed[k(2)].attempts == 1
    assert "no Article element" in (owed[k(2)].reason or "")
    assert store.outbox.undelivered_counts(stored=False) == {"a@example.org": 1}

    # NCBI fixes the record; the search no longer finds it (its wording changed), a new paper
    # came: the next poll reaches back for the owed record, in the same efetch as the new one.
    fake.add([paper(2, "an edited title", TODAY), paper(3, "teplizumab", TODAY)])
    fake.reset_counts()
    poll(config, store, sources_for(client, config.ncbi), NOW + timedelta(minutes=20))
    assert [sorted(ids) for ids in efetched_ids(fake)] == [[2, 3]]
    assert store.outbox.pending_papers("a@example.org", ["t"]) == {
        k(1): ["t"],
        k(2): ["t"],
        k(3): ["t"],
    }
    assert store.articles.awaited(["t"]) == {}
    fake.reset_counts()
    poll(config, store, sources_for(client, config.ncbi), NOW + timedelta(hours=1))
    assert fake.count("efetch") == 0


def test_an_owed_record_the_search_finds_again_is_fetched_once_per_poll(
    tmp_path, fake, store
) -> None:
    fake.add([paper(5, "rituximab", TODAY)])
    fake.withheld.add(5)  # listed by esearch, absent from efetch: not yet released
    config = setup(tmp_path, fake, sub("r", "rituximab") + sub("r2", "rituximab", rcpt="b@x.org"))
    sync(store, config)
    client = make_client(fake.base_url)
    poll(config, store, sources_for(client, config.ncbi), NOW)
    assert efetched_ids(fake) == [[5]]
    assert store.articles.awaited(["r", "r2"])[k(5)].reason == "not in NCBI's efetch answer"
    fake.withheld.clear()
    fake.reset_counts()
    poll(
        config, store, sources_for(client, config.ncbi), NOW + timedelta(hours=1)
    )  # both searches list it, and it is owed
    assert efetched_ids(fake) == [[5]]
    assert set(store.outbox.pending_papers("b@x.org", ["r2"])) == {k(5)}


def test_a_record_ncbi_never_gives_is_retried_with_backoff_then_given_up(
    tmp_path, fake, store
) -> None:
    from watcher.status import awaited_records

    fake.add([paper(9, "daclizumab", TODAY)])
    fake.withheld.add(9)  # a deleted record
    config = setup(tmp_path, fake, sub("d", "daclizumab"))
    sync(store, config)
    client = make_client(fake.base_url)
    tries: list[int] = []
    for minutes in (0, 5, 16, 30, 50, 60 * 24 * 31, 60 * 24 * 32, 60 * 24 * 60):
        fake.reset_counts()
        poll(config, store, sources_for(client, config.ncbi), NOW + timedelta(minutes=minutes))
        tries.append(fake.count("efetch"))
    # first miss; too soon (15 min wait); retried; too soon (30 min wait); retried; a month on:
    # retried and, 30 days after the first miss, given up; never asked for again.
    assert tries == [1, 0, 1, 0, 1, 1, 0, 0]
    [shown] = awaited_records(store, config)
    assert shown["pmid"] == 9 and shown["attempts"] == 4 and shown["given_up"] is True
    assert shown["next_try"] is None and shown["subscriptions"] == ["d"]
    # Were the record to come back (through another path), it is delivered after all.
    fake.withheld.clear()
    store.articles.upsert(list(client.fetch([9])), NOW)
    assert store.outbox.pending_papers("a@example.org", ["d"]) == {k(9): ["d"]}


def test_owed_records_are_not_asked_for_while_ncbi_does_not_answer(tmp_path, store) -> None:
    from .fakes.smtp import free_port

    dead = f"http://127.0.0.1:{free_port()}/entrez/eutils/"
    config = load_config(write_config(tmp_path, dead, sub("a", "x")))
    sync(store, config)
    store.polls.commit(
        "a", [k(7)], source="esearch", deliver=True, now=NOW, window_end=None, found=1
    )
    client = make_client(dead, retries=1)
    report = poll(config, store, sources_for(client, config.ncbi), NOW + timedelta(hours=1))
    assert [o.name for o in report.failed] == ["a"]
    assert client.counters.requests == 2  # the search's two tries, no efetch after them
    assert store.articles.awaited(["a"])[k(7)].attempts == 0  # not counted against the record


MESH_ONLY = '"CD3 Complex"[mh] AND "Antibodies, Monoclonal"[mh]'


def unindexed(pmid: int, created: date, words: str = "a new antibody"):
    """A record as PubMed first holds it: no MeSH headings yet."""
    return synthetic(pmid, f"Paper {pmid} on {words}", edat=created, abstract="A trial.")


def indexed(pmid: int, created: date, on: date, words: str = "a new antibody"):
    """The same record after indexers gave it MeSH headings on `on`."""
    return synthetic(
        pmid,
        f"Paper {pmid} on {words}",
        edat=created,
        mhda=on,
        abstract="A trial.",
        mesh=("Diabetes Mellitus, Type 1", "CD3 Complex", "Antibodies, Monoclonal, Humanized"),
    )


def test_a_record_indexed_ten_days_after_creation_reaches_the_next_digest_once(
    tmp_path, fake, store
) -> None:
    config = setup(tmp_path, fake, sub("cd3", MESH_ONLY.replace('"', '\\"')))
    sync(store, config)
    client = make_client(fake.base_url)
    created = TODAY
    fake.add([unindexed(7, created)])
    days = [NOW + timedelta(days=d) for d in range(13)]
    for now in days[:10]:  # daily polls while the record waits for indexing
        assert poll(config, store, sources_for(client, config.ncbi), now).new_matches == 0
    assert store.outbox.pending_papers("a@example.org", ["cd3"]) == {}

    fake.add([indexed(7, created, on=created + timedelta(days=10))])
    fake.reset_counts()
    report = poll(config, store, sources_for(client, config.ncbi), days[10])
    # long past the creation-date window (3 days of overlap), caught by its MeSH date
    assert window_of(fake.served[0].params)[0] > created
    assert report.new_matches == 1
    assert fake.count("esearch") == 1 and fake.count("efetch") == 1 and fake.count() == 2
    assert store.outbox.pending_papers("a@example.org", ["cd3"]) == {k(7): ["cd3"]}
    mark_delivered(store, "a@example.org", [7])

    for now in days[11:]:  # still inside the MeSH-date window: found again, not news again
        fake.reset_counts()
        assert poll(config, store, sources_for(client, config.ncbi), now).new_matches == 0
        assert fake.count() == 1  # one esearch, nothing fetched
    assert store.outbox.pending_papers("a@example.org", ["cd3"]) == {}


def test_a_delivered_record_indexed_later_is_not_announced_again(tmp_path, fake, store) -> None:
    query = f"({MESH_ONLY}) OR teplizumab[tiab]".replace('"', '\\"')
    config = setup(tmp_path, fake, sub("cd3", query))
    sync(store, config)
    client = make_client(fake.base_url)
    fake.add([unindexed(8, TODAY, "teplizumab")])
    assert poll(config, store, sources_for(client, config.ncbi), NOW).new_matches == 1
    mark_delivered(store, "a@example.org", [8])

    fake.add([indexed(8, TODAY, on=TODAY + timedelta(days=12), words="teplizumab")])
    fake.reset_counts()
    report = poll(config, store, sources_for(client, config.ncbi), NOW + timedelta(days=12))
    assert sum(o.found for o in report.outcomes) == 1  # it is in the results again...
    assert report.new_matches == 0  # ...and not news
    assert fake.count("efetch") == 0
    assert store.outbox.pending_papers("a@example.org", ["cd3"]) == {}


def test_a_record_isolated_as_unreadable_stays_owed_and_arrives_once_fixed(
    tmp_path, fake, store
) -> None:
    fake.add([paper(i, "otelixizumab", TODAY) for i in (11, 12, 13)])
    fake.poison(12, "bad_utf8")  # its whole batch would fail to parse: isolated, left out
    config = setup(tmp_path, fake, sub("o", "otelixizumab"))
    sync(store, config)
    client = make_client(fake.base_url)
    poll(config, store, sources_for(client, config.ncbi), NOW)
    assert set(store.outbox.pending_papers("a@example.org", ["o"])) == {k(11), k(13)}
    owed = store.articles.awaited(["o"])[k(12)]
    assert owed.attempts == 1 and "PMID 12" in (owed.reason or "")
    del fake.poisons[12]
    fake.reset_counts()
    poll(config, store, sources_for(client, config.ncbi), NOW + timedelta(minutes=20))
    assert efetched_ids(fake) == [[12]]
    assert set(store.outbox.pending_papers("a@example.org", ["o"])) == {k(11), k(12), k(13)}
    assert store.articles.awaited(["o"]) == {}


def test_a_record_ncbi_deleted_is_owed_no_more(tmp_path, fake, store_url) -> None:
    """esearch still lists PMID 9; efetch answers a DeleteCitation for it (as NCBI does for a
    record it deleted): not owed, not asked for again, and said so; on SQLite and PostgreSQL."""
    from watcher.poll_fetch import DELETED
    from watcher.status import awaited_records

    fake.add([paper(1, "daclizumab", TODAY), paper(9, "daclizumab", TODAY)])
    fake.deleted.add(9)
    config = setup(tmp_path, fake, sub("d", "daclizumab"))
    store = Store.open(store_url)
    try:
        sync(store, config)
        client = make_client(fake.base_url)
        report = poll(config, store, sources_for(client, config.ncbi), NOW)
        assert not report.failed and report.deleted == [k(9)]
        assert store.outbox.pending_papers("a@example.org", ["d"]) == {k(1): ["d"]}
        assert store.outbox.undelivered_counts(stored=False) == {"a@example.org": 0}
        [shown] = awaited_records(store, config)
        assert (shown["pmid"], shown["reason"], shown["next_try"]) == (9, DELETED, None)
        assert shown["deleted"] is not None and shown["given_up"] is False
        # The search still lists it at later polls: it is never asked for again.
        for later in (timedelta(minutes=20), timedelta(days=1), timedelta(days=40)):
            fake.reset_counts()
            poll(config, store, sources_for(client, config.ncbi), NOW + later)
            assert all(9 not in ids for ids in efetched_ids(fake))
    finally:
        store.close()


def test_backfill_claims_each_subscription_as_it_reaches_it(tmp_path, fake, store) -> None:
    """Under another process's lock a subscription is left, and said to be; each is claimed
    only while it is backfilled (never all at the start: a lock is an open file on SQLite)."""
    fake.add([paper(1, "rituximab", TODAY), paper(2, "teplizumab", TODAY)])
    config = setup(tmp_path, fake, sub("ritux", "rituximab") + sub("tepli", "teplizumab"))
    sync(store, config)
    claims: list[list[str]] = []
    other = Claim([], [(config.subscriptions[0], "another watcher process (pid 4242)")])

    @contextmanager
    def claim(subs):
        claims.append([s.name for s in subs])
        yield other if subs[0].name == "ritux" else Claim(list(subs))

    reports = backfill(
        config,
        store,
        sources_for(make_client(fake.base_url), config.ncbi),
        NOW,
        TODAY - timedelta(days=30),
        subscriptions=config.subscriptions,
        claim=claim,
    )
    assert claims == [["ritux"], ["tepli"]]
    assert [(r.subscription, r.busy, r.found) for r in reports] == [
        ("ritux", "another watcher process (pid 4242)", 0),
        ("tepli", None, 1),
    ]
    assert fake.count("esearch") == 1 and store.polls.match_counts() == {"tepli": 1}
