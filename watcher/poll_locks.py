"""Which subscriptions this process searches: each command that searches (`watcher run`, `poll`,
`backfill`) takes a subscription's lock on the store before searching it, so that no search is
made twice at once, and leaves to the other process what it holds. Two `watcher poll` started
together thereby split the work instead of each doing all of it under one rate budget.

Locks are taken a batch at a time, as the round reaches the batch (poll.py), and let go when
the batch is committed: a lock is an open file on SQLite and an entry of PostgreSQL's shared
lock table, and a round of 20,000 subscriptions holding all of theirs at once ran out of file
descriptors (the usual limit is 1,024) and would overflow that table (64 × max_connections).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from watcher.models import PollState
from watcher.schedule import next_poll_time
from watcher.store import Store
from watcher.subscriptions import Subscription


def poll_lock(name: str) -> str:
    """The store lock (Store.advisory_locks) held while `name` is searched."""
    return f"poll:{name}"


@dataclass(frozen=True)
class Claim:
    mine: list[Subscription]  # held by this process until the block ends
    busy: list[tuple[Subscription, str]] = field(default_factory=list)  # another's, and who
    states: dict[str, PollState] | None = None  # `mine`'s, when the claim read them


# Of the subscriptions a claim holds, given their states read under the locks, those still
# worth searching.
Recheck = Callable[[list[Subscription], Mapping[str, PollState]], list[Subscription]]


# Takes what it can of a batch's locks for the duration of a block.
Claimer = Callable[[Sequence[Subscription]], AbstractContextManager[Claim]]


def unlocked(subs: Sequence[Subscription]) -> AbstractContextManager[Claim]:
    """Every subscription, no lock taken: for a caller alone on its store (tests, benches)."""
    return nullcontext(Claim(list(subs)))


def claimer(store: Store, recheck: Recheck | None = None) -> Claimer:
    """Claims on `store`: the locks of a batch that no other process holds, without waiting.
    `recheck` keeps, of those it holds, the ones still worth searching (another process may
    have polled them between the listing and the lock); the others are reported busy."""

    @contextmanager
    def claim(subs: Sequence[Subscription]) -> Iterator[Claim]:
        with store.advisory_locks([poll_lock(s.name) for s in subs]) as held:
            mine = [s for s in subs if poll_lock(s.name) in held]
            busy = [(s, _holder(store, s.name)) for s in subs if poll_lock(s.name) not in held]
            if not (recheck and mine):
                yield Claim(mine, busy)  # states left to the caller that needs them
                return
            states = store.polls.states([s.name for s in mine])
            kept = {s.name for s in recheck(mine, states)}
            busy += [(s, "another watcher process") for s in mine if s.name not in kept]
            yield Claim([s for s in mine if s.name in kept], busy, states)

    return claim


def not_polled_since(listed: Mapping[str, PollState]) -> Recheck:
    """A `recheck` keeping the subscriptions no other process polled since their states were
    `listed`: two `watcher poll` started together, claiming batch after batch, would otherwise
    each poll again the batches the other had just finished."""

    def check(subs: list[Subscription], states: Mapping[str, PollState]) -> list[Subscription]:
        return [s for s in subs if _last(states, s.name) == _last(listed, s.name)]

    return check


def _last(states: Mapping[str, PollState], name: str) -> datetime | None:
    state = states.get(name)
    return state.last_poll_at if state else None


def still_due(now: datetime) -> Recheck:
    """A `recheck` keeping the subscriptions due at `now` by their state as stored now."""

    def check(subs: list[Subscription], states: Mapping[str, PollState]) -> list[Subscription]:
        return [s for s in subs if next_poll_time(s.schedule, _last(states, s.name), now) <= now]

    return check


def _holder(store: Store, name: str) -> str:
    found = store.lock_holder(poll_lock(name))
    return f"another watcher process ({found})" if found else "another watcher process"
