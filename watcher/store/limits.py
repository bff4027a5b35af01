"""Field limits of a stored record: far above any real one, so that a hostile record cannot
bloat the store. Pure."""

from __future__ import annotations

import logging
from itertools import chain

from watcher.models import AbstractSection, Article, Author, Correction, MeshHeading
from watcher.redact import cap

log = logging.getLogger(__name__)

# Field bounds for stored articles, far above any real record (the longest real titles run to
# ~1,000 characters, abstracts to ~10,000), so that a hostile record cannot bloat the store.
# Column widths (doi 255, pmcid 32, language 16) are hard limits in PostgreSQL. pub_date's 64
# bound only its column (a printed date): a registry's facts line ("Phase 2 · Terminated: slow
# accrual · …", a trial's changes) is kept whole in the record, which the digest reads.
MAX_TITLE = 2_000
MAX_ABSTRACT = 30_000  # all sections together
MAX_TEXT = 1_000  # journal, author names, keywords, MeSH terms, correction sources…
MAX_ITEMS = 5_000  # authors (large collaborations list 3,000+), MeSH headings, keywords…


def bounded(a: Article) -> Article:
    """`a` with every field within the store's bounds; a cut field ends with '…'."""
    if _within(a):
        return a  # every real record: checked in one pass, nothing rebuilt
    budget = MAX_ABSTRACT
    sections = []
    for s in a.abstract[:MAX_ITEMS]:
        if budget <= 0:
            break
        text = cap(s.text, budget)
        budget -= len(text)
        sections.append(AbstractSection(_opt(s.label, MAX_TEXT), text, _opt(s.category, 64)))
    out = Article(
        pmid=a.pmid,
        title=cap(a.title, MAX_TITLE),
        version=a.version,
        doi=_opt(a.doi, 255),
        pmcid=_opt(a.pmcid, 32),
        vernacular_title=_opt(a.vernacular_title, MAX_TITLE),
        abstract=tuple(sections),
        authors=tuple(
            Author(*(_opt(part, MAX_TEXT) for part in author)) for author in a.authors[:MAX_ITEMS]
        ),
        journal=_opt(a.journal, MAX_TEXT),
        journal_iso=_opt(a.journal_iso, MAX_TEXT),
        pub_date=_opt(a.pub_date, MAX_TEXT),
        pub_year=a.pub_year,
        epub_date=a.epub_date,
        language=_opt(a.language, 16),
        publication_types=tuple(cap(t, MAX_TEXT) for t in a.publication_types[:MAX_ITEMS]),
        mesh=tuple(
            MeshHeading(
                cap(m.descriptor, MAX_TEXT),
                m.major,
                tuple(cap(q, MAX_TEXT) for q in m.qualifiers[:MAX_ITEMS]),
            )
            for m in a.mesh[:MAX_ITEMS]
        ),
        keywords=tuple(cap(k, MAX_TEXT) for k in a.keywords[:MAX_ITEMS]),
        corrections=tuple(
            Correction(cap(c.ref_type, MAX_TEXT), _opt(c.pmid, 32), _opt(c.source, MAX_TEXT))
            for c in a.corrections[:MAX_ITEMS]
        ),
        trial_ids=tuple(cap(t, 64) for t in a.trial_ids[:MAX_ITEMS]),
        substances=tuple(cap(t, MAX_TEXT) for t in a.substances[:MAX_ITEMS]),
        is_book=a.is_book,
        status=_opt(a.status, 64),
        ppr=_opt(a.ppr, 64),
        preprint_server=_opt(a.preprint_server, MAX_TEXT),
        published_pmid=a.published_pmid,
        published_in=_opt(a.published_in, MAX_TEXT),
        preprints=tuple(p for p in a.preprints[:MAX_ITEMS] if len(p) <= 64),
        nct=_opt(a.nct, 64),
        phase=_opt(a.phase, 64),
        volume=_opt(a.volume, 64),
        issue=_opt(a.issue, 64),
        pages=_opt(a.pages, 64),
    )
    log.warning("%s: fields over the store's bounds were cut", a.label)
    return out


def _within(a: Article) -> bool:
    # max(map(len, …)) walks the many short strings in C, not in a Python loop: the check runs
    # on every article stored.
    short = (
        a.journal or "",
        a.journal_iso or "",
        *a.publication_types,
        *a.keywords,
        *a.substances,
    )
    names = filter(None, chain.from_iterable(a.authors))
    return (
        len(a.title) <= MAX_TITLE
        and len(a.vernacular_title or "") <= MAX_TITLE
        and sum(len(s.text) for s in a.abstract) <= MAX_ABSTRACT
        and all(len(s.label or "") <= MAX_TEXT and len(s.category or "") <= 64 for s in a.abstract)
        and max(len(a.authors), len(a.mesh), len(a.keywords), len(a.corrections)) <= MAX_ITEMS
        and max(len(a.publication_types), len(a.trial_ids), len(a.abstract)) <= MAX_ITEMS
        and len(a.substances) <= MAX_ITEMS
        and max(map(len, short), default=0) <= MAX_TEXT
        and max(map(len, names), default=0) <= MAX_TEXT
        and max(map(len, (m.descriptor for m in a.mesh)), default=0) <= MAX_TEXT
        and max(map(len, (m.qualifiers for m in a.mesh)), default=0) <= MAX_ITEMS
        and max(map(len, chain.from_iterable(m.qualifiers for m in a.mesh)), default=0) <= MAX_TEXT
        and all(
            len(c.ref_type) <= MAX_TEXT
            and len(c.pmid or "") <= 32
            and len(c.source or "") <= MAX_TEXT
            for c in a.corrections
        )
        and max(map(len, a.trial_ids), default=0) <= 64
        and len(a.doi or "") <= 255
        and len(a.pmcid or "") <= 32
        and len(a.pub_date or "") <= MAX_TEXT
        and len(a.language or "") <= 16
        and len(a.status or "") <= 64
        and len(a.ppr or "") <= 64
        and len(a.nct or "") <= 64
        and len(a.phase or "") <= 64
        and len(a.preprint_server or "") <= MAX_TEXT
        and len(a.published_in or "") <= MAX_TEXT
        and len(a.preprints) <= MAX_ITEMS
        and max(map(len, a.preprints), default=0) <= 64
        and all(len(t or "") <= 64 for t in (a.volume, a.issue, a.pages))
    )


def _opt(text: str | None, limit: int) -> str | None:
    return None if text is None else cap(text, limit)
