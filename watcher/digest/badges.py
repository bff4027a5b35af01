"""What a paper is marked with: badges for the publication types a clinician scans for, the
design its title states, its language; the retraction, errata and expressions of concern its
own record lists, each linked to the notice; what a notice or comment is about."""

from __future__ import annotations

from watcher.digest import design
from watcher.digest.context import Link, Mark
from watcher.models import Article
from watcher.text.lines import one_line

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
# The badge a retraction notice gives, which a retracted paper's RETRACTED mark says instead.
RETRACTED_BADGE = _CORRECTION_BADGES["RetractionIn"][0]
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
# What a notice or a comment is about: shown as a link to that paper.
_CONCERNS = {
    "RetractionOf": "Retraction of",
    "ErratumFor": "Erratum for",
    "ExpressionOfConcernFor": "Expression of concern for",
    "CommentOn": "Comment on",
    "UpdateOf": "Update of",
}
# How a design read from the title is shown (design.py): as the publication type would
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
