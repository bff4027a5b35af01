"""A paper, a change to a paper received and the period's drugs as the digest presents them:
from the store's records to context.py's Paper, FollowUp and DrugCount."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from watcher.digest import ranking, sentences
from watcher.digest.badges import RETRACTED_BADGE, badges, concerns, notice_marks
from watcher.digest.context import DrugCount, FollowUp, Link, Mark, Paper
from watcher.digest.drugs import Vocabulary, vocabulary
from watcher.digest.ris import record as ris_record
from watcher.identity import ItemKey
from watcher.models import CHANGE_KINDS, CHANGE_ORDER, PUBLISHED, REMOVED, Article, StoredChange
from watcher.text import trial_numbers
from watcher.text.lines import one_line
from watcher.text.subscripts import MarkedText

SNIPPET_CHARS = 300


def present_paper(
    art: Article,
    subs: tuple[str, ...],
    abstract_mode: str,
    compact: bool = False,
    drugs: Vocabulary | None = None,
) -> Paper:
    """`art` as one reader's digest shows it: under `subs`, with its abstract as `abstract_mode`
    says, or as a title link (`compact`)."""
    abstract = () if compact else abstract_sections(art, abstract_mode)
    return replace(
        annotate(art, drugs or vocabulary()), subscriptions=subs, abstract=abstract, compact=compact
    )


def annotate(art: Article, drugs: Vocabulary) -> Paper:
    """What the digest says of `art` whatever the reader: its title, authors and source, its
    badges, the drugs and registry numbers it names, its notices and what it concerns. Listed
    under no subscription, without its abstract (a reader's own choices: present_paper)."""
    shown = badges(art)
    retraction, marks = notice_marks(art)
    # Each of these is said once, by its mark: the retraction before the title, the others
    # with the citation of their notice.
    said = {m.label for m in marks} | ({RETRACTED_BADGE} if retraction else set())
    return Paper(
        pmid=art.pmid,
        url=art.url,
        title=MarkedText(one_line(art.title) or art.label),
        authors=author_line(art),
        source=" · ".join(
            x for x in (art.journal_iso or art.journal or _server(art), art.pub_date) if x
        ),
        subscriptions=(),
        badges=tuple(b for b in shown if b[0] not in said),
        drugs=drugs.article_drugs(art),
        trials=tuple(trial_link(t) for t in art.trial_ids),
        concerns=concerns(art),
        doi_url=f"https://doi.org/{art.doi}" if art.doi else None,
        pmc_url=f"https://pmc.ncbi.nlm.nih.gov/articles/{art.pmcid}/" if art.pmcid else None,
        abstract=(),
        link_label="PubMed"
        if art.pmid is not None
        else ("ClinicalTrials.gov" if art.nct else "Europe PMC"),
        is_trial=ranking.is_trial(art),
        retraction=retraction,
        marks=marks,
        doi=art.doi,
    )


def relation_lines(
    links: Sequence[tuple[str, int]], followed: Mapping[int, Article]
) -> tuple[str, ...]:
    """ "cites Herold 2002, N Engl J Med and Herold 2019, N Engl J Med", "similar to …": one line
    per kind of link, naming each followed paper by first author, year and journal (its PMID
    while its record is not stored)."""
    out = []
    for kind, words in (("cites", "cites"), ("similar", "similar to")):
        names = [followed_label(p, followed.get(p)) for k, p in links if k == kind]
        if names:
            both = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
            out.append(f"{words} {both}")
    return tuple(out)


def followed_label(pmid: int, art: Article | None) -> str:
    """ "Herold 2019, N Engl J Med" """
    if art is None:
        return f"PMID {pmid}"
    first = next((a for a in art.authors if a.last_name or a.collective_name), None)
    who = (first.last_name or first.collective_name) if first else None
    year = art.pub_year or (art.epub_date.year if art.epub_date else None)
    head = " ".join(str(x) for x in (who, year) if x) or f"PMID {pmid}"
    journal = art.journal_iso or art.journal
    return f"{head}, {journal}" if journal else head


class Annotations:
    """Each paper's annotations (annotate), its abstract as each mode shows it and its RIS
    record, computed once per digest run: an institution mails the same paper to hundreds of
    readers, and scanning it for drugs again for each of them was a quarter of the run. The
    outbox makes one per run and hands it to every reader's build_digest; what differs between
    readers (the subscriptions a paper came under, compact or not, ★) is added per reader.

    Kept by item, with the record it was computed from: a record the store revised in the
    middle of a run (a poll beside it) is annotated again, never shown with its old
    annotations. `annotate` is the function that computes them (a test counts its calls)."""

    def __init__(
        self,
        drugs: Vocabulary | None = None,
        annotate: Callable[[Article, Vocabulary], Paper] = annotate,
    ) -> None:
        self.drugs = drugs or vocabulary()
        self._annotate = annotate
        self._notes: dict[ItemKey, _Notes] = {}

    def paper(
        self,
        item: ItemKey,
        art: Article,
        subs: tuple[str, ...],
        abstract_mode: str,
        compact: bool = False,
    ) -> Paper:
        """`art` as present_paper shows it, from what is kept of it."""
        notes = self._of(item, art)
        abstract = () if compact else notes.abstract(abstract_mode)
        return replace(notes.paper, subscriptions=subs, abstract=abstract, compact=compact)

    def ris(self, item: ItemKey, art: Article) -> str:
        """`art`'s RIS record (ris.record)."""
        notes = self._of(item, art)
        if notes.ris is None:
            notes.ris = ris_record(art)
        return notes.ris

    def _of(self, item: ItemKey, art: Article) -> _Notes:
        notes = self._notes.get(item)
        if notes is None or (notes.art is not art and notes.art != art):
            notes = self._notes[item] = _Notes(art, self._annotate(art, self.drugs))
        return notes


@dataclass
class _Notes:
    art: Article
    paper: Paper
    abstracts: dict[str, tuple[tuple[str | None, str], ...]] = field(default_factory=dict)
    ris: str | None = None

    def abstract(self, mode: str) -> tuple[tuple[str | None, str], ...]:
        if mode not in self.abstracts:
            self.abstracts[mode] = abstract_sections(self.art, mode)
        return self.abstracts[mode]


def author_line(art: Article) -> str:
    names = [a.display for a in art.authors if a.display]
    if not names:
        return ""
    return ", ".join(names[:3]) + (", et al." if len(names) > 3 else "")


def trial_link(trial_id: str) -> Link:
    found = trial_numbers.link(trial_id)
    return Link(found.label, found.url)


def abstract_sections(art: Article, mode: str) -> tuple[tuple[str | None, str], ...]:
    if mode == "none" or not art.abstract:
        return ()
    if mode == "full":
        return tuple((sentences.shown_label(s.label), MarkedText(s.text)) for s in art.abstract)
    # A snippet: the conclusion, in whole sentences (see sentences.py).
    chosen = sentences.conclusion(art.abstract, SNIPPET_CHARS)
    return ((chosen[0], MarkedText(chosen[1])),) if chosen else ()


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The opening sentences of `text` that fit in `limit` characters; a first sentence longer
    than that is cut at a word, marked " …"."""
    return sentences.leading(sentences.split(text), limit, longest=limit)


def _server(art: Article) -> str | None:
    """A preprint's line says where it was posted, and that it is not peer reviewed yet."""
    return f"Preprint ({art.preprint_server or 'server unknown'})" if art.ppr else None


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
