"""The fake NCBI's elink answers as NCBI's does: the same shapes as real saved answers
(tests/fixtures/elink, see its PROVENANCE), read the same way; what only the documentation says,
as it says it (docs/citations.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import pairwise
from typing import Any

import pytest
import requests
from lxml import etree

from .fakes.citations import SELF_SCORE
from .fakes.elink import EMPTY_IDS, OUTAGE
from .fakes.ncbi import FakeNCBI, FakeRecord
from .fakes.records import FIXTURES, from_file, synthetic

ELINK = FIXTURES / "elink"
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

# The field's landmark papers, as the starter config follows them (tests/fixtures/field).
HEROLD_2002, KEYMEULEN_2005, PESCOVITZ_2009, HEROLD_2019 = 12037148, 15972866, 19940299, 31180194
FOLLOWED = (HEROLD_2002, KEYMEULEN_2005, PESCOVITZ_2009, HEROLD_2019)
HEROLD_2019_S = str(HEROLD_2019)
TODAY = date(2026, 11, 16)


# Reading an eLinkResult as a client would


@dataclass
class LinkSet:
    ids: list[str]
    links: dict[str, list[tuple[str, int | None]]] = field(default_factory=dict)
    history: dict[str, str] = field(default_factory=dict)
    webenv: str | None = None
    error: str | None = None


def read(xml: bytes) -> tuple[list[LinkSet], str | None]:
    """The LinkSets of an eLinkResult and its top-level ERROR."""
    root = etree.fromstring(xml, PARSER)
    assert root.tag == "eLinkResult", root.tag
    sets = []
    for ls in root.iterfind("LinkSet"):
        out = LinkSet(ids=[i.text or "" for i in ls.iterfind("IdList/Id")])
        out.error = ls.findtext("ERROR")
        for db in ls.iterfind("LinkSetDb"):
            out.links[db.findtext("LinkName") or ""] = [
                (link.findtext("Id") or "", _int(link.findtext("Score")))
                for link in db.iterfind("Link")
            ]
        for h in ls.iterfind("LinkSetDbHistory"):
            out.history[h.findtext("LinkName") or ""] = h.findtext("QueryKey") or ""
        out.webenv = ls.findtext("WebEnv")
        sets.append(out)
    return sets, root.findtext("ERROR")


def _int(text: str | None) -> int | None:
    return int(text) if text is not None else None


def paths(xml: bytes) -> set[str]:
    """Every element path in the document: its shape, whatever the counts and values."""
    found: set[str] = set()

    def walk(el: Any, prefix: str) -> None:
        here = f"{prefix}/{el.tag}" if prefix else el.tag
        found.add(here)
        for child in el:
            if isinstance(child.tag, str):
                walk(child, here)

    walk(etree.fromstring(xml, PARSER), "")
    return found


def doctype(xml: bytes) -> str:
    return str(etree.fromstring(xml, PARSER).getroottree().docinfo.doctype)


def real(name: str) -> bytes:
    return (ELINK / name).read_bytes()


def cassette_body(text: str) -> bytes:
    """The answer body of a vcrpy cassette, read from YAML's double-quoted style (a line break
    folds to a space, continuation lines lose their indentation, then the escapes)."""
    start = text.index('string: "') + len('string: "')
    end = re.compile(r'(?<!\\)"').search(text, start)
    assert end is not None
    lines = text[start : end.start()].split("\n")
    folded = lines[0].rstrip(" ") + "".join(" " + line.strip(" ") for line in lines[1:])
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", " ": " ", "/": "/"}
    return re.sub(r"\\(.)", lambda m: escapes[m.group(1)], folded).encode()


# The world the fake answers from


def citing_paper(pmid: int, crdt: date, cites: str) -> FakeRecord:
    return synthetic(
        pmid,
        f"Teplizumab and beta-cell function after {cites}: a cohort study",
        edat=crdt,
        abstract="We followed relatives at risk of type 1 diabetes treated with anti-CD3.",
        mesh=("Diabetes Mellitus, Type 1", "Humans"),
    )


@pytest.fixture
def world() -> Iterator[FakeNCBI]:
    """Four followed landmarks, papers citing them (one citing two), and similar articles."""
    ncbi = FakeNCBI()
    ncbi.add(from_file(FIXTURES / "field" / "t1d-antibodies.xml", edat=date(2019, 6, 9)))
    ncbi.add(
        [
            citing_paper(98100001, date(2026, 11, 10), "Herold 2019"),
            citing_paper(98100002, date(2026, 9, 1), "Herold 2002"),
            citing_paper(98100003, date(2026, 11, 12), "Herold 2002 and 2019"),
            citing_paper(98100004, date(2024, 3, 5), "Keymeulen 2005"),
        ]
    )
    g = ncbi.graph
    g.cite(98100001, HEROLD_2019)
    g.cite(98100002, HEROLD_2002)
    g.cite(98100003, [HEROLD_2002, HEROLD_2019])
    g.cite(98100004, KEYMEULEN_2005, pmc=False)  # the OCC knows it, PMC does not
    g.cite(HEROLD_2019, HEROLD_2002)
    g.similar(HEROLD_2019, 98000001, 41000000)
    g.similar(HEROLD_2019, 98000004, 38000000)
    g.similar(HEROLD_2002, KEYMEULEN_2005, 52000000)
    g.similar(HEROLD_2002, HEROLD_2019, 47000000)
    ncbi.start()
    yield ncbi
    ncbi.stop()


def elink(ncbi: FakeNCBI, post: bool = False, **params: Any) -> requests.Response:
    url = ncbi.base_url + "elink.fcgi"
    params = {"dbfrom": "pubmed", "db": "pubmed", **params}
    if post:
        return requests.post(url, data=params, timeout=10)
    return requests.get(url, params=params, timeout=10)


# Shapes: the fake's answer to a question has the shape of NCBI's saved answer to it


def test_neighbor_for_one_id_has_the_shape_of_ncbis_answer(world: FakeNCBI) -> None:
    # Biopython's elink1.xml: dbfrom=pubmed, one id, cmd=neighbor, no linkname.
    saved = real("biopython-elink1.xml")
    ours = elink(world, id=str(HEROLD_2002)).content
    assert paths(ours) == paths(saved)
    assert doctype(ours) == doctype(saved)
    (theirs,), _ = read(saved)
    (mine,), _ = read(ours)
    # The record itself is its own first similar article.
    assert theirs.links["pubmed_pubmed"][0][0] == theirs.ids[0]
    assert mine.links["pubmed_pubmed"][0][0] == mine.ids[0] == str(HEROLD_2002)
    # Citing papers come newest PMID first.
    for ls in (theirs, mine):
        cited_in = [int(i) for i, _ in ls.links["pubmed_pubmed_citedin"]]
        assert cited_in == sorted(cited_in, reverse=True)
    # Herold 2019 cites Herold 2002 too: a followed paper can cite another.
    assert [i for i, _ in mine.links["pubmed_pubmed_citedin"]] == [
        "98100003",
        "98100002",
        HEROLD_2019_S,
    ]


def test_the_saved_answers_name_links_in_name_order(world: FakeNCBI) -> None:
    (theirs,), _ = read(real("biopython-elink1.xml"))
    (mine,), _ = read(elink(world, id=str(HEROLD_2019)).content)
    assert list(theirs.links) == sorted(theirs.links)
    assert list(mine.links) == ["pubmed_pubmed", "pubmed_pubmed_citedin", "pubmed_pubmed_refs"]
    assert mine.links["pubmed_pubmed_refs"] == [(str(HEROLD_2002), None)]


def test_comma_joined_ids_give_one_merged_linkset(world: FakeNCBI) -> None:
    # Biopython's elink3.xml (two ids in one id=, a date limit) and Bio-EUtilities'
    # elink_neighbor.xml (four ids in one id=): one LinkSet naming every id.
    for name in ("biopython-elink3.xml", "bioperl-elink_neighbor.xml"):
        sets, _ = read(real(name))
        assert len(sets) == 1 and len(sets[0].ids) > 1
    ours = elink(world, id=f"{HEROLD_2002},{HEROLD_2019}", linkname="pubmed_pubmed_citedin")
    (merged,), _ = read(ours.content)
    assert merged.ids == [str(HEROLD_2002), str(HEROLD_2019)]
    # 98100003 cites both: once in the merged set, and nothing says which it cites.
    assert [i for i, _ in merged.links["pubmed_pubmed_citedin"]] == [
        "98100003",
        "98100002",
        "98100001",
        HEROLD_2019_S,
    ]


def test_several_id_parameters_give_one_linkset_per_id(world: FakeNCBI) -> None:
    # Bio-EUtilities' elink_neighbor_corr.xml: the by-id form, one LinkSet per id=.
    saved = real("bioperl-elink_neighbor_corr.xml")
    theirs, _ = read(saved)
    assert len(theirs) == 4 and all(len(ls.ids) == 1 for ls in theirs)
    ids = [str(p) for p in FOLLOWED]
    ours = elink(world, id=ids, linkname="pubmed_pubmed_citedin")
    mine, error = read(ours.content)
    assert error is None
    assert [ls.ids for ls in mine] == [[i] for i in ids]
    citing = {ls.ids[0]: [i for i, _ in ls.links.get("pubmed_pubmed_citedin", [])] for ls in mine}
    # Each citing paper is tied to what it cites; the one citing two papers is in both sets.
    assert citing == {
        str(HEROLD_2002): ["98100003", "98100002", HEROLD_2019_S],
        str(KEYMEULEN_2005): [],  # its one citing paper is known to the OCC, not to PMC
        str(PESCOVITZ_2009): [],
        str(HEROLD_2019): ["98100003", "98100001"],
    }
    assert paths(ours.content) == paths(saved)


def test_an_id_without_links_is_a_linkset_with_its_id_only(world: FakeNCBI) -> None:
    # Biopython's 2008 elink9.xml: no LinkSetDb at all, the IdList still there.
    saved = real("biopython-2008-elink9-nolinks.xml")
    ours = elink(world, id=str(PESCOVITZ_2009), linkname="pubmed_pubmed_citedin").content
    assert (
        paths(ours)
        == paths(saved)
        == {
            "eLinkResult",
            "eLinkResult/LinkSet",
            "eLinkResult/LinkSet/DbFrom",
            "eLinkResult/LinkSet/IdList",
            "eLinkResult/LinkSet/IdList/Id",
        }
    )


def test_neighbor_score_has_the_shape_of_scored_answers(world: FakeNCBI) -> None:
    # Biopython's 2008 elink1.xml (PubMed neighbours with scores) and Bio-EUtilities'
    # elink_scores.xml: <Score> after <Id> in each Link, the record itself first at 2147483647.
    saved = real("biopython-2008-elink1-scores.xml")
    ours = elink(world, id=str(HEROLD_2019), cmd="neighbor_score").content
    assert paths(ours) == paths(saved)
    for xml in (saved, real("bioperl-elink_scores.xml"), ours):
        (ls,), _ = read(xml)
        scored = next(iter(ls.links.values()))
        assert scored[0] == (ls.ids[0], SELF_SCORE)
        scores = [s for _, s in scored]
        assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    (mine,), _ = read(ours)
    assert mine.links["pubmed_pubmed"] == [
        (str(HEROLD_2019), SELF_SCORE),
        (str(HEROLD_2002), 47000000),
        ("98000001", 41000000),
        ("98000004", 38000000),
    ]


def test_merged_scores_put_every_input_id_first(world: FakeNCBI) -> None:
    # Biopython's 2008 elink3.xml: two comma-joined ids, both first at 2147483647.
    (theirs,), _ = read(real("biopython-2008-elink3-scores.xml"))
    top = theirs.links["pubmed_pubmed"][:2]
    assert {i for i, _ in top} == set(theirs.ids) and {s for _, s in top} == {SELF_SCORE}
    ours = elink(world, id=f"{HEROLD_2019},{HEROLD_2002}", cmd="neighbor_score").content
    (mine,), _ = read(ours)
    assert {i for i, s in mine.links["pubmed_pubmed"][:2]} == set(mine.ids)
    # A neighbour of both keeps one entry.
    found = [i for i, _ in mine.links["pubmed_pubmed"]]
    assert len(found) == len(set(found))


def test_neighbor_score_answers_the_similar_articles_whatever_the_linkname(
    world: FakeNCBI,
) -> None:
    # NBK25499: "The linkname parameter only functions when cmd is set to neighbor or
    # neighbor_history."
    (ls,), _ = read(
        elink(
            world, id=str(HEROLD_2019), cmd="neighbor_score", linkname="pubmed_pubmed_citedin"
        ).content
    )
    assert list(ls.links) == ["pubmed_pubmed"]


def inversions(links: list[tuple[str, int | None]]) -> float:
    """The share of neighbours in a list that are out of newest-PMID-first order."""
    ids = [int(i) for i, _ in links]
    return sum(a < b for a, b in pairwise(ids)) / max(1, len(ids) - 1)


def test_date_and_term_limits_give_newest_first(world: FakeNCBI) -> None:
    # Biopython's elink3.xml (mindate, datetype=pdat) and elink4.xml (term=medline[sb]): the
    # limited similar articles come newest first as a search sorts them (nearly PMID order),
    # no longer in score order as elink1.xml's unlimited ones do.
    (unlimited,), _ = read(real("biopython-elink1.xml"))
    assert inversions(unlimited.links["pubmed_pubmed"]) > 0.4
    for name in ("biopython-elink3.xml", "biopython-elink4.xml"):
        sets, _ = read(real(name))
        assert inversions(sets[0].links["pubmed_pubmed"]) < 0.05
    ids = [str(p) for p in FOLLOWED]
    window: dict[str, Any] = {"datetype": "crdt", "mindate": "2026/10/17", "maxdate": "2026/11/16"}
    limited, _ = read(elink(world, id=ids, linkname="pubmed_pubmed_citedin", **window).content)
    recent = {
        ls.ids[0]: [i for i, _ in ls.links.get("pubmed_pubmed_citedin", [])] for ls in limited
    }
    assert recent[str(HEROLD_2002)] == ["98100003"]  # 98100002 is from September
    assert recent[str(HEROLD_2019)] == ["98100003", "98100001"]
    (termed,), _ = read(elink(world, id=str(HEROLD_2019), term="Crohn").content)
    assert termed.links == {}  # no similar article or citing paper says Crohn
    (termed,), _ = read(elink(world, id=str(HEROLD_2019), term="teplizumab").content)
    # Herold 2002 names teplizumab as a substance; the four share a date, so PMID breaks the tie.
    similar = [i for i, _ in termed.links["pubmed_pubmed"]]
    assert similar == ["98000004", "98000001", HEROLD_2019_S, str(HEROLD_2002)]


def test_neighbor_score_ignores_date_limits(world: FakeNCBI) -> None:
    # NBK25499: the date parameters "only function when cmd is set to neighbor or
    # neighbor_history and dbfrom is pubmed".
    window: dict[str, Any] = {"datetype": "crdt", "mindate": "2030/01/01", "maxdate": "2030/12/31"}
    (ls,), _ = read(elink(world, id=str(HEROLD_2019), cmd="neighbor_score", **window).content)
    assert len(ls.links["pubmed_pubmed"]) == 4


# The history server


def test_neighbor_history_has_the_shape_of_ncbis_answers(world: FakeNCBI) -> None:
    # Bio-EUtilities' elink_nhist.xml (merged) and elink_nhist_corr.xml (by-id).
    merged = elink(world, id=f"{HEROLD_2002},{HEROLD_2019}", cmd="neighbor_history").content
    assert paths(merged) == paths(real("bioperl-elink_nhist.xml"))
    by_id = elink(world, id=[str(HEROLD_2002), str(HEROLD_2019)], cmd="neighbor_history").content
    assert paths(by_id) == paths(real("bioperl-elink_nhist_corr.xml"))
    sets, _ = read(by_id)
    assert len({ls.webenv for ls in sets}) == 1  # one WebEnv, a query key per link set
    keys = [k for ls in sets for k in ls.history.values()]
    assert len(keys) == len(set(keys))


def test_neighbor_history_round_trip_to_esearch_and_efetch(world: FakeNCBI) -> None:
    ids = f"{HEROLD_2002},{HEROLD_2019}"
    (ls,), _ = read(
        elink(world, id=ids, cmd="neighbor_history", linkname="pubmed_pubmed_citedin").content
    )
    key = ls.history["pubmed_pubmed_citedin"]
    assert ls.webenv is not None
    base = world.base_url
    # esearch ANDs the stored set with its term and window (NBK25499, ESearch's query_key).
    found = requests.get(
        base + "esearch.fcgi",
        params={
            "db": "pubmed",
            "WebEnv": ls.webenv,
            "query_key": key,
            "term": "",
            "datetype": "crdt",
            "mindate": "2026/10/17",
            "maxdate": "2026/11/16",
            "retmode": "json",
        },
        timeout=10,
    ).json()["esearchresult"]
    assert found["idlist"] == ["98100003", "98100001"] and found["count"] == "2"
    fetched = requests.get(
        base + "efetch.fcgi",
        params={"db": "pubmed", "WebEnv": ls.webenv, "query_key": key, "retmode": "xml"},
        timeout=10,
    ).content
    assert sorted(re.findall(rb"<PMID Version=\"1\">(\d+)</PMID>", fetched)) == [
        b"31180194",
        b"98100001",
        b"98100002",
        b"98100003",
    ]
    # A link from the stored set (WebEnv + query_key instead of ids) adds to the same WebEnv.
    (again,), _ = read(
        elink(
            world,
            WebEnv=ls.webenv,
            query_key=key,
            linkname="pubmed_pubmed_refs",
            cmd="neighbor_history",
        ).content
    )
    assert again.webenv == ls.webenv and int(again.history["pubmed_pubmed_refs"]) > int(key)


def test_an_expired_webenv_is_an_error(world: FakeNCBI) -> None:
    sets, error = read(elink(world, WebEnv="MCID_gone", query_key="1").content)
    assert sets == [] and error == "Unable to obtain query #1"


# The documented limits of the request


def test_get_and_post_give_the_same_answer(world: FakeNCBI) -> None:
    ids = [str(p) for p in FOLLOWED]
    got = elink(world, id=ids, linkname="pubmed_pubmed_citedin").content
    posted = elink(world, post=True, id=ids, linkname="pubmed_pubmed_citedin").content
    assert got == posted
    assert [(s.method, s.ids) for s in world.served] == [("GET", tuple(ids)), ("POST", tuple(ids))]


def test_a_long_get_is_refused_where_a_post_goes_through(world: FakeNCBI) -> None:
    # "if more than about 200 UIDs are to be provided, the request should be made using the
    # HTTP POST method" (NBK25499); a front end refuses an over-long request line with 414.
    world.max_url = 2000
    many = [str(40000000 + i) for i in range(250)]
    assert elink(world, id=many).status_code == 414
    answer = elink(world, post=True, id=many)
    assert answer.status_code == 200 and len(read(answer.content)[0]) == 250


def test_the_cassettes_post_answer_has_the_fakes_shape(world: FakeNCBI) -> None:
    # biocommons' cassette: a POST with usehistory=y, which cmd=neighbor ignores (no WebEnv),
    # and NCBI's X-RateLimit headers on a success.
    text = (ELINK / "biocommons-cassette-elink.yaml").read_text()
    saved = cassette_body(text)
    (theirs,), _ = read(saved)
    assert theirs.ids == ["1234567"] and theirs.webenv is None
    assert theirs.links["pubmed_pubmed"][0][0] == "1234567"
    assert "X-RateLimit-Limit:\n      - '3'" in text
    world.rate_limit = 3
    answer = elink(world, post=True, id=str(HEROLD_2002), usehistory="y", retmax="250")
    assert paths(answer.content) == paths(saved)
    assert answer.headers["X-RateLimit-Limit"] == "3"
    assert int(answer.headers["X-RateLimit-Remaining"]) == 2


# JSON


def test_json_carries_what_the_xml_carries(world: FakeNCBI) -> None:
    ids = [str(HEROLD_2002), str(HEROLD_2019)]
    xml_sets, _ = read(elink(world, id=ids).content)
    answer = elink(world, id=ids, retmode="json")
    assert answer.headers["Content-Type"].startswith("application/json")
    doc = answer.json()
    assert doc["header"] == {"type": "elink", "version": "0.3"}
    for ls, js in zip(xml_sets, doc["linksets"], strict=True):
        assert js["dbfrom"] == "pubmed" and js["ids"] == ls.ids
        assert {d["linkname"]: d["links"] for d in js["linksetdbs"]} == {
            name: [i for i, _ in links] for name, links in ls.links.items()
        }
        assert all(d["dbto"] == "pubmed" for d in js["linksetdbs"])


def test_json_scores_and_history(world: FakeNCBI) -> None:
    scored = elink(world, id=str(HEROLD_2019), cmd="neighbor_score", retmode="json").json()
    links = scored["linksets"][0]["linksetdbs"][0]["links"]
    assert links[0] == {"id": str(HEROLD_2019), "score": SELF_SCORE}
    history = elink(
        world,
        id=str(HEROLD_2019),
        cmd="neighbor_history",
        linkname="pubmed_pubmed_citedin",
        retmode="json",
    ).json()["linksets"][0]
    assert history["webenv"].startswith("MCID_")
    assert history["linksetdbhistories"] == [
        {"dbto": "pubmed", "linkname": "pubmed_pubmed_citedin", "querykey": "1"}
    ]


# Errors


def test_a_malformed_id_is_an_error_in_its_linkset(world: FakeNCBI) -> None:
    sets, error = read(elink(world, id=[str(HEROLD_2019), "31180194x"]).content)
    assert error is None
    assert sets[0].error is None and sets[1].error == "Invalid uid 31180194x"


def test_no_id_is_a_top_level_error(world: FakeNCBI) -> None:
    sets, error = read(elink(world, linkname="pubmed_pubmed_citedin").content)
    assert sets == [] and error == EMPTY_IDS
    assert elink(world, retmode="json").json()["ERROR"] == EMPTY_IDS


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("empty", [["31180194"], ["99999999"]]),  # today's answer
        ("zero", [["31180194"], ["0"]]),  # 2015 (rentrez#57)
        ("omit", [["31180194"]]),  # by-id, 2016 (rentrez#76)
    ],
)
def test_an_unknown_pmid_is_answered_as_ncbi_did(
    world: FakeNCBI, mode: str, expected: list[list[str]]
) -> None:
    world.elink_unknown = mode
    sets, error = read(elink(world, id=["31180194", "99999999"]).content)
    assert error is None and [ls.ids for ls in sets] == expected
    assert all(ls.links == {} for ls in sets if ls.ids != ["31180194"])


def test_an_unknown_pmid_can_be_an_error(world: FakeNCBI) -> None:
    world.elink_unknown = "error"
    sets, _ = read(elink(world, id=["31180194", "99999999"]).content)
    assert [ls.error for ls in sets] == [None, "Invalid uid 99999999"]


def test_an_unknown_linkname_finds_nothing(world: FakeNCBI) -> None:
    (ls,), _ = read(elink(world, id=str(HEROLD_2019), linkname="pubmed_pubmed_nonesuch").content)
    assert ls.links == {} and ls.ids == [str(HEROLD_2019)]


def test_other_databases_are_an_error(world: FakeNCBI) -> None:
    _, error = read(elink(world, id="1", db="protein").content)
    assert error == "Invalid db name specified: protein"


def test_commands_it_does_not_imitate_are_refused_plainly(world: FakeNCBI) -> None:
    answer = elink(world, id=str(HEROLD_2019), cmd="prlinks")
    assert answer.status_code == 400 and "neighbor_score" in answer.text


# Faults and budgets, as on the other endpoints


def test_faults_on_elink(world: FakeNCBI) -> None:
    world.fault("elink", "error")
    _, error = read(elink(world, id=str(HEROLD_2019)).content)
    assert error == OUTAGE
    world.fault("elink", "error")
    assert elink(world, id=str(HEROLD_2019), retmode="json").json() == {
        "header": {"type": "elink", "version": "0.3"},
        "linksets": [],
        "ERROR": OUTAGE,
    }
    world.fault("elink", "status:503", retry_after="2")
    refused = elink(world, id=str(HEROLD_2019))
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "2"
    world.fault("elink", "truncated")
    with pytest.raises(etree.XMLSyntaxError):
        read(elink(world, id=str(HEROLD_2019)).content)
    world.fault("elink", "expired_webenv")
    _, error = read(elink(world, id=str(HEROLD_2019)).content)
    assert error == "Unable to obtain query #1"
    assert elink(world, id=str(HEROLD_2019)).status_code == 200  # the faults are spent
    assert world.count("elink") == 6 and world.count("esearch") == 0


def test_elink_shares_the_rate_limit_of_the_other_eutilities(world: FakeNCBI) -> None:
    world.rate_limit = 3
    statuses = [elink(world, id=str(HEROLD_2019)).status_code for _ in range(3)]
    statuses.append(
        requests.get(world.base_url + "esearch.fcgi", params={"term": "x"}, timeout=10).status_code
    )
    assert statuses == [200, 200, 200, 429]
    assert world.too_many == 1


# What a first poll costs: the figures docs/citations.md gives


def first_poll_world(n_followed: int = 10, citations: int = 2000, per_week: int = 40) -> FakeNCBI:
    """`n_followed` followed papers and `citations` papers citing them: `per_week` a week over
    the last eight weeks, the rest from before 2023; each cites one followed paper, every tenth
    cites two."""
    ncbi = FakeNCBI()
    followed = [97000000 + i for i in range(n_followed)]
    ncbi.add(synthetic(p, f"Followed trial {p}", edat=date(2019, 6, 9)) for p in followed)
    records = []
    for i in range(citations):
        pmid = 97100000 + i
        weeks_back = i // per_week
        if weeks_back < 8:
            crdt = TODAY - timedelta(days=7 * weeks_back + i % 7)
        else:
            crdt = date(2023, 1, 1) - timedelta(days=i)
        records.append(citing_paper(pmid, crdt, "a followed trial"))
        ncbi.graph.cite(pmid, followed[i % n_followed])
        if i % 10 == 0:
            ncbi.graph.cite(pmid, followed[(i + 1) % n_followed])
    ncbi.add(records)
    return ncbi


@dataclass
class Cost:
    requests: int
    answer_bytes: int
    announced: set[int]


def first_poll_costs(lookback_days: int = 30) -> dict[str, Cost]:
    """Three ways to make a first poll of a `cites` subscription: what each costs."""
    ncbi = first_poll_world().start()
    try:
        followed = [str(p) for p in range(97000000, 97000010)]
        since = TODAY - timedelta(days=lookback_days)
        window = {
            "datetype": "crdt",
            "mindate": f"{since:%Y/%m/%d}",
            "maxdate": f"{TODAY:%Y/%m/%d}",
        }
        base = ncbi.base_url
        size = 0

        def call(endpoint: str, **params: Any) -> bytes:
            nonlocal size
            answer = requests.post(base + endpoint, data=params, timeout=30)
            assert answer.status_code == 200, answer.text
            size += len(answer.content)
            return answer.content

        def fetch(pmids: list[str]) -> set[int]:
            got: set[int] = set()
            for i in range(0, len(pmids), 200):
                xml = call("efetch.fcgi", db="pubmed", id=",".join(pmids[i : i + 200]))
                for rec in etree.fromstring(xml, PARSER).iterfind("PubmedArticle"):
                    history = rec.find("PubmedData/History/PubMedPubDate[@PubStatus='entrez']")
                    assert history is not None
                    made = date(*(int(history.findtext(p) or 0) for p in ("Year", "Month", "Day")))
                    if made >= since:
                        got.add(int(rec.findtext("MedlineCitation/PMID") or 0))
            return got

        def link(**extra: Any) -> list[LinkSet]:
            sets, error = read(
                call(
                    "elink.fcgi",
                    dbfrom="pubmed",
                    db="pubmed",
                    linkname="pubmed_pubmed_citedin",
                    **extra,
                )
            )
            assert error is None
            return sets

        def citing(sets: list[LinkSet]) -> list[str]:
            return sorted({i for ls in sets for i, _ in ls.links.get("pubmed_pubmed_citedin", [])})

        costs = {}
        # A: one by-id elink for every link (recorded as known), then efetch all to read dates.
        ncbi.reset_counts()
        size = 0
        announced = fetch(citing(link(id=followed)))
        costs["A: by-id elink, efetch all"] = Cost(ncbi.count(), size, announced)
        # B: the same by-id elink, then again limited to the creation window, efetch those.
        ncbi.reset_counts()
        size = 0
        link(id=followed)
        announced = fetch(citing(link(id=followed, **window)))
        costs["B: by-id elink, by-id elink in the window, efetch new"] = Cost(
            ncbi.count(), size, announced
        )
        # C: the by-id elink, a merged neighbor_history, one esearch over the window on the
        # stored set, efetch those.
        ncbi.reset_counts()
        size = 0
        link(id=followed)
        (stored,) = link(id=",".join(followed), cmd="neighbor_history")
        found = call(
            "esearch.fcgi",
            db="pubmed",
            WebEnv=stored.webenv or "",
            query_key=stored.history["pubmed_pubmed_citedin"],
            term="",
            retmax="10000",
            **window,
        )
        recent = [i.text or "" for i in etree.fromstring(found, PARSER).iterfind("IdList/Id")]
        announced = fetch(recent)
        costs["C: by-id elink, neighbor_history, esearch in the window, efetch new"] = Cost(
            ncbi.count(), size, announced
        )
        return costs
    finally:
        ncbi.stop()


@pytest.mark.slow
def test_first_poll_costs() -> None:
    costs = first_poll_costs()
    a, b, c = costs.values()
    assert a.announced == b.announced == c.announced
    assert len(a.announced) == 178  # 40 a week, those of the last 30 days
    assert (a.requests, b.requests, c.requests) == (11, 3, 4)
    # B and C read about the same (the links, and the new records); A reads every record.
    assert max(b.answer_bytes, c.answer_bytes) * 5 < a.answer_bytes


def main() -> None:  # pragma: no cover - prints the figures for docs/citations.md
    for name, cost in first_poll_costs().items():
        print(
            f"{name}: {cost.requests} requests, {cost.answer_bytes:,} bytes, "
            f"{len(cost.announced)} announced"
        )


if __name__ == "__main__":  # pragma: no cover
    main()
