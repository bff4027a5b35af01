"""A PubMed search subscription: esearch over a date window that reaches back behind the last
one; the records then come through efetch."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit

from watcher.identity import ItemKey, pmid_key
from watcher.models import PollState
from watcher.sources.base import Discovery, Records
from watcher.sources.eutils import EUtils, ncbi_today
from watcher.subscriptions import Subscription

log = logging.getLogger(__name__)


class PubmedSearch:
    def __init__(self, client: EUtils, *, datetype: str = "crdt", overlap_days: int = 3) -> None:
        self.client = client
        self.records: Records = client
        self.datetype = datetype
        self.overlap_days = overlap_days

    def host(self, sub: Subscription) -> str:
        return urlsplit(self.client.base_url).netloc

    def find(self, sub: Subscription, state: PollState | None, now: datetime) -> Discovery:
        assert sub.query is not None
        today = ncbi_today(now)
        if state is not None and state.window_end is not None:
            # Reach back behind the last window: PubMed adds records dated in the past
            # (late indexing, batch loads). The store's dedupe makes this cost one esearch.
            start = state.window_end - timedelta(days=self.overlap_days)
        else:
            start = today - timedelta(days=max(sub.schedule.lookback_days, self.overlap_days))
        # The same window of MeSH dates too: a record that matches only through MeSH headings
        # or publication types indexed days or weeks after its creation enters the results
        # when it is indexed, not when it was created. Still one esearch (the term carries both
        # windows); the store's dedupe keeps an already matched record from coming back.
        result = self.client.search(sub.query, start, today, self.datetype, indexed_since=start)
        for message in result.errors:
            log.warning(
                "%s: PubMed says %s (the query may match less than intended)", sub.name, message
            )
        return Discovery([pmid_key(p) for p in result.pmids], "esearch", window_end=today)

    def find_window(self, sub: Subscription, start: date, end: date) -> list[ItemKey]:
        assert sub.query is not None
        return [pmid_key(p) for p in self.client.search(sub.query, start, end, self.datetype).pmids]
