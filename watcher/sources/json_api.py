"""What the registries' JSON sources (Europe PMC, ClinicalTrials.gov) share: their root, their
host's pace, how far a poll reaches back, and reading an answer as a JSON object."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

from watcher.errors import SourceError
from watcher.models import PollState, Subscription
from watcher.sources.base import Records
from watcher.sources.http import Answer, Http, RetryableError


class JsonApi:
    """A registry's search API; each source is also its own record fetcher (by its ids)."""

    batch_size = 100

    def __init__(
        self, http: Http, base_url: str, *, overlap_days: int, page_size: int, rate: float
    ) -> None:
        self.http = http
        self.rate = rate
        self._limited = False
        self.page_size = page_size
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.overlap_days = overlap_days
        # Each subclass is its own record fetcher: it defines fetch_items for its ids.
        self.records: Records = self  # type: ignore[assignment]

    def host(self, sub: Subscription) -> str:
        return urlsplit(self.base_url).netloc

    def window_start(self, sub: Subscription, state: PollState | None, today: date) -> date:
        """Reach `overlap_days` behind the last window (late-posted records), or `lookback_days`
        back on a subscription's first poll."""
        if state is not None and state.window_end is not None:
            return state.window_end - timedelta(days=self.overlap_days)
        return today - timedelta(days=max(sub.schedule.lookback_days, self.overlap_days))

    def _limit(self) -> None:
        # Set at the first request, not when built: every source is built in every process,
        # and only one that is used should set its host's pace.
        if not self._limited:
            self.http.set_rate(urlsplit(self.base_url).hostname or "", self.rate)
            self._limited = True


def json_object(answer: Answer, service: str) -> dict[str, Any]:
    """The answer's body as a JSON object; a body that is not JSON was cut or is an error page
    (retried), a JSON value that is not an object is a changed API (not retried)."""
    try:
        data = json.loads(answer.body)
    except ValueError:
        raise RetryableError(f"{service}'s answer is not JSON") from None
    except RecursionError:
        # Nesting deeper than Python's stack: no API answers so; asking again will not help.
        raise SourceError(f"{service}'s answer is JSON nested too deeply to read") from None
    if not isinstance(data, dict):
        raise SourceError(f"{service}'s answer is not a JSON object")
    return data
