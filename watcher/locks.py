"""Locks between processes sharing one SQLite store: an flock'd file per key, in a folder beside
the database (`watcher.db.locks/`).

SQLite has nothing like PostgreSQL's advisory locks, and its own file locks last one
transaction, while a digest must be held from choosing its papers until the mail server has
answered. flock is per open file, so it also excludes two stores opened in one process, and the
kernel drops it when its holder dies: a crash never leaves a stale lock. (SQLite itself must not
be on a network file system, so one host is all these locks need to cover.)
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
from pathlib import Path

from watcher.paths import open_private, private_dir

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
