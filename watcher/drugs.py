"""Which therapeutic antibodies (and related biologics) a paper names. Pure: no I/O but reading
the shipped table.

The table (watcher/data/antibodies.toml, extended from the config) gives each drug's INN, target,
former code names and brands; a paper that writes "hOKT3γ1(Ala-Ala)", "ChAglyCD3" or "MabThera"
is tagged teplizumab, otelixizumab or rituximab. Outside the table, a word shaped like a WHO INN
for an antibody still counts: the -mab stem, and the four stems of the 2021 scheme (-tug, -bart,
-mig, -ment; https://www.who.int/publications/m/item/inn-22-542).
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from watcher.models import Article

TABLE = Path(__file__).resolve().parent / "data" / "antibodies.toml"
DRUG_KEYS = ("inn", "target", "label", "codes", "brands", "abbreviations")

_GREEK = {
    "α": "alpha",
    "β": "beta",
    "γ": "gamma",
    "ɣ": "gamma",  # LATIN SMALL LETTER GAMMA, which some publishers' fonts put in for γ
    "δ": "delta",
    "ε": "epsilon",
    "κ": "kappa",
    "λ": "lambda",
    "ζ": "zeta",
    "θ": "theta",
    "ω": "omega",
}
_GREEK_NAMES = {name: [g for g, n in _GREEK.items() if n == name] for name in _GREEK.values()}
# The parts of a name: runs of Latin letters, of digits, single Greek letters. Between them a
# paper may write nothing, a space, a hyphen or brackets: "hOKT3γ1(Ala-Ala)", "hOKT3 gamma 1 (Ala
# Ala)", "muromonab-CD3", "muromonab CD3".
_PART = re.compile(r"[A-Za-z]+|\d+|[" + "".join(_GREEK) + "]")
_SEP = r"[\s\-‐‑‒–—()\[\]/.:,]{0,3}"
_KEY_DROP = re.compile(r"[\W_]+")

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


class Drug(NamedTuple):
    inn: str
    target: str | None = None
    label: str | None = None
    codes: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    abbreviations: tuple[str, ...] = ()

    @property
    def action(self) -> str:
        """What it does, as the digest writes it: "anti-CD3", "CTLA4-Ig (CD80/CD86)"."""
        if self.label:
            return self.label
        return f"anti-{self.target}" if self.target else ""

    @property
    def names(self) -> tuple[str, ...]:
        return (self.inn, *self.codes, *self.brands)


class Mention(NamedTuple):
    """A drug a paper names, with what the digest shows beside it."""

    inn: str
    action: str  # "" when the drug is known only by its INN stem


def parse_table(data: Mapping[str, Any], where: str) -> tuple[Drug, ...]:
    """`[[drug]]` entries → Drugs. Raises ValueError naming the entry and key at fault."""
    raw = data.get("drug", [])
    if not isinstance(raw, list):
        raise ValueError(f"{where}: drug must be an array of tables: write [[drug]]")
    return tuple(drug_entry(entry, f"{where}: drug[{i}]") for i, entry in enumerate(raw))


def drug_entry(entry: Any, where: str) -> Drug:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: must be a table")
    unknown = sorted(set(entry) - set(DRUG_KEYS))
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown key (a drug has {', '.join(DRUG_KEYS)})")
    inn = entry.get("inn")
    if not isinstance(inn, str) or not _PART.search(inn):
        raise ValueError(f"{where}.inn: is required, a name such as 'teplizumab'")
    values: dict[str, Any] = {"inn": inn.strip()}
    for key in ("target", "label"):
        value = entry.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"{where}.{key}: must be a non-empty string")
        values[key] = value.strip() if value else None
    for key in ("codes", "brands", "abbreviations"):
        value = entry.get(key, [])
        if not isinstance(value, list) or not all(
            isinstance(v, str) and _PART.search(v) for v in value
        ):
            raise ValueError(f"{where}.{key}: must be an array of names")
        values[key] = tuple(v.strip() for v in value)
    return Drug(**values)


@lru_cache(maxsize=1)
def shipped_drugs() -> tuple[Drug, ...]:
    return parse_table(tomllib.loads(TABLE.read_text(encoding="utf-8")), str(TABLE))


def name_key(text: str) -> str:
    """One spelling per name: lower case, Greek letters spelt out, no spaces or punctuation."""
    text = unicodedata.normalize("NFKC", text).lower()
    for letter, name in _GREEK.items():
        if letter in text:
            text = text.replace(letter, name)
    return _KEY_DROP.sub("", text)


def _pattern(name: str) -> str:
    parts = []
    for part in _PART.findall(unicodedata.normalize("NFKC", name)):
        if part in _GREEK:
            spellings = [_GREEK[part], *_GREEK_NAMES[_GREEK[part]]]
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
    """The drug table compiled into one regular expression; built once per run (see vocabulary)."""

    def __init__(self, drugs: Iterable[Drug]) -> None:
        self.by_key: dict[str, Drug] = {}
        self.by_abbreviation: dict[str, Drug] = {}
        names: dict[str, None] = {}
        abbreviations: dict[str, None] = {}
        for drug in merged(drugs):
            for name in drug.names:
                self.by_key[name_key(name)] = drug
                names[_pattern(name)] = None
            for abbr in drug.abbreviations:
                self.by_abbreviation[name_key(abbr)] = drug
                abbreviations[_pattern(abbr)] = None
        # Longest first, so "Orthoclone OKT3" wins over "Orthoclone".
        alternatives = sorted(names, key=len, reverse=True)
        alternatives += [f"(?-i:{p})" for p in sorted(abbreviations, key=len, reverse=True)]
        self.regex = re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.I)

    def find(self, texts: Iterable[str]) -> tuple[Mention, ...]:
        """The drugs named in `texts`, in the order first named; each INN once."""
        found: dict[str, Mention] = {}
        for text in texts:
            if not text:
                continue
            for m in self.regex.finditer(text):
                key = name_key(m.group())
                drug = self.by_key.get(key) or self.by_abbreviation.get(key)
                if drug is not None:
                    found.setdefault(drug.inn.lower(), Mention(drug.inn, drug.action))
            for m in _STEM_WORD.finditer(text):
                word = m.group().lower()
                if word in found or word in self.by_key or not looks_like_inn(word):
                    continue
                found[word] = Mention(word, "")
        return tuple(found.values())

    def article_drugs(self, art: Article) -> tuple[Mention, ...]:
        return self.find(_texts(art))


def merged(drugs: Iterable[Drug]) -> list[Drug]:
    """One entry per INN: a later entry (the user's) adds its names to an earlier one of the same
    INN, and its target and label, when given, replace the earlier ones."""
    out: dict[str, Drug] = {}
    for drug in drugs:
        key = name_key(drug.inn)
        old = out.get(key)
        if old is None:
            out[key] = drug
            continue
        out[key] = Drug(
            old.inn,
            drug.target or old.target,
            drug.label or (None if drug.target else old.label),
            tuple(dict.fromkeys(old.codes + drug.codes)),
            tuple(dict.fromkeys(old.brands + drug.brands)),
            tuple(dict.fromkeys(old.abbreviations + drug.abbreviations)),
        )
    return list(out.values())


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


def _texts(art: Article) -> Iterator[str]:
    yield art.title
    for section in art.abstract:
        yield section.text
    yield from art.keywords
    yield from art.substances


@lru_cache(maxsize=8)
def vocabulary(extra: tuple[Drug, ...] = ()) -> Vocabulary:
    """The shipped table plus the config's entries, compiled once per distinct set."""
    return Vocabulary((*shipped_drugs(), *extra))


def load_drug_file(path: Path) -> tuple[Drug, ...]:
    """A user's table in the shipped table's format. Raises ValueError saying what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: TOML syntax error: {exc}") from None
    extra = sorted(set(data) - {"drug"})
    if extra:
        raise ValueError(f"{path}: unknown key {extra[0]!r} (the file holds [[drug]] tables)")
    return parse_table(data, str(path))
