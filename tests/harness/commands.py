"""The real `watcher` commands on a store of either kind: the store's URL (a SQLite file, or a
fresh PostgreSQL schema), a config pointing at the fakes, and the command as a process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ..conftest import PG_ENV, _pg_schema_url, postgres_url
from ..fakes.ncbi import FakeNCBI
from ..fakes.smtp import SmtpServer


@contextmanager
def store_url(kind: str, folder: Path) -> Iterator[str]:
    """A SQLite file in `folder`, or a schema of its own on the server WATCHER_TEST_POSTGRES_URL
    names (dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'stress.db'}"
        return
    base = postgres_url()
    if base is None:
        raise SystemExit(f"--store postgresql needs {PG_ENV}")
    schema = _pg_schema_url(base)
    try:
        yield next(schema)
    finally:
        schema.close()


def write_config(
    folder: Path,
    url: str,
    fake: FakeNCBI,
    smtp: SmtpServer,
    *,
    recipients: Sequence[str],
    defaults: str = "",
) -> Path:
    """One subscription (teplizumab) for `recipients`, the fake NCBI unthrottled, mail to `smtp`;
    `defaults`: more [defaults] lines, e.g. a schedule for `watcher run`."""
    path = folder / "watcher.toml"
    names = ", ".join(f'"{r}"' for r in recipients)
    path.write_text(
        f'[store]\nurl = "{url}"\n[ncbi]\nemail = "bench@example.org"\n'
        f'base_url = "{fake.base_url}"\nrate_limit = 100\n'
        f'[mail]\nfrom = "watcher@example.org"\n[mail.smtp]\nhost = "127.0.0.1"\n'
        f'port = {smtp.port}\nsecurity = "none"\ntimeout = 30\n'
        f'[defaults]\ntimezone = "UTC"\n{defaults}'
        f'[[subscription]]\nname = "Anti-CD3"\nquery = "teplizumab"\nrecipients = [{names}]\n'
    )
    return path


def start_watcher(
    cfg: Path, command: str, stdout: IO[str] | int = subprocess.PIPE
) -> subprocess.Popen[str]:
    """`python -m watcher -c cfg command`, its output (stdout and stderr) to `stdout`."""
    return subprocess.Popen(
        [sys.executable, "-m", "watcher", "-c", str(cfg), command],
        stdout=stdout,
        stderr=subprocess.STDOUT,
        text=True,
    )
