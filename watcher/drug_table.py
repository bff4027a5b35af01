"""The drug table: each therapeutic antibody (and related biologic) by its INN, with its target,
former code names, brands and abbreviations. The shipped table is watcher/data/antibodies.toml;
a config adds to it ([drugs] file, [[drug]] entries), read and checked here at load. Finding the
table's drugs in a paper is the digest's (watcher/digest/drugs.py).
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from watcher.paths import shipped

TABLE = shipped("data") / "antibodies.toml"
DRUG_KEYS = ("inn", "target", "label", "codes", "brands", "abbreviations")

GREEK = {
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
# The parts of a name: runs of Latin letters, of digits, single Greek letters. Between them a
# paper may write nothing, a space, a hyphen or brackets: "hOKT3γ1(Ala-Ala)", "hOKT3 gamma 1 (Ala
# Ala)", "muromonab-CD3", "muromonab CD3".
NAME_PART = re.compile(r"[A-Za-z]+|\d+|[" + "".join(GREEK) + "]")
_KEY_DROP = re.compile(r"[\W_]+")


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
    if not isinstance(inn, str) or not NAME_PART.search(inn):
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
            isinstance(v, str) and NAME_PART.search(v) for v in value
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
    for letter, name in GREEK.items():
        if letter in text:
            text = text.replace(letter, name)
    return _KEY_DROP.sub("", text)


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
