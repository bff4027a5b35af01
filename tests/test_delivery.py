"""The digest run for many readers (issue 28): what is said of a paper is worked out once per
run, whatever the number of readers who get it, and every reader's digest is what it was when
each was worked out on its own."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

from watcher.config import Config, load_config
from watcher.delivery import send_digests
from watcher.digest.build import build_digest
from watcher.digest.context import Paper
from watcher.digest.drugs import Vocabulary
from watcher.digest.present import Annotations, annotate, present_paper
from watcher.digest.render import Memo, Renderer
from watcher.identity import pmid_key
from watcher.mail import HtmlParts, build_message, html_part_size
from watcher.models import Article
from watcher.sources.pubmed_xml import parse_articles
from watcher.store import Store
from watcher.wiring import make_transport

from .conftest import write_config
from .fakes.records import synthetic

NOW = datetime(2026, 11, 16, 7, tzinfo=UTC)
PAPERS = [
    synthetic(
        1,
        "Teplizumab in relatives at risk",
        edat=date(2026, 11, 10),
        abstract="Teplizumab delayed type 1 diabetes in patients at risk.",
        trials=("NCT01030861",),
        pub_types=("Randomized Controlled Trial",),
    ),
    synthetic(2, "Rituximab and beta-cell function", edat=date(2026, 11, 11)),
    synthetic(3, "Otelixizumab plus rituximab", edat=date(2026, 11, 12)),
]
ABSTRACTS = ("snippet", "full", "none")


class Counting:
    """annotate, counting the papers it is asked about."""

    def __init__(self) -> None:
        self.calls: Counter[int | None] = Counter()

    def __call__(self, art: Article, drugs: Vocabulary) -> Paper:
        self.calls[art.pmid] += 1
        return annotate(art, drugs)


def setup(tmp_path: Path, readers: int) -> tuple[Config, Store]:
    """`readers` readers, each with a subscription of their own and one they share, every
    subscription matching the three papers; the readers read their abstracts in turn as a
    snippet, in full and not at all, and order their papers by date or by evidence."""
    subs = "".join(
        f'[[subscription]]\nname = "Own {i}"\nquery = "x"\nrecipients = ["r{i}@example.org"]\n'
        for i in range(readers)
    )
    everyone = ", ".join(f'"r{i}@example.org"' for i in range(readers))
    subs += f'[[subscription]]\nname = "Shared"\nquery = "x"\nrecipients = [{everyone}]\n'
    tables = "".join(
        f'[[recipient]]\naddress = "r{i}@example.org"\nabstract = "{ABSTRACTS[i % 3]}"\n'
        f'order = "{("date", "evidence")[i % 2]}"\n'
        for i in range(readers)
    )
    path = write_config(
        tmp_path,
        "http://127.0.0.1:9/",
        subs + tables,
        extra=f'[store]\nurl = "sqlite:///{tmp_path / "w.db"}"\n'
        f'[mail]\nfrom = "watcher@example.org"\nmaildir = "{tmp_path / "mail"}"\n',
    )
    config = load_config(path)
    store = Store.open(config.store_url)
    store.polls.sync(config.subscriptions, NOW - timedelta(days=2))
    xml = b"<PubmedArticleSet>" + b"".join(r.xml for r in PAPERS) + b"</PubmedArticleSet>"
    store.articles.upsert(list(parse_articles(xml)), NOW - timedelta(days=1))
    for sub in config.subscriptions:
        items = [pmid_key(r.pmid) for r in PAPERS]
        store.polls.commit(
            sub.name,
            items,
            source="esearch",
            deliver=True,
            now=NOW - timedelta(days=1),
            window_end=None,
            found=len(items),
        )
    return config, store


def scrub(message: bytes) -> bytes:
    """The message without what changes from one building to the next: its MIME boundaries."""
    for boundary in set(re.findall(rb'boundary="([^"]+)"', message)):
        message = message.replace(boundary, b"BOUNDARY")
    return message


def mailed(tmp_path: Path) -> dict[str, str]:
    """Recipient → the text part of the one digest the maildir holds for them."""
    out = {}
    for path in (tmp_path / "mail" / "new").iterdir():
        msg = message_from_bytes(path.read_bytes(), policy=default)
        body = msg.get_body(("plain",))
        assert body is not None
        out[str(msg["To"]).rpartition("<")[2].rstrip(">")] = body.get_content()
    return out


@pytest.mark.parametrize("readers", [1, 7])
def test_each_paper_is_annotated_once_per_run_whatever_the_readers(
    tmp_path: Path, readers: int
) -> None:
    config, store = setup(tmp_path, readers)
    counting = Counting()
    transport = make_transport(config.mail, env={})
    try:
        report = send_digests(
            config, store, transport, NOW, annotations=Annotations(annotate=counting)
        )
    finally:
        transport.close()
        store.close()
    assert len(report.sent) == readers and not report.failed
    assert counting.calls == {1: 1, 2: 1, 3: 1}
    texts = mailed(tmp_path)
    assert sorted(texts) == sorted(f"r{i}@example.org" for i in range(readers))
    for text in texts.values():
        assert all(f"pubmed.ncbi.nlm.nih.gov/{r.pmid}/" in text for r in PAPERS)


def test_a_digest_from_the_runs_annotations_is_the_digest_worked_out_alone(
    tmp_path: Path,
) -> None:
    """Another reader's digest first (other abstracts, other papers compact), then this one:
    the same context as this one's built with nothing kept."""
    config, store = setup(tmp_path, 3)
    articles = store.articles.records([pmid_key(r.pmid) for r in PAPERS])
    store.close()
    papers = {item: ["Own 0", "Shared"] for item in articles}
    shared = Annotations()
    for i in (1, 2, 0):
        reader = replace(config.recipient(f"r{i}@example.org"), max_items=1 + i)
        contexts = [
            build_digest(
                reader.address,
                papers,
                articles,
                config.subscriptions,
                config.mail,
                config.path,
                NOW,
                reader=reader,
                annotations=notes,
            )
            for notes in (shared, None)
        ]
        assert contexts[0] == contexts[1]
        assert contexts[0].ris and contexts[0].groups


def test_a_paper_from_the_runs_annotations_is_present_paper(tmp_path: Path) -> None:
    arts = list(parse_articles(b"<PubmedArticleSet>" + PAPERS[0].xml + b"</PubmedArticleSet>"))
    notes = Annotations()
    for mode in ABSTRACTS:
        for compact in (False, True):
            got = notes.paper(pmid_key(1), arts[0], ("Shared",), mode, compact)
            assert got == present_paper(arts[0], ("Shared",), mode, compact=compact)
    assert notes.paper(pmid_key(1), arts[0], (), "full").abstract  # the full abstract is kept


def test_a_record_revised_during_the_run_is_annotated_again() -> None:
    """A poll beside the run may store a revised record: its readers after that see it."""
    (art,) = parse_articles(b"<PubmedArticleSet>" + PAPERS[1].xml + b"</PubmedArticleSet>")
    counting = Counting()
    notes = Annotations(annotate=counting)
    first = notes.paper(pmid_key(2), art, (), "snippet")
    again = notes.paper(pmid_key(2), replace(art), (), "snippet")  # an equal record read again
    revised = replace(art, title="Rituximab and beta-cell function: a correction")
    after = notes.paper(pmid_key(2), revised, (), "snippet")
    assert first == again and counting.calls[2] == 2
    assert after.title.startswith("Rituximab and beta-cell function: a correction")


def test_the_configs_digests_are_worked_out_once(tmp_path: Path) -> None:
    config, store = setup(tmp_path, 3)
    store.close()
    assert config.digests is config.digests
    assert config.digests[("0 7 * * mon", "UTC")]["r2@example.org"] == ("Own 2", "Shared")


def test_the_html_part_measured_for_the_budget_is_the_part_mailed(tmp_path: Path) -> None:
    """Encoded once for the size check and reused by the message: the same bytes either way."""
    config, store = setup(tmp_path, 1)
    articles = store.articles.records([pmid_key(r.pmid) for r in PAPERS])
    store.close()
    papers = {item: ["Shared"] for item in articles}
    ctx = build_digest(
        "r0@example.org", papers, articles, config.subscriptions, config.mail, config.path, NOW
    )
    parts = HtmlParts()
    rendered = Renderer().render(ctx, html_size=parts.size)
    assert parts.size(rendered.html) == html_part_size(rendered.html)
    args = (rendered, "watcher@example.org", "r0@example.org", "<m@example.org>", NOW)
    shared = build_message(*args, ris=ctx.ris, html_parts=parts)
    alone = build_message(*args, ris=ctx.ris)
    assert scrub(shared) == scrub(alone) and rendered.html.encode() not in shared


def test_a_renderer_works_out_each_text_once() -> None:
    calls: Counter[tuple[object, ...]] = Counter()

    def wrap(*args: object) -> str:
        calls[args] += 1
        return f"folded {args[0]}"

    memo = Memo(wrap, kept=2)
    assert [memo("a", 76, ""), memo("a", 76, ""), memo("b", 76, "  ")] == [
        "folded a",
        "folded a",
        "folded b",
    ]
    assert calls == {("a", 76, ""): 1, ("b", 76, "  "): 1}
    memo("c", 76, "")  # past `kept`: it starts again
    memo("a", 76, "")
    assert calls[("a", 76, "")] == 2
