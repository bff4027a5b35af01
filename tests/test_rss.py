from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from watcher.errors import FeedError, SourceError
from watcher.sources.eutils import EUtils
from watcher.sources.rss import parse_feed, read_feed

from .conftest import make_client
from .fakes.ncbi import FakeNCBI
from .fakes.records import synthetic

RSS = Path(__file__).parent / "fixtures" / "rss"
DAY = date(2026, 11, 2)


def test_pmids_from_guid_dc_identifier_and_link() -> None:
    pmids, title = parse_feed((RSS / "pubmed-teplizumab.xml").read_bytes())
    # item 1 has a guid, item 2 only dc:identifier (pmid: before doi:), item 3 only its link
    assert pmids == [31180194, 37861217, 33408048]
    assert title == "teplizumab - PubMed"


def test_not_a_feed_is_a_clear_error() -> None:
    with pytest.raises(FeedError, match="is not a feed"):
        parse_feed((RSS / "not-a-feed.html").read_bytes(), "https://example.org/x")


def test_feed_through_the_fake_with_conditional_get(fake: FakeNCBI, client: EUtils) -> None:
    fake.add([synthetic(p, f"Paper {p}", edat=DAY) for p in (11, 12, 13)])
    fake.feeds["abc"] = [13, 12, 11]
    url = fake.feed_url("abc")
    first = read_feed(client.http, url)
    assert first.pmids == [13, 12, 11] and first.etag and not first.not_modified
    again = read_feed(client.http, url, first.etag, first.last_modified)
    assert again.not_modified and again.pmids == []
    assert [s.status for s in fake.served] == [200, 304]
    assert fake.served[1].endpoint == "rss"
    fake.feeds["abc"] = [14, 13, 12, 11]
    fake.add([synthetic(14, "Paper 14", edat=DAY)])
    changed = read_feed(client.http, url, first.etag, first.last_modified)
    assert changed.pmids == [14, 13, 12, 11] and changed.etag != first.etag


def test_links_change_between_fetches_but_pmids_do_not(fake: FakeNCBI, client: EUtils) -> None:
    import requests

    fake.add([synthetic(21, "P", edat=DAY)])
    fake.feeds["f"] = [21]
    one = requests.get(fake.feed_url("f"), timeout=5).text
    two = requests.get(fake.feed_url("f"), timeout=5).text
    assert one != two  # the fc= tracking parameter moved
    assert read_feed(client.http, fake.feed_url("f")).pmids == [21]


def test_missing_feed_is_a_source_error(fake: FakeNCBI, client: EUtils) -> None:
    with pytest.raises(SourceError, match="HTTP 404"):
        read_feed(client.http, fake.feed_url("nope"))


def test_feed_faults_are_retried(fake: FakeNCBI, client: EUtils) -> None:
    fake.add([synthetic(31, "P", edat=DAY)])
    fake.feeds["g"] = [31]
    fake.fault("rss", "status:503")
    assert read_feed(client.http, fake.feed_url("g")).pmids == [31]


@pytest.mark.parametrize("kind", ["html", "ratelimit200", "short"])
def test_an_html_page_a_json_error_or_a_cut_body_under_200_is_retried(
    fake: FakeNCBI, client: EUtils, kind: str
) -> None:
    fake.add([synthetic(41, "P", edat=DAY)])
    fake.feeds["h"] = [41]
    fake.fault("rss", kind, times=2)
    assert read_feed(client.http, fake.feed_url("h")).pmids == [41]
    assert fake.count("rss") == 3 and client.counters.retries == 2


def test_an_rss_url_that_always_answers_html_gives_up_with_a_clear_error(
    fake: FakeNCBI, client: EUtils
) -> None:
    fake.feeds["k"] = []
    fake.fault("rss", "html", times=100)
    with pytest.raises(SourceError, match=r"gave up after 5 tries: an HTML page instead of data"):
        read_feed(client.http, fake.feed_url("k"))


def test_credentials_in_a_feed_url_are_never_shown(client: EUtils) -> None:
    url = "http://reader:feed-pass-123@127.0.0.1:9/rss/search/x/"  # nothing listens on port 9
    quick = make_client(client.base_url, retries=0)
    with pytest.raises(SourceError) as info:
        read_feed(quick.http, url)
    assert "feed-pass-123" not in str(info.value) and "127.0.0.1:9" in str(info.value)


def test_a_feed_cut_off_is_retried_until_it_comes_whole(fake: FakeNCBI, client: EUtils) -> None:
    """Whole as HTTP goes (its Content-Length) but its XML stops mid-item: feedparser would read
    the first items and its ETag would turn the next poll into a 304 that never brings the rest."""
    fake.add([synthetic(p, f"Paper {p}", edat=DAY) for p in (11, 12, 13)])
    fake.feeds["cut"] = [13, 12, 11]
    fake.fault("rss", "truncated", times=10)
    with pytest.raises(SourceError, match="gave up after 5 tries: the feed was cut off"):
        read_feed(client.http, fake.feed_url("cut"))
    fake.clear_faults()
    fake.fault("rss", "truncated")
    assert read_feed(client.http, fake.feed_url("cut")).pmids == [13, 12, 11]


def test_a_malformed_but_whole_feed_is_read_and_its_validators_dropped(
    fake: FakeNCBI, client: EUtils, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add([synthetic(p, f"Paper {p}", edat=DAY) for p in (11, 12, 13)])
    fake.feeds["bad"] = [13, 12, 11]
    fake.fault("rss", "malformed")
    got = read_feed(client.http, fake.feed_url("bad"))
    assert got.etag is None and got.last_modified is None  # the next poll reads it whole
    assert ["not well-formed XML" in r.getMessage() for r in caplog.records] == [True]


def test_a_feed_whose_items_carry_no_pmid_is_refused(fake: FakeNCBI, client: EUtils) -> None:
    fake.add([synthetic(p, f"Paper {p}", edat=DAY) for p in (11, 12)])
    fake.feeds["noid"] = [12, 11]
    fake.fault("rss", "noid")
    with pytest.raises(FeedError, match="none of its 2 items carries a PMID"):
        read_feed(client.http, fake.feed_url("noid"))
