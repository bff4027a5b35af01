"""Crash trials, the short version of bench/crash.py: the real `watcher poll`, `digest` and
`run` killed with SIGKILL at random moments (fixed seed), restarted, then left to finish. No paper
may be lost, and a copy mailed twice must carry the first one's Message-ID and come from a kill
while the SMTP server had the message and the store had not yet recorded it as sent."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from .conftest import PG_ENV, postgres_url
from .fakes.smtp import Received
from .harness.crash import COMMANDS, RECIPIENTS, Cell, Kill, judge, run_cell, table

# Left out of the quick run (`pytest -m "not slow"`): real processes killed and restarted.
pytestmark = pytest.mark.slow

TRIALS = 3
SEED = 16


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("command", COMMANDS)
def test_killed_commands_lose_nothing_and_duplicate_only_in_the_window(
    command: str, kind: str
) -> None:
    if kind == "postgresql" and postgres_url() is None:
        pytest.skip(f"needs {PG_ENV}; .ci/run sets it")
    cell = run_cell(command, kind, TRIALS, SEED, data_delay=(0.2, 0.6))
    figures = table([cell]) + (f"\n{cell.failure}" if cell.failure else "")
    assert cell.trials == TRIALS, figures
    assert not cell.failure, figures
    assert cell.expected > 0 and cell.lost == 0, figures
    assert cell.copies_outside == 0, figures
    # Every extra copy is the same message again (its Message-ID lets mail clients drop it).
    assert cell.pairs_in_two_messages == 0, figures
    # A kill costs at most one copy: the one message the server had when the process died.
    landed = sum(1 for k in cell.kills if k.phase != "exited")
    assert cell.messages - cell.message_ids <= landed, figures


def copy(rcpt: str, message_id: str, pmids: list[int], began: float, answered: bool) -> Received:
    msg = EmailMessage()
    msg["Message-ID"] = message_id
    msg.set_content("".join(f"https://pubmed.ncbi.nlm.nih.gov/{p}/\n" for p in pmids))
    started = began + 0.2  # the end of DATA, as the server reads it
    return Received(
        "w@example.org",
        [rcpt],
        msg.as_bytes(),
        started=started,
        began=began,
        answered=started + 1 if answered else None,
    )


def test_the_judge_tells_window_copies_from_bugs_and_counts_lost_papers() -> None:
    alice, bob = RECIPIENTS
    cell = Cell("digest", "sqlite", kills=[Kill(10.5, "DATA held"), Kill(30.0, "exited")])
    judge(
        cell,
        [
            # killed while the server held it, which read the end of DATA only after the kill
            copy(alice, "<a@x>", [1, 2], 10.4, answered=False),
            copy(alice, "<a@x>", [1, 2], 12.0, answered=True),  # the retry: in the window
            copy(alice, "<a@x>", [1, 2], 20.0, answered=True),  # again, no kill between: bug
            copy(bob, "<b1@x>", [1], 21.0, answered=True),
            copy(bob, "<b2@x>", [1], 22.0, answered=True),  # the paper under a new ID: bug
        ],
        [1, 2],
    )
    assert (cell.copies_held, cell.copies_unmarked, cell.copies_outside) == (1, 0, 1)
    assert cell.pairs_in_two_messages == 1
    assert (cell.lost, cell.expected) == (1, 4)  # bob never got paper 2
    assert not cell.ok
