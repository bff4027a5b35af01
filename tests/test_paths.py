"""Everything the watcher writes is the owner's alone (files 0600, folders 0700), whatever the
umask: the store and its -wal/-shm, the locks, every message in the maildir and under --out."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.poll import ncbi_today

from .conftest import REPO, write_config
from .fakes.ncbi import FakeNCBI
from .fakes.records import synthetic
from .test_daemon import Daemon, until


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The loosest umask there is, for this process and the ones it starts."""
    old = os.umask(0)
    yield
    os.umask(old)


def watcher(cfg: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "watcher", "-c", str(cfg), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def modes(root: Path, skip: set[Path]) -> dict[str, str]:
    """Relative path → octal permissions, of everything under `root` but `skip`."""
    return {
        str(p.relative_to(root)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in sorted(root.rglob("*"))
        if p not in skip
    }


@pytest.mark.slow
def test_store_locks_and_messages_are_owner_only_under_any_umask(
    tmp_path: Path, fake: FakeNCBI, open_umask: None
) -> None:
    fake.add([synthetic(1, "teplizumab paper", edat=ncbi_today(datetime.now(UTC)))])
    cfg = write_config(
        tmp_path,
        fake.base_url,
        '[[subscription]]\nname = "t"\nquery = "teplizumab"\nrecipients = ["a@example.org"]\n',
        defaults='poll_every = "1s"\n',
    )
    watcher(cfg, "poll")
    watcher(cfg, "digest", "--dry-run", "--out", str(tmp_path / "preview" / "week"))
    watcher(cfg, "digest")
    daemon = Daemon(cfg)
    try:
        daemon.wait_for("poll done")
        # While the daemon runs: its lock, the per-key locks, and SQLite's -wal and -shm.
        until(lambda: (tmp_path / "watcher.db-shm").exists(), 20, daemon.log)
        running = modes(tmp_path, {cfg})
    finally:
        assert daemon.stop() == 0, daemon.log()
    assert {"watcher.db-wal", "watcher.db-shm", "watcher.db.lock", "watcher.db.locks"} <= set(
        running
    )
    assert any(name.startswith("watcher.db.locks/poll_t-") for name in running)
    assert [p for p in (tmp_path / "mail" / "new").iterdir()], "nothing was mailed"
    assert len(list((tmp_path / "preview" / "week").glob("*.eml"))) == 1
    after = modes(tmp_path, {cfg})
    for found in (running, after):
        wrong = {
            name: mode
            for name, mode in found.items()
            if mode != ("0o700" if (tmp_path / name).is_dir() else "0o600")
        }
        assert wrong == {}


def test_files_written_before_are_made_owner_only(tmp_path: Path, open_umask: None) -> None:
    from watcher.store import Store
    from watcher.transports.maildir import MaildirTransport

    db = tmp_path / "old.db"
    db.touch(0o644)
    (tmp_path / "mail" / "new").mkdir(parents=True, mode=0o755)
    Store.open(f"sqlite:///{db}").close()
    MaildirTransport(tmp_path / "mail")
    assert oct(stat.S_IMODE(db.stat().st_mode)) == "0o600"
    assert oct(stat.S_IMODE((tmp_path / "mail" / "new").stat().st_mode)) == "0o700"


def test_private_helpers_ignore_the_umask_and_leave_existing_folders(
    tmp_path: Path, open_umask: None
) -> None:
    from watcher.paths import private_dir, write_private

    mine = tmp_path / "theirs"
    mine.mkdir(mode=0o755)
    private_dir(mine / "a" / "b")
    write_private(mine / "a" / "b" / "f", b"x")
    assert oct(stat.S_IMODE(mine.stat().st_mode)) == "0o755"  # not ours to change
    assert [oct(stat.S_IMODE(p.stat().st_mode)) for p in (mine / "a", mine / "a" / "b")] == [
        "0o700",
        "0o700",
    ]
    assert oct(stat.S_IMODE((mine / "a" / "b" / "f").stat().st_mode)) == "0o600"


def test_systemd_unit_sets_an_owner_only_umask() -> None:
    unit = (REPO / "contrib" / "pubmed-watcher.service").read_text()
    service = unit.split("[Service]", 1)[1].split("[Install]", 1)[0]
    assert "\nUMask=0077\n" in service
