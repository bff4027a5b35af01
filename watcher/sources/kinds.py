"""Which source serves which kind of subscription. A new kind is one module in watcher/sources/
and one line here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from watcher.sources.base import Source
from watcher.sources.clinicaltrials import ClinicalTrials
from watcher.sources.endpoints import (
    CLINICALTRIALS_BASE_URL,
    CLINICALTRIALS_RATE,
    EUROPEPMC_BASE_URL,
    EUROPEPMC_RATE,
    ICITE_BASE_URL,
    ICITE_RATE,
)
from watcher.sources.europepmc import EuropePmc
from watcher.sources.eutils import EUtils
from watcher.sources.following import Following
from watcher.sources.http import Http
from watcher.sources.icite import ICite
from watcher.sources.pubmed_search import PubmedSearch
from watcher.sources.rss import PubmedFeed
from watcher.subscriptions import Subscription


@dataclass(frozen=True)
class Kit:
    """The shared parts sources are built from (made once per process by watcher/wiring.py)."""

    http: Http
    pubmed: EUtils
    datetype: str = "crdt"
    overlap_days: int = 3
    europepmc_url: str = EUROPEPMC_BASE_URL
    clinicaltrials_url: str = CLINICALTRIALS_BASE_URL
    europepmc_rate: float = EUROPEPMC_RATE
    clinicaltrials_rate: float = CLINICALTRIALS_RATE
    icite_url: str = ICITE_BASE_URL
    icite_rate: float = ICITE_RATE


SOURCES: dict[str, Callable[[Kit], Source]] = {
    "query": lambda kit: PubmedSearch(
        kit.pubmed, datetype=kit.datetype, overlap_days=kit.overlap_days
    ),
    "rss": lambda kit: PubmedFeed(kit.http, kit.pubmed),
    "europepmc": lambda kit: EuropePmc(
        kit.http, kit.europepmc_url, overlap_days=kit.overlap_days, rate=kit.europepmc_rate
    ),
    "trials": lambda kit: ClinicalTrials(
        kit.http,
        kit.clinicaltrials_url,
        overlap_days=kit.overlap_days,
        rate=kit.clinicaltrials_rate,
    ),
    "follow": lambda kit: Following(
        kit.pubmed,
        ICite(kit.http, kit.icite_url, rate=kit.icite_rate),
        PubmedSearch(kit.pubmed, datetype=kit.datetype, overlap_days=kit.overlap_days),
    ),
}


class Sources:
    """The sources of one process, by subscription kind, and what they spent together."""

    def __init__(self, kit: Kit, kinds: Mapping[str, Callable[[Kit], Source]] = SOURCES):
        self.kit = kit
        self.by_kind = {kind: build(kit) for kind, build in kinds.items()}

    def __getitem__(self, sub: Subscription) -> Source:
        return self.by_kind[sub.kind]

    @property
    def requests(self) -> int:
        return self.kit.http.counters.requests

    @property
    def sleep(self) -> Callable[[float], None]:
        return self.kit.http.sleep


def pubmed_sources(
    client: EUtils,
    *,
    datetype: str = "crdt",
    overlap_days: int = 3,
    europepmc_url: str = EUROPEPMC_BASE_URL,
    clinicaltrials_url: str = CLINICALTRIALS_BASE_URL,
    europepmc_rate: float = EUROPEPMC_RATE,
    clinicaltrials_rate: float = CLINICALTRIALS_RATE,
    icite_url: str = ICITE_BASE_URL,
    icite_rate: float = ICITE_RATE,
) -> Sources:
    """Every registered source, built around one E-utilities client and its HTTP layer."""
    return Sources(
        Kit(
            client.http,
            client,
            datetype,
            overlap_days,
            europepmc_url,
            clinicaltrials_url,
            europepmc_rate,
            clinicaltrials_rate,
            icite_url,
            icite_rate,
        )
    )
