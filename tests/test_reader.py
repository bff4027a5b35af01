"""The reader's side (issue 17): per-recipient settings, ordering, the RIS export and the way
out, end to end on the installed package against a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from watcher.config import Config, load_config
from watcher.delivery import send_digests
from watcher.errors import ConfigError
from watcher.identity import pmid_key as k
from watcher.poll import poll
from watcher.sources.pubmed_xml import parse_articles
from watcher.store import Store
from watcher.wiring import make_transport, sources_for

from .conftest import make_client, write_config
from .fakes.ncbi import FakeNCBI
from .fakes.records import synthetic
from .fakes.smtp import SmtpServer

rispy = pytest.importorskip("rispy", reason="the RIS checks need rispy (the test extra)")

MONDAY = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)
SUB = """
[[subscription]]
name = "Anti-CD3 in T1D"
query = "teplizumab"
recipients = ["Ana Lopez <ana@example.org>", "bob@example.org"]
like = [900001, 900002]
"""


def make_config(tmp_path: Path, port: int, recipient: str = "", mail: str = "") -> Config:
    extra = (
        f'[mail]\nfrom = "Diabetes Lab Watcher <watcher@lab.example.org>"\n'
        f'admin = "Lab Admin <admin@lab.example.org>"\n{mail}\n'
        f'[mail.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout = 5\n'
    )
    path = write_config(tmp_path, "http://127.0.0.1:9/", SUB + recipient, extra=extra)
    return load_config(path)


# Eight papers: one of each evidence tier, dated so that newest-first differs from both other
# orders, and two close to the liked papers (teplizumab, C-peptide, beta cells).
PAPERS = [
    (101, "Teplizumab case report of cytokine release", ("Case Reports",), (), 1, ""),
    (102, "Teplizumab and islet autoantibodies: a narrative review", ("Review",), (), 2, ""),
    (
        103,
        "Teplizumab preserves C-peptide in new-onset type 1 diabetes",
        ("Randomized Controlled Trial",),
        ("Diabetes Mellitus, Type 1", "C-Peptide"),
        3,
        "Teplizumab preserved C-peptide and beta cell function in new-onset type 1 diabetes.",
    ),
    (
        104,
        "Anti-CD3 antibodies in type 1 diabetes: a meta-analysis",
        ("Meta-Analysis",),
        (),
        4,
        "Pooled trials of teplizumab.",
    ),
    (
        105,
        "An open-label phase 2 study of teplizumab dosing",
        ("Clinical Trial, Phase II",),
        (),
        5,
        "",
    ),
    (106, "Teplizumab uptake in a national cohort", ("Observational Study",), (), 6, ""),
    (107, "Teplizumab pricing commentary", ("Editorial",), (), 7, "Costs of teplizumab."),
    (
        108,
        "Beta cell function and C-peptide after teplizumab in relatives",
        ("Journal Article",),
        ("C-Peptide", "Insulin-Secreting Cells"),
        8,
        "C-peptide and beta cell function were preserved by teplizumab in relatives.",
    ),
]
LIKED = [
    synthetic(
        900001,
        "Teplizumab and C-peptide preservation in recent-onset type 1 diabetes",
        edat=date(2020, 1, 1),
        abstract="Teplizumab preserved C-peptide and beta cell function.",
        mesh=("C-Peptide", "Diabetes Mellitus, Type 1"),
    ),
    synthetic(
        900002,
        "Beta cell function after anti-CD3",
        edat=date(2021, 1, 1),
        abstract="Beta cell function and C-peptide after anti-CD3 antibodies.",
        mesh=("Insulin-Secreting Cells",),
    ),
]


def records(pmids: list[int] | None = None) -> list:
    return [
        synthetic(
            pmid,
            title,
            edat=date(2026, 11, day),
            pub_types=types,
            mesh=mesh,
            abstract=abstract or f"{title}.",
            keywords=("teplizumab",),
            doi=f"10.1000/t1d.{pmid}",
        )
        for pmid, title, types, mesh, day, abstract in PAPERS
        if pmids is None or pmid in pmids
    ]


def seed(config: Config, pmids: list[int] | None = None, *, when: datetime = MONDAY) -> Store:
    store = Store.open(config.store_url)
    store.polls.sync(config.subscriptions, MONDAY - timedelta(days=30))
    add(store, pmids, when)
    return store


def add(store: Store, pmids: list[int] | None, when: datetime, liked: bool = True) -> None:
    recs = records(pmids) + (LIKED if liked else [])
    xml = b"<PubmedArticleSet>" + b"".join(r.xml for r in recs) + b"</PubmedArticleSet>"
    store.articles.upsert(list(parse_articles(xml)), when - timedelta(days=1))
    found = [k(p) for p, *_ in PAPERS if pmids is None or p in pmids]
    store.polls.commit(
        "Anti-CD3 in T1D",
        found,
        source="esearch",
        deliver=True,
        now=when - timedelta(days=1),
        window_end=None,
        found=len(found),
    )


def deliver(config: Config, store: Store, now: datetime):
    transport = make_transport(config.mail, env={})
    try:
        return send_digests(config, store, transport, now)
    finally:
        transport.close()


def mail_to(server: SmtpServer, rcpt: str) -> list:
    return [r.message for r in server.received if rcpt in r.rcpt_tos]


def shown_order(message) -> list[int]:
    text = message.get_body(("plain",)).get_content()
    at = {pmid: text.find(f"pubmed.ncbi.nlm.nih.gov/{pmid}/") for pmid, *_ in PAPERS}
    return sorted((p for p in at if at[p] >= 0), key=at.__getitem__)


# Recipients as first-class config


def test_recipient_tables_take_defaults_from_defaults_and_mail(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        25,
        '[[recipient]]\naddress = "Dr Ana Lopez <ANA@example.org>"\norder = "evidence"\n'
        'timezone = "Europe/Madrid"\npaused_until = 2026-12-01\n',
        mail='abstract = "full"\nmax_items = 7\n',
    )
    ana = config.recipient("ana@example.org")
    assert (ana.order, ana.abstract, ana.max_items) == ("evidence", "full", 7)
    assert ana.schedule == ("0 7 * * mon", "Europe/Madrid")
    assert ana.paused_until == date(2026, 12, 1) and ana.name == "Dr Ana Lopez"
    assert config.display_name("ana@example.org") == "Dr Ana Lopez"
    bob = config.recipient("bob@example.org")  # no table: [mail]'s settings, the sub's schedule
    assert (bob.order, bob.abstract, bob.max_items, bob.schedule) == ("date", "full", 7, None)
    assert config.digests == {
        ("0 7 * * mon", "Europe/Madrid"): {"ana@example.org": ("Anti-CD3 in T1D",)},
        ("0 7 * * mon", "UTC"): {"bob@example.org": ("Anti-CD3 in T1D",)},
    }


@pytest.mark.parametrize(
    ("table", "where", "says"),
    [
        ('address = "carol@example.org"', "recipient[0].address", "in no subscription"),
        ('address = "ana@example.org"\norder = "newest"', "recipient[0].order", "'date'"),
        ('address = "ana@example.org"\npaused_until = "soon"', "paused_until", "a date"),
        ('address = "ana@example.org"\nmax_items = 0', "recipient[0].max_items", "between"),
        ('address = "ana@example.org"\ndigest_cron = "weekly"', "digest_cron", "crontab"),
        ('address = "ana@example.org"\ncolour = "red"', "colour", "unknown"),
    ],
)
def test_bad_recipient_tables_are_refused_with_their_key(tmp_path, table, where, says) -> None:
    with pytest.raises(ConfigError) as err:
        make_config(tmp_path, 25, f"[[recipient]]\n{table}\n")
    assert where in str(err.value) and says in str(err.value).lower()


def test_like_must_list_pmids(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "http://127.0.0.1:9/",
        '[[subscription]]\nname = "x"\nquery = "y"\nrecipients = ["a@example.org"]\n'
        'like = ["teplizumab"]\n',
    )
    with pytest.raises(ConfigError, match=r"subscription\[0\]\.like\[0\].*not a PMID"):
        load_config(path)


def test_a_changed_schedule_never_loses_or_repeats_a_paper(tmp_path, smtp) -> None:
    weekly = '[[recipient]]\naddress = "ana@example.org"\ndigest_cron = "0 7 * * mon"\n'
    config = make_config(tmp_path, smtp.port, weekly)
    store = seed(config, [101, 102, 103])
    deliver(config, store, MONDAY)
    # Papers arrive; before the next Monday the reader moves to a monthly digest in Tokyo.
    add(store, [104, 105], MONDAY + timedelta(days=3), liked=False)
    monthly = (
        '[[recipient]]\naddress = "ana@example.org"\ndigest_cron = "0 8 1 * *"\n'
        'timezone = "Asia/Tokyo"\n'
    )
    config = make_config(tmp_path, smtp.port, monthly)
    old_key, new_key = ("0 7 * * mon", "UTC"), ("0 8 1 * *", "Asia/Tokyo")
    assert "ana@example.org" not in config.digests.get(old_key, {})
    assert config.digests[new_key] == {"ana@example.org": ("Anti-CD3 in T1D",)}
    add(store, [106], MONDAY + timedelta(days=10), liked=False)
    # Every schedule's job runs (the old one in a daemon not yet reloaded, the new one on the
    # 1st of the month in Tokyo), twice: Ana gets one digest, with what she had not yet had.
    for when in (MONDAY + timedelta(days=14), MONDAY + timedelta(days=15)):
        deliver(config, store, when)
    got = [p for m in mail_to(smtp, "ana@example.org") for p in shown_order(m)]
    assert sorted(got) == [101, 102, 103, 104, 105, 106]  # each once, none lost
    assert len(mail_to(smtp, "ana@example.org")) == 2


def test_a_paused_reader_gets_nothing_until_the_date_then_everything(tmp_path, smtp) -> None:
    paused = '[[recipient]]\naddress = "ana@example.org"\npaused_until = 2026-12-01\n'
    config = make_config(tmp_path, smtp.port, paused)
    store = seed(config, [101, 102])
    deliver(config, store, MONDAY)
    add(store, [103], MONDAY + timedelta(days=7), liked=False)
    deliver(config, store, MONDAY + timedelta(days=7))
    assert mail_to(smtp, "ana@example.org") == []
    assert len(mail_to(smtp, "bob@example.org")) == 2  # the others are not held
    deliver(config, store, datetime(2026, 12, 7, 7, 0, tzinfo=UTC))
    [owed] = mail_to(smtp, "ana@example.org")
    assert sorted(shown_order(owed)) == [101, 102, 103]


# Order


def digest_in(tmp_path: Path, smtp: SmtpServer, order: str):
    table = f'[[recipient]]\naddress = "ana@example.org"\norder = "{order}"\n'
    config = make_config(tmp_path, smtp.port, table)
    store = seed(config)
    deliver(config, store, MONDAY)
    [message] = mail_to(smtp, "ana@example.org")
    store.close()
    return message


def test_date_order_is_newest_first(tmp_path, smtp) -> None:
    message = digest_in(tmp_path, smtp, "date")
    assert shown_order(message) == [108, 107, 106, 105, 104, 103, 102, 101]
    assert "Order: Newest first." in message.get_body(("plain",)).get_content()


def test_evidence_order_follows_the_tiers_then_newest(tmp_path, smtp) -> None:
    message = digest_in(tmp_path, smtp, "evidence")
    # meta-analysis, RCT, phase 2, cohort, review, case report, then the rest newest first
    assert shown_order(message) == [104, 103, 105, 106, 102, 101, 108, 107]
    text = message.get_body(("plain",)).get_content()
    assert "Order: Strongest evidence first (meta-analyses and systematic reviews" in text


def test_relevance_order_puts_papers_like_the_liked_ones_first_and_marks_them(
    tmp_path, smtp
) -> None:
    message = digest_in(tmp_path, smtp, "relevance")
    order = shown_order(message)
    assert set(order[:2]) == {103, 108}  # C-peptide and beta cells, like the liked papers
    text = message.get_body(("plain",)).get_content()
    assert "Closest first to the papers you like (PMID 900001, 900002)" in text
    marked = [m.strip() for m in re.findall(r"★ Closest to your papers\r?\n(.+)", text)]
    assert len(marked) == 3 and set(marked[:2]) == {PAPERS[2][1], PAPERS[7][1]}
    assert "★ Closest to your papers" in message.get_body(("html",)).get_content()


def test_like_papers_are_fetched_with_the_polls_records_and_kept(tmp_path, fake: FakeNCBI) -> None:
    today = date(2026, 11, 16)
    fake.add([synthetic(pmid, t, edat=today - timedelta(days=2)) for pmid, t, *_ in PAPERS[:3]])
    fake.add(LIKED)
    config = load_config(write_config(tmp_path, fake.base_url, SUB))
    store = Store.open(config.store_url)
    store.polls.sync(config.subscriptions, MONDAY)
    client = make_client(fake.base_url)
    report = poll(
        config, store, sources_for(client, config.ncbi), datetime(2026, 11, 16, 12, tzinfo=UTC)
    )
    assert fake.count("efetch") == 1  # one batch: the three matches and the two liked papers
    assert set(store.articles.records([k(900001), k(900002)])) == {k(900001), k(900002)}
    assert report.fetched == 5
    assert set(store.outbox.pending_papers("ana@example.org", ["Anti-CD3 in T1D"])) == {
        k(101),
        k(102),
        k(103),
    }  # liked papers are not announced
    fake.reset_counts()
    poll(config, store, sources_for(client, config.ncbi), datetime(2026, 11, 17, 12, tzinfo=UTC))
    assert fake.count("efetch") == 0  # kept: not fetched again
    store.close()


# Export


def test_the_digest_carries_its_papers_as_ris_that_a_ris_parser_reads(tmp_path, smtp) -> None:
    message = digest_in(tmp_path, smtp, "date")
    assert message.get_content_type() == "multipart/mixed"
    parts = [p.get_content_type() for p in message.iter_parts()]
    assert parts == ["multipart/alternative", "application/x-research-info-systems"]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "pubmed-watcher-2026-11-16.ris"
    # M2 is Zotero's Extra (RIS.js); rispy has no name for it (tests/test_ris.py has the map)
    entries = rispy.loads(
        attachment.get_content().decode("utf-8"),
        mapping={**rispy.TAG_KEY_MAPPING, "M2": "extra"},
        list_tags=[*rispy.LIST_TYPE_TAGS, "M2"],
    )
    assert [e["extra"] for e in entries] == [[f"PMID: {p}"] for p in range(108, 100, -1)]
    rct = entries[5]
    assert rct["type_of_reference"] == "JOUR"
    assert rct["title"] == "Teplizumab preserves C-peptide in new-onset type 1 diabetes"
    assert rct["authors"] == ["Herold, KC", "Bundy, BN"]
    assert rct["secondary_title"] == "The New England journal of medicine"
    assert rct["alternate_title1"] == "N Engl J Med"  # J2: Zotero's Journal Abbr
    assert (rct["volume"], rct["number"], rct["start_page"], rct["end_page"]) == (
        "381",
        "7",
        "603",
        "613",
    )
    assert (rct["year"], rct["date"]) == ("2026", "2026/11/03")
    assert rct["doi"] == "10.1000/t1d.103"
    assert rct["urls"] == ["https://pubmed.ncbi.nlm.nih.gov/103/"]
    assert "beta cell function" in rct["abstract"]
    # the author's keyword and the major topic; not the minor heading
    assert rct["keywords"] == ["teplizumab", "Diabetes Mellitus, Type 1"]
    html = message.get_body(("html",)).get_content()
    assert re.search(r"108 107 106 105 104 103 102 101", html)  # the PMIDs line, pasteable


# The way out


# RFC 2369, section 3.2 and its grammar: the header's value is one or more <URI>s; folding may
# happen only between them, never inside the angle brackets. What a client reads is the raw
# header as it arrived: one line, plain ASCII, no RFC 2047 encoded word.
RFC2369_ONE_MAILTO = re.compile(
    rb"^List-Unsubscribe: <(mailto:[\x21-\x3b\x3d\x3f-\x7e]+)>\r\n(?![ \t])", re.M
)


def raw_unsubscribe(server: SmtpServer, rcpt: str) -> tuple[bytes, str]:
    """The message's head as the server received it, and the List-Unsubscribe URI read from
    those bytes (not from a parsed header: Python would decode an encoded word for us)."""
    (received,) = [r for r in server.received if rcpt in r.rcpt_tos]
    head = received.data.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    found = RFC2369_ONE_MAILTO.findall(head)
    assert len(found) == 1, head.decode("ascii", "replace")
    return head, found[0].decode("ascii")


def test_list_unsubscribe_is_one_plain_mailto_to_the_admin_in_the_raw_bytes(tmp_path, smtp) -> None:
    from urllib.parse import parse_qs, urlsplit

    from watcher.subscriptions import reader_reference

    message = digest_in(tmp_path, smtp, "date")
    head, uri = raw_unsubscribe(smtp, "ana@example.org")
    assert head.isascii() and b"=?" not in head.split(b"List-Unsubscribe:")[1].split(b"\r\n")[0]
    line = next(x for x in head.split(b"\r\n") if x.startswith(b"List-Unsubscribe:"))
    assert len(line) <= 78, line  # short enough that nothing wants to fold it
    parts = urlsplit(uri)  # RFC 6068: mailto:addr?subject=…, percent-encoded
    assert (parts.scheme, parts.path) == ("mailto", "admin@lab.example.org")
    ref = reader_reference("ana@example.org")
    assert parse_qs(parts.query) == {"subject": [f"unsubscribe {ref}"]}
    assert len(ref) == 6 and ref != reader_reference("bob@example.org")
    # RFC 8058 one-click needs an HTTPS URI; with mailto only, List-Unsubscribe-Post is wrong.
    assert message["List-Unsubscribe-Post"] is None
    text = message.get_body(("plain",)).get_content()
    assert "This watcher is run by Lab Admin <admin@lab.example.org>." in text
    assert f"Unsubscribe: {uri}" in text.splitlines()  # the text part: one short line
    assert f"Pause: mailto:admin@lab.example.org?subject=pause%20{ref}" in text
    html = message.get_body(("html",)).get_content()
    assert f'href="{uri}"' in html
    assert "watcher.toml" not in text


def test_without_an_admin_list_unsubscribe_mails_the_sender(tmp_path, smtp) -> None:
    path = write_config(
        tmp_path,
        "http://127.0.0.1:9/",
        SUB,
        extra=f'[mail]\nfrom = "watcher@lab.example.org"\n[mail.smtp]\nhost = "127.0.0.1"\n'
        f'port = {smtp.port}\nsecurity = "none"\n',
    )
    config = load_config(path)
    store = seed(config, [101])
    deliver(config, store, MONDAY)
    _, uri = raw_unsubscribe(smtp, "bob@example.org")
    assert uri.startswith("mailto:watcher@lab.example.org?subject=unsubscribe%20")
    [message] = mail_to(smtp, "bob@example.org")
    text = message.get_body(("plain",)).get_content()
    assert "run by PubMed Watcher <watcher@lab.example.org>" in text
    assert f"Unsubscribe: {uri}" in text


def test_check_lists_each_reader_with_their_schedule_and_settings(tmp_path, capsys) -> None:
    from watcher.cli import main

    table = (
        '[[recipient]]\naddress = "ana@example.org"\ndigest_cron = "0 8 1 * *"\n'
        'timezone = "Asia/Tokyo"\norder = "evidence"\npaused_until = 2099-01-01\n'
    )
    config = make_config(tmp_path, 25, table)
    assert main(["-c", str(config.path), "check"]) == 0
    out = capsys.readouterr().out
    assert "reader Ana Lopez <ana@example.org>" in out
    assert "('0 8 1 * *' Asia/Tokyo), carrying Anti-CD3 in T1D" in out
    assert "order evidence, abstract snippet, max_items 50" in out
    assert "paused until 2099-01-01" in out


def test_the_daemon_mails_a_reader_on_their_own_schedule(tmp_path, fake, smtp, driven) -> None:
    """The daemon: Alice's table gives her a digest every two seconds; Bob keeps the
    subscription's yearly one and gets nothing meanwhile."""
    from .test_daemon import config, papers

    papers(fake, 100, 2)
    path = config(tmp_path, fake, smtp, "0 7 1 1 *")
    path.write_text(
        path.read_text()
        + '\n[[recipient]]\naddress = "alice@example.org"\ndigest_cron = "*/2 * * * * *"\n'
    )
    alices = "digest */2 * * * * * UTC"
    d = driven(path, datetime.now(UTC).replace(microsecond=0))
    assert "poll" in d.advance(timedelta(0))  # finds the papers
    assert alices in d.advance(timedelta(seconds=2))
    assert len(smtp.received) == 1
    # another of Alice's digest times passes: nothing new, nothing sent
    assert alices in d.advance(timedelta(seconds=2))
    assert {r for m in smtp.received for r in m.rcpt_tos} == {"alice@example.org"}
    assert len(smtp.received) == 1
    assert smtp.received[0].message["Subject"] == "PubMed Watcher: 2 new papers — Anti-CD3"


def test_a_pause_ends_at_midnight_in_the_readers_time_zone(tmp_path) -> None:
    table = (
        '[[recipient]]\naddress = "ana@example.org"\ntimezone = "Asia/Tokyo"\n'
        "paused_until = 2026-12-01\n"
    )
    ana = make_config(tmp_path, 25, table).recipient("ana@example.org")
    # 15:00 UTC on 30 November is midnight on 1 December in Tokyo (UTC+9): the pause is over.
    assert ana.paused(datetime(2026, 11, 30, 14, 59, tzinfo=UTC))
    assert not ana.paused(datetime(2026, 11, 30, 15, 0, tzinfo=UTC))


def test_relevance_without_stored_liked_papers_says_it_falls_back_to_newest(tmp_path, smtp) -> None:
    table = '[[recipient]]\naddress = "ana@example.org"\norder = "relevance"\n'
    config = make_config(tmp_path, smtp.port, table)
    store = Store.open(config.store_url)
    store.polls.sync(config.subscriptions, MONDAY - timedelta(days=30))
    add(store, [101, 103, 108], MONDAY, liked=False)  # the first digest before a poll fetched them
    deliver(config, store, MONDAY)
    [message] = mail_to(smtp, "ana@example.org")
    assert shown_order(message) == [108, 103, 101]
    text = " ".join(message.get_body(("plain",)).get_content().split())
    assert "Order: Newest first: none of the papers your subscriptions like is stored yet." in text
    assert "Closest to your papers" not in text


# Issue 24: a paper a subscription `like`s is known to its readers from the start.

LIKED_NOW = synthetic(
    900003,
    "Teplizumab preserved C-peptide in recent-onset type 1 diabetes",
    edat=date(2026, 11, 14),
    abstract="Teplizumab preserved C-peptide and beta cell function in new-onset type 1 diabetes.",
    mesh=("C-Peptide", "Diabetes Mellitus, Type 1"),
)


def test_a_liked_paper_the_query_finds_is_never_announced_nor_starred(
    tmp_path: Path, fake: FakeNCBI, smtp: SmtpServer
) -> None:
    """The query finds the liked paper (it is on topic, and new): its readers are not told of
    it, in another subscription's digest either, and it is never starred as closest to
    itself; a reader of the other subscription alone gets it as usual."""
    fake.add([*records([103, 105, 108]), LIKED_NOW])
    subs = SUB.replace("like = [900001, 900002]", "like = [900003]") + (
        '\n[[subscription]]\nname = "Teplizumab news"\nquery = "teplizumab"\n'
        'recipients = ["ana@example.org", "carl@example.org"]\n'
    )
    path = write_config(
        tmp_path,
        fake.base_url,
        subs,
        extra='[mail]\nfrom = "watcher@lab.example.org"\norder = "relevance"\n'
        f'[mail.smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\n',
    )
    config = load_config(path)
    store = Store.open(config.store_url)
    store.polls.sync(config.subscriptions, MONDAY - timedelta(days=7))
    client = make_client(fake.base_url)
    report = poll(config, store, sources_for(client, config.ncbi), MONDAY - timedelta(hours=1))
    assert not report.failed
    assert set(store.outbox.pending_papers("bob@example.org", ["Anti-CD3 in T1D"])) == {
        k(103),
        k(105),
        k(108),
    }
    deliver(config, store, MONDAY)
    for reader in ("ana@example.org", "bob@example.org"):
        [message] = mail_to(smtp, reader)
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert "pubmed.ncbi.nlm.nih.gov/900003/" not in text + html, reader
        assert "★ Closest to your papers" in text  # the others are ranked against it
        assert " 900003 " not in f" {text} "
    # Ana also reads "Teplizumab news", which found it too: known to her, recorded as hers.
    assert k(900003) in store.outbox.delivered_items("ana@example.org")
    [carl] = mail_to(smtp, "carl@example.org")
    assert "pubmed.ncbi.nlm.nih.gov/900003/" in carl.get_body(("plain",)).get_content()
    store.close()
