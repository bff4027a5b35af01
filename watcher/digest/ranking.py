"""How a digest orders papers for its reader: by strength of evidence, or by likeness to the
papers they said they care about (`like`). Pure: articles in, keys out.

Likeness is TF-IDF with cosine similarity, written here rather than taken from scikit-learn:
a digest compares tens of papers with a handful of liked ones, which forty lines do in a small
part of a digest run, while scikit-learn would bring numpy and scipy (large, and slow to install
on the small machines this runs on) for the same arithmetic, once a week per reader. Figures in
bench/README.md's design notes.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from datetime import date
from typing import TypeVar

from watcher.digest import design
from watcher.models import Article

# Evidence tiers, strongest first, as a reader of clinical literature weighs them.
EVIDENCE_TIERS = (
    "meta-analyses and systematic reviews",
    "randomised trials",
    "other trials",
    "cohort and observational studies",
    "reviews",
    "case reports",
    "others",
)
_SYNTHESIS = {"Meta-Analysis", "Network Meta-Analysis", "Systematic Review"}
_RCT = frozenset({"Randomized Controlled Trial", "Pragmatic Clinical Trial", "Equivalence Trial"})
# Every trial publication type; the digest counts these as trials in its overview.
TRIAL_TYPES = _RCT | {
    "Controlled Clinical Trial",
    "Clinical Trial",
    "Clinical Trial, Phase I",
    "Clinical Trial, Phase II",
    "Clinical Trial, Phase III",
    "Clinical Trial, Phase IV",
    "Adaptive Clinical Trial",
}
# NLM indexes a cohort's design as MeSH headings more often than as a publication type.
_OBSERVATIONAL_TYPES = {"Observational Study", "Multicenter Study", "Twin Study"}
_OBSERVATIONAL_MESH = {
    "Cohort Studies",
    "Prospective Studies",
    "Retrospective Studies",
    "Longitudinal Studies",
    "Follow-Up Studies",
    "Case-Control Studies",
    "Cross-Sectional Studies",
    "Registries",
}
# The tier of a design read from the title of a record NLM has not indexed yet (design.py).
_TITLE_TIERS = {
    **dict.fromkeys(design.SYNTHESES, 0),
    design.RCT: 1,
    **dict.fromkeys(design.PHASES, 2),
    design.COHORT: 3,
    design.OBSERVATIONAL: 3,
}


def evidence_tier(art: Article) -> int:
    """0 for a meta-analysis or systematic review … 6 for anything else (EVIDENCE_TIERS); a
    record not indexed yet ranks by the design its title states when that is stronger."""
    return min([_indexed_tier(art), *(_TITLE_TIERS.get(d, 6) for d in design.from_title(art))])


def is_trial(art: Article) -> bool:
    """Whether the paper reports a trial: by its publication types, else by its title."""
    return bool(TRIAL_TYPES.intersection(art.publication_types)) or any(
        d in design.TRIALS for d in design.from_title(art)
    )


def _indexed_tier(art: Article) -> int:
    types = set(art.publication_types)
    mesh = {m.descriptor for m in art.mesh}
    if types & _SYNTHESIS:
        return 0
    if types & _RCT:
        return 1
    if types & TRIAL_TYPES:
        return 2
    if types & _OBSERVATIONAL_TYPES or mesh & _OBSERVATIONAL_MESH:
        return 3
    if "Review" in types:
        return 4
    if "Case Reports" in types:
        return 5
    return 6


def published(art: Article) -> tuple[date, int]:
    """Newest first key: the electronic date, else the print year; PMID breaks ties."""
    when = art.epub_date or (date(art.pub_year, 1, 1) if art.pub_year else date.min)
    return (when, art.pmid or 0)  # a preprint has no PMID


# Words that say nothing about a topic in an abstract.
_STOP = frozenset(
    """
    a about after all also an and any are as at be been between both but by can did do does
    during each for from had has have however in into is it its may more most no not of on or
    other our over patients results study such than that the their there these they this those
    through to using was we were which while with within without
    """.split()  # noqa: SIM905
)
K = TypeVar("K", bound=Hashable)
_WORD = re.compile(r"[a-z0-9][a-z0-9-]*[a-z0-9]|[a-z]")


def terms(art: Article) -> Counter[str]:
    """Title, abstract, MeSH and keywords as weighted terms; a heading or keyword also counts
    whole, so "Diabetes Mellitus, Type 1" is one term beside its words."""
    words = Counter(
        w
        for text in (art.title, art.title, art.abstract_text)
        for w in _WORD.findall(text.lower())
        if w not in _STOP
    )
    for phrase in [m.descriptor for m in art.mesh] + list(art.keywords):
        words[f"«{phrase.lower()}»"] += 2
        words.update(w for w in _WORD.findall(phrase.lower()) if w not in _STOP)
    return words


def likeness(candidates: Mapping[K, Article], liked: Sequence[Article]) -> dict[K, float]:
    """Each candidate's cosine similarity (0–1) to the liked paper it is closest to, with
    TF-IDF weights (sublinear term frequency, smoothed idf) over candidates and liked papers."""
    if not liked or not candidates:
        return {key: 0.0 for key in candidates}
    docs = {key: terms(a) for key, a in candidates.items()}
    like_docs = [terms(a) for a in liked]
    everything: list[Counter[str]] = [*docs.values(), *like_docs]
    df: Counter[str] = Counter(t for d in everything for t in d)
    n = len(everything)
    idf = {t: math.log((1 + n) / (1 + c)) + 1 for t, c in df.items()}
    like_vectors = [_vector(d, idf) for d in like_docs]
    return {key: max(_cosine(_vector(d, idf), v) for v in like_vectors) for key, d in docs.items()}


def _vector(counts: Counter[str], idf: Mapping[str, float]) -> dict[str, float]:
    v = {t: (1 + math.log(c)) * idf[t] for t, c in counts.items()}
    norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
    return {t: x / norm for t, x in v.items()}


def _cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    small, large = (a, b) if len(a) < len(b) else (b, a)
    return sum(x * large.get(t, 0.0) for t, x in small.items())


def closest(scores: Mapping[K, float], limit: int = 3) -> set[K]:
    """The keys marked as closest: the top `limit` that share anything with a liked paper."""
    ranked = sorted((k for k, s in scores.items() if s > 0), key=lambda k: scores[k])
    return set(ranked[-limit:])
