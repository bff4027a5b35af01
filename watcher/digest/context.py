"""The digest as the templates see it: frozen dataclasses of papers, groups, drug counts,
trial updates and follow-ups, and the context that holds them. Built by build.py, rendered by
render.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from watcher.digest.drugs import Mention
from watcher.identity import ItemKey
from watcher.models import NOTICE_KINDS

_FLAG_ORDER = {"Expression of concern": 0, "Erratum published": 1}


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
    # What it is to the papers its subscriptions follow: "cites Herold 2019, N Engl J Med".
    relations: tuple[str, ...] = ()

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
    # What the HTML part left out to stay under the size budget (render.fit_html): papers moved from
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
