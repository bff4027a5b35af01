"""One request budget per host (and API key), whatever process spends it.

NCBI counts the requests of an API key (or, without one, of an IP address) in each second, not
those of one process: two `watcher poll` on one machine, each keeping its own pace, together ask
twice as fast and draw 429s. So the HTTP layer asks a `RateBudget` for a slot before every
request, and where the slots are kept is the budget's: in the process (`LocalBudget`), in an
flock'd file beside a SQLite store (locks.FileBudget), in a table of a PostgreSQL store (the
store's PgBudget). The rule they share is `take`, here: at most `slots` request starts in any
`period` seconds, read on one clock while the slots are held.

A slot is taken at the moment it is used, never reserved ahead: a process that dies holds no
slot and no lock (flock and a transaction's lock end with it), and a process that wakes late
does not push its late start into another's second.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

# How much longer than the host's second the slots of `rate` requests are spread over. Between
# taking a slot and the request reaching the host there is a delay that varies (the network; a
# busy machine pausing a process between the two), and a request that arrives late lands nearer
# the next one: a margin of 20 ms held on an idle machine (a 5,000-search round at 50/s, four
# processes on one budget: no 429), while at load average 15-24 four processes' requests
# arrived up to 85 ms off their slots and 50 ms of margin drew a 429 in one request of 30-70.
# So a process starts at 100 ms, which held in every loaded run, narrows towards 20 ms while
# the host answers without a 429, and widens again at the first one (`Margin`): the pace of an
# idle machine is 2% under the host's limit, not 10%, and a loaded one finds its own.
PERIOD = 1.1  # where every process starts, and the most a 429 leaves the narrowest at
PERIOD_FLOOR = 1.02
PERIOD_CEILING = 2.0  # persistent 429s (another client spending the same address): half pace
NARROW_AFTER = 50  # answers without a 429 before the margin narrows by one step
NARROW_STEP = 0.01
WIDEN_STEP = 0.1


@dataclass
class Margin:
    """The period one process spreads a host's slots over: it narrows by NARROW_STEP after
    every NARROW_AFTER answers without a 429, down to `floor`, and widens by WIDEN_STEP at a
    429, which also raises `floor` above the period that drew it (not past PERIOD), so the
    process does not probe the same too-narrow margin again and again. A 429 from a client
    sharing the budget outside the watcher widens it the same way, up to PERIOD_CEILING.

    Kept per process, not in the shared budget: each process's requests see their own delays,
    and processes of different periods on one budget are safe together (`take` spaces each
    start by the asker's own period)."""

    period: float = PERIOD
    floor: float = PERIOD_FLOOR
    clean: int = 0

    def answered(self) -> None:
        self.clean += 1
        if self.clean >= NARROW_AFTER:
            self.clean = 0
            self.period = max(self.floor, round(self.period - NARROW_STEP, 6))

    def throttled(self) -> None:
        self.clean = 0
        self.floor = min(PERIOD, max(self.floor, round(self.period + NARROW_STEP, 6)))
        self.period = min(PERIOD_CEILING, round(self.period + WIDEN_STEP, 6))


@dataclass(frozen=True)
class Pace:
    """At most `slots` request starts in any `period` seconds, counted on `key`."""

    key: str  # the host, with a digest of the API key when requests carry one
    slots: int
    period: float = PERIOD

    @classmethod
    def of(cls, key: str, rate: float, period: float = PERIOD) -> Pace:
        """`rate` requests per second: whole slots in a period, or one slot in a longer period
        for a rate under one (0.5/s: one request in 2.2 s)."""
        if rate >= 1:
            return cls(key, int(rate), period)
        return cls(key, 1, period / rate)

    @property
    def name(self) -> str:
        """What a budget's file or row is called: a digest, so no key is written out."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:32]


def budget_key(host: str, account: str | None = None) -> str:
    """What requests to `host` are counted on: the host, and the API key they carry when they
    carry one (NCBI counts per key; without one, per address). The key only as a digest."""
    if not account:
        return host
    return f"{host} key {hashlib.sha256(account.encode()).hexdigest()[:16]}"


def take(starts: Sequence[float], now: float, pace: Pace) -> tuple[list[float], float]:
    """Ask for a slot at `now`, given the starts already counted: the starts to keep (with `now`
    among them when granted) and 0, or the starts and the seconds to wait.

    Starts are spaced by `period / slots` (0.367 s at 3/s), not let through in bursts: then no
    second ever holds more than `slots` whatever clock NCBI counts on, and processes waiting
    on one budget take turns instead of the first awake taking a whole period's slots. The
    count in the window is checked as well, for a budget shared with a process of another rate.

    A start more than a period in the future is dropped: the clock stepped back, or a file
    outlived a reboot (a monotonic clock starts again), and honouring it could stall for hours.
    """
    kept = sorted(t for t in starts if now - pace.period < t <= now + pace.period)
    kept = kept[-pace.slots :]
    if not kept:
        return [now], 0.0
    wait = kept[-1] + pace.period / pace.slots - now
    if len(kept) == pace.slots:
        wait = max(wait, kept[0] + pace.period - now)
    if wait <= 0:
        return [*kept[1 - pace.slots :], now] if pace.slots > 1 else [now], 0.0
    return kept, max(wait, 1e-3)


class RateBudget(Protocol):
    def try_take(self, pace: Pace) -> float:
        """Take a slot of `pace` now and return 0, or return the seconds to wait before asking
        again (another holder's slot is still in the window)."""
        ...


def wait_for_slot(budget: RateBudget, pace: Pace, sleep: Callable[[float], None]) -> None:
    """Block (through `sleep`, which a shutdown may interrupt) until `budget` grants a slot."""
    while (wait := budget.try_take(pace)) > 0:
        sleep(wait)


def parse_starts(raw: str | bytes | None) -> list[float]:
    """Starts as a file or row holds them ("12.5 13.1"); anything unreadable (a write cut off
    by a crash) is left out: a lost start costs at most one early request."""
    out = []
    for word in (raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw or "").split():
        try:
            out.append(float(word))
        except ValueError:
            continue
    return out


def format_starts(starts: Sequence[float]) -> str:
    return " ".join(f"{t:.6f}" for t in starts)


class LocalBudget:
    """The slots in this process's memory: what one process alone on a store (or an in-memory
    store) needs; threads share it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._starts: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def try_take(self, pace: Pace) -> float:
        with self._lock:
            kept, wait = take(self._starts.get(pace.key, ()), self._clock(), pace)
            self._starts[pace.key] = kept
            return wait
