"""Locks between processes sharing one SQLite store: an flock'd file per key, in a folder beside
the database (`watcher.db.locks/`), and one beside the database itself that one `watcher run`
holds (InstanceLock).

SQLite has nothing like PostgreSQL's advisory locks, and its own file locks last one
transaction, while a digest must be held from choosing its papers until the mail server has
answered. flock is per open file, so it also excludes two stores opened in one process, and the
kernel drops it when its holder dies: a crash never leaves a stale lock. (SQLite itself must not
be on a network file system, so one host is all these locks need to cover.)

The same folder holds the store's rate budgets (FileBudget): the request starts of each host
and API key, which every process on the store reads and writes under the file's flock.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from watcher.errors import StoreError
from watcher.paths import open_private, private_dir
from watcher.rate import Pace, format_starts, parse_starts, take

_UNSAFE = re.compile(r"[^A-Za-z0-9@._-]+")


class KeyLocks:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, key: str) -> Path:
        # Readable for whoever looks in the folder, unique whatever the key holds.
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        return self.folder / f"{_UNSAFE.sub('_', key)[:80]}-{digest}.lock"

    def try_acquire(self, key: str) -> int | None:
        """The open, locked file for `key`, or None when another holder has it (no waiting).
        The holder's pid is written into the file, for the other side's message."""
        private_dir(self.folder)
        fd = open_private(self.path(key), os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        return fd

    @staticmethod
    def release(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def holder(self, key: str) -> str | None:
        """What the current holder of `key` wrote ("pid 1234"), if anything."""
        try:
            return self.path(key).read_text(encoding="ascii", errors="replace").strip() or None
        except OSError:
            return None


class FileBudget:
    """A rate budget kept in `folder`: one file per host and key (named by a digest, so no API
    key is written out) holding the starts in the window, read and rewritten under an exclusive
    flock that lasts a few system calls. A process that dies holds nothing; the kernel drops
    its lock. The clock is the host's monotonic one, which every process on it shares."""

    def __init__(self, folder: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.folder = folder
        self._clock = clock
        self._made = False

    def path(self, pace: Pace) -> Path:
        return self.folder / f"rate-{pace.name}.slots"

    def try_take(self, pace: Pace) -> float:
        if not self._made:
            private_dir(self.folder)
            self._made = True
        fd = open_private(self.path(pace), os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # The clock is read under the lock: no other process can take a slot between this
            # reading and the write, so the starts in the file are in the order they were taken.
            kept, wait = take(parse_starts(os.pread(fd, 1 << 16, 0)), self._clock(), pace)
            if not wait:
                data = format_starts(kept).encode()
                # Written over, then cut to length: a crash between the two leaves a longer
                # list, read as more starts (a later request), never as fewer.
                os.pwrite(fd, data, 0)
                os.ftruncate(fd, len(data))
            return wait
        finally:
            os.close(fd)  # and with it the flock


class InstanceLock:
    """One `watcher run` per SQLite store: an exclusive flock beside the database file.

    The kernel drops the lock when the process dies, so a crash never leaves a stale lock.
    """

    def __init__(self, store_url: str) -> None:
        path = store_url.split(":///", 1)[1].split("?", 1)[0]
        self.path = Path(path + ".lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        private_dir(self.path.parent)
        f = os.fdopen(open_private(self.path, os.O_RDWR | os.O_CREAT), "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise StoreError(
                f"the store {self.path.with_suffix('')} is in use by another "
                f"`watcher run` ({holder}); stop it first, or use PostgreSQL to run "
                "two instances"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
