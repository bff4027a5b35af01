"""The shared HTTP layer: a rate limiter per host (a domain covers its hosts), conditional GET."""

from __future__ import annotations

from watcher.sources.http import Http
from watcher.sources.rss import read_feed

from .fakes.ncbi import FakeNCBI


def test_each_host_has_its_own_limiter_and_a_domain_covers_its_hosts() -> None:
    http = Http(user_agent="tests", rates={"ncbi.nlm.nih.gov": 10})
    eutils = http.limiter("https://eutils.ncbi.nlm.nih.gov/entrez/eutils/esearch.fcgi")
    rss = http.limiter("https://pubmed.ncbi.nlm.nih.gov/rss/search/abc/")
    other = http.limiter("https://www.ebi.ac.uk/europepmc/webservices/rest/search")
    # One budget (and margin) for the domain's hosts; paces are values, built as asked.
    assert eutils == rss and eutils.slots == 10
    assert other.key != eutils.key and other.slots == 3  # the polite default for unknown hosts
    assert http.limiter("https://www.ebi.ac.uk/other") == other


def test_conditional_get_costs_a_304_when_unchanged(fake: FakeNCBI) -> None:
    fake.feeds["c"] = []
    http = Http(user_agent="tests", rates={"127.0.0.1": 100}, backoff=0.001)
    first = read_feed(http, fake.feed_url("c"))
    again = read_feed(http, fake.feed_url("c"), first.etag, first.last_modified)
    assert again.not_modified and http.counters.requests == 2
