"""Command line. The one place that turns errors into messages and exit codes:
0 success, 1 an outside fault remained after retries, 2 a usage or config error."""

from __future__ import annotations

import argparse
import os
import sys

from watcher import __version__
from watcher.errors import ConfigError, WatcherError

# Only what parsing the arguments needs is imported up front; each command imports the rest
# when it runs, so no command pays for another's imports (bench/README.md: design notes).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from collections.abc import Sequence
    from datetime import date, datetime

    from watcher.config import Config
    from watcher.followups import RefreshReport
    from watcher.subscriptions import Subscription

DEFAULT_CONFIG_NAME = "watcher.toml"  # kept in step with watcher.wiring's


def log() -> logging.Logger:
    import logging

    return logging.getLogger("watcher")


def utcnow() -> datetime:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    from watcher.logs import setup_logging
    from watcher.redact import safe_message

    setup_logging(args.log_level, args.log_json)
    try:
        return int(args.func(args) or 0)
    except WatcherError as exc:
        log().debug("error", exc_info=True)
        print(f"watcher: {safe_message(str(exc), 1000)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("watcher: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`watcher status | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # the boundary: anything else is our bug, said plainly
        if args.log_level == "debug":
            # Through the log, not Python's own hook, so the traceback is redacted too.
            log().critical("internal error", exc_info=True)
            return 1
        print(
            f"watcher: internal error: {type(exc).__name__}: {safe_message(str(exc), 1000)} "
            "(rerun with --log-level debug for a traceback)",
            file=sys.stderr,
        )
        return 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="watcher",
        description="Watch PubMed for new papers matching your searches and mail one digest "
        "per recipient.",
    )
    p.add_argument("--version", action="version", version=f"pubmed-watcher {__version__}")
    p.add_argument(
        "-c",
        "--config",
        help=f"config file (default: $WATCHER_CONFIG or ./{DEFAULT_CONFIG_NAME})",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="default: info",
    )
    p.add_argument("--log-json", action="store_true", help="log JSON lines instead of text")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("init", help="write a starter config")
    c.add_argument("path", nargs="?", help=f"where (default: ./{DEFAULT_CONFIG_NAME})")
    c.add_argument("--force", action="store_true", help="overwrite an existing file")
    c.set_defaults(func=cmd_init)

    c = sub.add_parser("check", help="validate the config; show each subscription's next runs")
    c.add_argument(
        "--online",
        action="store_true",
        help="also run each search once and show PubMed's translation and warnings",
    )
    c.set_defaults(func=cmd_check)

    c = sub.add_parser("poll", help="poll PubMed now for every subscription (or the due ones)")
    c.add_argument("--due", action="store_true", help="only subscriptions whose poll is due")
    c.add_argument(
        "--subscription",
        action="append",
        metavar="NAME",
        help="only this subscription (repeatable)",
    )
    c.add_argument(
        "--followups",
        action="store_true",
        help="also fetch the delivered papers again for retractions, errata and new versions "
        "(now; with --due, only when [followups] every has passed)",
    )
    c.set_defaults(func=cmd_poll)

    c = sub.add_parser("backfill", help="load history since a date (not mailed unless --deliver)")
    c.add_argument("--since", required=True, type=_date_arg, metavar="YYYY-MM-DD")
    c.add_argument(
        "--subscription",
        action="append",
        metavar="NAME",
        help="only this subscription (repeatable)",
    )
    c.add_argument(
        "--deliver", action="store_true", help="announce the backfilled papers in the next digests"
    )
    c.set_defaults(func=cmd_backfill)

    c = sub.add_parser("digest", help="send every pending digest now")
    c.add_argument(
        "--dry-run",
        action="store_true",
        help="write the messages to --out instead of sending; mark nothing",
    )
    c.add_argument("--out", metavar="DIR", help="where --dry-run writes .eml files")
    c.set_defaults(func=cmd_digest)

    c = sub.add_parser("run", help="run as a daemon: poll and mail on the configured schedules")
    c.set_defaults(func=cmd_run)

    c = sub.add_parser("status", help="last polls, errors, and papers awaiting delivery")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=cmd_status)
    return p


def load(args: argparse.Namespace) -> Config:
    from watcher.config import load_config
    from watcher.wiring import config_path

    config = load_config(config_path(args.config))
    for warning in config.warnings:
        log().warning("%s", warning)
    return config


def cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from watcher.paths import shipped
    from watcher.wiring import config_path

    path = Path(args.path or config_path(args.config))
    if path.exists() and not args.force:
        raise ConfigError("already exists; pass --force to overwrite it", path=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(shipped("config.example.toml").read_text(encoding="utf-8"), encoding="utf-8")
    print(f"wrote {path}: set [ncbi] email and the recipients, then run `watcher -c {path} check`")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from watcher.check import check_online, print_check
    from watcher.wiring import open_store, require_secrets

    config = load(args)
    require_secrets(config)
    store = open_store(config, utcnow())
    try:
        print_check(config, store, utcnow())
        # Its searches spend the rate the store's other processes share.
        return check_online(config, utcnow, store.rate_budget()) if args.online else 0
    finally:
        store.close()


def selected(config: Config, names: list[str] | None) -> list[Subscription]:
    return [config.subscription(n) for n in names] if names else list(config.subscriptions)


def cmd_poll(args: argparse.Namespace) -> int:
    from watcher.poll import due_subscriptions, poll, refresh_followups
    from watcher.poll_locks import claimer, not_polled_since, still_due
    from watcher.wiring import make_sources, open_store

    config = load(args)
    store = open_store(config, utcnow())
    now = utcnow()
    subs = selected(config, args.subscription)
    if args.due:
        due = {s.name for s in due_subscriptions(config, store.polls.states(), now)}
        subs = [s for s in subs if s.name in due]
    sources = make_sources(config, clock=utcnow, budget=store.rate_budget())
    # A subscription another process (a daemon, another `watcher poll`) is searching is left
    # to it; with --due, one it polled meanwhile is due no more.
    recheck = still_due(now) if args.due else not_polled_since(store.polls.states())
    claim = claimer(store, recheck)
    report = poll(config, store, sources, now, subs, claim)
    refreshed = (
        refresh_followups(config, store, sources, now, force=not args.due)
        if args.followups
        else None
    )
    store.close()
    for sub, holder in report.skipped:
        print(f"{sub.name}: skipped, {holder} is polling it")
    for o in report.outcomes:
        line = f"{o.name}: " + (
            f"FAILED: {o.error}" if o.error else f"{o.found} found, {o.new_matches} new"
        )
        print(line + (f", {o.changes} trial changes" if o.changes else ""))
    # The requests of every source (NCBI, Europe PMC, ClinicalTrials.gov), one HTTP layer.
    print(f"{report.fetched} records fetched, {report.requests} requests in {report.seconds:.1f}s")
    if report.changes:
        print(f"{report.changes} changes to delivered papers found")
    if refreshed is not None:
        print(_refresh_line(refreshed))
    return 1 if report.failed or (refreshed is not None and refreshed.error) else 0


def _refresh_line(r: RefreshReport) -> str:
    if not r.ran:
        return f"follow-ups: not run ({r.reason})"
    return (
        f"follow-ups: {r.papers} delivered papers fetched again ({r.fetched} came back) in "
        f"{r.requests} requests, {r.changes} changes found"
        + (f"; FAILED: {r.error}" if r.error else "")
    )


def cmd_backfill(args: argparse.Namespace) -> int:
    from watcher.backfill import backfill
    from watcher.poll_locks import claimer
    from watcher.wiring import make_sources, open_store

    config = load(args)
    store = open_store(config, utcnow())
    subs = selected(config, args.subscription)
    progress = _progress_bar if sys.stderr.isatty() else _progress_log
    # The same locks as a poll's: a subscription is never searched by two processes at once.
    reports = backfill(
        config,
        store,
        make_sources(config, clock=utcnow, budget=store.rate_budget()),
        utcnow(),
        args.since,
        subscriptions=subs,
        deliver=args.deliver,
        progress=progress,
        claim=claimer(store),
    )
    store.close()
    if sys.stderr.isatty():
        print(file=sys.stderr)
    for r in reports:
        if r.busy:
            print(
                f"{r.subscription}: skipped, {r.busy} is polling it; run the backfill again later"
            )
    for r in (r for r in reports if not r.busy):
        resumed = f" (resumed from {r.resumed_from})" if r.resumed_from else ""
        print(
            f"{r.subscription}: {r.found} papers in {r.slices} slices{resumed}, "
            f"{r.fetched} fetched, {r.new_matches} new matches"
            + ("" if args.deliver else " (marked known, not mailed)")
        )
    return 0


def cmd_digest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from watcher.delivery import send_digests, write_dry_run
    from watcher.wiring import make_transport, open_store

    config = load(args)
    if args.dry_run != bool(args.out):
        raise ConfigError("--dry-run and --out go together: watcher digest --dry-run --out DIR")
    store = open_store(config, utcnow())
    now = utcnow()
    if args.dry_run:
        written = write_dry_run(config, store, Path(args.out), now)
        store.close()
        for path in written:
            print(path)
        print(f"{len(written)} digests written to {args.out}; nothing marked as delivered")
        return 0
    transport = make_transport(config.mail)
    try:
        report = send_digests(config, store, transport, now)
    finally:
        transport.close()
        store.close()
    print(
        f"{len(report.sent)} digests sent ({report.retried} retried), "
        f"{report.skipped_empty} recipients had nothing new, {report.pending} still pending"
    )
    for failure in report.failed:
        print(f"  not delivered: {failure}")
    for rcpt in report.skipped_busy:
        print(f"  skipped {rcpt}: another watcher process was mailing them")
    return 1 if report.failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    from watcher.daemon import run
    from watcher.wiring import config_path

    return run(config_path(args.config), utcnow)


def _progress_bar(name: str, done: int, total: int, records: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(
        f"\r{name[:30]:30} [{'#' * filled}{'.' * (width - filled)}] "
        f"{done}/{total} slices, {records} papers"
    )
    sys.stderr.flush()


def _progress_log(name: str, done: int, total: int, records: int) -> None:
    log().info("backfill %s: %d/%d slices, %d papers", name, done, total, records)


def _date_arg(text: str) -> date:
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2009-01-01") from None


def cmd_status(args: argparse.Namespace) -> int:
    from watcher.status import print_status, status_report
    from watcher.wiring import open_store

    config = load(args)
    store = open_store(config, utcnow())
    try:
        out = status_report(store, config, utcnow())
    finally:
        store.close()
    if args.json:
        import json

        print(json.dumps(out, indent=2))
        return 0
    print_status(out)
    return 0
