"""The sentence a reader wants from an abstract: its conclusion. Pure.

Abstract sections carry NLM's category whatever the journal called them (a Lancet abstract's
INTERPRETATION is CONCLUSIONS, its FINDINGS are RESULTS; https://www.nlm.nih.gov/bsd/policy/structured_abstracts.html),
so the snippet takes the CONCLUSIONS section, else RESULTS. An unstructured abstract gives its
concluding sentence ("In conclusion, …", "These findings suggest …"), else its last sentences.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from watcher.models import AbstractSection
from watcher.text.section_labels import category_of

# A sentence ends at . ! or ? (maybe closed by a quote or bracket) before a space and a capital,
# a digit or an opening bracket; "p=.03" and "0.05" have no space after the point.
_END = re.compile(r"[.!?][\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9\u0391-\u03a9\u00c0-\u00de])")
# Words a point does not end: "et al.", "vs.", "Fig.", "No."; initials ("K. C."), "e.g.", "U.S."
# are caught by their shape (single letters between points).
_ABBREVIATIONS = frozenset(
    {
        "al",
        "vs",
        "v",
        "fig",
        "figs",
        "ref",
        "refs",
        "eq",
        "no",
        "nos",
        "dr",
        "mr",
        "mrs",
        "ms",
        "prof",
        "approx",
        "ca",
        "cf",
        "st",
        "jr",
        "sr",
        "inc",
        "ltd",
        "corp",
        "resp",
        "incl",
        "suppl",
        "vol",
        "viz",
        "sp",
        "spp",
        "var",
    }
)
_INITIALS = re.compile(r"^(?:[A-Za-z]\.)*[A-Za-z]$")
_CONCLUDING = re.compile(
    r"^(?:In conclusion|In summary|To conclude|To summari[sz]e|We conclude|We propose"
    r"|Taken together|Together,|Collectively|Overall,|Thus,|Hence,|Therefore,|In short"
    r"|(?:These|Our|The(?:se)?)\s+(?:\w+\s+){0,2}(?:findings|results|data|observations|studies)"
    r"\s+(?:\w+\s+)?(?:suggest|indicate|show|demonstrate|support|imply|highlight|provide|reveal)"
    r"|This (?:study|trial|work|analysis) (?:\w+ )?"
    r"(?:suggests|indicates|shows|demonstrates|supports|provides))",
    re.I,
)
_CONCLUSION_LABELS = ("CONCLUSION", "INTERPRETATION")
_UNLABELLED = frozenset({"UNLABELLED", "UNLABELED", "UNASSIGNED", "ABSTRACT"})


def split(text: str) -> list[str]:
    """Sentences of `text`, split at real sentence ends only."""
    return [text[start:end].strip() for start, end in spans(text)]


def spans(text: str) -> list[tuple[int, int]]:
    """Where each sentence of `text` starts and ends (its trailing space included)."""
    out: list[tuple[int, int]] = []
    start = 0
    for m in _END.finditer(text):
        space = max(text.rfind(" ", start, m.start()), start - 1)
        word = text[space + 1 : m.start()].lstrip("([\"'“‘")
        if text[m.start()] == "." and (word.lower() in _ABBREVIATIONS or _INITIALS.match(word)):
            continue
        out.append((start, m.end()))
        start = m.end()
    if text[start:].strip():
        out.append((start, len(text)))
    return out


def around(text: str, start: int, end: int) -> str:
    """The sentence of `text` that holds text[start:end]."""
    for first, last in spans(text):
        if first <= start < last:
            return text[first : max(last, end)]
    return text


def shown_label(label: str | None) -> str | None:
    """A section label worth printing: never "UNLABELLED" and the like."""
    if label is None or label.strip().upper() in _UNLABELLED:
        return None
    return label


def conclusion(sections: Sequence[AbstractSection], limit: int) -> tuple[str | None, str] | None:
    """(label, text) of the abstract's conclusion, whole sentences, about `limit` characters."""
    if not sections:
        return None
    for wanted in ("CONCLUSIONS", "RESULTS"):
        chosen = [s for s in sections if _category(s) == wanted]
        # NLM files LIMITATIONS or IMPLICATIONS under CONCLUSIONS too; the section the authors
        # called the conclusion comes first.
        named = [s for s in chosen if (s.label or "").upper().startswith(_CONCLUSION_LABELS)]
        chosen = named or chosen
        if chosen:
            text = " ".join(s.text for s in chosen)
            return shown_label(chosen[0].label), leading(split(text), limit)
    sentences = split(" ".join(s.text for s in sections))
    for i in range(len(sentences) - 1, -1, -1):
        if _CONCLUDING.match(sentences[i]):
            return None, leading(sentences[i:], limit)
    return None, trailing(sentences, limit)


def leading(sentences: Sequence[str], limit: int, longest: int | None = None) -> str:
    """The first sentences that fit in `limit`; the first one always, whole unless it is longer
    than `longest` (default twice the limit): a run-on "sentence" is then cut at a word, and the
    cut marked with " …"."""
    longest = 2 * limit if longest is None else longest
    if sentences and len(sentences[0]) > longest:
        cut = sentences[0].rfind(" ", 0, longest)
        return sentences[0][: cut if cut > 0 else longest].rstrip(",;:") + " …"
    taken: list[str] = []
    size = 0
    for s in sentences:
        if taken and size + 1 + len(s) > limit:
            break
        taken.append(s)
        size += len(s) + (1 if size else 0)
    return " ".join(taken)


def trailing(sentences: Sequence[str], limit: int) -> str:
    """The last sentences that fit in `limit` (the last one always, whole unless overlong)."""
    if sentences and len(sentences[-1]) > 2 * limit:
        return leading(sentences[-1:], limit)
    taken: list[str] = []
    size = 0
    for s in reversed(sentences):
        if taken and size + 1 + len(s) > limit:
            break
        taken.insert(0, s)
        size += len(s) + (1 if size else 0)
    return " ".join(taken)


def _category(section: AbstractSection) -> str | None:
    if section.category and section.category.upper() not in ("UNASSIGNED", "UNLABELLED"):
        return section.category.upper()
    # Records stored before categories were kept, and book abstracts, have labels only.
    found = category_of(section.label or "")
    return None if found == "UNASSIGNED" else found
