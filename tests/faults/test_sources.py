"""The fault matrix of the HTTP sources (issue 16): NCBI E-utilities (esearch, efetch, elink),
PubMed RSS, Europe PMC, ClinicalTrials.gov and iCite, each against its fake server on 127.0.0.1.

Every cell: a subscription whose three papers wait at the source; the fault injected; a poll as
`watcher poll` builds it (its backoff recorded, not slept); what the user sees (the poll's line,
`watcher status`); the fault cleared; `watcher poll` and `watcher digest` to a real SMTP server;
each paper read back exactly once per recipient from the messages received; and a further poll
and digest that send nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..fakes.clinicaltrials import FakeClinicalTrials
from ..fakes.europepmc import FakeEuropePmc
from ..fakes.icite import FakeICite
from ..fakes.ncbi import FakeNCBI
from ..fakes.smtp import SmtpServer
from ._sources import (
    FEED,
    RECIPIENTS,
    RETRIES,
    TIMEOUT,
    World,
    assert_each_delivered_once,
    cli,
    one_line,
    poll_once,
)

# Left out of the quick run (`pytest -m "not slow"`): cells wait out retries, backoff, timeouts.
pytestmark = pytest.mark.slow

# Long enough to outlast the read timeout whatever the machine's load.
SLOW = TIMEOUT * 4
PERSISTENT = 1000  # requests: the fault lasts until cleared
_5XX = ("status:500", "status:502")


# Each error line names what failed: the E-utility, the feed, the registry's search.
NAMED = {
    "esearch": "esearch.fcgi: gave up after",
    "efetch": "3 records could not be fetched (efetch.fcgi: gave up after",
    "rss": FEED,
    "europepmc": "Europe PMC search: gave up after",
    "trials": "ClinicalTrials.gov search: gave up after",
    "elink": "elink.fcgi: gave up after",
    "icite": "iCite pubs: gave up after",
}


@dataclass(frozen=True)
class Cell:
    """One fault at one place: `where` is an NCBI endpoint (esearch, efetch, rss) or a registry
    (europepmc, trials); `says` is what the user's error line must say."""

    id: str
    kind: str  # the subscription's kind
    where: str
    fault: str
    says: str
    retry_after: str | None = None
    delay: float = 0.0
    # The fault outlasts the retries (the poll fails), or lasts `times` requests and is absorbed.
    times: int = PERSISTENT
    retries: int = RETRIES
    retried: bool = True  # worth asking again (backoff between tries)
    warns: bool = False  # the poll goes on, with a warning that says what happened
    query: str = "teplizumab"
    before: tuple[str, ...] = ()  # faults met once each before this one

    @property
    def absorbed(self) -> bool:
        return self.times <= self.retries or self.warns


def _http_cells(kind: str, where: str, name: str) -> list[Cell]:
    """The HTTP faults every source meets."""
    # NCBI's own 429 carries its JSON body ({"error":"API rate limit exceeded",…}).
    too_many = "status:429" if where in ("europepmc", "trials", "icite") else "ratelimit"
    cells = [
        Cell(f"{name}-429-storm", kind, where, too_many, says="HTTP 429"),
        Cell(
            f"{name}-429-storm-retry-after",
            kind,
            where,
            too_many,
            says="HTTP 429",
            retry_after="7",
        ),
        Cell(
            f"{name}-429-storm-absorbed",
            kind,
            where,
            too_many,
            says="",
            retry_after="3",
            times=6,
            retries=6,
        ),
        # 500, then 502, then 503 until cleared: each retried, the last one told.
        Cell(f"{name}-500-502-503", kind, where, "status:503", says="HTTP 503", before=_5XX),
        Cell(f"{name}-reset", kind, where, "reset", says="remote end closed connection"),
        Cell(f"{name}-slow", kind, where, "slow", says=f"within {TIMEOUT:g}s", delay=SLOW),
    ]
    if where in ("europepmc", "trials", "icite"):
        service = {"europepmc": "Europe PMC", "trials": "ClinicalTrials.gov"}.get(where, "iCite")
        cells += [
            Cell(f"{name}-html-200", kind, where, "notjson", says=f"{service}'s answer is not"),
            Cell(f"{name}-truncated", kind, where, "truncated", says="is not JSON"),
            Cell(f"{name}-empty", kind, where, "empty", says="is not JSON"),
        ]
    return cells


NCBI_CELLS = [
    *_http_cells("query", "esearch", "esearch"),
    *_http_cells("query", "efetch", "efetch"),
    Cell("esearch-429-html", "query", "esearch", "status:429", says="HTTP 429"),
    Cell("esearch-html-200", "query", "esearch", "html", says="an HTML page instead of data"),
    Cell("efetch-html-200", "query", "efetch", "html", says="an HTML page instead of data"),
    Cell("esearch-truncated-xml", "query", "esearch", "truncated", says="malformed esearch XML"),
    Cell("efetch-truncated-xml", "query", "efetch", "truncated", says="efetch"),
    Cell("efetch-short-body", "query", "efetch", "short", says="cut off in transit"),
    Cell("esearch-empty-body", "query", "esearch", "empty", says="an empty body"),
    Cell("efetch-empty-body", "query", "efetch", "empty", says="an empty body"),
    Cell("esearch-expired-webenv", "query", "esearch", "expired_webenv", says="query #1"),
    Cell("efetch-expired-webenv", "query", "efetch", "expired_webenv", says="query #1"),
    Cell(
        "efetch-expired-webenv-absorbed",
        "query",
        "efetch",
        "expired_webenv",
        says="",
        times=1,
    ),
    Cell(
        "esearch-errorlist-phrase-not-found",
        "query",
        "esearch",
        "none",
        says="PhraseNotFound: fleeglezumab",
        times=0,
        warns=True,
        query="teplizumab OR fleeglezumab",
    ),
    Cell(
        "esearch-errorlist-count-0",
        "query",
        "esearch",
        "errorlist",
        says="PhraseNotFound: teplizumab",
        times=1,
        warns=True,
    ),
]
RSS_CELLS = [
    Cell("rss-404", "rss", "rss", "status:404", says="HTTP 404", retried=False),
    Cell("rss-503", "rss", "rss", "status:503", says="HTTP 503"),
    Cell("rss-not-a-feed-html-200", "rss", "rss", "html", says="an HTML page instead of data"),
    Cell("rss-malformed-xml", "rss", "rss", "malformed", says="not well-formed", warns=True),
    Cell("rss-truncated-xml", "rss", "rss", "truncated", says="cut off"),
    Cell("rss-empty-body", "rss", "rss", "empty", says="an empty body"),
    Cell("rss-reset", "rss", "rss", "reset", says="remote end closed connection"),
    Cell("rss-items-without-pmid", "rss", "rss", "noid", says="PMID", retried=False),
    Cell("rss-efetch-503", "rss", "efetch", "status:503", says="HTTP 503"),
]
REGISTRY_CELLS = [
    *_http_cells("europepmc", "europepmc", "europepmc"),
    *_http_cells("trials", "trials", "ctgov"),
]
# Following papers (issue 27): a `cites` subscription's elink and iCite requests.
CITES_CELLS = [
    *_http_cells("cites", "elink", "elink"),
    Cell(
        "elink-outage-error-200", "cites", "elink", "error", says="NCBI error: NCBI C++ Exception"
    ),
    Cell("elink-html-200", "cites", "elink", "html", says="an HTML page instead of data"),
    Cell("elink-truncated-xml", "cites", "elink", "truncated", says="not whole XML"),
    Cell("elink-empty-body", "cites", "elink", "empty", says="an empty body"),
    *_http_cells("cites", "icite", "icite"),
]
CELLS = NCBI_CELLS + RSS_CELLS + REGISTRY_CELLS + CITES_CELLS


@pytest.fixture
def epmc() -> Iterator[FakeEuropePmc]:
    server = FakeEuropePmc().start()
    yield server
    server.stop()


@pytest.fixture
def ctgov() -> Iterator[FakeClinicalTrials]:
    server = FakeClinicalTrials().start()
    yield server
    server.stop()


@pytest.fixture
def icite(fake: FakeNCBI) -> Iterator[FakeICite]:
    server = FakeICite(graph=fake.graph)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_server: SmtpServer) -> SmtpServer:
    """One real SMTP server for the module (starting one costs more than a cell), emptied for
    each cell."""
    smtp_server.received.clear()
    return smtp_server


def inject(world: World, cell: Cell) -> None:
    opts = {"retry_after": cell.retry_after, "delay": cell.delay}
    if cell.times == 0:
        return
    if cell.where in ("europepmc", "trials", "icite"):
        api = {"europepmc": world.epmc, "trials": world.ctgov}.get(cell.where, world.icite)
        assert api is not None
        for kind in cell.before:
            api.fault(kind)
        api.fault(cell.fault, times=cell.times, **opts)
    else:
        for kind in cell.before:
            world.ncbi.fault(cell.where, kind)
        world.ncbi.fault(cell.where, cell.fault, times=cell.times, **opts)


def clear(world: World) -> None:
    world.ncbi.clear_faults()
    world.epmc.clear_faults()
    world.ctgov.clear_faults()
    if world.icite is not None:
        world.icite.clear_faults()


@pytest.mark.parametrize("cell", CELLS, ids=[c.id for c in CELLS])
def test_every_paper_is_delivered_once_after_the_fault_clears(
    cell: Cell,
    tmp_path: Path,
    fake: FakeNCBI,
    epmc: FakeEuropePmc,
    ctgov: FakeClinicalTrials,
    smtp: SmtpServer,
    icite: FakeICite,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World(tmp_path, fake, epmc, ctgov, smtp, cell.kind, cell.retries, query=cell.query)
    world.icite = icite if cell.kind == "cites" else None
    world.write_config()
    world.seed()
    inject(world, cell)

    with caplog.at_level(logging.WARNING):
        report, sleeps = poll_once(world)
    if cell.warns:
        assert report.failed == [], report.failed[0].error
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        one_line(warnings[0], says=cell.says)
    elif cell.absorbed:
        assert report.failed == [], report.failed[0].error
        assert len(sleeps) == cell.times  # each failed try waited before the next
    else:
        # What `watcher poll` prints ("Cell: FAILED: …", exit 1) and `watcher status` keeps.
        assert [o.name for o in report.failed] == ["Cell"]
        error = report.failed[0].error
        assert error is not None
        one_line(error, says=cell.says)
        assert NAMED[cell.where] in error
        if cell.retried:
            assert len(sleeps) == cell.retries  # each try but the last waited
        else:
            assert sleeps == []
            # Not retried, so free to ask through the command itself: exit 1, one line.
            code, out, err = cli(world, "poll", capsys=capsys)
            assert code == 1 and f"Cell: FAILED: {error}\n" in out
            assert "Traceback" not in err
        code, out, _ = cli(world, "status", capsys=capsys)
        assert code == 0
        assert [line.strip() for line in out.splitlines() if "LAST ERROR" in line] == [
            f"LAST ERROR: {error}"
        ]
        # Nothing of the fault's poll was kept: the papers are still owed to the next one.
        assert "last success: never" in out
        for rcpt in RECIPIENTS:
            assert f"{rcpt}: 0 papers awaiting delivery" in out
    if cell.retry_after:
        assert sleeps and set(sleeps) == {float(cell.retry_after)}

    clear(world)
    code, out, err = cli(world, "poll", capsys=capsys)
    assert code == 0, out + err
    assert "Traceback" not in err
    # What the first poll did not match, this one does (a `cites` poll after a first one that
    # went through finds only links it has not seen: none).
    found = 0 if cell.kind == "cites" and report.new_matches else 3
    assert f"Cell: {found} found, {3 - report.new_matches} new" in out
    code, out, err = cli(world, "digest", capsys=capsys)
    assert code == 0, out + err
    assert out.startswith(f"{len(RECIPIENTS)} digests sent")
    assert_each_delivered_once(world)

    # Nothing more: the same papers found again are not news (an unchanged feed is a 304).
    code, out, _ = cli(world, "poll", capsys=capsys)
    again = 0 if cell.kind in ("rss", "cites") else 3
    assert code == 0 and f"Cell: {again} found, 0 new" in out
    code, out, _ = cli(world, "digest", capsys=capsys)
    assert code == 0 and out.startswith("0 digests sent")
    assert len(smtp.received) == len(RECIPIENTS)
