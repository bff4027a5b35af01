"""Plain records that flow between the stages. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

# The small parts of an article are NamedTuples: immutable like the rest, and cheaper to
# create than frozen dataclasses, which counts at thousands of authors per efetch.


class Author(NamedTuple):
    last_name: str | None = None
    fore_name: str | None = None
    initials: str | None = None
    collective_name: str | None = None

    @property
    def display(self) -> str:
        if self.collective_name:
            return self.collective_name
        first = self.initials or self.fore_name or ""
        return f"{self.last_name or ''} {first}".strip()


class MeshHeading(NamedTuple):
    descriptor: str
    major: bool = False
    qualifiers: tuple[str, ...] = ()


class AbstractSection(NamedTuple):
    label: str | None
    text: str
    # NLM's category of the section (BACKGROUND, OBJECTIVE, METHODS, RESULTS, CONCLUSIONS,
    # UNASSIGNED) whatever the journal's label: "INTERPRETATION" is CONCLUSIONS.
    category: str | None = None


class Correction(NamedTuple):
    """One CommentsCorrections entry that matters to a reader (erratum, retraction, update)."""

    ref_type: str
    pmid: str | None
    source: str | None


@dataclass(frozen=True)
class Article:
    # None for a record PubMed does not hold (a preprint from Europe PMC): its own key is then
    # its ppr: (or doi:) identifier; see identity.identifiers.
    pmid: int | None
    title: str
    version: int = 1
    doi: str | None = None
    pmcid: str | None = None
    vernacular_title: str | None = None
    abstract: tuple[AbstractSection, ...] = ()
    authors: tuple[Author, ...] = ()
    journal: str | None = None
    journal_iso: str | None = None
    pub_date: str | None = (
        None  # as printed by PubMed: "2024 Mar 5", "2019 Spring", "1998 Dec-1999 Jan"
    )
    pub_year: int | None = None
    epub_date: date | None = None
    language: str | None = None
    publication_types: tuple[str, ...] = ()
    mesh: tuple[MeshHeading, ...] = ()
    keywords: tuple[str, ...] = ()
    corrections: tuple[Correction, ...] = ()
    trial_ids: tuple[str, ...] = ()
    # ChemicalList/NameOfSubstance and SupplMeshList/SupplMeshName: how NLM names the drugs.
    substances: tuple[str, ...] = ()
    is_book: bool = False
    status: str | None = None
    # Preprints (Europe PMC): the PPR id, the server that posted it, and the PubMed record of
    # the journal version Europe PMC links it to ("Preprint of"), with that version's citation.
    ppr: str | None = None
    preprint_server: str | None = None
    published_pmid: int | None = None
    published_in: str | None = None
    # A journal article's preprints, by PPR id, as Europe PMC links them ("Preprint in"): the
    # same work, known by those ids too (see identity.identifiers).
    preprints: tuple[str, ...] = ()
    nct: str | None = None  # a ClinicalTrials.gov study, announced like a paper when first seen
    phase: str | None = None  # a study's phase as a reader says it: "Phase 2", "Phase 1/2"
    # Where it was printed, for citation managers (the RIS attachment): as PubMed gives them.
    volume: str | None = None
    issue: str | None = None
    pages: str | None = None  # MedlinePgn: "1023-1031", "e0123"

    @property
    def abstract_text(self) -> str:
        return "\n".join(f"{s.label}: {s.text}" if s.label else s.text for s in self.abstract)

    @property
    def url(self) -> str:
        if self.pmid is not None:
            return f"https://pubmed.ncbi.nlm.nih.gov/{self.pmid}/"
        if self.ppr:
            return f"https://europepmc.org/article/PPR/{self.ppr}"
        if self.nct:
            return f"https://clinicaltrials.gov/study/{self.nct}"
        if self.doi is None and self.pmcid:
            return f"https://europepmc.org/article/PMC/{self.pmcid}"
        return f"https://doi.org/{self.doi}"

    @property
    def label(self) -> str:
        """How the record is named in a line of text: PMID 123, or its preprint id."""
        if self.pmid is not None:
            return f"PMID {self.pmid}"
        if self.nct:
            return self.nct
        if self.ppr:
            return f"preprint {self.ppr}"
        return f"doi {self.doi}" if self.doi or not self.pmcid else self.pmcid

    def to_json(self) -> dict[str, Any]:
        # Written out rather than dataclasses.asdict, which deep-copies every value of every
        # article stored.
        return {
            "pmid": self.pmid,
            "title": self.title,
            "version": self.version,
            "doi": self.doi,
            "pmcid": self.pmcid,
            "vernacular_title": self.vernacular_title,
            "abstract": [
                {"label": s.label, "text": s.text, "category": s.category} for s in self.abstract
            ],
            "authors": [
                {
                    "last_name": a.last_name,
                    "fore_name": a.fore_name,
                    "initials": a.initials,
                    "collective_name": a.collective_name,
                }
                for a in self.authors
            ],
            "journal": self.journal,
            "journal_iso": self.journal_iso,
            "pub_date": self.pub_date,
            "pub_year": self.pub_year,
            "epub_date": self.epub_date.isoformat() if self.epub_date else None,
            "language": self.language,
            "publication_types": list(self.publication_types),
            "mesh": [
                {"descriptor": m.descriptor, "major": m.major, "qualifiers": list(m.qualifiers)}
                for m in self.mesh
            ],
            "keywords": list(self.keywords),
            "corrections": [
                {"ref_type": c.ref_type, "pmid": c.pmid, "source": c.source}
                for c in self.corrections
            ],
            "trial_ids": list(self.trial_ids),
            "substances": list(self.substances),
            "is_book": self.is_book,
            "status": self.status,
            **self._preprint_json(),
            "volume": self.volume,
            "issue": self.issue,
            "pages": self.pages,
        }

    def _preprint_json(self) -> dict[str, Any]:
        # Only when set, so a PubMed record's stored JSON (and the upsert's "changed?" test
        # on it) stays as it was before preprints existed.
        extra = {
            "ppr": self.ppr,
            "preprint_server": self.preprint_server,
            "published_pmid": self.published_pmid,
            "published_in": self.published_in,
            "preprints": list(self.preprints) or None,
            "nct": self.nct,
            "phase": self.phase,
        }
        return {k: v for k, v in extra.items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Article:
        return cls(
            pmid=None if data.get("pmid") is None else int(data["pmid"]),
            title=data["title"],
            version=data.get("version", 1),
            doi=data.get("doi"),
            pmcid=data.get("pmcid"),
            vernacular_title=data.get("vernacular_title"),
            abstract=tuple(AbstractSection(**s) for s in data.get("abstract", ())),
            authors=tuple(Author(**a) for a in data.get("authors", ())),
            journal=data.get("journal"),
            journal_iso=data.get("journal_iso"),
            pub_date=data.get("pub_date"),
            pub_year=data.get("pub_year"),
            epub_date=date.fromisoformat(data["epub_date"]) if data.get("epub_date") else None,
            language=data.get("language"),
            publication_types=tuple(data.get("publication_types", ())),
            mesh=tuple(
                MeshHeading(m["descriptor"], m.get("major", False), tuple(m.get("qualifiers", ())))
                for m in data.get("mesh", ())
            ),
            keywords=tuple(data.get("keywords", ())),
            corrections=tuple(Correction(**c) for c in data.get("corrections", ())),
            trial_ids=tuple(data.get("trial_ids", ())),
            substances=tuple(data.get("substances", ())),
            is_book=data.get("is_book", False),
            status=data.get("status"),
            ppr=data.get("ppr"),
            preprint_server=data.get("preprint_server"),
            published_pmid=data.get("published_pmid"),
            published_in=data.get("published_in"),
            preprints=tuple(data.get("preprints", ())),
            nct=data.get("nct"),
            phase=data.get("phase"),
            volume=data.get("volume"),
            issue=data.get("issue"),
            pages=data.get("pages"),
        )


@dataclass(frozen=True)
class SearchResult:
    """What one esearch (all pages, all date slices) found."""

    count: int
    pmids: list[int]
    query_translation: str | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    requests: int = 0


@dataclass(frozen=True)
class PollState:
    name: str
    fingerprint: str
    created_at: datetime
    window_end: date | None
    last_poll_at: datetime | None
    last_success_at: datetime | None
    last_found: int | None
    last_new: int | None
    last_requests: int | None
    last_error: str | None
    last_error_at: datetime | None
    etag: str | None
    last_modified: str | None
    backfill_done: date | None


@dataclass(frozen=True)
class TrialState:
    """What a ClinicalTrials.gov study said at its last update, for diffing the next one. A
    field added after states were first kept (phases, why_stopped, enrollment_type) reads as
    None, "not known", from a state kept before it: unlike an empty value, never a change."""

    nct: str
    title: str
    status: str | None  # RECRUITING, COMPLETED, … (statusModule.overallStatus)
    last_update: str | None  # lastUpdatePostDateStruct.date
    results_posted: str | None = None  # resultsFirstPostDateStruct.date
    primary_completion: str | None = None  # primaryCompletionDateStruct.date: 2027-06 or -06-30
    enrollment: int | None = None
    arms: tuple[str, ...] = ()
    # designModule.phases as the registry writes them (PHASE1, PHASE2, NA…): () when the study
    # gives none (an observational study), None when not known.
    phases: tuple[str, ...] | None = None
    why_stopped: str | None = None  # statusModule.whyStopped: why it was terminated, withdrawn…
    enrollment_type: str | None = None  # designModule.enrollmentInfo.type: ACTUAL or ESTIMATED

    def to_json(self) -> dict[str, Any]:
        return {
            "nct": self.nct,
            "title": self.title,
            "status": self.status,
            "last_update": self.last_update,
            "results_posted": self.results_posted,
            "primary_completion": self.primary_completion,
            "enrollment": self.enrollment,
            "arms": list(self.arms),
            "phases": None if self.phases is None else list(self.phases),
            "why_stopped": self.why_stopped,
            "enrollment_type": self.enrollment_type,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialState:
        phases = data.get("phases")
        arms = tuple(data.get("arms", ()))
        return cls(**{**data, "arms": arms, "phases": None if phases is None else tuple(phases)})


TRIAL_CHANGE_KINDS = ("status", "phase", "results", "completion", "enrolment", "arms")  # in order


@dataclass(frozen=True)
class TrialChange:
    """A meaningful difference between two states of a study, as a reader is told it."""

    nct: str
    title: str
    what: str  # "Recruiting → Completed", "results first posted 2026-11-20", …
    kind: str = "status"  # one of TRIAL_CHANGE_KINDS


@dataclass(frozen=True)
class StudyUpdate:
    """A study's changes brought by one registry update: a record of its own (trial_changes),
    delivered like a paper under its key, identity.trial_change_key: trial-change:NCT…@DATE."""

    nct: str
    last_update: str | None  # the study's LastUpdatePostDate that brought the changes
    title: str
    phase: str | None  # "Phase 2", as the study says now
    changes: tuple[TrialChange, ...]

    @property
    def url(self) -> str:
        return f"https://clinicaltrials.gov/study/{self.nct}"


@dataclass(frozen=True)
class JournalVersion:
    """A preprint already known is now linked to its journal version's PubMed record: the
    follow-up "published in JOURNAL" to whoever was told of the preprint."""

    item: str  # the work's stable key
    ppr: str
    pmid: int
    journal: str | None  # Europe PMC's citation of the journal version


# Changes to papers after delivery (watcher/followups.py finds them, the store keeps them, the
# digest tells them). A change is an event with its own identity, (item, kind, notice).


@dataclass(frozen=True)
class ChangeKind:
    """How a kind of change is told: the heading word in a digest, and the subject's nouns."""

    label: str  # "Retracted": what happened, shown first on the paper's line
    one: str  # "retraction": for the subject, "1 retraction, 2 corrections"
    many: str
    alert: bool  # shown in red: the paper's findings are in doubt


RETRACTION = "retraction"
ERRATUM = "erratum"
CONCERN = "concern"
UPDATE = "update"
PUBLISHED = "published"
REMOVED = "removed"
CHANGE_KINDS: dict[str, ChangeKind] = {
    RETRACTION: ChangeKind("Retracted", "retraction", "retractions", True),
    ERRATUM: ChangeKind("Corrected", "correction", "corrections", True),
    CONCERN: ChangeKind(
        "Expression of concern", "expression of concern", "expressions of concern", True
    ),
    UPDATE: ChangeKind("Updated", "update", "updates", False),
    PUBLISHED: ChangeKind("Published", "journal version", "journal versions", False),
    REMOVED: ChangeKind(
        "Removed from PubMed", "removal from PubMed", "removals from PubMed", False
    ),
}
# The order of the subject's summary and of the digest section: the gravest first.
CHANGE_ORDER = (RETRACTION, CONCERN, ERRATUM, REMOVED, UPDATE, PUBLISHED)
# Notices proper: a record that only announces something about another paper. Mailed as a
# follow-up to that paper's readers, never as a paper of its own (a new version is a paper).
NOTICE_KINDS = frozenset({RETRACTION, ERRATUM, CONCERN})


@dataclass(frozen=True)
class Change:
    """One change to one item (both items are stable keys, identity.ItemKey). `notice` is its
    identity within (item, kind); `url` where the reader reads it (the notice, the new
    version); `detail` a line of what it says."""

    item: str
    kind: str
    notice: str
    url: str | None
    detail: str
    notice_item: str | None = None  # the notice's own record, never mailed as a paper

    def __post_init__(self) -> None:
        if self.kind not in CHANGE_KINDS:
            raise ValueError(f"unknown change kind {self.kind!r}; add it to models.CHANGE_KINDS")


@dataclass(frozen=True)
class StoredChange:
    """A change as the store holds it, with the row id deliveries are recorded against."""

    id: int
    change: Change
    found_at: datetime
