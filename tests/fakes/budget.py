"""A rate budget that grants every slot at once, for tests of backoff and retries rather than
of pace: where a test records sleeps instead of sleeping, a real budget would see its clock not
move and ask again and again, and the recorded sleeps would be its waits, not the backoffs."""

from __future__ import annotations

from watcher.rate import Pace


class Unpaced:
    def try_take(self, pace: Pace) -> float:
        return 0.0
