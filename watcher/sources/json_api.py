"""What the registries' JSON sources (Europe PMC, ClinicalTrials.gov) share: their root, their
host's pace, how far a poll reaches back, and reading an answer: a JSON object, the records it
lists, its next page's cursor, its count, and the one line that reports a record left out."""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

from watcher.errors import SourceError
from watcher.models import PollState
from watcher.redact import safe_message
from watcher.sources.base import Records
from watcher.sources.http import Answer, Http, RetryableError
from watcher.sources.json_fields import JsonObject, number, text
from watcher.sources.pubmed_xml import ErrorSink
from watcher.subscriptions import Subscription

log = logging.getLogger(__name__)


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


def listed(answer: JsonObject, name: str, service: str, inside: str | None = None) -> list[object]:
    """The records an answer lists under `name` (in the object `inside`, when given): none when
    absent, a SourceError when present in another shape (a changed API: asking again will not
    help, and reading it as "nothing found" would move the window past what it holds)."""
    holder: object = answer if inside is None else answer.get(inside)
    found = holder.get(name) if isinstance(holder, dict) else holder
    if found is None:
        return []
    if not isinstance(holder, dict) or not isinstance(found, list):
        where = f"{inside}.{name}" if inside else name
        raise SourceError(f"{service}'s answer has no list of records at {where}")
    return found


def following(answer: JsonObject, name: str, service: str) -> str | None:
    """The next page's cursor, or None on the last page."""
    value = answer.get(name)
    if not value:
        return None
    cursor = text(answer, name)
    if cursor is None:
        raise SourceError(f"{service}'s answer has a {name} that is not a string")
    return cursor


def total(answer: JsonObject, name: str, service: str) -> int:
    """A count the answer gives (0 when absent)."""
    if answer.get(name) is None:
        return 0
    count = number(answer, name, limit=2**63 - 1)
    if count is None:
        raise SourceError(f"{service}'s answer has a {name} that is not a count")
    return count


def skipped(message: str, on_error: ErrorSink | None) -> None:
    """Report a record left out: one line in the log and to `on_error`, as the PubMed XML parser
    reports one (the record's own text may hold anything: the line is cut and kept to one)."""
    line = safe_message(message)
    log.warning("%s", line)
    if on_error is not None:
        on_error(line)
