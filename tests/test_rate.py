"""One rate budget per host and API key, shared by every process on a store (watcher/rate.py):
the rule on a clock the test moves, the margin that the host's 429s (or their absence) set, then
real processes taking slots from one SQLite folder or
one PostgreSQL store, and a holder killed mid-take that holds up nobody."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from watcher.locks import FileBudget
from watcher.rate import (
    NARROW_AFTER,
    PERIOD,
    PERIOD_CEILING,
    PERIOD_FLOOR,
    LocalBudget,
    Margin,
    Pace,
    budget_key,
    take,
    wait_for_slot,
)
from watcher.sources.http import Http
from watcher.store import Store

from .conftest import make_client
from .fakes.ncbi import FakeNCBI


def moved_clock() -> tuple[list[float], LocalBudget, list[float]]:
    now = [0.0]
    slept: list[float] = []
    return now, LocalBudget(clock=lambda: now[0]), slept


def test_starts_are_spaced_by_the_period_over_the_rate() -> None:
    now, budget, slept = moved_clock()

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    starts = []
    for _ in range(7):
        wait_for_slot(budget, Pace("h", 3, 1.0), sleep)
        starts.append(now[0])
    # Spaced by a third of the period, never in bursts: no second holds more than three.
    assert starts == pytest.approx([0, 1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2], abs=0.01)


def test_a_rate_under_one_is_one_start_in_a_longer_period() -> None:
    pace = Pace.of("h", 0.5)
    assert (pace.slots, pace.period) == (1, pytest.approx(2.2))
    assert Pace.of("h", 10).slots == 10 and Pace.of("h", 10).period == 1.1


def test_a_start_far_in_the_future_is_forgotten() -> None:
    # A monotonic clock starts again at a reboot; a file written before must not stall us.
    kept, wait = take([5000.0, 5000.1, 5000.2], 10.0, Pace("h", 3))
    assert wait == 0 and kept == [10.0]
    # One slightly ahead (another process read the clock a moment later) still counts.
    kept, wait = take([10.2, 10.3, 10.4], 10.0, Pace("h", 3))
    assert wait == pytest.approx(1.3)


def test_each_key_has_its_own_budget_and_no_key_is_written_out() -> None:
    keyed = budget_key("ncbi.nlm.nih.gov", "k-0123456789abcdef")
    assert "0123456789" not in keyed and keyed != budget_key("ncbi.nlm.nih.gov")
    assert keyed != budget_key("ncbi.nlm.nih.gov", "k-other")
    http = Http(user_agent="t")
    http.set_rate("ncbi.nlm.nih.gov", 10, "k-0123456789abcdef")
    pace = http.limiter("https://eutils.ncbi.nlm.nih.gov/entrez/eutils/esearch.fcgi")
    assert pace.key == keyed and pace.slots == 10
    assert len(pace.name) == 32 and "k-01" not in pace.name


def test_the_file_budget_names_its_files_by_digest(tmp_path: Path) -> None:
    budget = FileBudget(tmp_path / "locks")
    pace = Pace.of(budget_key("127.0.0.1", "k-secret-123456"), 10)
    assert budget.try_take(pace) == 0
    (only,) = (tmp_path / "locks").iterdir()
    assert "secret" not in only.name and "secret" not in only.read_text()
    assert only.stat().st_mode & 0o777 == 0o600


# A process taking `n` slots of a 10/s budget from the store at argv[1], printing when it got
# each (the host's monotonic clock, which every process reads alike).
TAKER = textwrap.dedent(
    """
    import json, sys, time
    from watcher.rate import Pace, wait_for_slot
    from watcher.store import Store
    store = Store.open(sys.argv[1])
    budget, pace, got = store.rate_budget(), Pace.of("shared-host", 10), []
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(int(sys.argv[2])):
        wait_for_slot(budget, pace, time.sleep)
        got.append(time.monotonic())
    print(json.dumps(got), flush=True)
    """
)


def takers(store_url: str, n: int, count: int) -> list[list[float]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TAKER, store_url, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    for p in procs:  # every process has opened its store before any starts taking
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * n, outs
    return [json.loads(out.splitlines()[-1]) for out in outs]


def most_in_a_second(times: list[float]) -> int:
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + 1.0) for t in times)


@pytest.mark.slow
def test_two_processes_share_one_budget_and_interleave(store_url: str) -> None:
    Store.open(store_url).close()  # migrated once, before the processes race to open it
    a, b = takers(store_url, 2, 15)
    # Together they keep to the one budget (10 in any second), and neither waited for the
    # other to finish: their slots interleave.
    assert most_in_a_second(a + b) <= 10
    assert min(b) < max(a) and min(a) < max(b)
    # Together about as fast as one: 30 slots 0.11 s apart (a loaded machine and a database
    # round trip per slot given their due).
    assert max(a + b) - min(a + b) < 1.5 * 29 * 0.11 + 1


# A process that holds a budget's lock as a process killed in the middle of taking a slot would:
# an flock on the budget's file (SQLite) or the transaction's advisory lock (PostgreSQL).
HOLDER = textwrap.dedent(
    """
    import fcntl, os, sys, time
    from sqlalchemy import text
    from watcher.rate import Pace
    from watcher.store import Store
    from watcher.store.engine import PG_STORE_KEY
    store = Store.open(sys.argv[1])
    budget, pace = store.rate_budget(), Pace.of("shared-host", 10)
    if store.dialect == "postgresql":
        conn = store.engine.connect()
        conn.execute(
            text(f"SELECT pg_advisory_xact_lock({PG_STORE_KEY}, hashtext(:k))"),
            {"k": f"rate:{pace.name}"},
        )
    else:
        budget.folder.mkdir(exist_ok=True)
        fd = os.open(budget.path(pace), os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
    print("holding", flush=True)
    time.sleep(600)
    """
)


@pytest.mark.slow
def test_a_holder_killed_mid_take_holds_up_nobody(store_url: str) -> None:
    store = Store.open(store_url)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, store_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        took = threading.Event()
        thread = threading.Thread(
            target=lambda: (store.rate_budget().try_take(Pace.of("shared-host", 10)), took.set())
        )
        thread.start()
        assert not took.wait(1.0)  # the holder has it
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        # The kernel (flock) or the server (a dead backend's transaction) let go at once.
        assert took.wait(8.0)
        thread.join()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
        store.close()


def test_an_in_memory_store_keeps_its_budget_in_the_process() -> None:
    store = Store.open("sqlite://")
    budget = store.rate_budget()
    assert isinstance(budget, LocalBudget)
    pace = Pace("h", 2, 60.0)
    assert budget.try_take(pace) == 0 and budget.try_take(pace) > 29
    store.close()


def test_slots_are_spaced_as_the_clock_is_read_under_the_lock(tmp_path: Path) -> None:
    budget = FileBudget(tmp_path)
    pace = Pace("h", 1, 0.2)
    got = []
    start = time.monotonic()
    for _ in range(4):
        wait_for_slot(budget, pace, time.sleep)
        got.append(time.monotonic() - start)
    gaps = [b - a for a, b in itertools.pairwise(got)]
    assert all(g >= 0.2 - 1e-3 for g in gaps), gaps


def test_the_margin_narrows_while_the_host_answers_and_widens_at_a_429() -> None:
    margin = Margin()
    assert margin.period == PERIOD == 1.1
    for _ in range(NARROW_AFTER - 1):
        margin.answered()
    assert margin.period == 1.1  # one answer short of a step
    margin.answered()
    assert margin.period == pytest.approx(1.09)
    for _ in range(NARROW_AFTER * 20):
        margin.answered()
    assert margin.period == PERIOD_FLOOR == 1.02  # and no further
    # A 429 at 1.02: wider at once, and 1.02 is never tried again by this process.
    margin.throttled()
    assert (margin.period, margin.floor) == (pytest.approx(1.12), pytest.approx(1.03))
    for _ in range(NARROW_AFTER * 20):
        margin.answered()
    assert margin.period == pytest.approx(1.03)
    # Another client spending the same address: every answer a 429. Half pace at most, and the
    # narrowest it returns to is where every process starts.
    for _ in range(30):
        margin.throttled()
    assert margin.period == PERIOD_CEILING and margin.floor == PERIOD
    for _ in range(NARROW_AFTER * 200):
        margin.answered()
    assert margin.period == PERIOD


def test_the_host_s_429s_set_the_margin_of_its_budget(fake: FakeNCBI) -> None:
    client = make_client(fake.base_url, rate=500)
    for _ in range(NARROW_AFTER):
        client.search("x", None, None)
    assert client.limiter.period == pytest.approx(1.09)
    # A 5xx is not about the pace; a 429, or NCBI's rate-limit JSON under a 200, is.
    fake.fault("esearch", "status:503")
    client.search("x", None, None)
    assert client.limiter.period == pytest.approx(1.09)
    fake.fault("esearch", "ratelimit")
    client.search("x", None, None)
    assert client.limiter.period == pytest.approx(1.19)
    fake.fault("esearch", "ratelimit200")
    client.search("x", None, None)
    assert client.limiter.period == pytest.approx(1.29)
    # Another host's pace has a margin of its own.
    assert client.http.limiter("https://www.ebi.ac.uk/europepmc/").period == PERIOD
