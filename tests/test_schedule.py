"""The crontab line check that spares `watcher status` APScheduler's import."""

from __future__ import annotations

from collections.abc import Callable

import pytest

_CRON_LINES = [
    "0 7 * * mon",
    "*/5 * * * * *",
    "0 7 * * 1-5",
    "30 6 1,15 * *",
    "0 7 last * *",
    "0 7 LAST * *",
    "0 7 lastly * *",
    "0 7 * jan-mar mon",
    "0 7 * JAN,jul *",
    "0 7 * jan5 *",
    "0 7 * 1-12/3 *",
    "0 7 * 12/1 *",
    "0 7 * 13 *",
    "0 7 * 0 *",
    "0 7 * mar-jan *",
    "0 7 * foo *",
    "0 7 * jan-foo *",
    "0 24 * * *",
    "60 7 * * *",
    "*/0 7 * * *",
    "*/59 7 * * *",
    "*/60 7 * * *",
    "0 */23 * * *",
    "0 */24 * * *",
    "5-1 7 * * *",
    "1-5/0 7 * * *",
    "1-5/4 7 * * *",
    "1-5/5 7 * * *",
    "50/9 7 * * *",
    "50/10 7 * * *",
    "0 7 0 * *",
    "0 7 31 * *",
    "0 7 32 * *",
    "0 7 1-31/30 * *",
    "0 7 1-31/31 * *",
    "0 7 * * sun-sat",
    "0 7 * * 8",
    "0 7 * * xyz",
    "0 7 * * */2",
    "a 7 * * *",
    "0 7,,8 * * *",
    "0 7, * * *",
    "0 -1 * * *",
    "0 7 * * 5-0",
    "0 7 * * 5-7",
    "60 0 7 * * *",
    "*/61 0 7 * * *",
    "0 7 * *",
    "0 7 * * * * *",
]


@pytest.mark.parametrize("line", _CRON_LINES)
def test_cron_check_agrees_with_apschedulers_trigger(line: str) -> None:
    """check_cron validates without importing APScheduler; it must accept exactly what
    digest_trigger (APScheduler's CronTrigger) accepts."""
    from watcher.schedule import check_cron, digest_trigger

    def accepted(fn: Callable[[], object]) -> bool:
        try:
            fn()
        except ValueError:
            return False
        return True

    assert accepted(lambda: check_cron(line)) == accepted(
        lambda: digest_trigger(line, "Europe/Paris")
    )
