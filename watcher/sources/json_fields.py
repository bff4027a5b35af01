"""Fields of a registry's JSON record (Europe PMC, ClinicalTrials.gov), read by the type they
should have. A field a changed or hostile API sends in another shape reads as absent, so one odd
field costs that field only: never the record, nor the poll an internal error. Pure.

Each accessor takes the value to start from and a path of object keys; a step that is missing
or not an object ends the walk with None.
"""

from __future__ import annotations

import re
from typing import Any

JsonObject = dict[str, Any]

_TOKEN = re.compile(r"[^\s\x00-\x1f\x7f]+")


def at(data: object, *path: str) -> object:
    """The value at `path`, or None."""
    for name in path:
        if not isinstance(data, dict):
            return None
        data = data.get(name)
    return data


def obj(data: object, *path: str) -> JsonObject:
    """The object at `path`; {} when absent or not an object."""
    value = at(data, *path)
    return value if isinstance(value, dict) else {}


def text(data: object, *path: str) -> str | None:
    """The string at `path` (an integer counts, written in digits: ids come either way)."""
    value = at(data, *path)
    if isinstance(value, str):
        return value
    # bool is an int; an integer past 64 bits is no id (and str() refuses past 4,300 digits).
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() <= 64:
        return str(value)
    return None


def token(data: object, *path: str, limit: int = 64) -> str | None:
    """An identifier at `path`: one word of printable characters, at most `limit` long (its
    column's width: an identity is never cut to fit)."""
    value = (text(data, *path) or "").strip()
    return value if len(value) <= limit and _TOKEN.fullmatch(value) else None


def number(data: object, *path: str, limit: int) -> int | None:
    """A whole number in 0..limit at `path`, as a JSON number or as ASCII digits."""
    value = at(data, *path)
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():  # False for NaN and the infinities
        value = int(value)
    if isinstance(value, str):
        digits = value.strip()
        # "²" and "١" are digits to str.isdigit but not to int(); the length check spares
        # parsing a 4,000-digit string into a number the store could not hold anyway.
        if not (digits.isascii() and digits.isdigit()) or len(digits) > len(str(limit)):
            return None
        value = int(digits)
    return value if isinstance(value, int) and 0 <= value <= limit else None


def objects(data: object, *path: str) -> list[JsonObject]:
    """The objects listed at `path` (one object alone counts as a list of one); entries of
    another type are left out."""
    value = at(data, *path)
    return [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, dict)]


def texts(data: object, *path: str) -> list[str]:
    """The strings listed at `path` (one string alone counts as a list of one)."""
    value = at(data, *path)
    return [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]
