"""Follow-ups: what changed about papers after they were delivered, and whom to tell.

A change (models.Change) is an event with its own identity, (item, kind, notice): the item it
concerns (its stable key, watcher/identity.py), what kind of change it is (one of
models.CHANGE_KINDS), and the notice that says so (the notice's own key, "pmid:…", or the new
status, "status:retracted"). The same retraction seen by a refresh of the paper and by a poll
that found the notice is one change. Each recipient who was sent the item before the change was
found is told once (store/changes.py's change deliveries, written with the digest like paper
deliveries); nobody else hears of it.

Changes come from:
- refresh(): the records of papers delivered in the last `[followups] months`, fetched again in
  efetch batches at most once per `[followups] every`, compared with what the store held;
- notices_found(): a poll's records that are notices (a retraction notice, an erratum, an
  expression of concern) about a delivered paper; such a notice is never mailed as a paper;
- any other source, through Change and store.changes.record (a preprint's journal version, a
  trial registry's new status): a new kind is one entry in models.CHANGE_KINDS.

A record NCBI deletes from PubMed (refresh() meets a DeleteCitation for it) is a change too:
"removed from PubMed", told once to those who received the paper.

Detection here is pure (changes_between, notice_changes); refresh() drives the store and the
record fetcher it is given.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from watcher.errors import SourceError
from watcher.identity import ItemKey, pmid_key
from watcher.models import (
    CHANGE_KINDS,
    CONCERN,
    ERRATUM,
    NOTICE_KINDS,
    PUBLISHED,
    REMOVED,
    RETRACTION,
    UPDATE,
    Article,
    Change,
    Correction,
)
from watcher.text.lines import one_line

TYPE_CHECKING = False
if TYPE_CHECKING:  # the store's types only: followups' detection needs no database
    from watcher.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from watcher.config import FollowupsConfig

log = logging.getLogger(__name__)


# CommentsCorrections on the paper itself → the kind of change it announces.
# https://www.nlm.nih.gov/bsd/mms/medlineelements.html#cc
_ON_PAPER = {
    "RetractionIn": RETRACTION,
    "ErratumIn": ERRATUM,
    "ExpressionOfConcernIn": CONCERN,
    "UpdateIn": UPDATE,
    "RepublishedIn": UPDATE,
}
# How PubMed's abstract page words each link ("Erratum in: Cell Rep. 2022 Jun 28;…").
_WORDING = {
    "RetractionIn": "Retraction in:",
    "ErratumIn": "Erratum in:",
    "ExpressionOfConcernIn": "Expression of concern in:",
    "UpdateIn": "Update in:",
    "RepublishedIn": "Republished in:",
}
# CommentsCorrections on a notice → the kind of change to the paper it names.
_ON_NOTICE = {
    "RetractionOf": RETRACTION,
    "ErratumFor": ERRATUM,
    "ExpressionOfConcernFor": CONCERN,
    "UpdateOf": UPDATE,
    "RepublishedFrom": UPDATE,
}
RETRACTED_TYPE = "Retracted Publication"
RETRACTED_STATUS = "status:retracted"
REMOVED_STATUS = "status:deleted"
# "Nat Med. 2021 Mar;27(3):456-460. doi: …": the journal is what comes before the year.
_REF_JOURNAL = re.compile(r"^(.+?)\.\s+(?:\d{4}|\[)")


def pubmed_url(pmid: str | int) -> str:
    return f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/"


def journal_of(ref_source: str | None) -> str | None:
    """The journal named by a CommentsCorrections RefSource ("JAMA. 2024 May 7;…" → "JAMA")."""
    if not ref_source:
        return None
    m = _REF_JOURNAL.match(ref_source.strip())
    return m.group(1).strip() if m else None


def _from_correction(item: ItemKey, paper: Article, c: Correction, kind: str) -> Change:
    notice = pmid_key(int(c.pmid)) if c.pmid and c.pmid.isdigit() else f"ref:{c.source or kind}"
    url = pubmed_url(c.pmid) if c.pmid and c.pmid.isdigit() else None
    if kind == UPDATE and "Preprint" in paper.publication_types:
        # PubMed links a preprint to its journal version with UpdateIn.
        kind = PUBLISHED
        journal = journal_of(c.source)
        detail = f"published in {journal}" if journal else "published in a journal"
    elif kind == RETRACTION:
        own = notice if notice.startswith("pmid:") else None
        return Change(item, kind, RETRACTED_STATUS, url, _worded(c) or "Retracted", own)
    else:
        detail = _worded(c) or CHANGE_KINDS[kind].label
    return Change(item, kind, notice, url, detail, notice if kind in NOTICE_KINDS else None)


def published_as(item: ItemKey, pmid: int, citation: str | None) -> Change:
    """A preprint's journal version as Europe PMC links it ("Preprint of"): the same change
    (item, kind, notice) PubMed's UpdateIn on the preprint gives, so the two are told once."""
    journal = journal_of(citation) or (citation or "").strip()
    detail = f"published in {journal}" if journal else "published in a journal"
    return Change(item, PUBLISHED, pmid_key(pmid), pubmed_url(pmid), detail)


def removed(item: ItemKey, pmid: int) -> Change:
    """NCBI deleted the paper's record from PubMed (a DeleteCitation where efetch gave the
    record before): its PMID leads nowhere now. NLM gives no reason in the answer (most often
    the record was a duplicate)."""
    detail = f"NCBI deleted PMID {pmid} from PubMed; its PubMed page is gone"
    return Change(item, REMOVED, REMOVED_STATUS, None, detail)


def _worded(c: Correction) -> str:
    return f"{_WORDING[c.ref_type]} {c.source}" if c.source else ""


def changes_in(item: ItemKey, paper: Article) -> list[Change]:
    """Every change a record states about itself (its CommentsCorrections and publication
    types). A retraction is a status: one change however many notices say it."""
    out: dict[tuple[str, str], Change] = {}
    for c in paper.corrections:
        kind = _ON_PAPER.get(c.ref_type)
        if kind is not None:
            ch = _from_correction(item, paper, c, kind)
            out.setdefault((ch.kind, ch.notice), ch)
    if RETRACTED_TYPE in paper.publication_types:
        out.setdefault(
            (RETRACTION, RETRACTED_STATUS),
            Change(item, RETRACTION, RETRACTED_STATUS, paper.url, "retracted"),
        )
    return list(out.values())


def changes_between(item: ItemKey, old: Article | None, new: Article) -> list[Change]:
    """What the revised record `new` says that the stored record `old` did not: a paper
    delivered with its erratum already listed is not announced as corrected again."""
    before = {(c.kind, c.notice) for c in changes_in(item, old)} if old else set()
    return [c for c in changes_in(item, new) if (c.kind, c.notice) not in before]


def notice_changes(
    notice_item: ItemKey, notice: Article, resolve: Mapping[str, ItemKey]
) -> list[Change]:
    """The changes a notice announces about the papers it names (RetractionOf, ErratumFor…).
    `resolve` maps each named paper's pmid: key to its item (when the store knows it)."""
    out = []
    for c in notice.corrections:
        kind = _ON_NOTICE.get(c.ref_type)
        if kind is None or not c.pmid or not c.pmid.isdigit():
            continue
        target = resolve.get(pmid_key(int(c.pmid)))
        if target is None:
            continue
        url = notice.url
        if kind == RETRACTION:
            detail = one_line(notice.title)
            out.append(Change(target, kind, RETRACTED_STATUS, url, detail, notice_item))
        elif kind == UPDATE:
            where = notice.journal_iso or notice.journal
            out.append(
                Change(target, kind, notice_item, url, f"new version in {where}" if where else "")
            )
        else:
            detail = one_line(notice.title)
            out.append(Change(target, kind, notice_item, url, detail, notice_item))
    return out


def is_notice(paper: Article) -> bool:
    """A record that announces a retraction, erratum or expression of concern of another."""
    return any(_ON_NOTICE.get(c.ref_type) in NOTICE_KINDS for c in paper.corrections)


def named_papers(papers: Iterable[Article]) -> list[ItemKey]:
    """The pmid: keys of the papers the notices among `papers` name."""
    return [
        pmid_key(int(c.pmid))
        for p in papers
        for c in p.corrections
        if c.ref_type in _ON_NOTICE and c.pmid and c.pmid.isdigit()
    ]


# Refresh: fetching delivered papers again


@dataclass
class RefreshReport:
    ran: bool = False
    papers: int = 0  # records asked for
    fetched: int = 0  # records that came back
    requests: int = 0
    changes: int = 0  # new changes recorded
    seconds: float = 0.0
    error: str | None = None
    reason: str = ""  # why it did not run

    def as_json(self, when: datetime) -> str:
        return json.dumps(
            {
                "at": when.isoformat(),
                "papers": self.papers,
                "fetched": self.fetched,
                "requests": self.requests,
                "changes": self.changes,
                "seconds": round(self.seconds, 2),
                "error": self.error,
            }
        )


META_KEY = "followups"
# A refresh that failed is tried again after this, not a whole `every` later.
RETRY_AFTER_FAILURE = timedelta(hours=1)


@dataclass(frozen=True)
class LastRefresh:
    at: datetime
    succeeded: bool
    data: dict[str, object] = field(default_factory=dict)


def last_refresh(raw: str | None) -> LastRefresh | None:
    """The last refresh as the store's meta row holds it (None: never ran)."""
    if not raw:
        return None
    data = json.loads(raw)
    return LastRefresh(datetime.fromisoformat(data["at"]), data.get("error") is None, data)


def refresh_due(cfg: FollowupsConfig, last: LastRefresh | None, now: datetime) -> bool:
    if not cfg.enabled:
        return False
    if last is None:
        return True
    return now - last.at >= (cfg.every if last.succeeded else RETRY_AFTER_FAILURE)


def refresh(
    cfg: FollowupsConfig,
    store: Store,
    records: RecordsLike,
    requests: RequestCounter,
    now: datetime,
    *,
    force: bool = False,
) -> RefreshReport:
    """Fetch again the PubMed records of items delivered in the last `cfg.months`, in efetch
    batches, store them, and record what changed. Costs ⌈papers / batch⌉ efetch and, when
    nothing changed, nothing else. Disabled, not due (unless `force`d) or nothing delivered
    yet: nothing is asked."""
    report = RefreshReport()
    last = last_refresh(store.facts.get(META_KEY))
    if not cfg.enabled or (not force and not refresh_due(cfg, last, now)):
        report.reason = "disabled" if not cfg.enabled else "not due"
        return report
    since = now - timedelta(days=round(cfg.months * 30.44))
    delivered = store.changes.delivered_pubmed_items(since)
    if not delivered:
        # The first refresh waits for something to have been delivered.
        report.reason = "nothing delivered yet"
        return report
    started, before = time.monotonic(), requests()
    report.ran = True
    report.papers = len(delivered)
    items = list(delivered)
    for i in range(0, len(items), records.batch_size):
        batch = items[i : i + records.batch_size]
        try:
            report.changes += _refresh_batch(store, records, batch, delivered, now, report)
        except SourceError as exc:
            log.error("follow-up refresh of %d records failed: %s", len(batch), exc)
            report.error = str(exc)
    report.requests = requests() - before
    report.seconds = time.monotonic() - started
    store.facts.set(META_KEY, report.as_json(now))
    log.info(
        "follow-ups: %d delivered papers fetched again in %d requests, %d changes%s",
        report.fetched,
        report.requests,
        report.changes,
        f"; error: {report.error}" if report.error else "",
        extra={
            "fields": {
                "event": "followups",
                "papers": report.papers,
                "requests": report.requests,
                "changes": report.changes,
            }
        },
    )
    return report


def _refresh_batch(
    store: Store,
    records: RecordsLike,
    batch: Sequence[ItemKey],
    delivered: Mapping[ItemKey, int],
    now: datetime,
    report: RefreshReport,
) -> int:
    old = store.articles.records(batch)
    by_pmid = {delivered[item]: item for item in batch}
    gone: set[int] = set()
    fresh = list(records.fetch_items([pmid_key(delivered[i]) for i in batch], None, gone.add))
    report.fetched += len(fresh)
    found = [
        c
        for art in fresh
        if art.pmid in by_pmid
        for c in changes_between(by_pmid[art.pmid], old.get(by_pmid[art.pmid]), art)
    ]
    found += [removed(by_pmid[p], p) for p in sorted(gone) if p in by_pmid]
    # Only revised records are written (the store's upsert leaves an unchanged one alone).
    store.articles.upsert(fresh, now)
    return store.changes.record(found, now)


def notices_found(store: Store, items: Sequence[ItemKey], now: datetime) -> int:
    """Record the changes announced by the notices among `items` (a poll's matches) about
    papers that have been delivered; returns how many were new."""
    notices = store.articles.listing(items, _ON_NOTICE)
    if not notices:
        return 0
    named = store.items.resolve(named_papers(notices.values()))
    delivered = store.changes.delivered_among(set(named.values()))
    resolve = {k: v for k, v in named.items() if v in delivered}
    found = [c for k, a in notices.items() for c in notice_changes(k, a, resolve)]
    return store.changes.record(found, now)


# What refresh and notices_found need of a source's record fetcher (sources/base.py's Records).


class RecordsLike(Protocol):
    batch_size: int

    def fetch_items(
        self,
        keys: Sequence[ItemKey],
        on_error: Callable[[str], None] | None = None,
        on_deleted: Callable[[int], None] | None = None,
    ) -> Iterable[Article]: ...


RequestCounter = Callable[[], int]
