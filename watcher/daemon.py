"""`watcher run`: APScheduler drives the poll and digest functions; this module owns only the
wiring — schedules, locks, signals, catch-up and the heartbeat.

What happened is derived from the store (each schedule's last digest run, each subscription's
last poll), so a restart or a config edit never loses or repeats a digest.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from watcher.config import Config, load_config
from watcher.delivery import send_digests
from watcher.digest.render import Renderer
from watcher.errors import ConfigError, Interrupted, WatcherError
from watcher.locks import InstanceLock
from watcher.poll import due_subscriptions, poll, refresh_followups
from watcher.poll_locks import claimer, still_due
from watcher.schedule import digest_trigger, missed_digest, schedule_key
from watcher.sources.kinds import Sources
from watcher.store import Store
from watcher.wiring import connect_store, make_sources, make_transport, require_secrets

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
MAX_TICK = timedelta(minutes=1)


def sync_store(store: Store, config: Config, now: datetime) -> list[str]:
    return store.polls.sync(config.subscriptions, now)


FOLLOWUP_CHECK = timedelta(hours=1)
# A job whose time passed longer ago than this (the machine asleep, the process stopped) is
# skipped; a catch-up digest covers what a stop missed.
MISFIRE_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class Job:
    """One of the daemon's jobs as its scheduler is given it: `run(*args)` at each of
    `trigger`'s times, and at `first` too when it is due at once (a None trigger: only then)."""

    id: str
    run: Callable[..., None]
    trigger: Any
    first: datetime | None = None
    args: tuple[Any, ...] = ()


class Daemon:
    def __init__(
        self,
        config_path: Path,
        config: Config,
        store: Store,
        sources: Sources,
        clock: Clock,
        stop: threading.Event | None = None,
    ) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.config_path = config_path
        self.config = config
        self.store = store
        self.sources = sources
        self.clock = clock
        self.renderer = Renderer(config.mail.templates)
        # One job at a time touches NCBI and the mail server: a digest waits for a running poll,
        # so it mails what that poll found.
        self.busy = threading.Lock()
        self.stop_requested = stop or threading.Event()
        self.reload_requested = threading.Event()
        self.scheduler = BackgroundScheduler(
            timezone="UTC",
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(MISFIRE_GRACE.total_seconds()),
            },
        )

    @property
    def tick(self) -> timedelta:
        shortest = min(s.schedule.poll_every for s in self.config.subscriptions)
        return min(MAX_TICK, shortest)

    def start(self) -> None:
        self._schedule(self.startup(self.clock()))
        self.scheduler.start()
        log.info(
            "watcher running: %d subscriptions, %d digest schedules, polls checked every %ss",
            len(self.config.subscriptions),
            len(self.config.digests),
            int(self.tick.total_seconds()),
            extra={"fields": {"event": "start", "pid": os.getpid()}},
        )

    def startup(self, now: datetime) -> list[Job]:
        """The store brought in line with the config, then the jobs to run from `now` on. The
        scheduler runs them on the wall clock; a test can run them on a clock it moves."""
        for change in sync_store(self.store, self.config, now):
            log.info("%s", change)
        return self._jobs(now)

    def _schedule(self, jobs: list[Job]) -> None:
        self.scheduler.remove_all_jobs()
        for job in jobs:
            # Left out, next_run_time is the trigger's first time after the wall clock's now.
            first = {} if job.first is None else {"next_run_time": job.first}
            self.scheduler.add_job(
                job.run, job.trigger, args=job.args, id=job.id, name=job.id, **first
            )

    def _jobs(self, now: datetime) -> list[Job]:
        """Each job with its trigger; those due at once (the first poll, heartbeat and
        follow-up check, a catch-up digest) also with `now` as their first time. Records the
        start of a digest schedule seen for the first time."""
        from apscheduler.triggers.interval import IntervalTrigger

        tick = self.tick.total_seconds()
        jobs = [
            # Jitter spreads the polls of many watchers (and of our own restarts) over time.
            Job(
                "poll",
                self.poll_job,
                IntervalTrigger(seconds=tick, jitter=max(1, int(tick / 10))),
                now,
            ),
            Job("heartbeat", self.heartbeat, IntervalTrigger(seconds=min(30.0, tick)), now),
        ]
        if self.config.followups.enabled:
            # Checked hourly; a refresh runs only when `[followups] every` has passed since the
            # last one (the store remembers it across restarts and processes).
            check = min(FOLLOWUP_CHECK, self.config.followups.every).total_seconds()
            jitter = max(1, int(check / 10))
            jobs.append(
                Job(
                    "followups",
                    self.followups_job,
                    IntervalTrigger(seconds=check, jitter=jitter),
                    now,
                )
            )
        for cron, tz in self.config.digests:
            key = schedule_key(cron, tz)
            last = self.store.outbox.last_digest_run(key)
            catch_up = missed_digest(cron, tz, last, now)
            if last is None:
                # The first start for this schedule: from now on its times count.
                self.store.outbox.set_digest_run(key, now)
            jobs.append(
                Job(f"digest {key}", self.digest_job, digest_trigger(cron, tz), args=((cron, tz),))
            )
            if catch_up:
                log.info(
                    "a digest time of %r passed while stopped: one catch-up digest now",
                    key,
                    extra={"fields": {"event": "catch_up", "schedule": key}},
                )
                jobs.append(Job(f"catch-up {key}", self.catch_up_job, None, now, ((cron, tz),)))
        return jobs

    def poll_job(self) -> None:
        with self.busy:
            if self.stop_requested.is_set():
                return
            now = self.clock()
            # Guarded whole, the store's reads and locks too: a database that is down (a
            # PostgreSQL restart) fails the job in one line, and it runs again at its next time.
            _guarded(lambda: self._poll_due(now), "poll")

    def _poll_due(self, now: datetime) -> None:
        config = self.config
        due = due_subscriptions(config, self.store.polls.states(), now)
        if not due:
            return
        # Another instance may poll them meanwhile: each batch is looked at again under its locks.
        claim = claimer(self.store, still_due(now))
        poll(config, self.store, self.sources, now, due, claim)

    def followups_job(self) -> None:
        """Fetch the delivered papers again when due; one process at a time on a store."""
        with self.busy:
            if self.stop_requested.is_set():
                return
            now = self.clock()
            _guarded(lambda: self._refresh(now), "follow-ups")

    def _refresh(self, now: datetime) -> None:
        with self.store.advisory_locks(["followups"]) as held:
            if held:
                refresh_followups(self.config, self.store, self.sources, now)

    def catch_up_job(self, schedule: tuple[str, str]) -> None:
        """The digest missed while stopped, after the polls that fell due meanwhile: it then
        carries what they find instead of leaving it to wait a whole digest period. (Jobs due
        at the same moment start in the order of their ids, so "catch-up" came before "poll".)
        """
        self.poll_job()
        self.digest_job(schedule)

    def digest_job(self, schedule: tuple[str, str]) -> None:
        with self.busy:
            if self.stop_requested.is_set():
                return
            now = self.clock()

            def run() -> None:
                transport = make_transport(self.config.mail)
                try:
                    report = send_digests(
                        self.config,
                        self.store,
                        transport,
                        now,
                        schedules=[schedule],
                        renderer=self.renderer,
                    )
                finally:
                    transport.close()
                log.info(
                    "digest run %s: %d sent, %d failed, %d pending",
                    schedule_key(*schedule),
                    len(report.sent),
                    len(report.failed),
                    report.pending,
                    extra={"fields": {"event": "digest_run", "sent": len(report.sent)}},
                )

            _guarded(run, "digest")

    def heartbeat(self) -> None:
        now = self.clock()
        runs = {
            job.name: job.next_run_time.isoformat(timespec="seconds")
            for job in self.scheduler.get_jobs()
            if job.next_run_time is not None
        }
        _guarded(lambda: self._beat(now, runs), "heartbeat")

    def _beat(self, now: datetime, runs: dict[str, str]) -> None:
        self.store.facts.set("heartbeat", now.isoformat(timespec="seconds"))
        self.store.facts.set(
            "daemon",
            json.dumps(
                {
                    "pid": os.getpid(),
                    "state": "running",
                    "next_runs": runs,
                    "tick_seconds": self.tick.total_seconds(),
                }
            ),
        )

    def reload(self) -> None:
        """SIGHUP: read the config again; a bad one is refused and the old one keeps running."""
        try:
            new = load_config(self.config_path)
            require_secrets(new)  # a new *_env must name a variable this process has
        except ConfigError as exc:
            log.error(
                "config reload refused, still running the previous config: %s",
                exc,
                extra={"fields": {"event": "reload_refused"}},
            )
            return
        for warning in new.warnings:
            log.warning("%s", warning)
        if new.store_url != self.config.store_url:
            log.warning("store.url changed; the daemon keeps its open store until restarted")
        if new.ncbi != self.config.ncbi:
            # The sources (their session and paces) are built once per process; the budget is
            # the store's, shared with the other processes on it.
            self.sources = make_sources(
                new, clock=self.clock, sleep=self.sources.sleep, budget=self.sources.budget
            )
        with self.busy:
            self.config = new
            self.renderer = Renderer(new.mail.templates)
            self._schedule(self.startup(self.clock()))
        log.info(
            "config reloaded: %d subscriptions",
            len(new.subscriptions),
            extra={"fields": {"event": "reloaded"}},
        )

    def stop(self) -> None:
        self.stop_requested.set()
        if self.scheduler.running:
            # Waits for a running job to finish; its writes are committed or rolled back whole.
            self.scheduler.shutdown(wait=True)
        with suppress(WatcherError):
            self.store.facts.set(
                "daemon",
                json.dumps(
                    {
                        "pid": os.getpid(),
                        "state": "stopped",
                        "stopped_at": self.clock().isoformat(timespec="seconds"),
                    }
                ),
            )
        log.info("watcher stopped", extra={"fields": {"event": "stop"}})


def _guarded(action: Callable[[], Any], what: str) -> None:
    """A failed job is logged and retried at its next run; the daemon keeps going."""
    try:
        action()
    except Interrupted:
        log.info("%s interrupted by shutdown; its unfinished part is redone next run", what)
    except WatcherError as exc:
        # A StoreError too: the database went away or refused (a PostgreSQL restart, a full
        # disk): one line, and the job runs again at its next time.
        log.error("%s failed: %s", what, exc, extra={"fields": {"event": f"{what}_error"}})
    except Exception:
        log.exception("%s failed unexpectedly", what)


def run(config_path: Path, clock: Clock) -> int:
    config = load_config(config_path)
    for warning in config.warnings:
        log.warning("%s", warning)
    require_secrets(config)
    store = connect_store(config)
    lock = InstanceLock(config.store_url) if store.dialect == "sqlite" else None
    if lock is not None:
        lock.acquire()
    stop = threading.Event()

    def interruptible_sleep(seconds: float) -> None:
        # Backoff and rate-limit waits end at once on SIGTERM instead of holding up the exit.
        if stop.wait(seconds):
            raise Interrupted("shutting down")

    # One clock for the jobs' `now` and the client's dates.
    sources = make_sources(
        config, clock=clock, sleep=interruptible_sleep, budget=store.rate_budget()
    )
    daemon = Daemon(config_path, config, store, sources, clock, stop)
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop_requested.set())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop_requested.set())
    signal.signal(signal.SIGHUP, lambda *_: daemon.reload_requested.set())
    try:
        daemon.start()
        # Signals only set flags; the work they ask for happens here, in the main thread.
        while not daemon.stop_requested.wait(0.2):
            if daemon.reload_requested.is_set():
                daemon.reload_requested.clear()
                daemon.reload()
    finally:
        daemon.stop()
        store.close()
        if lock is not None:
            lock.release()
    return 0
