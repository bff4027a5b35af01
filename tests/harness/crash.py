"""Crash trials: the real `watcher poll`, `watcher digest` and `watcher run` killed with SIGKILL
at random moments, restarted, and at the end left to finish; `judge` then counts papers lost and
copies mailed twice, telling those from the window no client can close (the SMTP server had the
message, the watcher had not yet committed it as sent) from bugs. tests/test_crash.py runs a few
trials a cell; bench/crash.py runs the long version and prints the table in bench/README.md.
"""

from __future__ import annotations

import itertools
import random
import re
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watcher.config import load_config
from watcher.identity import pmid_key
from watcher.poll import ncbi_today, poll
from watcher.store import Store
from watcher.wiring import make_sources

from ..fakes.ncbi import FakeNCBI
from ..fakes.records import synthetic
from ..fakes.smtp import Received, SmtpServer
from .commands import start_watcher, store_url, write_config

COMMANDS = ("poll", "digest", "run")
STORES = ("sqlite", "postgresql")
RECIPIENTS = ("alice@example.org", "bob@example.org")
# A compressed schedule for `watcher run`: a poll every 2 s, a digest every 3 s.
SCHEDULE = 'poll_every = "2s"\ndigest_cron = "*/3 * * * * *"\n'
# How long after its start a command is killed (s): spans its start-up, its requests to NCBI,
# its SMTP sessions (two recipients, 0.5-1.5 s each) and, sometimes, its exit.
KILL_AFTER = {"poll": (0.05, 0.8), "digest": (0.2, 3.5), "run": (0.5, 8.0)}
DATA_DELAY = (0.5, 1.5)


@dataclass
class Kill:
    at: float  # time.monotonic()
    phase: str  # "DATA held", "elsewhere" (start-up, NCBI, store, SMTP dialogue), "exited"


@dataclass
class Cell:
    command: str
    store: str
    trials: int = 0
    kills: list[Kill] = field(default_factory=list)
    messages: int = 0
    message_ids: int = 0
    copies_held: int = 0  # extra copies: the first was queued while the server held DATA
    copies_unmarked: int = 0  # extra copies: the first was answered 250, not committed yet
    copies_outside: int = 0  # extra copies with no kill between them: a bug
    pairs_in_two_messages: int = 0  # (recipient, paper) in two distinct Message-IDs: a bug
    lost: int = 0
    expected: int = 0
    notes: list[str] = field(default_factory=list)  # each extra copy, for a reader to check
    commit_ms: float = 0.0  # the watcher's own part of the window: its commit after the 250
    seconds: float = 0.0
    failure: str = ""

    @property
    def ok(self) -> bool:
        return not (self.failure or self.lost or self.copies_outside or self.pairs_in_two_messages)

    def phases(self, phase: str) -> int:
        return sum(1 for k in self.kills if k.phase == phase)


def pmids(message: Received) -> list[int]:
    body = message.message.get_body(("plain",))
    assert body is not None
    found = re.findall(r"pubmed\.ncbi\.nlm\.nih\.gov/(\d+)/", body.get_content())
    return [int(p) for p in dict.fromkeys(found)]


def judge(cell: Cell, received: Sequence[Received], papers: Iterable[int]) -> None:
    """Fill in the cell's figures from what the SMTP server received."""
    kills = sorted(k.at for k in cell.kills if k.phase != "exited")
    copies: dict[str, list[Received]] = {}
    carried: dict[tuple[str, int], set[str]] = {}
    for r in received:
        mid = str(r.message["Message-ID"])
        copies.setdefault(mid, []).append(r)
        for p in pmids(r):
            carried.setdefault((r.rcpt_tos[0], p), set()).add(mid)
    cell.messages, cell.message_ids = len(received), len(copies)
    for group in copies.values():
        group.sort(key=lambda r: r.began)
        for first, again in itertools.pairwise(group):
            # From the transaction's start: the server may read the end of DATA only after
            # the client died (its `started` then comes after the kill).
            between = [k for k in kills if first.began <= k <= again.began]
            if not between:
                cell.copies_outside += 1
            elif first.answered is None:
                cell.copies_held += 1
            else:
                cell.copies_unmarked += 1
            t0 = first.began
            cell.notes.append(
                f"{first.message['Message-ID']} to {first.rcpt_tos[0]}: RCPT +0.000 s, "
                f"DATA ended +{first.started - t0:.3f} s, "
                + (
                    "never answered"
                    if first.answered is None
                    else f"answered +{first.answered - t0:.3f} s"
                )
                + (f", killed +{between[0] - t0:.3f} s" if between else ", no kill between")
                + f", again (RCPT) +{again.began - t0:.3f} s"
            )
    cell.pairs_in_two_messages = sum(1 for ids in carried.values() if len(ids) > 1)
    wanted = {(r, p) for r in RECIPIENTS for p in papers}
    cell.expected = len(wanted)
    cell.lost = len(wanted - set(carried))


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> None:
    """Wait for a command left to run to its end; a failure is the cell's failure."""
    code = proc.wait(timeout)
    if code != 0:
        raise RuntimeError(f"{' '.join(map(str, proc.args))} exited {code}")  # type: ignore[arg-type]


def kill_at_random(proc: subprocess.Popen[str], smtp: SmtpServer, delay: float) -> Kill:
    time.sleep(delay)
    if proc.poll() is not None:
        return Kill(time.monotonic(), "exited")
    held = smtp.handler.in_flight > 0
    proc.send_signal(signal.SIGKILL)
    at = time.monotonic()
    proc.wait(30)
    return Kill(at, "DATA held" if held else "elsewhere")


def run_cell(
    command: str,
    kind: str,
    trials: int,
    seed: int,
    *,
    data_delay: tuple[float, float] = DATA_DELAY,
    kill_after: tuple[float, float] | None = None,
) -> Cell:
    """One sequence of `trials` kills of `command` on a fresh `kind` store, then a clean finish."""
    rng = random.Random(f"{seed}:{command}:{kind}")
    low, high = kill_after or KILL_AFTER[command]
    cell = Cell(command, kind)
    fake = FakeNCBI().start()
    smtp = SmtpServer().start()
    smtp.handler.data_delay = data_delay
    smtp.handler.queue_before_answer = True
    smtp.handler.rng = random.Random(seed)
    started = time.monotonic()
    papers: list[int] = []
    today = ncbi_today(datetime.now(UTC))

    def arrive(n: int) -> None:
        first = 1000 + len(papers)
        fake.add(synthetic(p, f"teplizumab paper {p}", edat=today) for p in range(first, first + n))
        papers.extend(range(first, first + n))

    try:
        with tempfile.TemporaryDirectory() as tmp, store_url(kind, Path(tmp)) as url:
            folder = Path(tmp)
            cfg = write_config(folder, url, fake, smtp, recipients=RECIPIENTS, defaults=SCHEDULE)
            config = load_config(cfg)
            store = Store.open(url)
            # The recipients join before the first paper arrives: every paper is theirs.
            store.polls.sync(config.subscriptions, datetime.now(UTC) - timedelta(days=1))
            sources = make_sources(config, clock=lambda: datetime.now(UTC))
            with open(folder / "watcher.log", "w") as out:
                for _ in range(trials):
                    arrive(rng.randint(1, 3))
                    if command == "digest":
                        poll(config, store, sources, datetime.now(UTC))
                    proc = start_watcher(cfg, command, out)
                    cell.kills.append(kill_at_random(proc, smtp, rng.uniform(low, high)))
                    cell.trials += 1
                if command == "run":
                    log = folder / "watcher.log"
                    seen = log.stat().st_size
                    proc = start_watcher(cfg, "run", out)
                    deadline = time.monotonic() + 60
                    # Until everything is mailed, and the daemon is up: a SIGTERM before its
                    # handlers are in place would end it as the default action does.
                    while time.monotonic() < deadline and not (
                        _all_mailed(smtp, papers) and "watcher running" in _since(log, seen)
                    ):
                        time.sleep(0.2)
                    proc.send_signal(signal.SIGTERM)
                    finish(proc)
                else:
                    finish(start_watcher(cfg, "poll", out))
                    finish(start_watcher(cfg, "digest", out))
            cell.commit_ms = commit_time(store, papers)
            store.close()
            if not _all_mailed(smtp, papers):
                cell.failure = (folder / "watcher.log").read_text()[-3000:]
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        cell.failure = str(exc)
    finally:
        smtp.stop()
        fake.stop()
    cell.seconds = time.monotonic() - started
    judge(cell, smtp.received, papers)
    return cell


def commit_time(store: Store, papers: Sequence[int], times: int = 21) -> float:
    """Median ms of what the watcher does between the server's 250 and the end of its window:
    marking a digest of 3 papers as sent (one transaction), on this cell's store. The digests
    timed go to a recipient of their own, after the trials are judged."""
    now = datetime.now(UTC)
    took = []
    for n in range(times):
        digest = store.outbox.create_digest(
            recipient="timing@example.org",
            schedule="timing",
            message_id=f"<timing-{n}@example.org>",
            message=b"",
            items=[pmid_key(p) for p in papers[:3]],
            now=now,
        )
        began = time.perf_counter()
        store.outbox.mark_digest_sent(digest, now)
        took.append(time.perf_counter() - began)
    return 1000 * statistics.median(took)


def _since(log: Path, offset: int) -> str:
    with open(log, errors="replace") as f:
        f.seek(offset)
        return f.read()


def _all_mailed(smtp: SmtpServer, papers: Sequence[int]) -> bool:
    got = {(r.rcpt_tos[0], p) for r in list(smtp.received) for p in pmids(r)}
    return all((r, p) in got for r in RECIPIENTS for p in papers)


def table(cells: Sequence[Cell]) -> str:
    lines = [
        "| command | store | trials | kills: DATA held / elsewhere / after exit "
        "| messages (Message-IDs) | extra copies: held DATA / 250 not committed / outside window "
        "| pairs in two Message-IDs | papers lost | commit after the 250 (median) | time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        lines.append(
            f"| {c.command} | {c.store} | {c.trials} "
            f"| {c.phases('DATA held')} / {c.phases('elsewhere')} / {c.phases('exited')} "
            f"| {c.messages} ({c.message_ids}) "
            f"| {c.copies_held} / {c.copies_unmarked} / {c.copies_outside} "
            f"| {c.pairs_in_two_messages} | {c.lost} of {c.expected} | {c.commit_ms:.1f} ms "
            f"| {c.seconds:.0f} s |"
        )
    return "\n".join(lines)
