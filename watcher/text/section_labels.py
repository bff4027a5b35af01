"""A structured abstract's section labels as NLM categorises them (BACKGROUND, OBJECTIVE,
METHODS, RESULTS, CONCLUSIONS), for the labels that come without NLM's category: Europe PMC's
headings (watcher/sources/html_text.py) and records stored before categories were kept (the
digest's snippet, watcher/digest/sentences.py). Pure.
"""

from __future__ import annotations

import re

# NLM's category of a structured abstract's label, for a label that comes without one (Europe
# PMC's <h4> headings, records stored before categories were kept). NLM assigns categories
# from its table of ~3,000 labels (https://www.nlm.nih.gov/bsd/policy/structured_abstracts.html);
# its assignments can be read off real records, and these rules give back every one of the 79
# labels the shared corpus holds (tests/test_section_labels.py). A label NLM categorised against
# its words is listed whole; otherwise the first group with a word of the label decides, the
# gravest first: "METHODS AND RESULTS" is RESULTS, "RESULTS AND LIMITATIONS" CONCLUSIONS,
# "BACKGROUND AND AIMS" OBJECTIVE.
_LABELS = {
    "COMPARISON WITH EXISTING METHOD": "CONCLUSIONS",
    "PATIENT SUMMARY": "RESULTS",
    "OBSERVATIONS": "METHODS",
    "AVAILABILITY AND IMPLEMENTATION": "METHODS",
    "DATA SOURCE": "METHODS",
    "DATA SOURCES": "METHODS",
    "ISSUE ADDRESSED": "BACKGROUND",
}
# (category, beginnings of the words that give it), in the order they are tried.
_LABEL_WORDS = (
    (
        "CONCLUSIONS",
        (
            "CONCLU",
            "INTERPRETATION",
            "DISCUSSION",
            "IMPLICATION",
            "SIGNIFICANCE",
            "RECOMMENDATION",
            "LIMITATION",
            "PERSPECTIVE",
        ),
    ),
    ("RESULTS", ("RESULT", "FINDING", "SYNTHESIS")),
    ("OBJECTIVE", ("OBJECTIVE", "AIM", "PURPOSE", "GOAL", "HYPOTHES", "IMPORTANCE", "QUESTION")),
    (
        "METHODS",
        (
            "METHOD",
            "DESIGN",
            "SETTING",
            "PATIENT",
            "PARTICIPANT",
            "SUBJECT",
            "INTERVENTION",
            "MEASURE",
            "MATERIAL",
            "EXTRACTION",
            "SELECTION",
            "ANALYS",
            "PROTOCOL",
            "TOOL",
            "SAMPLE",
            "POPULATION",
            "PROCEDURE",
            "EXPOSURE",
            "ELIGIBILITY",
            "SEARCH",
        ),
    ),
    (
        "BACKGROUND",
        (
            "BACKGROUND",
            "INTRODUCTION",
            "CONTEXT",
            "RATIONALE",
            "REGISTRATION",
            "FUNDING",
            "DISCLOSURE",
            "CONTACT",
            "SUPPLEMENTARY",
        ),
    ),
)
_LABEL_WORD = re.compile(r"[A-Z]+")


def category_of(label: str) -> str:
    """NLM's category (BACKGROUND, OBJECTIVE, METHODS, RESULTS, CONCLUSIONS) of a section
    label as a journal wrote it ("Conclusion", "PATIENTS AND METHODS", "Interpretation:");
    UNASSIGNED, as NLM writes it, for a label none of them fits."""
    # "MATERIALS & METHODS", "PATIENT(S)", "Aims:" are read as their words.
    words = _LABEL_WORD.findall(label.upper().replace("(S)", "").replace("&", " AND "))
    whole = _LABELS.get(" ".join(words))
    if whole is not None:
        return whole
    for category, beginnings in _LABEL_WORDS:
        if any(w.startswith(beginnings) for w in words):
            return category
    return "UNASSIGNED"
