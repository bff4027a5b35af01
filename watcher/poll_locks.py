"""Which subscriptions this process searches: each command that searches (`watcher run`, `poll`,
`backfill`) first takes the subscription's lock on the store, so that no search is made twice
at once, and leaves to the other process what it holds. Two `watcher poll` started together
thereby split the work instead of each doing all of it under one rate budget."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from watcher.store import Store
from watcher.subscriptions import Subscription


def poll_lock(name: str) -> str:
    """The store lock (Store.advisory_locks) held while `name` is searched."""
    return f"poll:{name}"


@dataclass(frozen=True)
class Claim:
    mine: list[Subscription]  # held by this process until the block ends
    busy: list[tuple[Subscription, str]]  # another process's, with who holds it where known


@contextmanager
def claimed(store: Store, subs: Sequence[Subscription]) -> Iterator[Claim]:
    """Take the locks of `subs` that no other process holds, without waiting, for the block."""
    with store.advisory_locks([poll_lock(s.name) for s in subs]) as held:
        busy = [(s, _holder(store, s.name)) for s in subs if poll_lock(s.name) not in held]
        yield Claim([s for s in subs if poll_lock(s.name) in held], busy)


def _holder(store: Store, name: str) -> str:
    found = store.lock_holder(poll_lock(name))
    return f"another watcher process ({found})" if found else "another watcher process"
