"""Superscripts and subscripts in article text (PubMed's <sup>/<sub>, MathML's msup/msub), one
mechanism for every reader and both parts of the digest. Pure.

Text keeps a script in Unicode's forms where every character has one (10³, CO₂, 18ᵗʰ, Cₘₐₓ);
otherwise as written after a mark, ^ or _ (OR_Q4, p_trend, β_difference): the text part shows it
so, the HTML part as <sup>/<sub> again (see html).
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Unicode's superscript and subscript forms (its Superscripts and Subscripts block and the
# modifier letters of Phonetic Extensions): q has no superscript, most letters no subscript.
_SUP = str.maketrans(
    "0123456789+-=()abcdefghijklmnoprstuvwxyzABDEGHIJKLMNOPRTUVWβγδφχ",
    "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻᴬᴮᴰᴱᴳᴴᴵᴶᴷᴸᴹᴺᴼᴾᴿᵀᵁⱽᵂᵝᵞᵟᵠᵡ",
)
_SUB = str.maketrans(
    "0123456789+-=()aehijklmnoprstuvxβγρφχə",
    "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓᵦᵧᵨᵩᵪₔ",
)
SUP_MARK = "^"
# Subscripts that plain text writes on the line by convention: glycated haemoglobin is HbA1c in
# every diabetes paper's plain text (and A1C in the ADA's Standards of Care), never HbA_1c.
_ON_THE_LINE = frozenset({"1c", "1C"})
SUB_MARK = "_"


def superscript(text: str) -> str:
    return _script(text, _SUP, SUP_MARK)


def subscript(text: str) -> str:
    if text.strip() in _ON_THE_LINE:
        return text
    return _script(text, _SUB, SUB_MARK)


def _script(text: str, table: dict[int, int], mark: str) -> str:
    """`text` in Unicode's forms where each character has one; else after `mark`, as written. A
    symbol already raised or lowered (², †, ®) needs no form of its own."""
    core = text.strip()
    if all(ord(c) in table or not (c.isascii() or c.isalpha()) for c in core):
        return text.translate(table)
    lead = text[: len(text) - len(text.lstrip())]
    return f"{lead}{mark}{core}{text[len(text.rstrip()) :]}"


# A mark after a character of the word it belongs to, and the script it marks: letters, digits
# and the signs scripts are written with (OXA-48, Q4, a half-life's 1/2, but not 10^6's "/mL").
# A sentence's full stop after it is not part of it.
_MARKED = re.compile(
    r"(?<=[^\s_^])([_^])([0-9A-Za-z\u00c0-\u024f\u0370-\u03ff+\-−′.]+(?:/[0-9]+)?)"
)
_NOT_PROSE = ("://", "www.", "@")


class MarkedText(str):
    """Article text (a title, an abstract's sentences) that may hold marked scripts: the HTML
    digest's renderer shows it through `html`; anywhere else it is the plain str it is."""


def html(text: str) -> str:
    """`text` escaped for HTML as Jinja escapes it, its marked scripts as <sup>/<sub>:
    "OR_Q4=2.78" → "OR<sub>Q4</sub>=2.78". A word that is an address or an identifier (a URL,
    an e-mail address, a probe such as 207113_s_at) is left as written."""
    from markupsafe import escape  # Jinja's own escaping, imported when a digest is rendered

    return "".join(
        _marked(word, escape) if _prose_marked(word) else escape(word)
        for word in re.split(r"(\s+)", text)
    )


def _prose_marked(word: str) -> bool:
    if SUB_MARK not in word and SUP_MARK not in word:
        return False
    return word.count(SUB_MARK) < 2 and not any(s in word for s in _NOT_PROSE)


def _marked(word: str, escape: Callable[[str], str]) -> str:
    out, at = [], 0
    for m in _MARKED.finditer(word):
        run = m.group(2).rstrip(".-")
        if not run:
            continue
        tag = "sup" if m.group(1) == SUP_MARK else "sub"
        out += [escape(word[at : m.start()]), f"<{tag}>{escape(run)}</{tag}>"]
        at = m.start(2) + len(run)
    out.append(escape(word[at:]))
    return "".join(out)
