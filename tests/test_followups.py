"""Follow-ups: papers delivered in week 1, changed in week 3, told once to those who received them.

Everything runs for real: the fake NCBI on 127.0.0.1 serves the records (and, from a moment on,
their revised versions), the store is a SQLite file or PostgreSQL, digests go to a maildir (or
a real SMTP server on loopback). Records are in PubMed's schema: the erratum is real PMID
35649368 (tests/fixtures/followups/PROVENANCE.md); the others are synthesised in its shape.
"""

from __future__ import annotations

import math
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from watcher.config import load_config
from watcher.delivery import DigestReport, send_digests
from watcher.digest.build import summary
from watcher.errors import ConfigError, MailError
from watcher.identity import pmid_key as k
from watcher.models import CHANGE_KINDS, Change
from watcher.poll import poll, refresh_followups
from watcher.sources.pubmed_xml import parse_articles
from watcher.store import Store
from watcher.transports.base import OutgoingDigest, Transport
from watcher.wiring import make_transport, sources_for

from .conftest import FIXTURES, make_client, write_config
from .fakes.ncbi import FakeNCBI, FakeRecord
from .fakes.records import from_file, synthetic
from .fakes.smtp import SmtpServer

WEEK1 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
WEEK3 = WEEK1 + timedelta(days=14)
DAY = date(2026, 10, 30)
SUBS = """
[[subscription]]
name = "Anti-CD3"
query = "teplizumab"
recipients = ["alice@followups.example.org", "bob@followups.example.org"]

[[subscription]]
name = "Anti-CD20"
query = "rituximab"
recipients = ["carol@followups.example.org"]
"""
# The recipients of the paper in "Anti-CD3" (their own domain: PostgreSQL's advisory locks are
# server-wide, so other test runs on the same server must not share their lock keys).
READERS = ["alice@followups.example.org", "bob@followups.example.org"]
RETRACTION_SOURCE = "N Engl J Med. 2026 Nov 12;395(19):1800. doi: 10.1056/FAKE301."


def tep(pmid: int = 101, **kw: Any) -> FakeRecord:
    return synthetic(pmid, "Teplizumab in relatives at risk of type 1 diabetes", edat=DAY, **kw)


def rit() -> FakeRecord:
    return synthetic(201, "Rituximab and beta-cell function", edat=DAY)


class World:
    """A config, a store, the fake NCBI and a clock: poll, refresh and mail as the CLI does."""

    def __init__(
        self,
        tmp_path: Path,
        fake: FakeNCBI,
        store: Store,
        *,
        ncbi: str = "",
        extra: str = "",
        subs: str = SUBS,
    ) -> None:
        self.tmp_path, self.fake, self.store = tmp_path, fake, store
        self.configure(subs, ncbi=ncbi, extra=extra, now=WEEK1 - timedelta(hours=1))

    def configure(self, subs: str, *, ncbi: str = "", extra: str = "", now: datetime) -> None:
        """Write and load the config (`ncbi` goes in [ncbi], `extra` after [mail])."""
        mail = f'[mail]\nfrom = "watcher@lab.example.org"\nmaildir = "{self.tmp_path / "mail"}"\n'
        path = write_config(self.tmp_path, self.fake.base_url, subs, extra=ncbi + mail + extra)
        self.config = load_config(path)
        client = make_client(self.fake.base_url, batch_size=self.config.ncbi.batch_size)
        self.sources = sources_for(client, self.config.ncbi)
        self.store.polls.sync(self.config.subscriptions, now)

    def poll(self, now: datetime) -> None:
        report = poll(self.config, self.store, self.sources, now)
        assert not report.failed

    def refresh(self, now: datetime, force: bool = False) -> Any:
        return refresh_followups(self.config, self.store, self.sources, now, force=force)

    def digest(self, now: datetime, transport: Transport | None = None) -> DigestReport:
        t = transport or make_transport(self.config.mail, env={})
        try:
            return send_digests(self.config, self.store, t, now)
        finally:
            t.close()

    def mail(self) -> list[EmailMessage]:
        folder = self.tmp_path / "mail" / "new"
        files = (
            sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns) if folder.is_dir() else []
        )
        out = []
        for f in files:
            msg = message_from_bytes(f.read_bytes(), policy=policy.default)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        return out

    def week1(self, *records: FakeRecord) -> None:
        """Papers found and mailed in week 1; the mailbox emptied afterwards."""
        self.fake.add(records or (tep(), rit()))
        self.poll(WEEK1)
        assert len(self.digest(WEEK1).sent) == 3
        shutil.rmtree(self.tmp_path / "mail" / "new")


def text_of(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def html_of(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def to(msg: EmailMessage) -> str:
    return str(msg["To"]).strip("<>").split("<")[-1].rstrip(">")


@pytest.fixture
def world(tmp_path: Path, fake: FakeNCBI, store: Store) -> World:
    return World(tmp_path, fake, store)


def test_a_paper_retracted_in_week_3_is_told_once_to_its_recipients_only(world: World) -> None:
    world.week1()
    world.fake.revise(
        tep(
            pub_types=("Journal Article", "Retracted Publication"),
            corrections=[("RetractionIn", RETRACTION_SOURCE, 301)],
        )
    )
    report = world.refresh(WEEK3)
    assert report.ran and report.changes == 1

    world.digest(WEEK3)
    mails = world.mail()
    assert sorted(to(m) for m in mails) == READERS
    for m in mails:
        assert m["Subject"] == "PubMed Watcher: 1 retraction"
        body = text_of(m)
        assert body.startswith("Changes to papers you received:\n")
        assert "RETRACTED: Teplizumab in relatives at risk of type 1 diabetes" in body
        assert "https://pubmed.ncbi.nlm.nih.gov/101/" in body
        assert "Notice: https://pubmed.ncbi.nlm.nih.gov/301/" in body
        # When and why the reader has the paper, from the store's deliveries (issue 24).
        assert "You received it on 2026-11-02 under Anti-CD3." in body
        html = html_of(m)
        assert "Changes to papers you received" in html
        # The mark itself links the notice: a red RETRACTED before the title.
        assert re.search(
            r'<a class="rt" href="https://pubmed.ncbi.nlm.nih.gov/301/"[^>]*>RETRACTED</a> '
            r'<a class="t" href="https://pubmed.ncbi.nlm.nih.gov/101/"',
            html,
        )
        assert "You received it on 2026-11-02 under Anti-CD3." in html

    # Told once: the next digests carry nothing, and the refresh finds nothing new.
    assert world.refresh(WEEK3 + timedelta(days=7)).changes == 0
    assert world.digest(WEEK3 + timedelta(days=7)).sent == []
    assert len(world.mail()) == 2


def test_an_erratum_on_a_real_record(tmp_path: Path, fake: FakeNCBI, store: Store) -> None:
    path = FIXTURES / "followups" / "metapub-35649368.xml"
    (real,) = from_file(path, edat=DAY)
    before = etree.fromstring(real.xml)
    for cc in before.iter("CommentsCorrectionsList"):
        cc.getparent().remove(cc)
    subs = SUBS.replace('query = "teplizumab"', 'query = "fatty acid oxidation"')
    w = World(tmp_path, fake, store, subs=subs)
    unrevised = FakeRecord(
        real.pmid, etree.tostring(before), real.edat, real.crdt, real.text, real.title, real.doi
    )
    w.week1(unrevised, rit())
    fake.revise(real)
    assert w.refresh(WEEK3).changes == 1
    w.digest(WEEK3)
    mails = w.mail()
    assert sorted(to(m) for m in mails) == READERS
    assert mails[0]["Subject"] == "PubMed Watcher: 1 correction"
    body = text_of(mails[0])
    assert "CORRECTED: Fatty acid oxidation protects cancer cells" in body
    assert "Cell Rep. 2022 Jun 28;39(13):111044." in body
    assert "Notice: https://pubmed.ncbi.nlm.nih.gov/35767954/" in body


def test_a_paper_deleted_from_pubmed_is_told_once_to_its_recipients_only(world: World) -> None:
    """NCBI deletes a delivered paper's record: the refresh's efetch answers a DeleteCitation
    for it. Its readers hear it once, linked to the paper by DOI (its PubMed page is gone)."""
    world.week1()
    world.fake.deleted.add(101)
    report = world.refresh(WEEK3)
    assert report.ran and report.changes == 1
    world.digest(WEEK3)
    mails = world.mail()
    assert sorted(to(m) for m in mails) == READERS
    for m in mails:
        assert m["Subject"] == "PubMed Watcher: 1 removal from PubMed"
        body = text_of(m)
        assert "REMOVED FROM PUBMED: Teplizumab in relatives at risk of type 1 diabetes" in body
        assert "https://doi.org/10.1056/FAKE101" in body
        assert "NCBI deleted PMID 101 from PubMed; its PubMed page is gone" in body
        assert "Removed from PubMed" in html_of(m)
    # Told once: the next refresh meets the same DeleteCitation and finds nothing new.
    assert world.refresh(WEEK3 + timedelta(days=7)).changes == 0
    assert world.digest(WEEK3 + timedelta(days=7)).sent == []
    assert len(world.mail()) == 2


def test_an_erratum_already_listed_when_delivered_is_not_news(world: World) -> None:
    world.week1(tep(corrections=[("ErratumIn", "N Engl J Med. 2026;395:1.", 302)]), rit())
    report = world.refresh(WEEK3)
    assert report.ran and report.changes == 0
    assert world.digest(WEEK3).sent == []


def test_an_expression_of_concern(world: World) -> None:
    world.week1()
    world.fake.revise(
        tep(corrections=[("ExpressionOfConcernIn", "N Engl J Med. 2026 Nov 20;395(20):1901.", 303)])
    )
    assert world.refresh(WEEK3).changes == 1
    world.digest(WEEK3)
    mails = world.mail()
    assert len(mails) == 2
    assert mails[0]["Subject"] == "PubMed Watcher: 1 expression of concern"
    assert "EXPRESSION OF CONCERN: Teplizumab in relatives" in text_of(mails[0])


def test_a_preprint_published_in_a_journal(world: World) -> None:
    preprint = dict(
        pub_types=("Preprint",),
        journal="medRxiv : the preprint server for health sciences",
        iso="medRxiv",
        doi="10.1101/2026.10.01.26000001",
    )
    world.week1(tep(**preprint), rit())
    world.fake.revise(
        tep(
            **preprint,
            corrections=[
                ("UpdateIn", "Diabetes Care. 2026 Dec;49(12):2100-2108. doi: 10.2337/dc26-1.", 402)
            ],
        )
    )
    assert world.refresh(WEEK3).changes == 1
    world.digest(WEEK3)
    mails = world.mail()
    assert sorted(to(m) for m in mails) == READERS
    assert mails[0]["Subject"] == "PubMed Watcher: 1 journal version"
    body = text_of(mails[0])
    assert "PUBLISHED IN DIABETES CARE: Teplizumab in relatives" in body
    assert "New version: https://pubmed.ncbi.nlm.nih.gov/402/" in body


def test_a_retraction_notice_that_matches_a_search_is_a_notice_not_a_paper(world: World) -> None:
    world.week1()
    notice = synthetic(
        301,
        "Retraction Note: Teplizumab in relatives at risk of type 1 diabetes",
        edat=WEEK3.date() - timedelta(days=1),
        pub_types=("Retraction of Publication",),
        corrections=[("RetractionOf", "N Engl J Med. 2026 Oct 30;395(17):603-613.", 101)],
    )
    world.fake.add([notice])
    world.poll(WEEK3)
    assert world.store.outbox.pending_papers("alice@followups.example.org", ["Anti-CD3"]) == {}
    world.digest(WEEK3)
    mails = world.mail()
    assert sorted(to(m) for m in mails) == READERS
    body = text_of(mails[0])
    assert mails[0]["Subject"] == "PubMed Watcher: 1 retraction"
    assert "RETRACTED: Teplizumab in relatives" in body
    assert "Notice: https://pubmed.ncbi.nlm.nih.gov/301/" in body
    # The notice's title is the follow-up's detail, and nowhere a paper of its own.
    assert body.count("Retraction Note") == 1 and "== Anti-CD3" not in body

    # PubMed then links the paper to its notice: the same retraction, not told again.
    world.fake.revise(
        tep(
            pub_types=("Journal Article", "Retracted Publication"),
            corrections=[("RetractionIn", RETRACTION_SOURCE, 301)],
        )
    )
    assert world.refresh(WEEK3 + timedelta(days=1), force=True).changes == 0
    assert world.digest(WEEK3 + timedelta(days=1)).sent == []


def test_a_notice_about_a_paper_nobody_received_is_mailed_as_a_paper(world: World) -> None:
    world.fake.add(
        [
            synthetic(
                305,
                "Erratum: Teplizumab dosing",
                edat=DAY,
                pub_types=("Published Erratum",),
                corrections=[("ErratumFor", "Lancet. 2019;1:1.", 99)],
            )
        ]
    )
    world.poll(WEEK1)
    assert list(world.store.outbox.pending_papers("alice@followups.example.org", ["Anti-CD3"])) == [
        k(305)
    ]


def test_refresh_after_nothing_changed_costs_its_efetch_batches_and_sends_nothing(
    tmp_path: Path, fake: FakeNCBI, store: Store
) -> None:
    w = World(tmp_path, fake, store, ncbi="batch_size = 2\n")
    papers = [tep(101 + i) for i in range(5)]
    fake.add([*papers, rit()])
    w.poll(WEEK1)
    w.digest(WEEK1)
    shutil.rmtree(tmp_path / "mail" / "new")
    fake.reset_counts()

    report = w.refresh(WEEK1 + timedelta(hours=2))
    assert report.ran and report.papers == 6 and report.changes == 0
    assert fake.count() == fake.count("efetch") == math.ceil(6 / 2) == report.requests
    assert w.digest(WEEK1 + timedelta(days=1)).sent == []
    assert w.mail() == []

    # At most once per [followups] every: three days later nothing is asked.
    fake.reset_counts()
    later = w.refresh(WEEK1 + timedelta(days=3))
    assert not later.ran and later.reason == "not due" and fake.count() == 0


def test_the_first_refresh_waits_for_a_delivery(world: World) -> None:
    world.fake.add([tep()])
    world.poll(WEEK1)
    world.fake.reset_counts()
    report = world.refresh(WEEK1)
    assert not report.ran and report.reason == "nothing delivered yet"
    assert world.fake.count() == 0
    assert world.store.facts.get("followups") is None


def test_badges_stay_true_for_a_paper_shown_again(world: World) -> None:
    world.week1()
    world.fake.revise(
        tep(
            pub_types=("Journal Article", "Retracted Publication"),
            corrections=[("RetractionIn", RETRACTION_SOURCE, 301)],
        )
    )
    world.refresh(WEEK3)
    # A reader who subscribes in week 3 is sent the paper (not the follow-up), marked retracted.
    late = SUBS + (
        '\n[[subscription]]\nname = "Late"\nquery = "teplizumab"\n'
        'recipients = ["dave@followups.example.org"]\n'
    )
    world.configure(late, now=WEEK3)
    world.poll(WEEK3 + timedelta(minutes=1))
    world.digest(WEEK3 + timedelta(minutes=2))
    by = {to(m): m for m in world.mail()}
    assert set(by) == {*READERS, "dave@followups.example.org"}
    dave = text_of(by["dave@followups.example.org"])
    assert "Changes to papers you received" not in dave
    assert "RETRACTED: Teplizumab in relatives at risk" in dave
    assert "Retraction notice: https://pubmed.ncbi.nlm.nih.gov/301/" in dave
    assert by["dave@followups.example.org"]["Subject"].startswith("PubMed Watcher: 1 new paper")


class AcceptedThenKilled(Exception):
    """The process dies after the server accepted the message, before the store recorded it."""


class KilledAfterSending:
    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    def send(self, digest: OutgoingDigest) -> None:
        self.inner.send(digest)
        raise AcceptedThenKilled

    def close(self) -> None:
        self.inner.close()


def test_a_crash_between_send_and_commit_does_not_repeat_the_followup(
    tmp_path: Path, fake: FakeNCBI, store: Store
) -> None:
    server = SmtpServer().start()
    try:
        smtp = f'[mail.smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n'
        w = World(tmp_path, fake, store, extra=smtp)
        fake.add([tep(), rit()])
        w.poll(WEEK1)
        w.digest(WEEK1)
        fake.revise(
            tep(
                pub_types=("Journal Article", "Retracted Publication"),
                corrections=[("RetractionIn", RETRACTION_SOURCE, 301)],
            )
        )
        w.refresh(WEEK3)
        with pytest.raises(AcceptedThenKilled):
            w.digest(WEEK3, KilledAfterSending(make_transport(w.config.mail, env={})))
        for later in (WEEK3 + timedelta(hours=1), WEEK3 + timedelta(days=7)):
            w.digest(later)

        told = [
            r for r in server.received if "Changes to papers you received" in text_of(r.message)
        ]
        # Each copy of the follow-up is the one message (one Message-ID per recipient): the
        # retry of the digest recorded before the crash, never a second digest telling it.
        by_rcpt: dict[str, set[str]] = {}
        for r in told:
            for rcpt in r.rcpt_tos:
                by_rcpt.setdefault(rcpt, set()).add(str(r.message["Message-ID"]))
        assert set(by_rcpt) <= {"alice@followups.example.org", "bob@followups.example.org"}
        assert "alice@followups.example.org" in by_rcpt
        assert all(len(ids) == 1 for ids in by_rcpt.values())
        assert store.outbox.pending_digests() == []
        assert store.changes.counts()["told"] == 2
    finally:
        server.stop()


def test_status_shows_the_last_refresh(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    from watcher.status import print_status, status_report

    world.week1()
    world.refresh(WEEK1 + timedelta(hours=1))
    out = status_report(world.store, world.config, WEEK1 + timedelta(hours=2))
    f = out["followups"]
    assert f["last_run"]["papers"] == 2 and f["last_run"]["requests"] == 1
    assert f["last_run"]["changes"] == 0 and f["last_run"]["error"] is None
    assert f["next_run"].startswith("2026-11-09T09:00")
    print_status(out)
    shown = capsys.readouterr().out
    assert "follow-ups (every 1w, papers delivered in the last 24 months):" in shown
    assert "2 papers, 1 requests, 0 changes found" in shown


class Greylisting:
    def send(self, digest: OutgoingDigest) -> None:
        raise MailError("451 4.7.1 Greylisted, try again later")

    def close(self) -> None:
        pass


def test_status_says_what_a_pending_followups_only_digest_carries(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    from watcher.status import print_status, status_report

    world.week1()
    world.fake.revise(
        tep(
            pub_types=("Journal Article", "Retracted Publication"),
            corrections=[("RetractionIn", RETRACTION_SOURCE, 301)],
        )
    )
    world.refresh(WEEK3)
    world.digest(WEEK3, Greylisting())
    out = status_report(world.store, world.config, WEEK3 + timedelta(hours=1))
    pending = [d for r in out["recipients"] for d in r["digests"]]
    assert [(d["papers"], d["changes"]) for d in pending] == [(0, 1), (0, 1)]
    print_status(out)
    shown = capsys.readouterr().out
    assert shown.count(", 1 change to papers received: pending (retried") == 2, shown
    assert ", 0 papers" not in shown


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('every = "10m"', "under an hour"),
        ('every = "weekly"', "is not a duration"),
        ("months = 0", "between 1 and 240"),
        ('enabled = "yes"', "must be true or false"),
        ("often = true", "unknown key"),
    ],
)
def test_followups_config_is_checked(tmp_path: Path, text: str, message: str) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9/", SUBS, extra=f"[followups]\n{text}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_a_change_kind_is_one_entry_with_its_wording() -> None:
    assert summary(["erratum", "retraction", "erratum"]) == "1 retraction, 2 corrections"
    with pytest.raises(ValueError, match="unknown change kind"):
        Change(k(1), "renamed", "pmid:2", None, "")
    assert all(kind.label and kind.one and kind.many for kind in CHANGE_KINDS.values())


def test_disabled_followups_never_refresh(tmp_path: Path, fake: FakeNCBI, store: Store) -> None:
    w = World(tmp_path, fake, store, extra="[followups]\nenabled = false\n")
    w.week1()
    fake.reset_counts()
    for force in (False, True):  # `watcher poll --followups` does not override it either
        report = w.refresh(WEEK3, force=force)
        assert not report.ran and report.reason == "disabled" and fake.count() == 0


def test_poll_followups_and_status_json_on_the_command_line(
    tmp_path: Path, fake: FakeNCBI, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from watcher.cli import main
    from watcher.sources.eutils import ncbi_today

    today = ncbi_today(datetime.now(UTC))
    fake.add([synthetic(91, "Teplizumab in relatives", edat=today)])
    cfg = write_config(
        tmp_path,
        fake.base_url,
        '[[subscription]]\nname = "t"\nquery = "teplizumab"\n'
        'recipients = ["cli@followups.example.org"]\n',
    )
    assert main(["-c", str(cfg), "poll", "--followups"]) == 0
    assert "follow-ups: not run (nothing delivered yet)" in capsys.readouterr().out
    assert main(["-c", str(cfg), "digest"]) == 0
    fake.revise(
        synthetic(
            91,
            "Teplizumab in relatives",
            edat=today,
            pub_types=("Journal Article", "Retracted Publication"),
            corrections=[("RetractionIn", RETRACTION_SOURCE, 301)],
        )
    )
    fake.reset_counts()
    capsys.readouterr()
    assert main(["-c", str(cfg), "poll", "--followups"]) == 0
    out = capsys.readouterr().out
    assert "follow-ups: 1 delivered papers fetched again (1 came back) in 1 requests" in out
    assert "1 changes found" in out
    assert main(["-c", str(cfg), "status", "--json"]) == 0
    f = json.loads(capsys.readouterr().out)["followups"]
    assert f["enabled"] is True and f["every"] == "1w" and f["months"] == 24
    assert f["last_run"]["papers"] == 1 and f["last_run"]["changes"] == 1
    assert f["changes"] == {"retraction": 1, "told": 0}
    # --due: the refresh that just ran is not due again for a week.
    assert main(["-c", str(cfg), "poll", "--due", "--followups"]) == 0
    assert "follow-ups: not run (not due)" in capsys.readouterr().out
    assert main(["-c", str(cfg), "digest"]) == 0
    capsys.readouterr()
    assert main(["-c", str(cfg), "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["followups"]["changes"]["told"] == 1


@pytest.mark.slow
def test_the_daemon_refreshes_on_its_own_and_mails_the_followup(
    tmp_path: Path, fake: FakeNCBI
) -> None:
    import json
    import subprocess
    import sys

    from watcher.cli import main
    from watcher.sources.eutils import ncbi_today

    from .test_daemon import Daemon, config, until

    today = ncbi_today(datetime.now(UTC))
    server = SmtpServer().start()
    daemon: Daemon | None = None
    try:
        fake.add([synthetic(92, "Teplizumab in relatives", edat=today)])
        cfg = config(
            tmp_path, fake, server, "*/2 * * * * *", recipients='"d@followups.example.org"'
        )
        assert main(["-c", str(cfg), "poll"]) == 0
        assert main(["-c", str(cfg), "digest"]) == 0
        assert len(server.received) == 1
        fake.revise(
            synthetic(
                92,
                "Teplizumab in relatives",
                edat=today,
                pub_types=("Journal Article", "Retracted Publication"),
                corrections=[("RetractionIn", RETRACTION_SOURCE, 301)],
            )
        )
        daemon = Daemon(cfg)
        daemon.wait_for("watcher running")
        until(lambda: len(server.received) >= 2, 30, daemon.log)
        assert server.received[1].message["Subject"] == "PubMed Watcher: 1 retraction"
        daemon.wait_for("follow-ups: 1 delivered papers fetched again in 1 requests, 1 changes")
        status = subprocess.run(
            [sys.executable, "-m", "watcher", "-c", str(cfg), "status", "--json"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        out = json.loads(status.stdout)
        assert out["followups"]["last_run"]["changes"] == 1
        assert "followups" in out["daemon"]["next_runs"]
        assert daemon.stop() == 0
        assert len(server.received) == 2  # told once
    finally:
        if daemon is not None:
            daemon.kill()
        server.stop()


def test_a_failed_refresh_is_tried_again_an_hour_later_not_a_week(world: World) -> None:
    world.week1()
    world.fake.fault("efetch", "status:503", times=5)  # all five tries of the client
    failed = world.refresh(WEEK3)
    assert failed.ran and failed.error and failed.changes == 0
    world.fake.revise(
        tep(corrections=[("ErratumIn", "N Engl J Med. 2026 Nov 20;395(20):1902.", 304)])
    )
    assert not world.refresh(WEEK3 + timedelta(minutes=30)).ran
    again = world.refresh(WEEK3 + timedelta(hours=1))
    assert again.ran and again.error is None and again.changes == 1


def test_a_merge_carries_changes_to_the_surviving_item(store: Store) -> None:
    from dataclasses import replace

    from watcher.identity import key

    from .test_store import article, sub

    store.polls.sync([sub("t", "q", ["m@followups.example.org"])], WEEK1)
    doi = "10.1000/merge.1"
    store.polls.commit(
        "t", [key("doi", doi)], source="rss", deliver=True, now=WEEK1, window_end=None, found=1
    )
    store.articles.upsert([replace(article(8), doi=None)], WEEK1)
    store.polls.commit(
        "t", [k(8)], source="esearch", deliver=True, now=WEEK1, window_end=None, found=1
    )
    digest = store.outbox.create_digest(
        recipient="m@followups.example.org",
        schedule="k",
        message_id="<m@followups>",
        message=b"",
        items=[key("doi", doi), k(8)],
        now=WEEK1,
    )
    assert store.outbox.mark_digest_sent(digest, WEEK1)
    store.changes.record(
        [Change(key("doi", doi), "erratum", "pmid:9", None, "Erratum in: X")], WEEK3
    )
    # The PubMed record now carries the DOI: one item, and its change with it, told once.
    store.articles.upsert([replace(article(8), doi=doi)], WEEK3 + timedelta(hours=1))
    (pending,) = store.changes.pending("m@followups.example.org")
    assert pending.change.item == k(8) and pending.change.kind == "erratum"


def test_golden_followups_section(tmp_path: Path) -> None:
    """The section as it renders (text, and HTML before CSS inlining) must not drift."""
    from watcher.digest.build import build_digest, with_followups
    from watcher.digest.present import present_followups
    from watcher.digest.render import Renderer
    from watcher.models import StoredChange
    from watcher.sources.pubmed_xml import parse_articles

    from .test_digest import check_golden, config

    erratum = (FIXTURES / "followups" / "metapub-35649368.xml").read_bytes()
    preprint = tep(402, pub_types=("Preprint",), journal="medRxiv", iso="medRxiv").xml
    xml = b"<PubmedArticleSet>" + tep().xml + preprint + b"</PubmedArticleSet>"
    articles = {k(a.pmid): a for a in [*parse_articles(erratum), *parse_articles(xml)]}
    changes = [
        Change(
            k(35649368),
            "erratum",
            "pmid:35767954",
            "https://pubmed.ncbi.nlm.nih.gov/35767954/",
            "Erratum in: Cell Rep. 2022 Jun 28;39(13):111044.",
        ),
        Change(
            k(101),
            "retraction",
            "status:retracted",
            "https://pubmed.ncbi.nlm.nih.gov/301/",
            f"Retraction in: {RETRACTION_SOURCE}",
            "pmid:301",
        ),
        Change(
            k(402),
            "published",
            "pmid:403",
            "https://pubmed.ncbi.nlm.nih.gov/403/",
            "published in Diabetes Care",
        ),
    ]
    stored = [StoredChange(i, c, WEEK3) for i, c in enumerate(changes, 1)]
    cfg = config(tmp_path)
    ctx = build_digest("a@example.org", {}, {}, cfg.subscriptions, cfg.mail, "/w.toml", WEEK3)
    received = {
        k(101): (date(2026, 11, 2), ["Anti-CD3 in T1D", "Prevention"]),
        k(35649368): (date(2026, 10, 26), ["Anti-CD3 in T1D"]),
    }  # k(402): no delivery on record, nothing said
    ctx = with_followups(ctx, present_followups(stored, articles, received))
    assert ctx.subject == "PubMed Watcher: 1 retraction, 1 correction, 1 journal version"
    renderer = Renderer()
    check_golden("followups.txt", renderer.render(ctx).text)
    check_golden("followups.html", renderer.html_env.get_template("digest.html").render(d=ctx))


def test_a_polls_notices_are_read_back_alone(store: Store) -> None:
    """notices_found asks the store only for the records that list a notice's
    CommentsCorrections entry, picked by the database: a record that merely holds the word (a
    keyword) or lists another kind of entry is not one of them."""
    records = [
        synthetic(
            401,
            "Erratum: Teplizumab in relatives at risk",
            edat=DAY,
            corrections=[("ErratumFor", "N Engl J Med. 2026 Oct 30;395(17):603-613.", 101)],
        ),
        synthetic(402, "A paper about errata", edat=DAY, keywords=("ErratumFor",)),
        tep(403, corrections=[("ErratumIn", "N Engl J Med. 2026;395:1.", 404)]),
        rit(),
    ]
    xml = b"<PubmedArticleSet>" + b"".join(r.xml for r in records) + b"</PubmedArticleSet>"
    store.articles.upsert(list(parse_articles(xml)), WEEK3)
    items = [k(401), k(402), k(403), k(201), k(999)]
    found = store.articles.listing(items, {"ErratumFor", "RetractionOf"})
    assert list(found) == [k(401)]
    assert found == {k(401): store.articles.records([k(401)])[k(401)]}
    assert store.articles.listing(items, ()) == {}
