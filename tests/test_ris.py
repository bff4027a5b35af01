"""The RIS attachment as Zotero imports it (issue 24): the judge is Zotero's RIS importer,
RIS.js in zotero/translators, whose tag map is written down here as data, with the real
records of the shared corpus parsed back from a digest's attachment with rispy."""

from __future__ import annotations

import gzip
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from watcher.config import load_config
from watcher.digest.build import build_digest
from watcher.digest.render import Rendered
from watcher.digest.ris import CHECK_TAGS, ris
from watcher.identity import pmid_key
from watcher.mail import build_message
from watcher.models import Article, MeshHeading
from watcher.sources.pubmed_xml import parse_articles

from .conftest import write_config

rispy = pytest.importorskip("rispy", reason="the RIS checks need rispy (the test extra)")

NOW = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)

# What RIS.js does with each tag of a journal article (TY JOUR → itemType journalArticle), read
# from zotero/translators RIS.js at commit c7551c1a4d5b9623273119c7fbadf8735731dc92 (its
# "lastUpdated": "2026-01-05 18:52:35"): `fieldMap` first, then `degenerateImportFieldMap`, whose
# tags are also deferred until every other tag is read (TagMapper's deprecatedMap), and a field
# already set is never overwritten (applyValue). None: no journalArticle field, so dropped.
ZOTERO_JOURNAL_ARTICLE: Mapping[str, str | None] = {
    # the tags ris.py writes
    "TY": "itemType",
    "AU": "creators/author",
    "TI": "title",
    "T2": "publicationTitle",  # fieldMap.T2: publicationTitle for journalArticle
    "J2": "journalAbbreviation",  # fieldMap.J2
    "VL": "volume",
    "IS": "issue",
    "SP": "pages",
    "EP": "pages",  # processTag "EP": appended to SP as "SP-EP"
    "DA": "date",  # fieldMap.DA: the date
    "PY": "date if no DA",  # processTag "PY": stored as backupDate, used when date is empty
    "ET": None,  # fieldMap.ET: edition, not a journalArticle field (the "EPubDate" line is
    #              commented out there); the RIS specification's "Epub Date" for EndNote
    "DO": "DOI",
    "C2": None,  # C2 maps for patents, book sections and blog posts only
    "M2": "extra",  # degenerateImportFieldMap.M2: "extra"; applyValue joins lines with "\n"
    "AB": "abstractNote",
    "KW": "tags",  # split at newlines and ";"; a lone tag is split again at commas
    "LA": "language",
    "UR": "url",
    "DP": "libraryCatalog",
    "ER": "end of record",
    # tags ris.py avoids, and why
    "AN": "archiveLocation",  # "Loc. in Archive": a PMID there is not a PMID to Zotero
    "JO": "journalAbbreviation",  # degenerate map: an abbreviation, never the full title
    "JF": "publicationTitle",  # degenerate map, deferred behind T2
    "JA": "journalAbbreviation",  # degenerate map
    "N1": "notes",  # a child note, not a field
    "M1": "issue",  # degenerate map: EndNote's issue, for journalArticle
    "Y1": "date",  # degenerate map (the old specification's date), deferred behind DA
}
WRITTEN = ["TY", "AU", "TI", "T2", "J2", "VL", "IS", "SP", "EP", "PY", "DA", "ET", "DO", "C2"]
WRITTEN += ["M2", "AB", "KW", "LA", "UR", "DP", "ER"]


def parse(text: str) -> list[dict[str, list[str]]]:
    """RIS text → one dict per record, tag → its values in order (rispy, keys left as tags)."""
    tags = list(ZOTERO_JOURNAL_ARTICLE)
    return list(
        rispy.loads(
            text,
            mapping={t: t for t in tags if t not in ("TY", "ER")} | {"TY": "TY", "ER": "ER"},
            list_tags=[t for t in tags if t not in ("TY", "ER")],
        )
    )


def zotero_item(record: Mapping[str, Sequence[str]]) -> dict[str, object]:
    """The journalArticle fields RIS.js makes of a record, for the tags ris.py writes."""

    def first(tag: str) -> str | None:
        values = [v.strip() for v in record.get(tag, ()) if v.strip()]
        return values[0] if values else None

    def date_of(value: str | None) -> str | None:
        # dateRIStoZotero: YYYY/MM/DD, any part but the year optional, zeros dropped
        if value is None:
            return None
        m = re.match(r"^(\d+)(?:/(\d{0,2})(?:/(\d{0,2}))?)?", value)
        assert m, value
        parts = [p.lstrip("0") for p in m.groups() if p]
        parts = parts[: next((i for i, p in enumerate(parts) if not p), len(parts))]
        return "-".join([parts[0].zfill(4), *(p.zfill(2) for p in parts[1:])])

    tags: list[str] = []
    for value in record.get("KW", ()):
        tags += [t for t in re.split(r"\s*(?:[\r\n]+\s*)+|\s*(?:;\s*)+", value) if t]
    if len(tags) == 1:
        tags = [t for t in re.split(r"\s*(?:,\s*)+", tags[0]) if t]
    pages = first("SP")
    if pages and first("EP"):
        pages = f"{pages}-{first('EP')}"
    return {
        "title": first("TI"),
        "publicationTitle": first("T2"),
        "journalAbbreviation": first("J2"),
        "date": date_of(first("DA")) or date_of(first("PY")),
        "extra": "\n".join(v.strip() for v in record.get("M2", ())) or None,
        "archiveLocation": first("AN"),
        "tags": tags,
        "DOI": first("DO"),
        "pages": pages,
        "libraryCatalog": first("DP"),
    }


def corpus_articles(corpus: Path) -> list[Article]:
    """Every record of every efetch file the corpus README lists (the 604-record MEDLINE file
    among them) that parses."""
    rows = re.findall(
        r"^\| (\S+) \| efetch-pubmed-xml \|", (corpus / "README.md").read_text(), re.M
    )
    out: list[Article] = []
    for name in rows:
        raw = (corpus / name).read_bytes()
        out += parse_articles(gzip.decompress(raw) if name.endswith(".gz") else raw)
    return out


def attachment_of(tmp_path: Path, articles: Sequence[Article]) -> str:
    """The RIS attachment of a digest of `articles`, as a mail client hands it over."""
    subs = '[[subscription]]\nname = "All"\nquery = "x"\nrecipients = ["a@example.org"]\n'
    cfg = load_config(write_config(tmp_path, "http://127.0.0.1:9/", subs))
    keyed = {pmid_key(a.pmid or 0): a for a in articles}
    ctx = build_digest(
        "a@example.org", {p: ["All"] for p in keyed}, keyed, cfg.subscriptions, cfg.mail,
        cfg.path, NOW,
    )  # fmt: skip
    raw = build_message(
        Rendered("s", "t", "<p>h</p>"), "w@example.org", "a@example.org", "<m@x>", NOW, ris=ctx.ris
    )
    message = message_from_bytes(raw, policy=policy.default)
    [attachment] = list(message.iter_attachments())
    content: bytes = attachment.get_content()
    return content.decode("utf-8")


def test_every_tag_written_has_a_known_place_in_zotero() -> None:
    from .test_digest import art

    text = ris([art(1, keywords=("teplizumab",), mesh=(MeshHeading("C-Peptide", True),))])
    written = re.findall(r"^([A-Z][A-Z0-9])  - ", text, re.M)
    assert set(written) <= set(WRITTEN) <= set(ZOTERO_JOURNAL_ARTICLE)
    assert not {"AN", "JO", "JF", "JA", "N1", "M1", "Y1"} & set(written)


def test_corpus_records_import_into_zotero_with_date_ids_journal_and_tags(
    tmp_path: Path, corpus: Path
) -> None:
    by_pmid = {a.pmid: a for a in corpus_articles(corpus)}
    assert len(by_pmid) == 738  # 739 records, PMID 9997 twice
    records = parse(attachment_of(tmp_path, list(by_pmid.values())))
    assert len(records) == len(by_pmid)
    epub_elsewhere = 0
    for record in records:
        item = zotero_item(record)
        (line,) = [v for v in record["M2"] if v.startswith("PMID: ")]
        a = by_pmid[int(line.removeprefix("PMID: "))]
        # the date: the printed issue's, whatever year it was put online
        assert record["PY"] == [str(a.pub_year)], a.pmid
        assert record["DA"][0].startswith(f"{a.pub_year}"), a.pmid
        assert str(item["date"]).startswith(str(a.pub_year)), a.pmid
        if a.epub_date:
            assert record["ET"] == [a.epub_date.strftime("%Y/%m/%d")], a.pmid
            epub_elsewhere += a.epub_date.year != a.pub_year
        # the identifiers, in Extra as Zotero keeps them
        assert item["extra"] == f"PMID: {a.pmid}" + (f"\nPMCID: {a.pmcid}" if a.pmcid else "")
        assert item["archiveLocation"] is None
        # the journal, full and abbreviated
        assert (item["publicationTitle"], item["journalAbbreviation"]) == (
            a.journal,
            a.journal_iso,
        ), a.pmid
        # author keywords and major topics, never a check tag
        tags = item["tags"]
        assert isinstance(tags, list)
        assert not CHECK_TAGS & set(tags) - set(a.keywords), a.pmid  # unless the authors say
        major = [m.descriptor for m in a.mesh if m.major and m.descriptor not in CHECK_TAGS]
        said = {k.casefold() for k in a.keywords}
        assert tags == [*a.keywords, *(m for m in major if m.casefold() not in said)], a.pmid
    assert epub_elsewhere == 48  # records online in one year and in print the next


def test_a_record_online_in_one_year_and_printed_the_next(tmp_path: Path, corpus: Path) -> None:
    """PMID 27797938 (Gut) went online in October 2016 and was printed in June 2017: Zotero must
    say 2017, as the citation does."""
    [a] = parse_articles((corpus / "biopython-pubmed4.xml").read_bytes())
    assert (a.pmid, a.epub_date, a.pub_date) == (27797938, date(2016, 10, 21), "2017 Jun")
    [record] = parse(attachment_of(tmp_path, [a]))
    assert (record["PY"], record["DA"], record["ET"]) == (["2017"], ["2017/06"], ["2016/10/21"])
    assert zotero_item(record)["date"] == "2017-06"


def test_pmc_record_carries_both_identifiers_and_its_printed_month(
    tmp_path: Path, corpus: Path
) -> None:
    [a] = parse_articles((corpus / "biopython-pubmed7.xml").read_bytes())
    [record] = parse(attachment_of(tmp_path, [a]))
    item = zotero_item(record)
    assert item["extra"] == "PMID: 29963580\nPMCID: PMC6022861"
    assert record["C2"] == ["PMC6022861"]
    assert item["date"] == "2018-04"  # "2018 Apr" in print; online 2018-06-28
    assert item["publicationTitle"] == "Journal of medical imaging (Bellingham, Wash.)"
    assert item["journalAbbreviation"] == "J Med Imaging (Bellingham)"
    assert item["libraryCatalog"] == "PubMed"


def test_keywords_leave_out_check_tags_and_minor_headings() -> None:
    from .test_digest import art

    a = art(
        1,
        keywords=("Teplizumab", "type 1 diabetes"),
        mesh=(
            MeshHeading("Humans"),
            MeshHeading("Male"),
            MeshHeading("Female"),
            MeshHeading("Adolescent"),
            MeshHeading("Diabetes Mellitus, Type 1", True, ("drug therapy",)),
            MeshHeading("Antibodies, Monoclonal, Humanized", True),
            MeshHeading("C-Peptide", False, ("blood",)),
            MeshHeading("teplizumab", True),  # also an author keyword: once
        ),
    )
    [record] = parse(ris([a]))
    assert record["KW"] == [
        "Teplizumab",
        "type 1 diabetes",
        "Diabetes Mellitus, Type 1",
        "Antibodies, Monoclonal, Humanized",
    ]
    assert zotero_item(record)["tags"] == record["KW"]


def test_a_record_without_a_printed_date_has_neither_py_nor_da() -> None:
    from .test_digest import art

    [record] = parse(ris([art(1, pub_date=None, pub_year=None)]))
    assert "PY" not in record and "DA" not in record
    assert record["ET"] == ["2019/06/09"]
    assert zotero_item(record)["date"] is None
