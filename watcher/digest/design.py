"""What a paper's title says its design is, for a record NLM has not indexed yet. Pure.

PubMed's publication types (Randomized Controlled Trial, Meta-Analysis, …) arrive with MEDLINE
indexing, weeks or months after a paper appears; until then most records say "Journal Article".
Their titles often say more, in a few set phrasings: ": a randomised, double-blind,
placebo-controlled trial", "A phase I dose-escalation study of …", ": a systematic review and
network meta-analysis", ": a prospective observational study", "Expert consensus on …".

Only a research article's title is read. A comment, letter, editorial, news item or erratum
quotes another paper's title ("Commentary on: Medical expulsive therapy in adults with ureteric
colic: a multicentre, randomised, placebo-controlled trial", PMID 26431759), and a protocol, a
secondary or post hoc analysis, or the design paper of a trial is not that trial's evidence.
"""

from __future__ import annotations

import re

from watcher.models import Article

# The designs, named as the digest labels the matching publication types.
NETWORK_META_ANALYSIS = "Network meta-analysis"
META_ANALYSIS = "Meta-analysis"
SYSTEMATIC_REVIEW = "Systematic review"
RCT = "RCT"
PHASES = (
    "Phase I trial",
    "Phase I/II trial",
    "Phase II trial",
    "Phase II/III trial",
    "Phase III trial",
    "Phase IV trial",
)
COHORT = "Cohort study"
OBSERVATIONAL = "Observational study"
GUIDELINE = "Guideline"
CONSENSUS = "Consensus statement"
SYNTHESES = (NETWORK_META_ANALYSIS, META_ANALYSIS, SYSTEMATIC_REVIEW)
TRIALS = (RCT, *PHASES)

INDEXED = frozenset({"MEDLINE", "OLDMEDLINE"})
# Publication types of what is not a report of research, even before indexing (publishers send
# "Letter", "Comment", "Editorial" with the record).
NOT_RESEARCH = frozenset(
    {
        "Comment",
        "Letter",
        "Editorial",
        "News",
        "Newspaper Article",
        "Published Erratum",
        "Retraction of Publication",
        "Expression of Concern",
        "Interview",
        "Biography",
    }
)
# How such items title themselves (NLM puts a translated title in square brackets).
_NOT_RESEARCH_TITLE = re.compile(
    r"^\W*(?:re\s*:|reply\b|in reply\b|response to\s*(?::|comment|letter|the\b|[\"“‘'])"
    r"|letter\s*(?::|to the editor)|editorial\s*:|correction\b|corrigendum\b|erratum\b"
    r"|retract(?:ion|ed)\b|notice of retraction|expression of concern)"
    r"|\bcomment(?:ary)?\s+on\b|\bcomment(?:ary)?\s*:|\bauthors?['’]?s?['’]?\s+reply\b",
    re.I,
)
# "Study protocol", "protocol for a randomised trial", "…: protocol of a phase 2 trial"; not a
# treatment regimen ("the Edmonton protocol").
_PROTOCOL = re.compile(
    r"\b(?:study|trial|research) protocol\b|\bprotocol (?:for|of) (?:a|an|the)\b"
    r"|[:(]\s*(?:a |the )?protocol\b",
    re.I,
)
# A trial's companions, which are not its result: its design paper, an analysis of its data.
_NOT_THE_TRIAL = re.compile(
    r"\bpost[- ]?hoc\b|\b(?:secondary|exploratory|pooled|subgroup|ancillary)\s+(?:analys[ie]s|stud"
    r"(?:y|ies))\b|\bsub-?study\b|\bfollow[- ]up\s+(?:of|after|from)\b|\banalysis of\b"
    r"|\bdesign\s+(?:of|and)\b|\brationale\b|\bstatistical analysis plan\b",
    re.I,
)

_NOT_AFTER = r"(?<!non-)(?<!non )(?<!quasi-)(?<!quasi )"
# A number of trials reported together ("two multicentre, randomised, … trials"): else a plural
# is a topic ("Why randomised trials fail").
_SEVERAL = r"(?:\b(?:two|three|four|2|3|4|twin|parallel)\b[^:;.?]{0,80}?)"
_BETWEEN = r"(?:[\s,-]+[\w()/-]+){0,8}?[\s,-]+"
_RANDOMISED = re.compile(
    rf"{_NOT_AFTER}\brandomi[sz]ed{_BETWEEN}(?:trial|study|comparison)\b"
    rf"|{_SEVERAL}{_NOT_AFTER}\brandomi[sz]ed{_BETWEEN}(?:trials|studies)\b",
    re.I,
)
_ROMAN = {"1": 1, "i": 1, "2": 2, "ii": 2, "3": 3, "iii": 3, "4": 4, "iv": 4}
_PHASE_NUMBER = r"(?:[1-4]|iv|i{1,3})[abc]?"
_PHASE = re.compile(
    rf"(?P<several>{_SEVERAL})?\bphase[\s-]*(?P<a>{_PHASE_NUMBER})"
    rf"(?:\s*(?:/|-|–|and|to)\s*(?P<b>{_PHASE_NUMBER}))?\b(?P<rest>{_BETWEEN}"
    r"(?:trial|study|trials|studies)\b)?",
    re.I,
)
_PLURAL = re.compile(r"(?:trials|studies)$")
_PHASE_NAMES = {1: "I", 2: "II", 3: "III", 4: "IV"}

# Systematic reviews and meta-analyses: as the title's own description, after a colon or dash
# or an article ("…: a systematic review and meta-analysis", "… in a network meta-analysis"),
# or opening it ("Systematic review of …", "Meta-analysis of …"); not a topic ("risk of bias in
# systematic reviews", "Pitfalls of meta-analysis").
_LEAD = r"(?:[:.;?!(\[—–]\s*|\s-\s|\b(?:a|an)\s+)"
_QUALIFIERS = (
    r"(?:(?:updated|bayesian|cumulative|living|comprehensive|pairwise|frequentist"
    r"|dose[- ]response|individual[- ](?:participant|patient)[- ]data|ipd|trial[- ]level"
    r"|cochrane|systematic|literature|two[- ]stage|one[- ]stage|prospective)\s+)*"
)
_REVIEW = r"systematic\s+(?:literature\s+)?review\b(?!s)"
_META = r"meta[- ]?analysis\b"
_REVIEW_AND = rf"{_REVIEW}\s*(?:,|and|with|&)\s*(?:an?\s+)?"
_SYSTEMATIC_REVIEW = re.compile(
    rf"{_LEAD}{_QUALIFIERS}{_REVIEW}|^\W*{_REVIEW}\s+(?:of|on|and|with|to|for)\b", re.I
)
_META_ANALYSIS = re.compile(
    rf"(?:{_LEAD}|{_REVIEW_AND}){_QUALIFIERS}(?P<kind>network\s+)?{_META}"
    rf"|^\W*(?:{_REVIEW_AND})?{_QUALIFIERS}(?P<opening>network\s+)?{_META}"
    r"\s+(?:of|on|and|comparing|to|for)\b",
    re.I,
)

_COHORT = re.compile(
    r"\bcohort\s+study\b"
    r"|\b(?:prospective|retrospective|historical|population[- ]based|nationwide|national"
    r"|register[- ]based|registry[- ]based|longitudinal|birth|inception|multicent(?:er|re)"
    r"|community[- ]based|hospital[- ]based|matched)\s+(?:[\w-]+\s+){0,2}?cohort\b(?!s)",
    re.I,
)
_OBSERVATIONAL = re.compile(
    rf"{_NOT_AFTER}\bobservational(?:[\s,-]+[\w-]+){{0,3}}?[\s,-]+(?:study|cohort|analysis)\b"
    r"|\bcase[- ]control\s+study\b|\bcross[- ]sectional\s+(?:[\w-]+\s+){0,2}?study\b"
    r"|\bretrospective\s+(?:[\w-]+\s+){0,2}?study\b",
    re.I,
)

# Guidelines: the title names itself one ("ESC Guidelines for …", "… Consensus Guidelines 2022",
# "…: a clinical practice guideline from …"); not a study of guidelines ("Adherence to
# guidelines for …", "guideline-directed therapy").
_GUIDELINE = re.compile(
    r"\bguidelines?\s+(?:for|on)\b|\bguidelines?\s+\d{4}\b"
    r"|\b\d{4}\s+(?:[\w/&-]+\s+){0,3}?guidelines?\b"
    r"|(?:^|[:.—–]\s*)(?:an?\s+|the\s+)?(?:[\w/&-]+\s+){0,5}?guidelines?"
    r"(?:\s+(?:from|of|by)\b[^:]*)?\W*$",
    re.I,
)
_NOT_A_GUIDELINE = re.compile(
    r"\b(?:adherence|complian\w*|concordan\w*|implement\w*|awareness|uptake|adoption|impact"
    r"|evaluation|appraisal|quality|knowledge|variation|deviat\w*|according|following"
    r"|beyond|versus|vs|review|comparison)\b[^:]*\bguidelines?\b|\bguidelines?-",
    re.I,
)
_CONSENSUS = re.compile(
    r"(?<!lack of )(?<!towards )(?<!toward )\bconsensus\s+(?:statement|report|guidance"
    r"|recommendations?|document|conference|paper|criteria)\b"
    r"|\b(?:position|scientific)\s+statement\b"
    r"|^\W*(?:(?:expert|international|joint|national|global|multidisciplinary|multisociety"
    r"|delphi|european|american|asian|chinese|japanese|korean|british|canadian|australian"
    r"|indian|german|french|italian|spanish|nordic|(?-i:[A-Z][A-Z0-9/&-]+))\s+){1,4}"
    r"consensus\s+(?:on|for|of)\b",
    re.I,
)


def from_title(art: Article) -> tuple[str, ...]:
    """The designs `art`'s title states, when NLM has not indexed it and it reports research."""
    if art.status in INDEXED or NOT_RESEARCH.intersection(art.publication_types):
        return ()
    return read(art.title)


def read(title: str) -> tuple[str, ...]:
    """The designs a research article's `title` states, strongest evidence first."""
    title = " ".join(title.split())
    if (
        _NOT_RESEARCH_TITLE.search(title)
        or _PROTOCOL.search(title)
        or "review protocol" in title.lower()
    ):
        return ()
    found: list[str] = []
    meta = _META_ANALYSIS.search(title)
    if meta:
        found.append(NETWORK_META_ANALYSIS if meta["kind"] or meta["opening"] else META_ANALYSIS)
    if _SYSTEMATIC_REVIEW.search(title):
        found.append(SYSTEMATIC_REVIEW)
    if not found and not _NOT_THE_TRIAL.search(title):
        # Only when no synthesis was found: a meta-analysis of randomised trials is not a trial.
        if _RANDOMISED.search(title):
            found.append(RCT)
        found += _phases(title)
    if not found:
        if _COHORT.search(title):
            found.append(COHORT)
        elif _OBSERVATIONAL.search(title):
            found.append(OBSERVATIONAL)
    if _GUIDELINE.search(title) and not _NOT_A_GUIDELINE.search(title):
        found.append(GUIDELINE)
    elif _CONSENSUS.search(title):
        found.append(CONSENSUS)
    return tuple(found)


def protocol_in_title(title: str) -> bool:
    """Whether the title says the paper is a protocol (of a trial, a study or a review)."""
    return bool(_PROTOCOL.search(title))


def _phases(title: str) -> list[str]:
    """ "Phase I trial" … "Phase IV trial", "Phase I/II trial" for a phase 1b/2 study; a phase
    named without a trial or study after it is something else ("phase II metabolism")."""
    for m in _PHASE.finditer(title):
        if not m["rest"] or (_PLURAL.search(m["rest"]) and not m["several"]):
            continue
        first = _ROMAN[m["a"].lower().rstrip("abc")]
        last = _ROMAN[m["b"].lower().rstrip("abc")] if m["b"] else first
        if last == first + 1 and last <= 3:
            return [f"Phase {_PHASE_NAMES[first]}/{_PHASE_NAMES[last]} trial"]
        return [f"Phase {_PHASE_NAMES[max(first, last)]} trial"]
    return []
