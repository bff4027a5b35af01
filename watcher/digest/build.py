"""One recipient's digest: choose their new papers, group them by subscription, order them
as the reader asked, and gather them with the trial updates and follow-ups into a
DigestContext. Pure: data in, data out; the outbox (delivery.py) gives the data."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from watcher.config import MailConfig
from watcher.digest import ranking
from watcher.digest.context import DigestContext, FollowUp, Group, Link, Paper, TrialUpdate
from watcher.digest.drugs import Vocabulary
from watcher.digest.present import Annotations, overview
from watcher.identity import ItemKey, is_trial_change
from watcher.models import CHANGE_KINDS, CHANGE_ORDER, Article, StudyUpdate
from watcher.subscriptions import Recipient, Subscription, reader_reference
from watcher.text.lines import one_line

log = logging.getLogger(__name__)


def build_digest(
    recipient: str,
    papers: Mapping[ItemKey, list[str]],
    articles: Mapping[ItemKey, Article],
    subscriptions: Sequence[Subscription],
    mail: MailConfig,
    config_path: Path | str,
    now: datetime,
    drugs: Vocabulary | None = None,
    citing: Mapping[str, Sequence[Article]] | None = None,
    reader: Recipient | None = None,
    liked: Sequence[Article] = (),
    known: Collection[ItemKey] = (),
    studies: Mapping[ItemKey, StudyUpdate] | None = None,
    relations: Mapping[ItemKey, Sequence[str]] | None = None,
    annotations: Annotations | None = None,
) -> DigestContext:
    """Group `papers` (item → matching subscription names) for one recipient.

    Each paper appears once, under the first of its subscriptions in config order, and names
    the others. Within a group, papers follow the reader's order (newest first by default).
    After `max_items` papers the rest are compact title links: nothing is ever dropped
    silently. `drugs` is the compiled drug table (default: the shipped one); `reader` is how
    this recipient reads (default: [mail]'s settings); `liked` the records of the papers their
    subscriptions `like`, for order = "relevance". Papers in `known` (those the reader's
    subscriptions `like`: known to them from the start) are never shown, and go with the
    digest's items so that they are recorded as the reader's. `studies` holds the study
    updates among `papers` (trial-change:… items), told under "Trial registry updates".
    `relations` says what a paper is to the papers the reader's subscriptions follow ("cites
    Herold 2019, N Engl J Med").
    `annotations` keeps what is said of each paper for the whole run (present.Annotations;
    default: for this digest).
    """
    notes = annotations or Annotations(drugs)
    studies = studies or {}
    updates = trial_updates([(k, studies[k]) for k in papers if k in studies], citing or {})
    hidden = tuple(sorted(k for k in papers if k in known and k in articles))
    papers = {k: v for k, v in papers.items() if not is_trial_change(k) and k not in known}
    reader = reader or Recipient(recipient, mail.abstract, mail.max_items, mail.order)
    order = [s.name for s in subscriptions if s.sends_to(recipient)]
    rank = {name: i for i, name in enumerate(order)}
    present = [p for p in papers if p in articles]
    if len(present) < len(papers):
        log.warning(
            "%d papers for %s are not in the store yet; they wait for the next digest",
            len(papers) - len(present),
            recipient,
        )
    by_group: dict[str, list[tuple[ItemKey, Article]]] = {name: [] for name in order}

    def in_order(names: list[str]) -> tuple[str, ...]:
        return tuple(sorted(names, key=lambda n: rank.get(n, len(rank))))

    for item in present:
        by_group.setdefault(in_order(papers[item])[0], []).append((item, articles[item]))
    sort_key, closest, how, note = _ordering(reader.order, {p: articles[p] for p in present}, liked)
    shown = 0
    groups: list[Group] = []
    compact: list[Paper] = []
    counts = []
    shown_articles: list[tuple[ItemKey, Article]] = []
    for name, group_articles in by_group.items():
        total = sum(1 for p in present if name in papers[p])
        if total:
            counts.append((name, total))
        full: list[Paper] = []
        for item, art in sorted(group_articles, key=lambda p: sort_key(p[0])):
            is_compact = shown >= reader.max_items
            paper = notes.paper(item, art, in_order(papers[item]), reader.abstract, is_compact)
            if item in closest:
                paper = replace(paper, closest=True)
            if relations and item in relations:
                paper = replace(paper, relations=tuple(relations[item]))
            (compact if is_compact else full).append(paper)
            shown_articles.append((item, art))
            shown += 1
        if full:
            groups.append(Group(name, tuple(full), total))
    total = len(present)
    everything = [p for g in groups for p in g.papers] + compact
    run_by, leave, pause = _way_out(mail, recipient)
    return DigestContext(
        recipient=recipient,
        subject=digest_subject(total, [n for n, _ in counts])
        if total or not updates
        else f"PubMed Watcher: {len(updates)} trial registry update{'s' * (len(updates) != 1)}",
        groups=tuple(groups),
        compact=tuple(compact),
        counts=tuple(counts),
        total=total,
        subscriptions=tuple(order),
        config_path=str(config_path),
        generated=now,
        abstract_mode=reader.abstract,
        items=tuple(sorted(present)) + hidden + tuple(sorted(k for k, _ in updates)),
        overview=overview(everything),
        order=how,
        order_note=note,
        pmids=tuple(p.pmid for p in everything if p.pmid is not None),
        ris="".join(notes.ris(item, art) for item, art in shown_articles),
        run_by=run_by,
        leave_url=leave,
        pause_url=pause,
        reference=reader_reference(recipient),
        trial_updates=tuple(u for _, u in updates),
    )


def _ordering(
    order: str, arts: Mapping[ItemKey, Article], liked: Sequence[Article]
) -> tuple[Callable[[ItemKey], Any], set[ItemKey], str, str]:
    """(sort key, the items marked closest, the order used, the sentence saying so)."""

    def newest(item: ItemKey) -> Any:
        when, pmid = ranking.published(arts[item])
        return (-when.toordinal(), -pmid)

    if order == "evidence":
        tiers = ", ".join(ranking.EVIDENCE_TIERS)
        return (
            lambda item: (ranking.evidence_tier(arts[item]), newest(item)),
            set(),
            "evidence",
            f"Strongest evidence first ({tiers}); newest first within each.",
        )
    if order == "relevance" and liked:
        scores = ranking.likeness(arts, liked)
        pmids = ", ".join(str(a.pmid) for a in liked[:10]) + (", …" if len(liked) > 10 else "")
        return (
            lambda item: (-round(scores[item], 6), newest(item)),
            ranking.closest(scores),
            "relevance",
            f"Closest first to the papers you like (PMID {pmids}); ★ marks the closest.",
        )
    note = "Newest first."
    if order == "relevance":
        note = "Newest first: none of the papers your subscriptions like is stored yet."
    return newest, set(), "date", note


def _way_out(mail: MailConfig, recipient: str) -> tuple[str, str, str]:
    """Who runs this watcher ([mail] admin, else [mail] from), and mailto: links asking them to
    remove or pause `recipient`.

    The subject is a word and the reader's short reference, nothing more: the link is also the
    List-Unsubscribe header, which mail clients read only as one plain <mailto:…> on its line
    (RFC 2369); a subject listing the subscriptions made it fold, and Python then wrote it as an
    RFC 2047 encoded word that no client offers as a way out.
    """
    if mail.admin is None:
        who = (mail.from_name or "PubMed Watcher") + f" <{mail.from_addr}>"
        address = mail.from_addr
    else:
        who = f"{mail.admin_name} <{mail.admin}>" if mail.admin_name else mail.admin
        address = mail.admin
    ref = reader_reference(recipient)

    def mailto(word: str) -> str:
        return f"mailto:{quote(address, safe='@')}?subject={word}%20{ref}"

    return who, mailto("unsubscribe"), mailto("pause")


def digest_subject(total: int, names: Sequence[str]) -> str:
    if total == 0:
        return "PubMed Watcher: no new papers this time"
    noun = "paper" if total == 1 else "papers"
    shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
    return f"PubMed Watcher: {total} new {noun} — {shown}"


def trial_updates(
    changes: Sequence[tuple[ItemKey, StudyUpdate]], citing: Mapping[str, Sequence[Article]]
) -> list[tuple[ItemKey, TrialUpdate]]:
    """Each study's update (store.trials.record keeps them) as the digest's "Trial registry
    updates" show it, with the papers in the store that cite the study."""
    out = []
    for item, study in sorted(changes, key=lambda c: c[0]):
        papers = tuple(Link(one_line(p.title) or p.label, p.url) for p in citing.get(study.nct, ()))
        what = tuple(c.what for c in study.changes)
        update = TrialUpdate(study.nct, study.url, one_line(study.title), what, papers, study.phase)
        out.append((item, update))
    return out


def with_followups(ctx: DigestContext, shown: tuple[FollowUp, ...]) -> DigestContext:
    """`ctx` with its follow-ups section, and a subject that says what changed."""
    if not shown:
        return ctx
    said = summary(f.kind for f in shown)
    # What the digest says besides (its papers, its trial registry updates), as its subject
    # said it without them.
    rest = ctx.subject.removeprefix("PubMed Watcher: ")
    subject = f"PubMed Watcher: {said}" + (f"; {rest}" if not ctx.empty else "")
    return replace(ctx, followups=shown, subject=subject)


def summary(kinds: Iterable[str]) -> str:
    """'1 retraction, 2 corrections' for the subject, gravest first."""
    counts: dict[str, int] = {}
    for k in kinds:
        counts[k] = counts.get(k, 0) + 1
    parts = []
    for k in sorted(
        counts, key=lambda k: CHANGE_ORDER.index(k) if k in CHANGE_ORDER else len(CHANGE_ORDER)
    ):
        n = counts[k]
        parts.append(f"{n} {CHANGE_KINDS[k].one if n == 1 else CHANGE_KINDS[k].many}")
    return ", ".join(parts)
