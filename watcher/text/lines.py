"""Text on one line: a title or a notice in a line of the digest, a value in a mail header."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def one_line(text: str) -> str:
    """`text` with its runs of whitespace (line breaks included) as single spaces."""
    return " ".join(text.split())


def header_safe(text: str, limit: int = 200) -> str:
    """No CR, LF or other control character from data ever reaches a header."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
