"""The soak's world (tests/harness/soak.py): the fake NCBI (E-utilities and one RSS feed), the
fake Europe PMC and ClinicalTrials.gov, and a real SMTP server (aiosmtpd), run in a process of
their own so that the soak's process holds only the watcher. Each cycle adds a few papers,
preprints and trials; with a fixed seed it fails a share of requests and SMTP commands and
refuses some digest runs' connections (the server stopped)."""

from __future__ import annotations

import logging
import multiprocessing
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from watcher.poll import ncbi_today

TOKEN = re.compile(r"\bSOAK[PET]\d+\b")
# Who follows what: (subscription, kind, query) and the readers of each.
SUBSCRIPTIONS = (
    ("anti-cd3", "query", "teplizumab"),
    ("anti-cd20", "query", "rituximab"),
    ("feed", "rss", None),
    ("preprints", "europepmc", "teplizumab"),
    ("trials", "trials", "teplizumab"),
)
READERS = {
    "alice@example.org": ("anti-cd3", "feed", "preprints"),
    "bob@example.org": ("anti-cd3", "anti-cd20", "trials"),
    "carol@example.org": ("anti-cd20", "feed"),  # on her own digest schedule
}
NCBI_FAULTS = (
    "ratelimit",
    "status:500",
    "status:502",
    "status:503",
    "reset",
    "short",
    "truncated",
    "html",
    "ratelimit200",
)
API_FAULTS = ("status:429", "status:500", "status:503", "reset", "notjson")
# One of these befalls 10% of messages: (the command it answers, the answer; "drop" hangs up).
SMTP_FAULTS = (
    ("mail", "421 4.3.2 Service shutting down"),
    ("rcpt", "451 4.3.0 Try again later"),
    ("rcpt", "550 5.1.1 Mailbox unavailable"),
    ("data", "451 4.3.0 Try again later"),
    ("data", "552 5.3.4 Message too big"),
    ("data", "drop"),
)


@dataclass
class World:
    seed: int
    fault_rate: float
    folder: Path
    rng: random.Random = field(init=False)
    faults: Counter[str] = field(default_factory=Counter)
    faulty: bool = True

    def __post_init__(self) -> None:
        from ..fakes.clinicaltrials import FakeClinicalTrials
        from ..fakes.europepmc import FakeEuropePmc, load_record
        from ..fakes.jsonapi import Fault as ApiFault
        from ..fakes.ncbi import FakeNCBI, Fault
        from ..fakes.smtp import Handler, SmtpServer

        world = self

        # The fakes as the tests know them, asked for a random fault when none is queued.
        class NCBI(FakeNCBI):
            def take_fault(self, endpoint: str) -> Fault | None:
                kind = world._draw(NCBI_FAULTS, f"ncbi {endpoint}")
                return super().take_fault(endpoint) or (Fault(kind) if kind else None)

        class EuropePmc(FakeEuropePmc):
            def take_fault(self) -> ApiFault | None:
                kind = world._draw(API_FAULTS, "europepmc")
                return super().take_fault() or (ApiFault(kind) if kind else None)

        class ClinicalTrials(FakeClinicalTrials):
            def take_fault(self) -> ApiFault | None:
                kind = world._draw(API_FAULTS, "clinicaltrials")
                return super().take_fault() or (ApiFault(kind) if kind else None)

        class Smtp(Handler):
            async def handle_MAIL(
                self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
            ) -> str:
                drawn = world._draw(tuple(range(len(SMTP_FAULTS))), "smtp")
                world.message_fault = None if drawn is None else SMTP_FAULTS[int(drawn)]
                if world.message_fault and world.message_fault[0] == "mail":
                    return world.message_fault[1]
                envelope.mail_from = address
                envelope.mail_options.extend(options)
                return "250 OK"

            async def handle_RCPT(
                self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
            ) -> str:
                if world.message_fault and world.message_fault[0] == "rcpt":
                    return world.message_fault[1]
                return await super().handle_RCPT(server, session, envelope, address, options)

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                if world.message_fault and world.message_fault == ("data", "drop"):
                    self.drop_next_data = 1
                elif world.message_fault and world.message_fault[0] == "data":
                    self.data_failures = [world.message_fault[1]]
                return await super().handle_DATA(server, session, envelope)

        self.rng = random.Random(self.seed)
        self.papers = random.Random(self.seed + 1)  # what arrives, apart from the faults
        self.message_fault: tuple[str, str] | None = None
        self.ncbi = NCBI().start()
        self.ncbi.feeds["soak"] = []
        self.epmc = EuropePmc()
        self.epmc.start()
        self.ctgov = ClinicalTrials()
        self.ctgov.start()
        self.smtp = SmtpServer()
        self.smtp.handler = self.smtp.controller.handler = Smtp()
        self.smtp.start()
        self.preprint = load_record("europepmc-preprint.json")
        self.next_pmid = 40_000_000
        self.next_other = 1

    def endpoints(self) -> dict[str, Any]:
        return {
            "ncbi": self.ncbi.base_url,
            "feed": self.ncbi.feed_url("soak"),
            "europepmc": self.epmc.base_url,
            "clinicaltrials": self.ctgov.base_url,
            "smtp_port": self.smtp.port,
        }

    def _draw(self, kinds: tuple[Any, ...], where: str) -> Any:
        if not self.faulty or self.rng.random() >= self.fault_rate:
            return None
        kind = self.rng.choice(kinds)
        label = " ".join(SMTP_FAULTS[kind]) if where == "smtp" else kind
        self.faults[f"{where} {label}"] += 1
        return kind

    def quiet(self) -> None:
        self.faulty = False

    def arrive(self, now: datetime) -> dict[str, list[str]]:
        """This cycle's new records; returns subscription → the tokens it should find."""
        from ..fakes.clinicaltrials import study
        from ..fakes.records import synthetic

        rng, today = self.papers, ncbi_today(now)
        owed: dict[str, list[str]] = {name: [] for name, _, _ in SUBSCRIPTIONS}
        records = []
        for _ in range(rng.randint(1, 4)):
            pmid, self.next_pmid = self.next_pmid, self.next_pmid + 1
            topics = rng.choice((("teplizumab",), ("rituximab",), ("teplizumab", "rituximab"), ()))
            words = " and ".join(topics) or "insulin pumps"
            records.append(
                synthetic(pmid, f"SOAKP{pmid} a study of {words}", edat=today, abstract=words)
            )
            owed["anti-cd3"] += [f"SOAKP{pmid}"] if "teplizumab" in topics else []
            owed["anti-cd20"] += [f"SOAKP{pmid}"] if "rituximab" in topics else []
            if rng.random() < 0.3:  # the feed lists a paper whatever its topic, newest first
                self.ncbi.feeds["soak"].insert(0, pmid)
                owed["feed"].append(f"SOAKP{pmid}")
        self.ncbi.add(records)
        if rng.random() < 0.5:
            n, self.next_other = self.next_other, self.next_other + 1
            record = {k: v for k, v in self.preprint.items() if k != "commentCorrectionList"}
            record.update(
                id=f"PPR{8_000_000 + n}",
                doi=f"10.1101/soak.{n}",
                title=f"SOAKE{n} a preprint on teplizumab",
                abstractText="",
            )
            self.epmc.add(record, today)
            owed["preprints"].append(f"SOAKE{n}")
        if rng.random() < 0.3:
            n, self.next_other = self.next_other, self.next_other + 1
            nct = f"NCT{70_000_000 + n:08d}"
            self.ctgov.put(study(nct, f"SOAKT{n} trial of teplizumab", "RECRUITING", str(today)))
            owed["trials"].append(f"SOAKT{n}")
        return owed

    def refuse_connections(self) -> bool:
        """Stop the SMTP server for the next digest run (connections refused), at the rate."""
        if self._draw(("refused",), "smtp connect") is None:
            return False
        self.smtp.stop()
        return True

    def accept_connections(self) -> None:
        """The SMTP server back on its port, with its handler (what it received is kept)."""
        from aiosmtpd.controller import Controller

        c = Controller(
            self.smtp.handler,
            hostname="127.0.0.1",
            port=self.smtp.port,
            server_hostname="localhost",
        )
        c.start()
        self.smtp.controller = c

    def received(self) -> list[tuple[str, str, list[str]]]:
        """Each message received: (recipient, Message-ID, the tokens its text names)."""
        out = []
        for r in self.smtp.received:
            msg = r.message
            body = msg.get_body(("plain",))
            assert body is not None
            tokens = list(dict.fromkeys(TOKEN.findall(body.get_content())))
            out.append((r.rcpt_tos[0].lower(), str(msg["Message-ID"]), tokens))
        return out

    def fault_counts(self) -> dict[str, int]:
        return dict(self.faults)

    def stop(self) -> None:
        self.ncbi.stop()
        self.epmc.stop()
        self.ctgov.stop()
        self.smtp.stop()


def serve_world(conn: Connection, seed: int, fault_rate: float, folder: str) -> None:
    """The world process: answers (method, args) on `conn` until "stop"."""
    logging.disable(logging.CRITICAL)
    world = World(seed, fault_rate, Path(folder))
    conn.send(world.endpoints())
    while True:
        name, args = conn.recv()
        if name == "stop":
            world.stop()
            conn.send(None)
            return
        conn.send(getattr(world, name)(*args))


class WorldClient:
    def __init__(self, seed: int, fault_rate: float, folder: Path) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=serve_world, args=(child, seed, fault_rate, str(folder)), daemon=True
        )
        self.proc.start()
        child.close()
        self.endpoints: dict[str, Any] = self.conn.recv()

    def __call__(self, name: str, *args: Any) -> Any:
        self.conn.send((name, args))
        return self.conn.recv()

    def stop(self) -> None:
        self("stop")
        self.proc.join(10)
        self.conn.close()
