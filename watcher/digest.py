"""Digests: choose, group and order each recipient's new papers, present them, and render them.

All of it is pure: data in, data out. Sending, the outbox and its bookkeeping are delivery.py's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from watcher import design, followups, ranking, sentences
from watcher.config import MailConfig
from watcher.drugs import Mention, Vocabulary, vocabulary
from watcher.identity import ItemKey
from watcher.models import (
    CHANGE_KINDS,
    CHANGE_ORDER,
    NOTICE_KINDS,
    PUBLISHED,
    REMOVED,
    Article,
    StoredChange,
)
from watcher.paths import shipped
from watcher.ris import ris
from watcher.subscriptions import Recipient, Subscription, reader_reference
from watcher.text import subscripts, trial_numbers
from watcher.text.lines import header_safe, one_line
from watcher.text.subscripts import MarkedText

log = logging.getLogger(__name__)

SNIPPET_CHARS = 300
# Gmail clips an HTML part past 102 KB and shows only what comes before it ("[Message
# clipped] View entire message"): the end, with the PMID line and the way out, is what is lost,
# and the clipped view drops the <style> too (hteumeuleu/email-bugs#56; Email on Acid, "Developing
# HTML Emails for Gmail: 12 Things You Must Know", item 3). Aim well under it, in bytes of the
# HTML part as sent (after its quoted-printable encoding; mail.html_part_size).
GMAIL_CLIP = 102 * 1024
HTML_BUDGET = 90_000
# Overview rows kept when even a digest of titles alone is over the budget (thousands of papers).
OVERVIEW_KEPT = 10
# Publication types a clinician scans for, in the order badges are shown. A label shown once;
# a type made redundant by a more precise one is left out (see _REDUNDANT).
_BADGES = (
    ("Retracted Publication", "Retracted", "alert"),
    ("Retraction of Publication", "Retraction notice", "alert"),
    ("Expression of Concern", "Expression of concern", "alert"),
    ("Published Erratum", "Erratum", "alert"),
    ("Preprint", "Preprint", "preprint"),  # not peer reviewed yet: news, not an alert
    # Network Meta-Analysis: a publication type since MeSH 2025 (NLM Technical Bulletin 2024
    # Nov-Dec, https://www.nlm.nih.gov/pubs/techbull/nd24/nd24_annual_mesh_processing.html).
    ("Network Meta-Analysis", "Network meta-analysis", "evidence"),
    ("Meta-Analysis", "Meta-analysis", "evidence"),
    ("Systematic Review", "Systematic review", "evidence"),
    ("Randomized Controlled Trial", "RCT", "evidence"),
    ("Clinical Trial, Phase IV", "Phase IV trial", "trial"),
    ("Clinical Trial, Phase III", "Phase III trial", "trial"),
    ("Clinical Trial, Phase II", "Phase II trial", "trial"),
    ("Clinical Trial, Phase I", "Phase I trial", "trial"),
    ("Controlled Clinical Trial", "Controlled trial", "trial"),
    ("Clinical Trial", "Clinical trial", "trial"),
    ("Clinical Trial Protocol", "Trial protocol", "plain"),
    ("Observational Study", "Observational study", "plain"),
    ("Practice Guideline", "Guideline", "evidence"),
    ("Guideline", "Guideline", "evidence"),
    ("Consensus Development Conference", "Consensus statement", "evidence"),
    ("Consensus Development Conference, NIH", "Consensus statement", "evidence"),
    ("Review", "Review", "plain"),
    ("Case Reports", "Case report", "plain"),
    ("Editorial", "Editorial", "plain"),
    ("Letter", "Letter", "plain"),
    ("Comment", "Comment", "plain"),
)
# label → the labels that make it redundant.
_REDUNDANT = {
    "Clinical trial": {
        "RCT",
        "Controlled trial",
        "Phase I trial",
        "Phase II trial",
        "Phase III trial",
        "Phase IV trial",
    },
    "Controlled trial": {"RCT"},
    "Review": {"Systematic review", "Meta-analysis", "Network meta-analysis"},
    "Meta-analysis": {"Network meta-analysis"},
    "Observational study": {"Cohort study"},
    "Comment": {"Letter", "Editorial"},
    "Letter": {"Editorial"},
}
_CORRECTION_BADGES = {
    "RetractionIn": ("Retracted", "alert"),
    "ErratumIn": ("Erratum published", "alert"),
    "ExpressionOfConcernIn": ("Expression of concern", "alert"),
    "UpdateIn": ("Updated", "plain"),
}
# What a paper's own CommentsCorrections say happened to it, shown as PubMed shows them
# ("Erratum in: Cell Rep. 2022 Jun 28;…", linked to the notice), and which of them put its
# findings in doubt. https://www.nlm.nih.gov/bsd/mms/medlineelements.html#cc
_NOTICES = {
    "RetractionIn": True,
    "ErratumIn": True,
    "ExpressionOfConcernIn": True,
    "UpdateIn": False,
}
RETRACTED = "RETRACTED"
_FLAG_ORDER = {"Expression of concern": 0, "Erratum published": 1}
# What a notice or a comment is about: shown as a link to that paper.
_CONCERNS = {
    "RetractionOf": "Retraction of",
    "ErratumFor": "Erratum for",
    "ExpressionOfConcernFor": "Expression of concern for",
    "CommentOn": "Comment on",
    "UpdateOf": "Update of",
}
# How a design read from the title is shown (watcher/design.py): as the publication type would
# be, marked as read from the title.
_TITLE_KINDS = {
    **dict.fromkeys(design.SYNTHESES, "evidence"),
    design.RCT: "evidence",
    **dict.fromkeys(design.PHASES, "trial"),
    design.COHORT: "plain",
    design.OBSERVATIONAL: "plain",
    design.GUIDELINE: "evidence",
    design.CONSENSUS: "evidence",
}
FROM_TITLE = " (from title)"
# MEDLINE's language codes (ISO 639-2/B), https://www.nlm.nih.gov/bsd/language_table.html
_LANGUAGES = {
    "afr": "Afrikaans",
    "ara": "Arabic",
    "bul": "Bulgarian",
    "cat": "Catalan",
    "chi": "Chinese",
    "cze": "Czech",
    "dan": "Danish",
    "dut": "Dutch",
    "est": "Estonian",
    "fin": "Finnish",
    "fre": "French",
    "ger": "German",
    "gre": "Greek",
    "heb": "Hebrew",
    "hrv": "Croatian",
    "hun": "Hungarian",
    "ice": "Icelandic",
    "ind": "Indonesian",
    "ita": "Italian",
    "jpn": "Japanese",
    "kor": "Korean",
    "lav": "Latvian",
    "lit": "Lithuanian",
    "nor": "Norwegian",
    "per": "Persian",
    "pol": "Polish",
    "por": "Portuguese",
    "rum": "Romanian",
    "rus": "Russian",
    "scr": "Croatian",
    "slo": "Slovak",
    "slv": "Slovenian",
    "spa": "Spanish",
    "srp": "Serbian",
    "swe": "Swedish",
    "tha": "Thai",
    "tur": "Turkish",
    "ukr": "Ukrainian",
    "vie": "Vietnamese",
}


@dataclass(frozen=True)
class Link:
    label: str
    url: str | None


@dataclass(frozen=True)
class Mark:
    """What happened to a paper, linked to the notice that says so on PubMed: its retraction,
    an erratum, an expression of concern, an update."""

    label: str  # "RETRACTED", "Erratum published"
    url: str | None  # the notice; None when the record names none
    source: str = ""  # the notice's citation, "Cell Rep. 2022 Jun 28;39(13):111044."
    alert: bool = True  # the paper's findings are in doubt: shown in red

    @property
    def line(self) -> str:
        """ "Erratum published: Cell Rep. 2022 Jun 28;39(13):111044." """
        return f"{self.label}: {self.source}" if self.source else self.label


@dataclass(frozen=True)
class Paper:
    """One paper as the templates show it."""

    pmid: int | None  # None for a preprint PubMed does not hold
    url: str
    title: str
    authors: str
    source: str  # journal and date
    subscriptions: tuple[str, ...]
    badges: tuple[tuple[str, str], ...]  # (label, kind)
    drugs: tuple[Mention, ...]
    trials: tuple[Link, ...]
    concerns: tuple[Link, ...]  # what a notice or comment is about ("Erratum for", "Comment on")
    doi_url: str | None
    pmc_url: str | None
    abstract: tuple[tuple[str | None, str], ...]  # (label, text) per section shown
    compact: bool = False
    is_trial: bool = False
    link_label: str = "PubMed"  # where `url` leads: PubMed, Europe PMC, ClinicalTrials.gov
    closest: bool = False  # among the closest to the papers the reader likes (order=relevance)
    retraction: Mark | None = None  # shown before the title, linked to the retraction notice
    marks: tuple[Mark, ...] = ()  # errata, expressions of concern, updates, each linked
    doi: str | None = None  # the text part shows it instead of a doi.org URL over 100 characters

    @property
    def flag(self) -> Mark | None:
        """The gravest of what puts it in doubt, for the overview to flag it by: its
        retraction, else an expression of concern, else an erratum (a linked one first)."""
        if self.retraction:
            return self.retraction
        doubts = sorted(
            (m for m in self.marks if m.alert),
            key=lambda m: (_FLAG_ORDER.get(m.label, len(_FLAG_ORDER)), m.url is None),
        )
        return doubts[0] if doubts else None

    @property
    def drug_line(self) -> str:
        """ "teplizumab · anti-CD3; rituximab · anti-CD20", for the text part."""
        return "; ".join(drug_name(m.inn, m.action) for m in self.drugs)


@dataclass(frozen=True)
class DrugCount:
    """One line of the overview: a drug named in the period's papers."""

    inn: str
    action: str
    papers: int
    trials: int
    alerts: tuple[Mark, ...] = ()  # a flag for each of its papers in doubt (Paper.flag)

    @property
    def name(self) -> str:
        return drug_name(self.inn, self.action)

    @property
    def words(self) -> tuple[str, ...]:
        """The action word by word, each kept whole on a narrow screen ("anti-T-cell" is never
        broken at its hyphen)."""
        return tuple(self.action.split())


def drug_name(inn: str, action: str) -> str:
    return f"{inn} · {action}" if action else inn


@dataclass(frozen=True)
class Group:
    subscription: str
    papers: tuple[Paper, ...]
    total: int  # including papers shown under an earlier group


@dataclass(frozen=True)
class TrialUpdate:
    """A study's meaningful changes, with the papers in the store that cite it."""

    nct: str
    url: str
    title: str
    changes: tuple[str, ...]  # "Recruiting → Completed", …
    papers: tuple[Link, ...]
    phase: str | None = None  # "Phase 2", as the study says now


@dataclass(frozen=True)
class FollowUp:
    """One change to a paper the recipient received, as the templates show it."""

    change_id: int
    kind: str
    what: str  # "Retracted", "Corrected", "Published in JAMA"
    alert: bool
    title: str  # the paper's
    url: str | None  # the paper's
    detail: str  # what the notice says ("Cell Rep. 2022 Jun 28;39(13):111044.")
    notice_url: str | None  # the notice or the new version
    received: str = ""  # "You received it on 2026-10-05 under Anti-CD3 in T1D."

    @property
    def link_label(self) -> str:
        return "Notice" if self.kind in NOTICE_KINDS else "New version"


@dataclass(frozen=True)
class DigestContext:
    recipient: str
    subject: str
    groups: tuple[Group, ...]
    compact: tuple[Paper, ...]  # beyond max_items: listed as title links
    counts: tuple[tuple[str, int], ...]
    total: int
    subscriptions: tuple[str, ...]
    config_path: str
    generated: datetime
    abstract_mode: str
    items: tuple[ItemKey, ...] = field(default=())  # the stable keys of every paper in it
    overview: tuple[DrugCount, ...] = field(default=())
    trial_updates: tuple[TrialUpdate, ...] = field(default=())
    order: str = "date"  # how papers are ordered within each subscription (ranking.py)
    order_note: str = "Newest first."
    pmids: tuple[int, ...] = ()  # in the order shown: PubMed's search box takes them as a list
    ris: str = ""  # the papers as RIS, attached to the message
    run_by: str = "PubMed Watcher"  # who runs this watcher: [mail] admin, else [mail] from
    leave_url: str | None = None  # mailto: the admin, asking to leave (List-Unsubscribe too)
    pause_url: str | None = None  # mailto: the admin, asking for a pause
    reference: str = ""  # the reader's short reference in those mails' subjects
    # "Changes to papers you received", shown first (watcher/followups.py).
    followups: tuple[FollowUp, ...] = field(default=())
    # What the HTML part left out to stay under the size budget (fit_html): papers moved from
    # full entries to the title list, papers past the title list (only in the attachment and
    # the PMID line), PMIDs past the PMID line and overview rows left out.
    moved: int = 0
    unlisted: int = 0
    pmids_cut: int = 0
    overview_cut: int = 0

    @property
    def empty(self) -> bool:
        """No papers and no trial registry updates (follow-ups aside)."""
        return self.total == 0 and not self.trial_updates

    @property
    def changes(self) -> tuple[int, ...]:
        """The ids of the changes it tells (recorded as told when it is sent)."""
        return tuple(f.change_id for f in self.followups)

    @property
    def retracted(self) -> tuple[Paper, ...]:
        """Its retracted papers, flagged at the top whatever else the digest says of them."""
        return tuple(
            p for p in [*(p for g in self.groups for p in g.papers), *self.compact] if p.retraction
        )

    @property
    def shown_pmids(self) -> tuple[int, ...]:
        """The PMID line as the HTML part carries it (all of them, unless the budget cut it)."""
        return self.pmids[: len(self.pmids) - self.pmids_cut]

    @property
    def trimmed(self) -> bool:
        """Whether the size budget took anything out of the HTML part (it then says so)."""
        return bool(self.moved or self.unlisted or self.pmids_cut or self.overview_cut)


def present_followups(
    changes: Sequence[StoredChange],
    articles: Mapping[ItemKey, Article],
    received: Mapping[ItemKey, tuple[date, Sequence[str]]] | None = None,
) -> tuple[FollowUp, ...]:
    """The changes, gravest first, each with the title and link of the paper it concerns and,
    from `received` (item → the day the reader was sent it and under which subscriptions),
    when and why the reader has it."""
    out = []
    for sc in changes:
        c = sc.change
        kind = CHANGE_KINDS[c.kind]
        art = articles.get(c.item)
        what = kind.label
        if c.kind == PUBLISHED and c.detail.startswith("published in "):
            what = "Published in " + c.detail.removeprefix("published in ")
        url = art.url if art else None
        if art and c.kind == REMOVED:
            # Its PubMed page is gone: the DOI still leads to the paper.
            url = f"https://doi.org/{art.doi}" if art.doi else None
        out.append(
            FollowUp(
                change_id=sc.id,
                kind=c.kind,
                what=what,
                alert=kind.alert,
                title=MarkedText(one_line(art.title) or f"PMID {art.pmid}") if art else c.item,
                url=url,
                # A detail that only repeats the label ("Retracted", when the notice names no
                # source) would say it twice beside the label's badge.
                detail="" if c.kind == PUBLISHED or c.detail == kind.label else c.detail,
                notice_url=c.url,
                received=received_line(*(received or {}).get(c.item, (None, ()))),
            )
        )
    rank = {k: i for i, k in enumerate(CHANGE_ORDER)}
    return tuple(sorted(out, key=lambda f: (rank.get(f.kind, len(rank)), f.change_id)))


def received_line(when: date | None, subscriptions: Sequence[str]) -> str:
    """ "You received it on 2026-10-05 under Anti-CD3 in T1D." """
    if when is None:
        return ""
    under = f" under {', '.join(subscriptions)}" if subscriptions else ""
    return f"You received it on {when.isoformat()}{under}."


def with_followups(ctx: DigestContext, shown: tuple[FollowUp, ...]) -> DigestContext:
    """`ctx` with its follow-ups section, and a subject that says what changed."""
    if not shown:
        return ctx
    from dataclasses import replace

    said = followups.summary(f.kind for f in shown)
    # What the digest says besides (its papers, its trial registry updates), as its subject
    # said it without them.
    rest = ctx.subject.removeprefix("PubMed Watcher: ")
    subject = f"PubMed Watcher: {said}" + (f"; {rest}" if not ctx.empty else "")
    return replace(ctx, followups=shown, subject=subject)


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
) -> DigestContext:
    """Group `papers` (item → matching subscription names) for one recipient.

    Each paper appears once, under the first of its subscriptions in config order, and names
    the others. Within a group, papers follow the reader's order (newest first by default).
    After `max_items` papers the rest are compact title links: nothing is ever dropped
    silently. `drugs` is the compiled drug table (default: the shipped one); `reader` is how
    this recipient reads (default: [mail]'s settings); `liked` the records of the papers their
    subscriptions `like`, for order = "relevance". Papers in `known` (those the reader's
    subscriptions `like`: known to them from the start) are never shown, and go with the
    digest's items so that they are recorded as the reader's.
    """
    drugs = drugs or vocabulary()
    updates = trial_updates(
        [(k, articles[k]) for k in papers if is_trial_change(k) and k in articles], citing or {}
    )
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
    shown_articles: list[Article] = []
    for name, group_articles in by_group.items():
        total = sum(1 for p in present if name in papers[p])
        if total:
            counts.append((name, total))
        full: list[Paper] = []
        for item, art in sorted(group_articles, key=lambda p: sort_key(p[0])):
            is_compact = shown >= reader.max_items
            paper = present_paper(
                art, in_order(papers[item]), reader.abstract, compact=is_compact, drugs=drugs
            )
            if item in closest:
                paper = replace(paper, closest=True)
            (compact if is_compact else full).append(paper)
            shown_articles.append(art)
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
        ris=ris(shown_articles),
        run_by=run_by,
        leave_url=leave,
        pause_url=pause,
        reference=reader_reference(recipient),
        trial_updates=tuple(u for _, u in updates),
    )


def is_trial_change(item: ItemKey) -> bool:
    return str(item).startswith("trial-change:")


def trial_updates(
    changes: Sequence[tuple[ItemKey, Article]], citing: Mapping[str, Sequence[Article]]
) -> list[tuple[ItemKey, TrialUpdate]]:
    """Each study's change (stored as an item whose record says what changed; see
    store.record_trials) as the digest's "Trial registry updates" show it."""
    out = []
    for item, art in sorted(changes, key=lambda c: c[0]):
        nct = art.nct or ""
        papers = tuple(Link(one_line(p.title) or p.label, p.url) for p in citing.get(nct, ()))
        what = tuple((art.pub_date or "").split("; "))
        update = TrialUpdate(nct, art.url, one_line(art.title), what, papers, art.phase)
        out.append((item, update))
    return out


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


def overview(papers: Iterable[Paper]) -> tuple[DrugCount, ...]:
    """Each drug named in `papers`: its target, its papers and how many of them are trials, and
    the retractions, errata and expressions of concern among them (each linking its notice)."""
    counts: dict[str, list[int]] = {}
    actions: dict[str, str] = {}
    alerts: dict[str, dict[Mark, None]] = {}
    for paper in papers:
        for drug in paper.drugs:
            n = counts.setdefault(drug.inn, [0, 0])
            n[0] += 1
            n[1] += paper.is_trial
            actions.setdefault(drug.inn, drug.action)
            if paper.flag:
                alerts.setdefault(drug.inn, {})[paper.flag] = None
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0].lower()))
    return tuple(
        DrugCount(inn, actions[inn], n[0], n[1], tuple(alerts.get(inn, ()))) for inn, n in ordered
    )


def digest_subject(total: int, names: Sequence[str]) -> str:
    if total == 0:
        return "PubMed Watcher: no new papers this time"
    noun = "paper" if total == 1 else "papers"
    shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
    return f"PubMed Watcher: {total} new {noun} — {shown}"


def present_paper(
    art: Article,
    subs: tuple[str, ...],
    abstract_mode: str,
    compact: bool = False,
    drugs: Vocabulary | None = None,
) -> Paper:
    shown = badges(art)
    retraction, marks = notice_marks(art)
    # Each of these is said once, by its mark: the retraction before the title, the others
    # with the citation of their notice.
    said = {m.label for m in marks} | (
        {_CORRECTION_BADGES["RetractionIn"][0]} if retraction else set()
    )
    return Paper(
        pmid=art.pmid,
        url=art.url,
        title=MarkedText(one_line(art.title) or art.label),
        authors=author_line(art),
        source=" · ".join(
            x for x in (art.journal_iso or art.journal or _server(art), art.pub_date) if x
        ),
        subscriptions=subs,
        badges=tuple(b for b in shown if b[0] not in said),
        drugs=(drugs or vocabulary()).article_drugs(art),
        trials=tuple(trial_link(t) for t in art.trial_ids),
        concerns=concerns(art),
        doi_url=f"https://doi.org/{art.doi}" if art.doi else None,
        pmc_url=f"https://pmc.ncbi.nlm.nih.gov/articles/{art.pmcid}/" if art.pmcid else None,
        abstract=() if compact else abstract_sections(art, abstract_mode),
        compact=compact,
        link_label="PubMed"
        if art.pmid is not None
        else ("ClinicalTrials.gov" if art.nct else "Europe PMC"),
        is_trial=ranking.is_trial(art),
        retraction=retraction,
        marks=marks,
        doi=art.doi,
    )


def notice_marks(art: Article) -> tuple[Mark | None, tuple[Mark, ...]]:
    """The paper's retraction (None if it stands) and its other notices (errata, expressions
    of concern, updates), each linked to the notice on PubMed, from its CommentsCorrections
    (RetractionIn, ErratumIn, ExpressionOfConcernIn, UpdateIn). A record typed Retracted
    Publication whose notice is not named links its own page, where PubMed shows the notice."""
    retraction: Mark | None = None
    marks: list[Mark] = []
    for c in art.corrections:
        if c.ref_type not in _NOTICES:
            continue
        url = f"https://pubmed.ncbi.nlm.nih.gov/{c.pmid}/" if c.pmid else None
        source = one_line(c.source or "")
        if c.ref_type == "RetractionIn":
            retraction = retraction or Mark(RETRACTED, url or art.url, source)
        else:
            label = _CORRECTION_BADGES[c.ref_type][0]
            marks.append(Mark(label, url, source, _NOTICES[c.ref_type]))
    if retraction is None and "Retracted Publication" in art.publication_types:
        retraction = Mark(RETRACTED, art.url)
    return retraction, tuple(dict.fromkeys(marks))


def author_line(art: Article) -> str:
    names = [a.display for a in art.authors if a.display]
    if not names:
        return ""
    return ", ".join(names[:3]) + (", et al." if len(names) > 3 else "")


def badges(art: Article) -> tuple[tuple[str, str], ...]:
    types = set(art.publication_types)
    out: dict[str, str] = {}
    for c in art.corrections:
        if c.ref_type in _CORRECTION_BADGES:
            label, kind = _CORRECTION_BADGES[c.ref_type]
            out.setdefault(label, kind)
    for ptype, label, kind in _BADGES:
        if ptype in types:
            out.setdefault(label, kind)
    for found in design.from_title(art):
        if found not in out:
            out[found + FROM_TITLE] = _TITLE_KINDS[found]
    if "Trial protocol" not in out and design.protocol_in_title(art.title):
        out["Trial protocol"] = "plain"
    language = (art.language or "eng").lower()
    if language in _LANGUAGES:
        out[f"in {_LANGUAGES[language]}"] = "plain"
    said = {k.removesuffix(FROM_TITLE) for k in out}

    def redundant(label: str) -> bool:
        return bool(_REDUNDANT.get(label.removesuffix(FROM_TITLE), set()) & said)

    return tuple((k, v) for k, v in out.items() if not redundant(k))


def concerns(art: Article) -> tuple[Link, ...]:
    """The paper a retraction notice, erratum or comment is about, linked when its PMID is known."""
    out = []
    for c in art.corrections:
        verb = _CONCERNS.get(c.ref_type)
        if verb is None:
            continue
        what = c.source or (f"PMID {c.pmid}" if c.pmid else "")
        url = f"https://pubmed.ncbi.nlm.nih.gov/{c.pmid}/" if c.pmid else None
        out.append(Link(f"{verb}: {what}".rstrip(": "), url))
    return tuple(out)


def trial_link(trial_id: str) -> Link:
    found = trial_numbers.link(trial_id)
    return Link(found.label, found.url)


def abstract_sections(art: Article, mode: str) -> tuple[tuple[str | None, str], ...]:
    if mode == "none" or not art.abstract:
        return ()
    if mode == "full":
        return tuple((sentences.shown_label(s.label), MarkedText(s.text)) for s in art.abstract)
    # A snippet: the conclusion, in whole sentences (see watcher.sentences).
    chosen = sentences.conclusion(art.abstract, SNIPPET_CHARS)
    return ((chosen[0], MarkedText(chosen[1])),) if chosen else ()


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The opening sentences of `text` that fit in `limit` characters; a first sentence longer
    than that is cut at a word, marked " …"."""
    return sentences.leading(sentences.split(text), limit, longest=limit)


def _server(art: Article) -> str | None:
    """A preprint's line says where it was posted, and that it is not peer reviewed yet."""
    return f"Preprint ({art.preprint_server or 'server unknown'})" if art.ppr else None


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


class Renderer:
    """Jinja2 over the shipped templates, each overridable by a file in the user's folder."""

    def __init__(self, user_templates: Path | None = None) -> None:
        import jinja2

        folders = [str(user_templates)] if user_templates else []
        folders.append(str(shipped("templates")))
        loader = jinja2.FileSystemLoader(folders)
        common: dict[str, Any] = dict(
            loader=loader, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
        )
        self.html_env = jinja2.Environment(autoescape=True, finalize=_html_value, **common)
        self.text_env = jinja2.Environment(autoescape=False, keep_trailing_newline=True, **common)
        for env in (self.html_env, self.text_env):
            env.filters["wrap"] = _wrap
        import css_inline

        # The template's main <style> (data-css-inline="ignore") stays in the head, where Gmail
        # (web and app, Google accounts), Apple Mail, iOS Mail, Outlook and Outlook.com read it;
        # only the small block without that attribute is inlined too, for the clients that
        # drop <style> (Gmail's app with other accounts, some webmails): what must survive
        # there. See README, "How the digest reaches its reader".
        self.inliner = css_inline.CSSInliner(
            keep_style_tags=True, keep_at_rules=True, load_remote_stylesheets=False
        )

    def render(
        self,
        ctx: DigestContext,
        html_size: Callable[[str], int] | None = None,
        budget: int = HTML_BUDGET,
    ) -> Rendered:
        """The subject, the text part and the HTML part of `ctx`. With `html_size` (how many
        bytes an HTML text takes as sent, mail.html_part_size), the HTML part is fitted to
        `budget` (fit_html); the text part always carries everything."""
        values = {"d": ctx}
        subject = header_safe(self.text_env.get_template("subject.txt").render(values))
        text = fold_text(self.text_env.get_template("digest.txt").render(values))
        if html_size is None:
            html = self.html(ctx)
        else:
            html = fit_html(ctx, self.html, html_size, budget)[1]
        return Rendered(subject, text, html)

    def html(self, ctx: DigestContext) -> str:
        return self.inliner.inline(self.html_env.get_template("digest.html").render(d=ctx))


def fit_html(
    ctx: DigestContext,
    render: Callable[[DigestContext], str],
    size: Callable[[str], int],
    budget: int = HTML_BUDGET,
) -> tuple[DigestContext, str]:
    """The HTML part within `budget` bytes as sent (`size`): as it is if it fits; else the last
    papers shown in full move to the title list, as few as needed; past that the title list
    ends early with "N more" (all are in the attachment and the PMID line); past that, for
    thousands of papers, the overview keeps its first rows and the PMID line its first PMIDs.
    The context says what was left out, and the HTML says it too."""

    def fits(c: DigestContext) -> str | None:
        html = render(c)
        # Quoted-printable never shrinks a text: over the budget decoded, over it as sent.
        return html if len(html.encode()) <= budget and size(html) <= budget else None

    html = fits(ctx)
    if html is not None:
        return ctx, html
    full = sum(len(g.papers) for g in ctx.groups)
    listed = full + len(ctx.compact)
    steps: list[tuple[int, Callable[[int], DigestContext]]] = [
        (full - 1, lambda n: trim(ctx, full=n)),
        (listed - 1, lambda n: trim(ctx, full=0, listed=n)),
        (len(ctx.pmids), lambda n: trim(ctx, full=0, listed=0, overview=OVERVIEW_KEPT, pmids=n)),
    ]
    for most, step in steps:

        def attempt(n: int, step: Callable[[int], DigestContext] = step) -> str | None:
            return fits(step(n))

        found = _largest(most, attempt)
        if found is not None:
            return step(found[0]), found[1]
    smallest = steps[-1][1](0)
    log.warning("digest to %s: even its shortest HTML part is over %d bytes", ctx.recipient, budget)
    return smallest, render(smallest)


def _largest(most: int, ok: Callable[[int], str | None]) -> tuple[int, str] | None:
    """The largest n in 0..most for which ok(n) gives a result (fewer never fails where more
    succeeds), with that result; None if even 0 fails. A binary search: ~log2(most) renders."""
    if most < 0:
        return None
    best = None
    lo, hi = 0, most
    while lo <= hi:
        mid = (lo + hi) // 2
        got = ok(mid)
        if got is None:
            hi = mid - 1
        else:
            best, lo = (mid, got), mid + 1
    return best


def trim(
    ctx: DigestContext,
    *,
    full: int,
    listed: int | None = None,
    overview: int | None = None,
    pmids: int | None = None,
) -> DigestContext:
    """`ctx` with only its first `full` papers shown in full (the others first in the title
    list, as titles), the title list cut after `listed` entries, the overview after `overview`
    rows and the PMID line after `pmids` PMIDs; what it leaves out is counted, to be said."""
    papers = [p for g in ctx.groups for p in g.papers]
    kept = set(map(id, papers[:full]))
    moved = [replace(p, compact=True, abstract=()) for p in papers[full:]]
    titles = moved + list(ctx.compact)
    cut = titles if listed is None else titles[:listed]
    groups = []
    for g in ctx.groups:
        shown = tuple(p for p in g.papers if id(p) in kept)
        if shown:
            groups.append(replace(g, papers=shown))
    rows = ctx.overview if overview is None else ctx.overview[:overview]
    return replace(
        ctx,
        groups=tuple(groups),
        compact=tuple(cut),
        moved=len(moved),
        unlisted=len(titles) - len(cut),
        overview=rows,
        overview_cut=len(ctx.overview) - len(rows),
        pmids_cut=0 if pmids is None else max(0, len(ctx.pmids) - pmids),
    )


def fold_text(text: str, width: int = 78) -> str:
    """Every line of the text part within `width` columns (RFC 5322's 78), a longer one wrapped
    at spaces under its own indent; a URL is never broken, so a line holding only a URL may be
    longer."""
    out = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip(" "))]
        out.append(_wrap(line.strip(), width, indent))
    return "\n".join(out)


def _html_value(value: Any) -> Any:
    """What the HTML part shows for a value: article text with its marked scripts as
    <sup>/<sub> (watcher.text.subscripts); anything else as it is, escaped by Jinja."""
    if isinstance(value, MarkedText):
        from markupsafe import Markup

        return Markup(subscripts.html(value))
    return value


def _wrap(text: str, width: int = 76, indent: str = "") -> str:
    import textwrap

    return textwrap.fill(
        text,
        width=width,
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
