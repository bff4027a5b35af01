"""Digests: choose, group and order each recipient's new papers, present them, and render them.

All of it is pure: data in, data out. Sending, the outbox and its bookkeeping are delivery.py's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from watcher import followups, ranking, registries, sentences, subscripts
from watcher.config import MailConfig
from watcher.drugs import Mention, Vocabulary, vocabulary
from watcher.identity import ItemKey
from watcher.models import Article, Recipient, Subscription
from watcher.paths import shipped
from watcher.ris import ris
from watcher.subscripts import MarkedText

log = logging.getLogger(__name__)

SNIPPET_CHARS = 300
# Publication types a clinician scans for, in the order badges are shown. A label shown once;
# a type made redundant by a more precise one is left out (see _REDUNDANT).
_BADGES = (
    ("Retracted Publication", "Retracted", "alert"),
    ("Retraction of Publication", "Retraction notice", "alert"),
    ("Expression of Concern", "Expression of concern", "alert"),
    ("Published Erratum", "Erratum", "alert"),
    ("Preprint", "Preprint", "alert"),
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
    "Review": {"Systematic review", "Meta-analysis"},
    "Comment": {"Letter", "Editorial"},
    "Letter": {"Editorial"},
}
_CORRECTION_BADGES = {
    "RetractionIn": ("Retracted", "alert"),
    "ErratumIn": ("Erratum published", "alert"),
    "ExpressionOfConcernIn": ("Expression of concern", "alert"),
    "UpdateIn": ("Updated", "plain"),
}
# What a notice or a comment is about: shown as a link to that paper.
_CONCERNS = {
    "RetractionOf": "Retraction of",
    "ErratumFor": "Erratum for",
    "ExpressionOfConcernFor": "Expression of concern for",
    "CommentOn": "Comment on",
    "UpdateOf": "Update of",
}
# "Study protocol", "protocol for a randomised trial", "…: protocol of a phase 2 trial"; not a
# treatment regimen ("the Edmonton protocol").
_TITLE_PROTOCOL = re.compile(
    r"\b(?:study|trial|research) protocol\b|\bprotocol (?:for|of) (?:a|an|the)\b"
    r"|[:(]\s*(?:a |the )?protocol\b",
    re.I,
)
_INDEXED = frozenset({"MEDLINE", "OLDMEDLINE"})
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
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class Link:
    label: str
    url: str | None


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

    @property
    def name(self) -> str:
        return drug_name(self.inn, self.action)


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

    @property
    def link_label(self) -> str:
        return "Notice" if self.kind in followups.NOTICE_KINDS else "New version"


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
    # "Changes to papers you received", shown first (watcher/followups.py).
    followups: tuple[FollowUp, ...] = field(default=())

    @property
    def empty(self) -> bool:
        """No papers and no trial registry updates (follow-ups aside)."""
        return self.total == 0 and not self.trial_updates

    @property
    def changes(self) -> tuple[int, ...]:
        """The ids of the changes it tells (recorded as told when it is sent)."""
        return tuple(f.change_id for f in self.followups)


def present_followups(
    changes: Sequence[followups.StoredChange], articles: Mapping[ItemKey, Article]
) -> tuple[FollowUp, ...]:
    """The changes, gravest first, each with the title and link of the paper it concerns."""
    out = []
    for sc in changes:
        c = sc.change
        kind = followups.KINDS[c.kind]
        art = articles.get(c.item)
        what = kind.label
        if c.kind == followups.PUBLISHED and c.detail.startswith("published in "):
            what = "Published in " + c.detail.removeprefix("published in ")
        url = art.url if art else None
        if art and c.kind == followups.REMOVED:
            # Its PubMed page is gone: the DOI still leads to the paper.
            url = f"https://doi.org/{art.doi}" if art.doi else None
        out.append(
            FollowUp(
                change_id=sc.id,
                kind=c.kind,
                what=what,
                alert=kind.alert,
                title=MarkedText(_one_line(art.title) or f"PMID {art.pmid}") if art else c.item,
                url=url,
                # A detail that only repeats the label ("Retracted", when the notice names no
                # source) would say it twice beside the label's badge.
                detail="" if c.kind == followups.PUBLISHED or c.detail == kind.label else c.detail,
                notice_url=c.url,
            )
        )
    rank = {k: i for i, k in enumerate(followups.ORDER)}
    return tuple(sorted(out, key=lambda f: (rank.get(f.kind, len(rank)), f.change_id)))


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
) -> DigestContext:
    """Group `papers` (item → matching subscription names) for one recipient.

    Each paper appears once, under the first of its subscriptions in config order, and names
    the others. Within a group, papers follow the reader's order (newest first by default).
    After `max_items` papers the rest are compact title links: nothing is ever dropped
    silently. `drugs` is the compiled drug table (default: the shipped one); `reader` is how
    this recipient reads (default: [mail]'s settings); `liked` the records of the papers their
    subscriptions `like`, for order = "relevance".
    """
    drugs = drugs or vocabulary()
    updates = trial_updates(
        [(k, articles[k]) for k in papers if is_trial_change(k) and k in articles], citing or {}
    )
    papers = {k: v for k, v in papers.items() if not is_trial_change(k)}
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
    run_by, leave, pause = _way_out(mail, recipient, order)
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
        items=tuple(sorted(present)) + tuple(sorted(k for k, _ in updates)),
        overview=overview(everything),
        order=how,
        order_note=note,
        pmids=tuple(p.pmid for p in everything if p.pmid is not None),
        ris=ris(shown_articles),
        run_by=run_by,
        leave_url=leave,
        pause_url=pause,
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
        papers = tuple(Link(_one_line(p.title) or p.label, p.url) for p in citing.get(nct, ()))
        what = tuple((art.pub_date or "").split("; "))
        update = TrialUpdate(nct, art.url, _one_line(art.title), what, papers, art.phase)
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


def _way_out(
    mail: MailConfig, recipient: str, subscriptions: Sequence[str]
) -> tuple[str, str | None, str | None]:
    """Who runs this watcher, and mailto: links asking them to remove or pause `recipient`."""
    if mail.admin is None:
        return (mail.from_name or "PubMed Watcher") + f" <{mail.from_addr}>", None, None
    admin = mail.admin
    who = f"{mail.admin_name} <{admin}>" if mail.admin_name else admin
    about = f"{recipient} from the PubMed Watcher digest ({', '.join(subscriptions)})"

    def mailto(subject: str) -> str:
        return f"mailto:{quote(admin, safe='@')}?subject={quote(subject, safe='')}"

    return who, mailto(f"Unsubscribe {about}"), mailto(f"Pause {about}")


def overview(papers: Iterable[Paper]) -> tuple[DrugCount, ...]:
    """Each drug named in `papers`: its target, its papers and how many of them are trials."""
    counts: dict[str, list[int]] = {}
    actions: dict[str, str] = {}
    for paper in papers:
        for drug in paper.drugs:
            n = counts.setdefault(drug.inn, [0, 0])
            n[0] += 1
            n[1] += paper.is_trial
            actions.setdefault(drug.inn, drug.action)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0].lower()))
    return tuple(DrugCount(inn, actions[inn], n[0], n[1]) for inn, n in ordered)


def digest_subject(total: int, names: Sequence[str]) -> str:
    if total == 0:
        return "PubMed Watcher: no new papers this time"
    noun = "paper" if total == 1 else "papers"
    shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
    return f"PubMed Watcher: {total} new {noun} — {shown}"


def header_safe(text: str, limit: int = 200) -> str:
    """No CR, LF or other control character from data ever reaches a header."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def present_paper(
    art: Article,
    subs: tuple[str, ...],
    abstract_mode: str,
    compact: bool = False,
    drugs: Vocabulary | None = None,
) -> Paper:
    shown = badges(art)
    return Paper(
        pmid=art.pmid,
        url=art.url,
        title=MarkedText(_one_line(art.title) or art.label),
        authors=author_line(art),
        source=" · ".join(
            x for x in (art.journal_iso or art.journal or _server(art), art.pub_date) if x
        ),
        subscriptions=subs,
        badges=shown,
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
        is_trial=bool(ranking.TRIAL_TYPES.intersection(art.publication_types))
        or any(label == "RCT (from title)" for label, _ in shown),
    )


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
    if art.status not in _INDEXED and "RCT" not in out and ranking.rct_in_title(art.title):
        out["RCT (from title)"] = "evidence"
    if "Trial protocol" not in out and _TITLE_PROTOCOL.search(art.title):
        out["Trial protocol"] = "plain"
    language = (art.language or "eng").lower()
    if language in _LANGUAGES:
        out[f"in {_LANGUAGES[language]}"] = "plain"
    return tuple((k, v) for k, v in out.items() if not _REDUNDANT.get(k, set()) & out.keys())


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
    found = registries.link(trial_id)
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


def _one_line(text: str) -> str:
    return " ".join(text.split())


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

        # Gmail, Outlook and most webmail drop <style>; @media rules (dark mode, phones) can't
        # be inlined and stay in the head for the clients that read them.
        self.inliner = css_inline.CSSInliner(
            keep_at_rules=True, load_remote_stylesheets=False, minify_css=True
        )

    def render(self, ctx: DigestContext) -> Rendered:
        values = {"d": ctx}
        subject = header_safe(self.text_env.get_template("subject.txt").render(values))
        text = self.text_env.get_template("digest.txt").render(values)
        html = self.inliner.inline(self.html_env.get_template("digest.html").render(values))
        return Rendered(subject, text, html)


def _html_value(value: Any) -> Any:
    """What the HTML part shows for a value: article text with its marked scripts as
    <sup>/<sub> (watcher.subscripts); anything else as it is, escaped by Jinja."""
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
