"""When things are due: pure functions of the config, the store's timestamps and a clock."""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, timedelta

from watcher.subscriptions import Schedule

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def digest_trigger(cron: str, timezone: str):  # type: ignore[no-untyped-def]
    """A crontab line as an APScheduler trigger in `timezone` (daylight-saving aware).

    Five fields as in crontab(5); a sixth, leading field of seconds is accepted for demos and
    tests ("*/5 * * * * *"). Raises ValueError on a bad line.
    """
    from apscheduler.triggers.cron import CronTrigger

    second, minute, hour, day, month, dow = _fields(cron)
    return CronTrigger(
        second=second,
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=crontab_weekdays(dow),
        timezone=zoneinfo.ZoneInfo(timezone),
    )


# What APScheduler 3's CronTrigger accepts in each field of a crontab line (one field has no
# spaces), checked without importing it: `watcher status` only validates the line and need not
# load the scheduler for that. tests/test_schedule.py holds the two to the same answers.
_FIELD_RANGES = {"second": (0, 59), "minute": (0, 59), "hour": (0, 23), "day": (1, 31)}
_STAR = re.compile(r"\*(?:/(\d+))?$")
_RANGE = re.compile(r"(\d+)(?:-(\d+))?(?:/(\d+))?$")
# Like APScheduler's, these match a prefix only: "jan5" reads as "jan", "lastly" as "last".
_NAMES = re.compile(r"([a-z]+)(?:-([a-z]+))?", re.IGNORECASE)
_LAST = re.compile(r"last", re.IGNORECASE)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def _fields(cron: str) -> list[str]:
    """A crontab line's six fields, seconds first ("0" when the line has the usual five)."""
    fields = cron.split()
    if len(fields) == 5:
        fields.insert(0, "0")
    if len(fields) != 6:
        raise ValueError(f"{cron!r} is not a crontab line of 5 fields, e.g. '0 7 * * mon'")
    return fields


def check_cron(cron: str) -> None:
    """Raise ValueError unless `cron` (5 fields, or 6 with seconds first) is a line
    digest_trigger turns into a trigger."""
    second, minute, hour, day, month, dow = _fields(cron)
    for name, value in (("second", second), ("minute", minute), ("hour", hour), ("day", day)):
        lo, hi = _FIELD_RANGES[name]
        for expr in re.split(" *, *", value):
            if not (name == "day" and _LAST.match(expr)):
                _check_numbers(name, expr, lo, hi)
    for expr in re.split(" *, *", month):
        names = _NAMES.match(expr)
        if names is None:
            _check_numbers("month", expr, 1, 12)
            continue
        first, last = names.groups()
        try:
            lo = _MONTHS.index(first.lower()) + 1
            hi = _MONTHS.index(last.lower()) + 1 if last else lo
        except ValueError:
            raise ValueError(f"invalid month name in {expr!r}") from None
        if lo > hi:
            raise ValueError(f"month range {expr!r} runs backwards")
    crontab_weekdays(dow)


def _check_numbers(name: str, expr: str, lo: int, hi: int) -> None:
    star = _STAR.match(expr)
    if star is not None:
        step = int(star.group(1)) if star.group(1) else None
        if step == 0 or (step and step > hi - lo):
            raise ValueError(f"bad step in {name} {expr!r}")
        return
    m = _RANGE.match(expr)
    if m is None:
        raise ValueError(f"unrecognized expression {expr!r} for field {name!r}")
    first = int(m.group(1))
    step = int(m.group(3)) if m.group(3) else None
    last = int(m.group(2)) if m.group(2) else (None if step is not None else first)
    if step == 0:
        raise ValueError(f"bad step in {name} {expr!r}")
    if last is not None and first > last:
        raise ValueError(f"{name} range {expr!r} runs backwards")
    if first < lo or (last is not None and last > hi):
        raise ValueError(f"{name} {expr!r} is outside {lo}-{hi}")
    if step and step > (last or hi) - first:
        raise ValueError(f"bad step in {name} {expr!r}")


def crontab_weekdays(field: str) -> str:
    """crontab counts weekdays from Sunday = 0 (7 too); APScheduler from Monday = 0. Expand the
    field to day names, which mean the same to both: '1-5' → 'mon,tue,wed,thu,fri'."""
    days: set[int] = set()
    for token in field.lower().split(","):
        base, _, step_text = token.partition("/")
        step = int(step_text) if step_text.isdigit() else 1
        if not step_text.isdigit() and step_text:
            raise ValueError(f"bad step in day of week {token!r}")
        if base == "*":
            lo, hi = 0, 6
        elif "-" in base:
            lo, hi = (_weekday(x) for x in base.split("-", 1))
            hi = 7 if hi == 0 and lo > 0 else hi  # "5-0" is not a range; "5-7" is fri-sun
        else:
            lo = hi = _weekday(base)
            if step_text:
                hi = 6
        if hi < lo:
            raise ValueError(f"day-of-week range {token!r} runs backwards")
        days.update(d % 7 for d in range(lo, hi + 1, step))
    if len(days) == 7:
        return "*"
    return ",".join(_DAYS[d] for d in sorted(days))


def _weekday(text: str) -> int:
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    if text[:3] in _DAYS:
        return _DAYS.index(text[:3])
    raise ValueError(f"{text!r} is not a day of the week (0-7 or sun-sat)")


def next_digest_time(cron: str, timezone: str, now: datetime) -> datetime:
    fire: datetime | None = digest_trigger(cron, timezone).get_next_fire_time(None, now)
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
