"""A poll round of an institution's watcher: thousands of subscriptions polled in batches, each
batch committed as it ends, at the pace of the rate limit (watcher/poll.py's ROUND_BATCH)."""

from __future__ import annotations

import math
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.config import load_config
from watcher.identity import pmid_key
from watcher.poll import ROUND_BATCH, poll
from watcher.poll_locks import Claim, claimer
from watcher.store import PollCommit, RecordsOwed, Store
from watcher.store import polls as polls_module
from watcher.store.items import add_matches
from watcher.subscriptions import Subscription
from watcher.wiring import in_flight, sources_for

from .conftest import make_client, write_config
from .fakes.indexed import TOPIC, IndexedNCBI, topic
from .fakes.records import synthetic
from .fakes.smtp import SmtpServer
from .harness.crash import pmids

DAY = date(2026, 11, 30)
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
FIRST = 60_000_000


def papers(subs: int, per_sub: int = 2) -> list:
    """`per_sub` papers for each topic; every third paper names the next topic too."""
    out = []
    for i in range(subs * per_sub):
        topics = [i % subs] + ([(i + 1) % subs] if i % 3 == 0 else [])
        words = " and ".join(topic(t) for t in topics)
        out.append(synthetic(FIRST + i, f"Study {i} of {words}", edat=DAY, abstract=f"On {words}."))
    return out


def subscriptions(n: int, recipients: int = 10) -> str:
    return "".join(
        f'[[subscription]]\nname = "s{t:05d}"\nquery = "{topic(t)}"\n'
        f'recipients = ["r{t % recipients}@example.org"]\nlookback_days = 7\n'
        for t in range(n)
    )


@pytest.fixture
def indexed() -> IndexedNCBI:
    server = IndexedNCBI().start()
    yield server
    server.stop()


def test_a_round_of_2000_subscriptions_makes_the_minimum_requests_within_1_percent(
    tmp_path: Path, indexed: IndexedNCBI
) -> None:
    subs = 2000
    indexed.add(papers(subs))
    config = load_config(write_config(tmp_path, indexed.base_url, subscriptions(subs)))
    store = Store.open(f"sqlite:///{tmp_path / 'round.db'}")
    store.migrate()
    store.polls.sync(config.subscriptions, NOW - timedelta(days=1))
    sources = sources_for(make_client(indexed.base_url), config.ncbi, config, 4)

    report = poll(config, store, sources, NOW)

    assert not report.failed
    union = len(indexed.records)
    minimum = subs + math.ceil(union / config.ncbi.batch_size)
    assert indexed.count("esearch") == subs
    assert minimum <= indexed.count() <= minimum * 1.01, (indexed.count(), minimum)
    # Each record was fetched once, however many subscriptions and batches found it.
    assert store.articles.count() == union == report.fetched
    assert sum(o.new_matches for o in report.outcomes) == sum(
        1 + (i % 3 == 0) for i in range(union)
    )
    # What each subscription spent is its own search, though several searched at once.
    assert {o.requests for o in report.outcomes} == {1}
    store.close()


def test_each_batch_is_committed_before_the_round_ends(tmp_path: Path, indexed: IndexedNCBI):
    subs = 3 * ROUND_BATCH
    indexed.add(papers(subs, 1))
    config = load_config(write_config(tmp_path, indexed.base_url, subscriptions(subs)))
    store = Store.open(f"sqlite:///{tmp_path / 'round.db'}")
    store.migrate()
    store.polls.sync(config.subscriptions, NOW - timedelta(days=1))
    committed: list[int] = []

    def search_started(endpoint: str) -> None:
        # The last batch's first search: the first two batches are in the store by now, bar
        # the searches of the next batch made while the one before was committed.
        if not committed and indexed.count("esearch") >= 2 * ROUND_BATCH + 5:
            states = store.polls.states().values()
            committed.append(sum(1 for s in states if s.last_success_at is not None))

    indexed.on_request = search_started
    poll(config, store, sources_for(make_client(indexed.base_url), config.ncbi, config, 4), NOW)
    assert committed and committed[0] >= ROUND_BATCH
    assert sum(1 for s in store.polls.states().values() if s.last_success_at) == subs
    store.close()


def test_a_round_killed_midway_loses_at_most_a_batch_and_delivers_each_paper_once(
    tmp_path: Path,
) -> None:
    """The real `watcher poll --due`, SIGKILLed halfway through a round of 6 batches against a
    fake NCBI enforcing 100 requests/s, then run again: the batches committed before the kill
    are not searched again, and each recipient gets each paper once."""
    subs, rate = 6 * ROUND_BATCH, 100
    fake = IndexedNCBI(rate_limit=rate).start()
    smtp = SmtpServer().start()
    try:
        fake.add(papers(subs))
        cfg = write_config(
            tmp_path,
            fake.base_url,
            subscriptions(subs, recipients=3),
            extra=(
                f'[store]\nurl = "sqlite:///{tmp_path / "round.db"}"\n'
                f'[mail]\nfrom = "watcher@example.org"\n[mail.smtp]\nhost = "127.0.0.1"\n'
                f'port = {smtp.port}\nsecurity = "none"\n'
            ),
            defaults='poll_every = "1d"\n',
        )
        log = tmp_path / "first.log"
        with log.open("w") as out:
            first = subprocess.Popen(
                [sys.executable, "-m", "watcher", "-c", str(cfg), "poll", "--due"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            while fake.count("esearch") < subs // 2:
                assert first.poll() is None, log.read_text()[-2000:]
                time.sleep(0.01)
            first.send_signal(signal.SIGKILL)
            first.wait()
        before = Counter(_searched(fake))
        store = Store.open(f"sqlite:///{tmp_path / 'round.db'}")
        committed = {n for n, s in store.polls.states().items() if s.last_success_at}
        store.close()
        assert len(committed) % ROUND_BATCH == 0 and len(committed) >= sum(before.values()) - (
            ROUND_BATCH + ROUND_BATCH // 2
        ), (len(committed), sum(before.values()))

        fake.reset_counts()
        assert main(["-c", str(cfg), "poll", "--due"]) == 0
        again = Counter(_searched(fake))
        # Resumed where the store stood: nothing committed is searched again, every
        # subscription is searched, and what is redone is the batch in progress at the kill.
        assert not committed & set(again)
        assert set(before) | set(again) == {f"s{t:05d}" for t in range(subs)}
        assert len(set(before) & set(again)) <= ROUND_BATCH + ROUND_BATCH // 2

        assert main(["-c", str(cfg), "digest"]) == 0
        got = Counter((r.rcpt_tos[0], p) for r in smtp.received for p in pmids(r))
        wanted = {
            (f"r{t % 3}@example.org", rec.pmid)
            for rec in fake.records.values()
            for t in (int(w[5:-1]) for w in TOPIC.findall(rec.text))
        }
        assert set(got) == wanted and set(got.values()) == {1}
    finally:
        smtp.stop()
        fake.stop()


def _searched(fake: IndexedNCBI) -> list[str]:
    """The subscriptions whose searches the fake answered (not those it refused with 429)."""
    out = []
    for s in fake.served:
        word = TOPIC.search(s.params.get("term", "")) if s.endpoint == "esearch" else None
        if word and s.status == 200:
            out.append(f"s{int(word.group(0)[5:-1]):05d}")
    return out


def _check(tmp_path: Path, subs: int, every: str, capsys, key: bool = False) -> str:
    text = "".join(
        f'[[subscription]]\nname = "s{i}"\nquery = "topic{i}"\nrecipients = ["a@example.org"]\n'
        f'poll_every = "{every}"\n'
        for i in range(subs)
    )
    (tmp_path / "w.toml").write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "w.db"}"\n'
        '[ncbi]\nemail = "tests@example.org"\n'
        + ('api_key_env = "ROUND_TEST_NCBI_KEY"\n' if key else "")
        + text
    )
    assert main(["-c", str(tmp_path / "w.toml"), "check"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("key", "subs", "figures"),
    [
        (False, 200, "200 searches every 1m; at 3 requests/s that takes 67 s"),
        (True, 700, "700 searches every 1m; at 10 requests/s that takes 70 s"),
    ],
)
def test_check_warns_when_a_round_cannot_finish_within_poll_every(
    tmp_path: Path, capsys, monkeypatch, key: bool, subs: int, figures: str
) -> None:
    monkeypatch.setenv("ROUND_TEST_NCBI_KEY", "0123456789abcdef")
    out = _check(tmp_path, subs, "1m", capsys, key)
    warning = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1, out
    assert f"NCBI: {subs} subscriptions make at least {figures}" in warning[0]
    assert "longer than 1m" in warning[0]
    assert ("API key" in warning[0]) is not key


@pytest.mark.parametrize(("key", "subs"), [(False, 150), (True, 550)])
def test_check_is_silent_when_rounds_fit_in_poll_every(
    tmp_path: Path, capsys, monkeypatch, key: bool, subs: int
) -> None:
    monkeypatch.setenv("ROUND_TEST_NCBI_KEY", "0123456789abcdef")
    assert "warning" not in _check(tmp_path, subs, "1m", capsys, key)


def _commits(names: list[str]) -> list[PollCommit]:
    return [
        PollCommit(n, [pmid_key(FIRST + i), pmid_key(FIRST + 100)], "esearch", True, DAY, 2)
        for i, n in enumerate(names)
    ]


def test_a_batch_is_committed_whole_or_not_at_all(
    tmp_path: Path, store: Store, monkeypatch
) -> None:
    class Crash(Exception):
        pass

    calls = []

    def third_fails(*args, **kwargs):  # the third subscription's matches fail
        calls.append(1)
        if len(calls) == 3:
            raise Crash
        return add_matches(*args, **kwargs)

    monkeypatch.setattr(polls_module, "add_matches", third_fails)
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9/", subscriptions(4)))
    store.polls.sync(config.subscriptions, NOW)
    names = [s.name for s in config.subscriptions]
    with pytest.raises(Crash):
        store.polls.commit_batch(
            _commits(names), NOW, RecordsOwed(missing={pmid_key(FIRST + 100): "not yet"})
        )
    assert store.polls.match_counts() == {}
    assert all(s.window_end is None for s in store.polls.states().values())
    assert store.articles.attempts([pmid_key(FIRST + 100)]) == {}

    monkeypatch.undo()
    assert store.polls.commit_batch(_commits(names), NOW) == [2, 2, 2, 2]
    # A batch committed again (a round redone after a crash) adds nothing and keeps the state.
    assert store.polls.commit_batch(_commits(names), NOW + timedelta(hours=1)) == [0, 0, 0, 0]
    assert store.polls.match_counts() == dict.fromkeys(names, 2)
    assert {s.window_end for s in store.polls.states().values()} == {DAY}


def test_a_round_keeps_about_a_seconds_worth_of_searches_waiting_for_answers() -> None:
    assert [in_flight(r) for r in (0.5, 1, 3, 10, 50)] == [1, 1, 3, 4, 4]


def test_a_round_holds_the_locks_of_two_batches_at_most(tmp_path: Path, store_url: str) -> None:
    """A lock is an open file (SQLite) or an entry of the server's shared lock table
    (PostgreSQL): a round takes a batch's as it reaches the batch and lets them go at its
    commit, so that the batch committing and the one searched meanwhile are all it holds.
    Each subscription is claimed once, and is searched only while its lock is held."""
    subs = 5 * ROUND_BATCH // 2
    holding: set[str] = set()
    searched_unlocked: list[str] = []

    class Watched(IndexedNCBI):
        def search(self, term, datetype, mindate, maxdate, within=None):  # type: ignore[override]
            name = "s" + TOPIC.search(term).group(0)[5:-1]
            if name not in holding:
                searched_unlocked.append(name)
            return super().search(term, datetype, mindate, maxdate, within)

    fake = Watched().start()
    fake.add(papers(subs))
    config = load_config(write_config(tmp_path, fake.base_url, subscriptions(subs)))
    store = Store.open(store_url)
    store.migrate()
    store.polls.sync(config.subscriptions, NOW - timedelta(days=1))
    sources = sources_for(make_client(fake.base_url, rate=1000), config.ncbi, config, 4)
    locks, claimed, most = claimer(store), Counter[str](), [0]

    @contextmanager
    def watched(group: Sequence[Subscription]) -> Iterator[Claim]:
        with locks(group) as got:
            holding.update(s.name for s in got.mine)
            claimed.update(s.name for s in got.mine)
            most[0] = max(most[0], len(holding))
            yield got
            holding.difference_update(s.name for s in got.mine)

    try:
        report = poll(config, store, sources, NOW, claim=watched)
    finally:
        store.close()
        fake.stop()
    assert not report.failed and not report.skipped
    assert set(claimed.values()) == {1} and len(claimed) == subs
    assert most[0] == 2 * ROUND_BATCH and not holding
    assert fake.count("esearch") == subs and not searched_unlocked


def _round_config(tmp_path: Path, fake: IndexedNCBI, subs: int, store_url: str, rate: int) -> Path:
    """`subs` subscriptions and their papers in `fake`, a config on `store_url` at `rate`."""
    fake.add(papers(subs))
    cfg = write_config(
        tmp_path, fake.base_url, subscriptions(subs), extra=f'[store]\nurl = "{store_url}"\n'
    )
    cfg.write_text(cfg.read_text().replace("rate_limit = 100", f"rate_limit = {rate}"))
    return cfg


@pytest.mark.slow
def test_watcher_poll_of_more_subscriptions_than_the_open_file_limit(tmp_path: Path) -> None:
    """The real `watcher poll` on a SQLite store (a lock file per subscription searched) with
    its open files limited to 256 and 600 subscriptions: all polled (before, every lock was
    taken at the start and the round died of EMFILE: "Too many open files")."""
    subs = 6 * ROUND_BATCH
    fake = IndexedNCBI().start()
    try:
        cfg = _round_config(tmp_path, fake, subs, f"sqlite:///{tmp_path / 'round.db'}", 1000)
        limit = "import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)); "
        run = f"from watcher.cli import main; raise SystemExit(main(['-c', {str(cfg)!r}, 'poll']))"
        done = subprocess.run(
            [sys.executable, "-c", limit + run], capture_output=True, text=True, timeout=300
        )
    finally:
        fake.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    assert fake.count("esearch") == subs
    store = Store.open(f"sqlite:///{tmp_path / 'round.db'}")
    polled = [s for s in store.polls.states().values() if s.last_success_at is not None]
    store.close()
    assert len(polled) == subs


def test_two_polls_started_together_search_each_subscription_once(
    tmp_path: Path, store_url: str
) -> None:
    """Two real `watcher poll` of a batch and a half on one store: each claims a batch as it
    reaches it, and one the other has polled meanwhile is left as well as one it holds (the
    first to start takes the whole batch, the other the half, and ends first: the first
    then reaches a half batch already polled), so together they make one search per
    subscription, as one poll would, and each says what it left."""
    subs = ROUND_BATCH + ROUND_BATCH // 2
    fake = IndexedNCBI().start()
    try:
        # 30 requests/s: the round lasts 5 s, so that the two overlap.
        cfg = _round_config(tmp_path, fake, subs, store_url, 30)
        assert main(["-c", str(cfg), "check"]) == 0  # the store created once
        polls = [
            subprocess.Popen(
                [sys.executable, "-m", "watcher", "-c", str(cfg), "poll"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=300)[0] for p in polls]
    finally:
        fake.stop()
    assert [p.returncode for p in polls] == [0, 0], outputs
    polled = [set(re.findall(r"^(s\d+): \d+ found", out, re.M)) for out in outputs]
    left = [set(re.findall(r"^(s\d+): skipped, another watcher", out, re.M)) for out in outputs]
    every = {f"s{t:05d}" for t in range(subs)}
    assert polled[0] | polled[1] == every and not polled[0] & polled[1], outputs
    assert polled[0] | left[0] == every and polled[1] | left[1] == every, outputs
    assert fake.count("esearch") == subs
