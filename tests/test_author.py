"""`author`: an ORCID iD (checksum verified) or a name with initials becomes the PubMed search for
that author's papers, ANDed with the subscription's query; and it finds them, through the fake
NCBI, on real records."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from watcher.cli import main
from watcher.config import load_config
from watcher.config_authors import orcid_checksum
from watcher.errors import ConfigError
from watcher.identity import pmid_key
from watcher.store import Store

from .conftest import FIXTURES, write_config
from .fakes.ncbi import FakeNCBI
from .fakes.query import compile_term
from .fakes.records import from_file

FIELD = FIXTURES / "field" / "t1d-antibodies.xml"
# Real records whose authors carry ORCID iDs (Falde SD, Koster MJ), one bare, as publishers send.
ORCID_RECORD = FIXTURES / "efetch" / "metapub-39077977.xml"
KOSTER = "0000-0002-2895-6755"


def query_of(tmp_path: Path, lines: str) -> str | None:
    path = tmp_path / "w.toml"
    path.write_text(
        f'[ncbi]\nemail = "me@example.org"\n[[subscription]]\nname = "G"\n{lines}\n'
        'recipients = ["a@example.org"]\n'
    )
    return load_config(path).subscriptions[0].query


@pytest.mark.parametrize(
    "orcid", ["0000-0002-1825-0097", "0000-0001-5109-3700", "0000-0002-1694-233X", KOSTER]
)
def test_orcid_checksum_of_valid_ids(orcid: str) -> None:
    # The first three are ORCID's own examples of valid iDs.
    digits = orcid.replace("-", "")
    assert orcid_checksum(digits[:15]) == digits[15]


@pytest.mark.parametrize(
    ("lines", "query"),
    [
        ('author = "0000-0002-1825-0097"', '"0000-0002-1825-0097"[auid]'),
        ('author = "https://orcid.org/0000-0002-1825-0097"', '"0000-0002-1825-0097"[auid]'),
        ('author = "http://orcid.org/0000-0002-1694-233x/"', '"0000-0002-1694-233X"[auid]'),
        ('author = "Herold KC"', '"Herold KC"[au]'),
        ('author = "Herold, K. C."', '"Herold KC"[au]'),
        ('author = "van der Berg J"', '"van der Berg J"[au]'),
        (
            'author = ["Herold KC", "0000-0002-1825-0097", "Herold KC"]',
            '("Herold KC"[au] OR "0000-0002-1825-0097"[auid])',
        ),
        (
            'author = "Herold KC"\nquery = "teplizumab[tw] OR otelixizumab[tw]"',
            '(teplizumab[tw] OR otelixizumab[tw]) AND "Herold KC"[au]',
        ),
    ],
)
def test_author_becomes_the_pubmed_search_for_that_author(
    tmp_path: Path, lines: str, query: str
) -> None:
    assert query_of(tmp_path, lines) == query


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        ('author = "Herold"', "subscription[0].author: 'Herold' is not a name as PubMed lists"),
        ('author = "Herold kc"', "'Herold kc' is not a name as PubMed lists authors"),
        ('author = "0000-0002-1825-009"', "'0000-0002-1825-009' is not an ORCID iD like"),
        ('author = "orcid.org/0000-0002-1825-0096"', "last character should be 7"),
        ("author = []", "subscription[0].author: lists nobody"),
        ('author = ["Herold KC", 3]', "subscription[0].author[1]: must be a string"),
        ('author = "Herold KC"\ntrials = "x"', "it goes with `query` or alone, not `trials`"),
    ],
)
def test_a_wrong_author_is_a_config_error_naming_the_key(
    tmp_path: Path, lines: str, says: str
) -> None:
    with pytest.raises(ConfigError) as info:
        query_of(tmp_path, lines)
    assert says in str(info.value) and str(info.value).startswith(f"{tmp_path / 'w.toml'}: ")
    assert info.value.exit_code == 2


def authors_of(path: Path) -> dict[int, list[tuple[str, str, set[str]]]]:
    """PMID → (last name, initials, ORCID iDs as written) of each author, read from the XML."""
    out = {}
    for rec in etree.parse(str(path)).getroot().iterfind("PubmedArticle"):
        out[int(rec.findtext("MedlineCitation/PMID"))] = [
            (
                a.findtext("LastName") or "",
                a.findtext("Initials") or "",
                {i.text or "" for i in a.iterfind("Identifier") if i.get("Source") == "ORCID"},
            )
            for a in rec.iterfind(".//AuthorList/Author")
        ]
    return out


def test_the_fake_reads_auid_and_quoted_names_as_pubmed_does() -> None:
    day = date(2026, 11, 2)
    records = from_file(FIELD, edat=day) + from_file(ORCID_RECORD, edat=day)
    authors = {**authors_of(FIELD), **authors_of(ORCID_RECORD)}

    def found(term: str) -> set[int]:
        q = compile_term(term)
        return {r.pmid for r in records if q.match(r.indexed())}

    herold_kc = {p for p, a in authors.items() if ("Herold", "KC", set()) in a}
    assert herold_kc and found('"Herold KC"[au]') == herold_kc
    # In quotes, the name as written: not truncated to longer initials (Herold KC).
    assert found('"Herold K"[au]') == {
        p for p, a in authors.items() if any(n == "Herold" and i == "K" for n, i, _ in a)
    }
    # An ORCID iD, whether the record or the search writes it bare or as its URL.
    assert found(f'"{KOSTER}"[auid]') == {39077977}
    assert found(f'"https://orcid.org/{KOSTER}"[auid]') == {39077977}
    assert found('"0000-0002-1825-0097"[auid]') == set()


NOW = datetime.now(UTC).replace(microsecond=0)


def test_an_author_subscription_finds_that_authors_new_papers_end_to_end(
    tmp_path: Path, fake: FakeNCBI
) -> None:
    today = NOW.date()
    fake.add(from_file(FIELD, edat=today - timedelta(days=1)))
    fake.add(from_file(ORCID_RECORD, edat=today - timedelta(days=1)))
    authors = {**authors_of(FIELD), **authors_of(ORCID_RECORD)}
    path = write_config(
        tmp_path,
        fake.base_url,
        '[[subscription]]\nname = "Herold group"\nauthor = "Herold KC"\n'
        'recipients = ["a@example.org"]\n'
        '[[subscription]]\nname = "Herold on teplizumab"\nauthor = "Herold KC"\n'
        'query = "teplizumab[tw]"\nrecipients = ["b@example.org"]\n'
        f'[[subscription]]\nname = "Koster"\nauthor = "https://orcid.org/{KOSTER}"\n'
        'recipients = ["c@example.org"]\n',
        extra=f'[store]\nurl = "sqlite:///{tmp_path / "w.db"}"\n',
    )

    assert main(["-c", str(path), "poll"]) == 0

    terms = [s.params["term"] for s in fake.served if s.endpoint == "esearch"]
    assert '("Herold KC"[au]) AND ((' in terms[0]
    assert '((teplizumab[tw]) AND "Herold KC"[au]) AND ((' in terms[1]
    assert f'("{KOSTER}"[auid]) AND ((' in terms[2]
    herold = {p for p, a in authors.items() if any((n, i) == ("Herold", "KC") for n, i, _ in a)}
    teplizumab = {r.pmid for r in fake.records.values() if "teplizumab" in r.text}
    store = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        for reader, name, expected in [
            ("a@example.org", "Herold group", herold),
            ("b@example.org", "Herold on teplizumab", herold & teplizumab),
            ("c@example.org", "Koster", {39077977}),
        ]:
            pending = store.outbox.pending_papers(reader, [name])
            assert expected and set(pending) == {pmid_key(p) for p in expected}, name
    finally:
        store.close()
