"""Delivery: the outbox. For each schedule and recipient, retry their pending digests, then
compose, record and send one digest of what is new, with the store's bookkeeping around each
attempt. Collaborators (store, transport, renderer, clock) come in as arguments.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from watcher.addresses import normalise_address
from watcher.config import Config
from watcher.digest.build import build_digest, with_followups
from watcher.digest.context import DigestContext
from watcher.digest.drugs import vocabulary
from watcher.digest.present import Annotations, present_followups, relation_lines
from watcher.digest.render import Rendered, Renderer
from watcher.errors import MailError
from watcher.identity import ItemKey, is_trial_change, pmid_key
from watcher.mail import HtmlParts, build_message, new_message_id
from watcher.models import Article
from watcher.paths import private_dir, write_private
from watcher.schedule import schedule_key
from watcher.store import Store
from watcher.subscriptions import Subscription
from watcher.transports.base import OutgoingDigest, Transport

log = logging.getLogger(__name__)


@dataclass
class DigestReport:
    sent: list[str] = field(default_factory=list)  # Message-IDs
    retried: int = 0
    pending: int = 0
    failed: list[str] = field(default_factory=list)  # "recipient: error"
    skipped_empty: int = 0
    skipped_busy: list[str] = field(default_factory=list)  # recipients another process had


def send_digests(
    config: Config,
    store: Store,
    transport: Transport,
    now: datetime,
    *,
    schedules: Sequence[tuple[str, str]] | None = None,
    renderer: Renderer | None = None,
    annotations: Annotations | None = None,
) -> DigestReport:
    """For each schedule (default: all of the config's) and each of its recipients: retry their
    pending digests, then build, record and send one digest of what is new. `annotations` keeps
    what is said of each paper for this run (default: a new one; see DigestRun)."""
    renderer = renderer or Renderer(config.mail.templates)
    run = digest_run(config, annotations)
    report = DigestReport()
    groups = config.digests
    keys = list(groups) if schedules is None else list(schedules)
    everyone = sorted({r for k in keys for r in groups.get(k, {})})

    for key in keys:
        for rcpt in groups.get(key, {}):
            # One process per recipient at a time, from choosing the papers to the server's
            # answer: a second process (another daemon, `watcher digest` beside `watcher run`)
            # skips this recipient instead of composing or resending their digest.
            lock = f"digest:{rcpt}"
            with store.advisory_locks([lock]) as held:
                if held:
                    _recipient_digest(
                        config, store, transport, renderer, key, rcpt, now, report, run
                    )
                else:
                    _skip_busy(store, lock, rcpt, report)
        store.outbox.set_digest_run(schedule_key(*key), now)
    report.pending = len(store.outbox.pending_digests(everyone))
    return report


def _skip_busy(store: Store, lock: str, rcpt: str, report: DigestReport) -> None:
    holder = store.lock_holder(lock)
    log.warning(
        "digest to %s skipped: another watcher process%s is mailing them right now; "
        "it sends what is due",
        rcpt,
        f" ({holder})" if holder else "",
        extra={"fields": {"event": "digest_skipped", "recipient": rcpt, "reason": "locked"}},
    )
    report.skipped_busy.append(rcpt)


@dataclass(frozen=True)
class Composed:
    ctx: DigestContext
    rendered: Rendered
    message_id: str
    message: bytes

    def outgoing(self, recipient: str) -> OutgoingDigest:
        r = self.rendered
        return OutgoingDigest(recipient, self.message_id, r.subject, r.text, r.html, self.message)


@dataclass(frozen=True)
class DigestRun:
    """What a digest run works out once for all its readers instead of once for each: each
    paper's annotations, each reader's subscriptions (a scan of every subscription per reader
    made a run quadratic: 5,000 subscriptions × 2,500 readers), the subscriptions' order."""

    annotations: Annotations
    theirs: Mapping[str, tuple[Subscription, ...]]  # recipient → theirs, in config order
    rank: Mapping[str, int]  # subscription name → its place in the config

    def subscriptions(self, rcpt: str) -> tuple[Subscription, ...]:
        return self.theirs.get(normalise_address(rcpt), ())


def digest_run(config: Config, annotations: Annotations | None = None) -> DigestRun:
    theirs: dict[str, dict[str, Subscription]] = {}
    for sub in config.subscriptions:
        for rcpt in sub.recipients:
            theirs.setdefault(rcpt, {})[sub.name] = sub
    return DigestRun(
        annotations or Annotations(vocabulary(config.drugs)),
        {rcpt: tuple(subs.values()) for rcpt, subs in theirs.items()},
        {s.name: i for i, s in enumerate(config.subscriptions)},
    )


def compose(
    config: Config,
    store: Store,
    renderer: Renderer,
    key: tuple[str, str],
    rcpt: str,
    now: datetime,
    run: DigestRun | None = None,
) -> Composed | None:
    """The digest `rcpt` is due on schedule `key`, rendered; None when there is nothing new
    (and `send_empty` is off) or they are paused (what is owed waits for the end of the pause).
    Changes to papers they received go in whichever of their digests comes first: a digest
    with only those is news, and is sent. `run`: what the run works out once (digest_run)."""
    run = run or digest_run(config)
    reader = config.recipient(rcpt)
    if reader.paused(now):
        log.info("digest to %s held: paused until %s", rcpt, reader.paused_until)
        return None
    mine = list(config.digests.get(key, {}).get(rcpt, ()))
    carried = [s for s in run.subscriptions(rcpt) if s.name in mine]
    papers = store.outbox.pending_papers(rcpt, mine)
    articles = store.articles.records(papers)
    told = [k for k in papers if is_trial_change(k)]
    studies = store.trials.updates(told) if told else {}
    ncts = [s.nct for s in studies.values()]
    changes = store.changes.pending(rcpt)
    ctx = build_digest(
        rcpt,
        papers,
        articles,
        run.subscriptions(rcpt),
        config.mail,
        config.path,
        now,
        citing=store.trials.papers_citing(ncts) if ncts else None,
        reader=reader,
        liked=_liked(store, carried) if reader.order == "relevance" else (),
        known={pmid_key(p) for s in carried for p in s.like},
        studies=studies,
        relations=_relations(store, papers, mine),
        annotations=run.annotations,
    )
    if changes:
        items = [c.change.item for c in changes]
        ctx = with_followups(
            ctx,
            present_followups(
                changes,
                store.articles.records(items),
                _received(run, store, rcpt, items, key[1]),
            ),
        )
    if ctx.empty and not ctx.followups and not config.mail.send_empty:
        return None
    html_parts = HtmlParts()
    rendered = renderer.render(ctx, html_size=html_parts.size)
    message_id = new_message_id(config.mail.from_addr)
    message = build_message(
        rendered,
        config.mail.from_addr,
        rcpt,
        message_id,
        now,
        from_name=config.mail.from_name,
        to_name=config.display_name(rcpt),
        ris=ctx.ris,
        leave_url=ctx.leave_url,
        html_parts=html_parts,
    )
    return Composed(ctx, rendered, message_id, message)


def _received(
    run: DigestRun, store: Store, rcpt: str, items: Sequence[ItemKey], timezone: str
) -> dict[ItemKey, tuple[date, list[str]]]:
    """When (the day in the digest's time zone) and under which subscriptions (in config
    order) `rcpt` received each of `items`."""
    zone = ZoneInfo(timezone)
    rank = run.rank
    return {
        item: (when.astimezone(zone).date(), sorted(subs, key=lambda n: rank.get(n, len(rank))))
        for item, (when, subs) in store.outbox.received(rcpt, items).items()
    }


def _relations(
    store: Store, papers: Iterable[ItemKey], subscriptions: Sequence[str]
) -> dict[ItemKey, tuple[str, ...]]:
    """What each paper is to the papers the reader's subscriptions follow, as digest lines."""
    links = store.citations.of_items(papers, subscriptions)
    if not links:
        return {}
    pmids = {p for ls in links.values() for _, p in ls}
    stored = store.articles.records(pmid_key(p) for p in pmids)
    followed = {p: stored[pmid_key(p)] for p in pmids if pmid_key(p) in stored}
    return {item: relation_lines(ls, followed) for item, ls in links.items()}


def _liked(store: Store, subscriptions: Sequence[Subscription]) -> list[Article]:
    """The stored records of the papers `subscriptions` like (polls fetch them)."""
    pmids = dict.fromkeys(p for s in subscriptions for p in s.like)
    found = store.articles.records(pmid_key(p) for p in pmids)
    return [found[k] for k in (pmid_key(p) for p in pmids) if k in found]


def _recipient_digest(
    config: Config,
    store: Store,
    transport: Transport,
    renderer: Renderer,
    key: tuple[str, str],
    rcpt: str,
    now: datetime,
    report: DigestReport,
    run: DigestRun,
) -> None:
    for pending in store.outbox.pending_digests([rcpt]):
        report.retried += 1
        outgoing = OutgoingDigest.from_mime(pending.recipient, pending.message, pending.message_id)
        _deliver(store, transport, pending.id, outgoing, now, report)
    digest = compose(config, store, renderer, key, rcpt, now, run)
    if digest is None:
        report.skipped_empty += 1
        return
    digest_id = store.outbox.create_digest(
        recipient=rcpt,
        schedule=schedule_key(*key),
        message_id=digest.message_id,
        message=digest.message,
        items=list(digest.ctx.items),
        now=now,
        changes=digest.ctx.changes,
    )
    _deliver(store, transport, digest_id, digest.outgoing(rcpt), now, report)


def _deliver(
    store: Store,
    transport: Transport,
    digest_id: int,
    digest: OutgoingDigest,
    now: datetime,
    report: DigestReport,
) -> None:
    rcpt, message_id = digest.recipient, digest.message_id
    try:
        transport.send(digest)
    except MailError as exc:
        store.outbox.mark_digest_attempt(digest_id, str(exc), permanent=exc.permanent)
        report.failed.append(f"{rcpt}: {exc}")
        log.error(
            "digest %s to %s %s: %s",
            message_id,
            rcpt,
            "refused" if exc.permanent else "not sent, retried next run",
            exc,
            extra={
                "fields": {
                    "event": "digest_error",
                    "recipient": rcpt,
                    "message_id": message_id,
                    "permanent": exc.permanent,
                }
            },
        )
        return
    if store.outbox.mark_digest_sent(digest_id, now):
        report.sent.append(message_id)
        log.info(
            "digest %s sent to %s",
            message_id,
            rcpt,
            extra={"fields": {"event": "digest_sent", "recipient": rcpt, "message_id": message_id}},
        )


def write_dry_run(
    config: Config, store: Store, out: Path, now: datetime, renderer: Renderer | None = None
) -> list[Path]:
    """Every digest that would go out now, as .eml (and .html beside it); nothing is marked."""
    renderer = renderer or Renderer(config.mail.templates)
    try:
        private_dir(out)
    except OSError as exc:
        raise MailError.unusable_folder("the --out folder", out, exc) from None
    written = []
    run = digest_run(config)
    for key, readers in config.digests.items():
        for rcpt in readers:
            digest = compose(config, store, renderer, key, rcpt, now, run)
            if digest is None:
                continue
            stem = re.sub(r"[^A-Za-z0-9@._-]+", "_", f"{rcpt}-{schedule_key(*key)}")
            try:
                write_private(out / f"{stem}.eml", digest.message)
                write_private(out / f"{stem}.html", digest.rendered.html.encode("utf-8"))
            except OSError as exc:
                raise MailError.unusable_folder("the --out folder", out, exc) from None
            written.append(out / f"{stem}.eml")
    return written
