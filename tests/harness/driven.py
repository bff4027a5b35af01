"""`watcher run`'s Daemon in the test's process on a clock the test moves: its jobs run when that
clock reaches their times, as APScheduler runs them on the wall clock, so a test waits for events
(a digest time, a restart hours later), never for seconds to pass.

What APScheduler does with the jobs the daemon gives it is done here the same way, with its own
triggers: a job runs once however many of its times passed (the daemon's scheduler coalesces), is
skipped when its last time is older than the daemon's misfire grace, and jobs due together start
in the order of their time, then id. Left out are APScheduler's threads and the process's
signals: tests/test_daemon.py runs the real `watcher run` on the real clock for those.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from watcher.config import load_config
from watcher.daemon import MISFIRE_GRACE, Daemon, Job
from watcher.wiring import connect_store, make_sources


class DrivenDaemon:
    def __init__(self, config_path: Path, now: datetime) -> None:
        """Start as `watcher run` starts at `now`: the store synced, the jobs scheduled."""
        self.now = now
        config = load_config(config_path)
        self.store = connect_store(config)
        sources = make_sources(config, clock=self.clock)
        self.daemon = Daemon(config_path, config, self.store, sources, self.clock)
        self.due: dict[str, tuple[datetime, Job]] = {}
        self.stopped = False
        for job in self.daemon.startup(now):
            first = job.first or job.trigger.get_next_fire_time(None, now)
            if first is not None:
                self.due[job.id] = (first, job)

    def clock(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> list[str]:
        """Move the clock on by `by` and run each job whose time came; the ids of those run."""
        self.now += by
        ran = []
        for at, job_id in sorted((at, i) for i, (at, _) in self.due.items() if at <= self.now):
            job = self.due.pop(job_id)[1]
            last = at
            while job.trigger is not None:
                later = job.trigger.get_next_fire_time(last, self.now)
                if later is None or later > self.now:
                    break
                last = later
            if self.now - last <= MISFIRE_GRACE:
                job.run(*job.args)
                ran.append(job_id)
            after = job.trigger.get_next_fire_time(last, self.now) if job.trigger else None
            if after is not None:
                self.due[job_id] = (after, job)
        return ran

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.daemon.stop()
            self.store.close()
