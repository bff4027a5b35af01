"""When things are due: pure functions of the config, the store's timestamps and a clock."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta

from watcher.config import Schedule


def digest_trigger(cron: str, timezone: str):  # type: ignore[no-untyped-def]
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger.from_crontab(cron, timezone=zoneinfo.ZoneInfo(timezone))


def next_digest_time(cron: str, timezone: str, now: datetime) -> datetime:
    fire = digest_trigger(cron, timezone).get_next_fire_time(None, now)
    assert fire is not None  # a valid 5-field crontab always fires again
    return fire


def missed_digest(cron: str, timezone: str, last_run: datetime | None, now: datetime) -> bool:
    """True when a scheduled digest time passed since `last_run` without a digest run.

    One missed time or fifty, the answer is one catch-up digest, never one per period.
    """
    if last_run is None:
        return False
    fire = digest_trigger(cron, timezone).get_next_fire_time(None, last_run + timedelta(seconds=1))
    return fire is not None and fire <= now


def next_poll_time(schedule: Schedule, last_poll: datetime | None, now: datetime) -> datetime:
    """Never polled, or overdue: now. Otherwise one interval after the last poll."""
    if last_poll is None:
        return now
    return max(now, last_poll + schedule.poll_every)


def schedule_key(cron: str, timezone: str) -> str:
    return f"{cron} {timezone}"
