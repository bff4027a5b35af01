"""Reading ELink's answers (watcher/sources/elink.py) on NCBI's real saved answers
(tests/fixtures/elink/, see its PROVENANCE) and the shapes docs/citations.md describes."""

from __future__ import annotations

import pytest

from watcher.errors import SourceError
from watcher.sources.elink import CITEDIN, SIMILAR, parse_elink
from watcher.sources.http import RetryableError

from .fakes.records import FIXTURES

ELINK = FIXTURES / "elink"


def real(name: str) -> bytes:
    return (ELINK / name).read_bytes()


def test_a_real_answer_gives_each_link_name_in_ncbis_order_without_the_paper_itself() -> None:
    answer = parse_elink(real("biopython-elink1.xml"))
    assert list(answer.sets) == [9298984]
    links = answer.sets[9298984].links
    assert len(links[CITEDIN]) == 39
    assert len(links[SIMILAR]) == 100  # 101 in the answer, the paper itself first
    assert 9298984 not in {pmid for pmid, _ in links[SIMILAR]}
    assert all(score is None for _, score in links[SIMILAR])


def test_scores_are_read_when_the_answer_has_them() -> None:
    links = parse_elink(real("biopython-2008-elink1-scores.xml")).sets[9298984].links[SIMILAR]
    assert len(links) == 143
    scores = [s for _, s in links]
    assert scores[0] == 65259341 and scores == sorted(scores, reverse=True)


def test_by_id_link_sets_are_tied_to_their_ids_by_idlist() -> None:
    answer = parse_elink(real("bioperl-elink_neighbor_corr.xml"))
    assert set(answer.sets) == {730439, 68536103, 1621261, 20807972}


@pytest.mark.parametrize(
    "name", ["biopython-elink3.xml", "bioperl-elink_neighbor.xml", "bioperl-elink_nhist.xml"]
)
def test_a_merged_link_set_is_tied_to_nothing(name: str) -> None:
    """One LinkSet for several ids cannot say which id each link came from."""
    assert parse_elink(real(name)).sets == {}


def test_no_links_and_an_empty_result_are_none() -> None:
    assert parse_elink(real("biopython-2008-elink9-nolinks.xml")).sets[2662].links == {}
    links = parse_elink(real("bioperl-elink_dball.xml")).sets[15622530].links
    assert links["protein_nucest_mgc"] == []  # <Info>Empty result</Info>
    assert len(links["protein_protein"]) == 8  # 9, the protein itself first


def test_a_top_level_error_is_retried_never_no_links() -> None:
    body = b"<eLinkResult><ERROR>NCBI C++ Exception: Read failed</ERROR></eLinkResult>"
    with pytest.raises(RetryableError, match="NCBI error: NCBI C\\+\\+ Exception"):
        parse_elink(body)


def test_an_error_in_one_link_set_is_told_and_the_others_kept() -> None:
    body = (
        b"<eLinkResult><LinkSet><DbFrom>pubmed</DbFrom><ERROR>Invalid uid 99</ERROR></LinkSet>"
        b"<LinkSet><DbFrom>pubmed</DbFrom><IdList><Id>5</Id></IdList><LinkSetDb><DbTo>pubmed"
        b"</DbTo><LinkName>pubmed_pubmed_citedin</LinkName><Link><Id>7</Id></Link></LinkSetDb>"
        b"</LinkSet></eLinkResult>"
    )
    answer = parse_elink(body)
    assert answer.errors == ["Invalid uid 99"]
    assert answer.sets[5].links[CITEDIN] == [(7, None)]


def test_an_id_shown_as_zero_has_no_links() -> None:
    body = (
        b"<eLinkResult><LinkSet><DbFrom>pubmed</DbFrom><IdList><Id>0</Id></IdList></LinkSet>"
        b"</eLinkResult>"
    )
    assert parse_elink(body).sets == {}


def test_a_cut_answer_is_retried_and_another_document_is_not() -> None:
    with pytest.raises(RetryableError, match="not whole XML"):
        parse_elink(b"<eLinkResult><LinkSet><DbFrom>pub")
    with pytest.raises(SourceError, match="elink answered with <eSearchResult>"):
        parse_elink(b"<eSearchResult><Count>0</Count></eSearchResult>")
