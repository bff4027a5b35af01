"""Shared by the mail transport and store fault cells: a watcher configured against the fake NCBI
(three papers matching one subscription for two readers), driven through `watcher.cli.main` as a
user would drive it, and the check of the invariant on what the readers actually received."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from watcher.cli import main
from watcher.sources.eutils import ncbi_today

from ..fakes.ncbi import FakeNCBI
from ..fakes.records import synthetic
from ..fakes.smtp import Received

READERS = ("alice@example.org", "bob@example.org")
PMIDS = (4101, 4102, 4103)


def add_papers(fake: FakeNCBI) -> None:
    """Three records created today that the subscription's query matches, each with an abstract
    longer than a SQLite page (storing them grows the database)."""
    today = ncbi_today(datetime.now(UTC))
    abstract = "Teplizumab delayed the onset of stage 3 type 1 diabetes. " * 80
    fake.add(
        synthetic(p, f"Teplizumab trial report {p}", edat=today, abstract=abstract) for p in PMIDS
    )


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass(frozen=True)
class Watcher:
    """A config in `folder`: the fake NCBI, a store, and either `[mail.smtp]` or the maildir."""

    folder: Path
    config: Path

    @classmethod
    def make(
        cls,
        folder: Path,
        fake: FakeNCBI,
        *,
        store_url: str | None = None,
        smtp: str = "",
        ncbi: str = "",
    ) -> Watcher:
        add_papers(fake)
        store_url = store_url or f"sqlite:///{folder / 'store.db'}"
        config = folder / "watcher.toml"
        config.write_text(
            f'[ncbi]\nemail = "tests@example.org"\nbase_url = "{fake.base_url}"\n'
            f"rate_limit = 100\nretries = 1\n{ncbi}\n"
            f'[store]\nurl = "{store_url}"\n'
            '[mail]\nfrom = "watcher@lab.example.org"\n'
            f"{smtp}\n"
            '[defaults]\ntimezone = "UTC"\n\n'
            '[[subscription]]\nname = "Anti-CD3"\nquery = "teplizumab"\n'
            f"recipients = {json.dumps(list(READERS))}\n"
        )
        return cls(folder, config)

    def cli(self, *args: str) -> Run:
        """`watcher -c CONFIG ARGS…` in this process, as the console script runs it."""
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["-c", str(self.config), *args])
        return Run(code, out.getvalue(), err.getvalue())

    def cli_in_namespace(self, mount: str, *args: str) -> Run:
        """`watcher` in a child process inside its own user and mount namespaces, after the
        shell line `mount` (which sees the folder as $1), e.g. a tiny tmpfs over the maildir:
        the fault lives and dies with that process, the files outside are untouched."""
        proc = subprocess.run(
            [
                "unshare",
                "-Urm",
                "sh",
                "-ec",
                f'{mount}\nshift; exec "$@"',
                "sh",
                str(self.folder),
                sys.executable,
                "-m",
                "watcher",
                "-c",
                str(self.config),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def status(self) -> dict[str, Any]:
        run = self.cli("status", "--json")
        assert run.code == 0, run
        data: dict[str, Any] = json.loads(run.out)
        return data

    def digests(self) -> dict[str, list[dict[str, Any]]]:
        """Each reader's undelivered digests as `watcher status --json` shows them."""
        return {r["address"]: r["digests"] for r in self.status()["recipients"]}

    def awaiting(self) -> dict[str, int]:
        return {r["address"]: r["undelivered"] for r in self.status()["recipients"]}

    @property
    def maildir(self) -> Path:
        return self.folder / "mail"


def namespaces_work() -> bool:
    """unshare -Urm with a tmpfs mount: a user namespace may be refused (CI, containers)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


def pmids_in(messages: list[tuple[str, EmailMessage]]) -> dict[str, list[int]]:
    """Reader → every PMID in the digests they received, repeats across digests included."""
    out: dict[str, list[int]] = {r: [] for r in READERS}
    for rcpt, msg in messages:
        body = msg.get_body(("plain",))
        assert body is not None
        found = re.findall(r"pubmed\.ncbi\.nlm\.nih\.gov/(\d+)/", body.get_content())
        out[rcpt].extend(int(p) for p in dict.fromkeys(found))
    return {r: sorted(p) for r, p in out.items()}


def over_smtp(received: list[Received]) -> list[tuple[str, EmailMessage]]:
    return [(rcpt, r.message) for r in received for rcpt in r.rcpt_tos]


def in_maildir(folder: Path) -> list[tuple[str, EmailMessage]]:
    out = []
    for path in sorted((folder / "new").glob("*.eml")):
        msg: EmailMessage = message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[assignment]
        out.append((str(msg["To"]), msg))
    return out


def assert_each_paper_once(messages: list[tuple[str, EmailMessage]]) -> None:
    """The invariant: every matched paper reached every reader, exactly once."""
    assert pmids_in(messages) == {r: list(PMIDS) for r in READERS}
    ids = [str(m["Message-ID"]) for _, m in messages]
    assert len(ids) == len(set(ids)), ids


def assert_no_traceback(run: Run) -> None:
    assert "Traceback" not in run.text, run.text
    assert "internal error" not in run.text, run.text


def not_delivered(run: Run) -> dict[str, str]:
    """`watcher digest`'s line for each reader it could not mail: reader → the reason."""
    lines = re.findall(r"^  not delivered: (\S+): (.*)$", run.out, re.M)
    return dict(lines)
