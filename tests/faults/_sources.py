"""What the HTTP sources' fault cells share: the fake servers, a config naming them and a real
SMTP server, the papers each source holds, a poll through the CLI's wiring with its backoff
recorded instead of slept, and reading the delivered digests back with the `email` package."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.config import load_config
from watcher.poll import poll
from watcher.poll_report import PollReport
from watcher.sources.eutils import ncbi_today
from watcher.wiring import make_sources, open_store

from ..conftest import write_config
from ..fakes.budget import Unpaced
from ..fakes.clinicaltrials import FakeClinicalTrials, study
from ..fakes.europepmc import FakeEuropePmc, load_record
from ..fakes.icite import FakeICite
from ..fakes.ncbi import FakeNCBI
from ..fakes.records import synthetic
from ..fakes.smtp import SmtpServer

RECIPIENTS = ("alice@example.org", "bob@example.org")
FOLLOWED = 97000001  # the paper a `cites` cell follows
FEED = "1AbCfaultfeed"
# Short, so that the read timeout fault costs a second per request (three tries), not minutes.
TIMEOUT = 0.3
RETRIES = 2


@dataclass
class World:
    """The servers of one cell, its config and the titles each recipient must receive once."""

    tmp: Path
    ncbi: FakeNCBI
    epmc: FakeEuropePmc
    ctgov: FakeClinicalTrials
    smtp: SmtpServer
    kind: str
    retries: int = RETRIES
    query: str = "teplizumab"
    titles: list[str] = field(default_factory=list)
    icite: FakeICite | None = None  # the `cites` cells' iCite, on the fake NCBI's graph

    @property
    def config_path(self) -> Path:
        return self.tmp / "watcher.toml"

    def write_config(self) -> Path:
        rcpts = ", ".join(f'"{r}"' for r in RECIPIENTS)
        what = {
            "query": f'query = "{self.query}"',
            "rss": f'rss = "{self.ncbi.feed_url(FEED)}"',
            "europepmc": 'europepmc = "teplizumab"',
            "trials": 'trials = "teplizumab"',
            "cites": f"cites = [{FOLLOWED}]",
        }[self.kind]
        subs = f'[[subscription]]\nname = "Cell"\n{what}\nrecipients = [{rcpts}]\n'
        extra = (
            f"timeout = {TIMEOUT}\n"
            f'[europepmc]\nbase_url = "{self.epmc.base_url}"\nrate_limit = 100\n'
            f'[clinicaltrials]\nbase_url = "{self.ctgov.base_url}"\nrate_limit = 100\n'
            + (
                f'[icite]\nbase_url = "{self.icite.base_url}"\nrate_limit = 100\n'
                if self.icite
                else ""
            )
            + f'[mail]\nfrom = "watcher@faults.example.org"\n'
            f'[mail.smtp]\nhost = "127.0.0.1"\nport = {self.smtp.port}\nsecurity = "none"\n'
            "timeout = 5\n"
        )
        path = write_config(self.tmp, self.ncbi.base_url, subs, extra=extra)
        # write_config's retries line gives way to the cell's.
        path.write_text(path.read_text().replace("retries = 2\n", f"retries = {self.retries}\n"))
        return path

    def seed(self) -> None:
        """Three papers (or studies) the subscription matches, dated today."""
        now = datetime.now(UTC)
        today = ncbi_today(now)
        if self.kind == "cites":
            self.ncbi.add([synthetic(FOLLOWED, "A followed trial", edat=today.replace(year=2019))])
            records = [
                synthetic(21 + n, f"Teplizumab fault paper {21 + n}", edat=today) for n in range(3)
            ]
            self.ncbi.add(records)
            for r in records:
                self.ncbi.graph.cite(r.pmid, FOLLOWED)
            self.titles = [r.title for r in records]
        elif self.kind in ("query", "rss"):
            first = 1 if self.kind == "query" else 11
            records = [
                synthetic(first + n, f"Teplizumab fault paper {first + n}", edat=today)
                for n in range(3)
            ]
            self.ncbi.add(records)
            self.ncbi.feeds[FEED] = [r.pmid for r in records]
            self.titles = [r.title for r in records]
        elif self.kind == "europepmc":
            for n in range(1, 4):
                record = load_record("europepmc-preprint.json")
                title = f"Preprint {n} on teplizumab"
                record.update(id=f"PPR9{n:05d}", doi=f"10.1101/2026.11.02.2630{n:04d}", title=title)
                self.epmc.add(record, now.date())
                self.titles.append(title)
        else:
            for n in range(1, 4):
                title = f"Teplizumab trial {n}"
                self.ctgov.put(study(f"NCT0999000{n}", title, "RECRUITING", now.date().isoformat()))
                self.titles.append(title)


def poll_once(world: World) -> tuple[PollReport, list[float]]:
    """One poll of every subscription, built as `watcher poll` builds it (wiring.make_sources
    from the config: its timeout, retries and paces), except that the backoff between retries is
    recorded instead of slept: a cell's retries cost no wall time, and their delays are checked.
    Every rate slot is granted at once (a budget's waits would be recorded among the backoffs;
    pace has tests of its own, tests/test_rate.py and test_shared_budget.py)."""
    config = load_config(world.config_path)
    now = datetime.now(UTC)
    store = open_store(config, now)
    sleeps: list[float] = []
    try:
        sources = make_sources(
            config, env={}, sleep=sleeps.append, clock=lambda: now, budget=Unpaced()
        )
        return poll(config, store, sources, now), sleeps
    finally:
        store.close()


def cli(world: World, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`watcher -c CONFIG ARGS…`: exit code, stdout, stderr."""
    capsys.readouterr()
    # main() sets up logging as the command line does, on the root logger: put back pytest's
    # handlers afterwards, or later tests log into this test's closed stderr.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        code = main(["-c", str(world.config_path), *args])
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    out, err = capsys.readouterr()
    return code, out, err


def delivered(world: World) -> dict[str, Counter[str]]:
    """recipient → how many times each expected title appears across every message they got,
    read from the text part as the server received it."""
    counts: dict[str, Counter[str]] = {r: Counter() for r in RECIPIENTS}
    for received in world.smtp.received:
        text = received.message.get_body(("plain",))
        assert text is not None
        body = text.get_content()
        for rcpt in received.rcpt_tos:
            for title in world.titles:
                counts[rcpt][title] += body.count(title)
    return counts


def assert_each_delivered_once(world: World) -> None:
    want = {r: Counter(dict.fromkeys(world.titles, 1)) for r in RECIPIENTS}
    assert delivered(world) == want
    assert len(world.smtp.received) == len(RECIPIENTS)  # one digest each


def one_line(text: str, *, says: str) -> None:
    """What the user reads: one line, saying what went wrong, with no traceback."""
    assert says.lower() in text.lower(), text
    assert "\n" not in text.strip() and "Traceback" not in text, text


Inject = Callable[[World], None]
