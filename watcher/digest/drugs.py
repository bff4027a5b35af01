"""Which therapeutic antibodies (and related biologics) a paper names. Pure: no I/O but the
shipped table's first reading (drug_table.py).

The table (watcher/data/antibodies.toml, extended from the config; drug_table.py) gives each
drug's INN, target, former code names and brands; a paper that writes "hOKT3γ1(Ala-Ala)",
"ChAglyCD3" or "MabThera" is tagged teplizumab, otelixizumab or rituximab. Outside the table, a
word shaped like a WHO INN for an antibody still counts: the -mab stem, and the four stems of
the 2021 scheme (-tug, -bart, -mig, -ment; https://www.who.int/publications/m/item/inn-22-542).

A tag says the paper is about the drug given to patients, so names that double as laboratory
words need their sentence to say so. An INN or a brand names the medicine wherever it stands.
A code name is also the clone's name on the vial (OKT3 stimulates T cells in vitro in thousands
of papers): in a sentence about cell culture, staining or flow cytometry it tags nothing. An
abbreviation (ATG is anti-thymocyte globulin, and also the start codon and the autophagy genes
ATG5, ATG7 …) tags only in a sentence with clinical words (patients, dose, transplant,
induction, globulin …), never followed by a digit, never beside gene words. A drug named only
in such laboratory sentences is not taken from the record's keywords or substance list either:
NLM indexes the reagent under the drug's name too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import NamedTuple

from watcher.digest import sentences
from watcher.drug_table import GREEK, NAME_PART, Drug, merged, name_key, shipped_drugs
from watcher.models import Article

_GREEK_NAMES = {name: [g for g, n in GREEK.items() if n == name] for name in GREEK.values()}
_SEP = r"[\s\-‐‑‒–—()\[\]/.:,]{0,3}"

# A word that may be an antibody INN: ends in one of the stems, starts with a letter.
_STEM_WORD = re.compile(r"\b[A-Za-z][a-z]{3,}(?:mab|tug|bart|mig|ment)\b")
_NEW_STEMS = ("tug", "bart", "mig", "ment")
# Target substems that stand before the 2021 stems (verekitug, tegoprubart, tobevibart,
# rilvegostomig): without one, "-ment" and "-bart" words are English or surnames.
_TARGET_INFIXES = (
    "ami",
    "ba",
    "ci",
    "fung",
    "gros",
    "ki",
    "ler",
    "li",
    "ne",
    "os",
    "pru",
    "sto",
    "ta",
    "tox",
    "toxa",
    "vet",
    "vi",
)
# English words that still take that shape; and -mab words that name no drug (HuMab mice …).
_NOT_INNS = frozenset(
    {
        "compliment",
        "testament",
        "refinement",
        "confinement",
        "postponement",
        "dethronement",
        "enthronement",
        "adjournment",
        "humab",
        "ultimab",
        "panmab",
    }
)
_MIN_STEM_PREFIX = 4  # letters before the stem: "Hobart", "tug", "Bart" are not drugs

# How a name in the table is matched: a medicine's name (INN, brand, an INN-shaped former name),
# a code name that may be a laboratory clone, an abbreviation that may be something else.
NAME, CODE, ABBREVIATION = "name", "code", "abbreviation"
# A sentence that uses an antibody as a laboratory reagent, not as a treatment.
_REAGENT = re.compile(
    r"\bin vitro\b|\bex vivo\b|\bclones?\b|\bstain(?:s|ed|ing)?\b|\bflow cytometr\w*|\bFACS\b"
    r"|\bplate[- ]bound\b|\bcoated\b|\bimmobili[sz]ed\b|\bbeads?\b|\bcross-?link\w*"
    r"|\b(?:stimulat|activat)\w*\s+(?:with|by)\b|-(?:stimulated|activated)\b|\bcultur\w*"
    r"|\bhybridomas?\b|\bimmunohistochem\w*|\bimmunofluoresc\w*|\bwestern blot\w*|\bELISA\b",
    re.I,
)
# Words of a sentence about giving a drug to people.
_CLINICAL = re.compile(
    r"\b(?:patients?|participants?|recipients?|subjects|children|adults|treat\w*|therap\w*"
    r"|dos(?:e|es|ed|ing)|mg/kg|infus\w*|inject\w*|administ\w*|induction|transplant\w*|grafts?"
    r"|allograft\w*|rejection|conditioning|immunosuppress\w*|lymphodeplet\w*|randomi[sz]\w*"
    r"|placebo|trials?|regimens?|course|clinical|thymocytes?|globulins?|thymoglobulin|G-CSF"
    r"|GVHD|graft-versus-host)\b",
    re.I,
)
# Words of a sentence about a gene or a sequence (ATG the codon, ATG5 the autophagy gene).
_GENE = re.compile(
    r"\b(?:genes?|genetic\w*|genom\w*|codons?|autophag\w*|mitophagy|knock(?:out|down|ed)\w*"
    r"|mRNAs?|siRNAs?|shRNAs?|promoters?|transcripts?|transcription\w*|alleles?|mutants?"
    r"|mutations?|exons?|introns?|ORFs?|open reading frame|nucleotides?|plasmids?|CRISPR"
    r"|translation|homologs?|orthologs?|yeast|Drosophila|Arabidopsis|LC3\w*|beclin\w*"
    r"|lysosom\w*|phagophores?|autophagosom\w*)\b",
    re.I,
)
_GENE_AFTER = re.compile(
    r"[\s-]*(?:genes?|proteins?|codons?|start|initiat\w*|sites?|motifs?|triplets?|sequences?"
    r"|family|homologs?)\b",
    re.I,
)
# A number after it: a gene's (ATG5, "ATG 7", ATG-16L1), unless it is a dose ("rATG 6 mg/kg").
_DIGIT_AFTER = re.compile(
    r"[\s\-‐‑]?\d(?![\d.,]*\s*(?:mg|µg|μg|mcg|g/kg|ml|%|doses?|days?|weeks?)(?![a-z]))", re.I
)


class Mention(NamedTuple):
    """A drug a paper names, with what the digest shows beside it."""

    inn: str
    action: str  # "" when the drug is known only by its INN stem


def _first_parts(name: str) -> set[str]:
    """The first part of `name` as a text may spell it: lower case, a Greek letter either way."""
    first = NAME_PART.search(unicodedata.normalize("NFKC", name))
    if first is None:
        return set()
    part = first.group().lower()
    greek = GREEK.get(part)
    return {part, greek, *_GREEK_NAMES[greek]} if greek else {part}


def _pattern(name: str) -> str:
    parts = []
    for part in NAME_PART.findall(unicodedata.normalize("NFKC", name)):
        if part in GREEK:
            spellings = [GREEK[part], *_GREEK_NAMES[GREEK[part]]]
        elif part.lower() in _GREEK_NAMES:
            spellings = [part, *_GREEK_NAMES[part.lower()]]
        else:
            spellings = [part]
        parts.append(
            "(?:" + "|".join(re.escape(s) for s in spellings) + ")"
            if len(spellings) > 1
            else re.escape(part)
        )
    return _SEP.join(parts)


class Vocabulary:
    """The drug table compiled into regular expressions, one per way a name can begin, each
    compiled when a text first needs it; built once per run (see vocabulary)."""

    def __init__(self, drugs: Iterable[Drug]) -> None:
        self.by_key: dict[str, Drug] = {}
        self.by_abbreviation: dict[str, Drug] = {}
        self.kind: dict[str, str] = {}  # name key → NAME, CODE or ABBREVIATION
        names: dict[str, set[str]] = {}  # pattern → the first parts it may begin with
        abbreviations: dict[str, set[str]] = {}
        for drug in merged(drugs):
            for name in drug.names:
                key = name_key(name)
                self.by_key[key] = drug
                self.kind[key] = NAME
                names[_pattern(name)] = _first_parts(name)
            for code in drug.codes:
                key = name_key(code)
                if not looks_like_inn(key):  # "dacliximab", "atlizumab": former INNs
                    self.kind[key] = CODE
            for abbr in drug.abbreviations:
                key = name_key(abbr)
                self.by_abbreviation[key] = drug
                self.kind.setdefault(key, ABBREVIATION)
                abbreviations[f"(?-i:{_pattern(abbr)})"] = _first_parts(abbr)
        # Longest first, so "Orthoclone OKT3" wins over "Orthoclone"; abbreviations last.
        self._alternatives: dict[str, list[str]] = {}
        for table in (names, abbreviations):
            for pattern in sorted(table, key=len, reverse=True):
                for start in table[pattern]:
                    self._alternatives.setdefault(start, []).append(pattern)
        self._longest = max(map(len, self._alternatives), default=0)
        self._compiled: dict[str, re.Pattern[str]] = {}

    def matches(self, text: str) -> Iterator[re.Match[str]]:
        """Where `text` names a drug of the table, left to right, without overlaps. Only where a
        word begins with a name's first part is a name tried: one expression of all 600 names
        tried at every position took four times as long, and as long again to compile."""
        end = 0
        for word in NAME_PART.finditer(text):
            if word.start() < end:
                continue
            w = word.group().lower()
            for size in range(min(len(w), self._longest), 0, -1):
                if w[:size] not in self._alternatives:
                    continue
                m = self._regex(w[:size]).match(text, word.start())
                if m:
                    yield m
                    end = m.end()
                    break

    def _regex(self, start: str) -> re.Pattern[str]:
        regex = self._compiled.get(start)
        if regex is None:
            alternatives = "|".join(self._alternatives[start])
            regex = re.compile(r"(?<!\w)(?:" + alternatives + r")(?!\w)", re.I)
            self._compiled[start] = regex
        return regex

    def find(self, texts: Iterable[str]) -> tuple[Mention, ...]:
        """The drugs named in `texts` (a title, abstract sections), in the order first named;
        each INN once."""
        return self._scan(texts, ())

    def article_drugs(self, art: Article) -> tuple[Mention, ...]:
        return self._scan(_prose(art), (*art.keywords, *art.substances))

    def _scan(self, prose: Iterable[str], terms: Iterable[str]) -> tuple[Mention, ...]:
        found: dict[str, Mention] = {}
        in_the_lab: set[str] = set()  # drugs named only as reagents or genes so far
        for text in prose:
            if not text:
                continue
            for m in self.matches(text):
                key = name_key(m.group())
                drug = self.by_key.get(key) or self.by_abbreviation.get(key)
                if drug is None:
                    continue
                if self._as_treatment(self.kind.get(key, NAME), text, m.start(), m.end()):
                    found.setdefault(drug.inn.lower(), Mention(drug.inn, drug.action))
                else:
                    in_the_lab.add(drug.inn.lower())
            self._stem_words(text, found)
        for term in terms:
            if not term:
                continue
            for m in self.matches(term):
                key = name_key(m.group())
                drug = self.by_key.get(key)  # an abbreviation alone says too little
                if drug is None or (drug.inn.lower() in in_the_lab - found.keys()):
                    continue
                found.setdefault(drug.inn.lower(), Mention(drug.inn, drug.action))
            self._stem_words(term, found)
        return tuple(found.values())

    def _stem_words(self, text: str, found: dict[str, Mention]) -> None:
        for m in _STEM_WORD.finditer(text):
            word = m.group().lower()
            if word in found or word in self.by_key or not looks_like_inn(word):
                continue
            found[word] = Mention(word, "")

    @staticmethod
    def _as_treatment(kind: str, text: str, start: int, end: int) -> bool:
        """Whether the name at text[start:end] stands for the drug given to patients."""
        if kind == NAME:
            return True
        sentence = sentences.around(text, start, end)
        if kind == ABBREVIATION and (
            _DIGIT_AFTER.match(text, end)
            or _GENE_AFTER.match(text, end)
            or _GENE.search(sentence)
            or not _CLINICAL.search(sentence)
        ):
            return False
        return not _REAGENT.search(sentence)


def looks_like_inn(word: str) -> bool:
    """Whether a lower-case word has the shape of an antibody INN outside the table."""
    if word in _NOT_INNS:
        return False
    if word.endswith("mab"):
        return len(word) - 3 >= _MIN_STEM_PREFIX
    for stem in _NEW_STEMS:
        if word.endswith(stem):
            head = word[: -len(stem)]
            return any(
                head.endswith(infix) and len(head) - len(infix) >= 3 for infix in _TARGET_INFIXES
            )
    return False


def _prose(art: Article) -> Iterator[str]:
    yield art.title
    for section in art.abstract:
        yield section.text


@lru_cache(maxsize=8)
def vocabulary(extra: tuple[Drug, ...] = ()) -> Vocabulary:
    """The shipped table plus the config's entries, compiled once per distinct set."""
    return Vocabulary((*shipped_drugs(), *extra))
