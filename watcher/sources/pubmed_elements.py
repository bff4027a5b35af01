"""Reading lxml elements of PubMed XML: the first child of each tag, an element's text, and
its inline markup (<i>, <sup>, <sub>, MathML) as plain text with Unicode scripts. Pure."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from watcher.text.subscripts import subscript, superscript

_MATHML = "{http://www.w3.org/1998/Math/MathML}"


def children(el: Any) -> dict[str, Any]:
    """First child element per tag (comments and processing instructions skipped)."""
    out: dict[str, Any] = {}
    for child in el:
        tag = child.tag
        if isinstance(tag, str) and tag not in out:
            out[tag] = child
    return out


def text_of(el: Any) -> str | None:
    if el is None:
        return None
    text = el.text
    return text.strip() or None if text else None


def clean(el: Any) -> str:
    """An element's text with inline markup (<i>, <sup>, MathML…) turned into plain text."""
    if el is None:
        return ""
    text = (el.text or "") if len(el) == 0 else "".join(_flatten(el))
    if not text.isascii() or "\n" in text or "  " in text or "\t" in text:
        return " ".join(text.split())  # str.split knows Unicode spaces (NBSP, thin space)
    return text.strip()


def _flatten(el: Any) -> Iterator[str]:
    """The text of `el` and its descendants in document order, without recursion: a record
    with thousands of nested inline tags must not exhaust Python's stack."""
    # Each entry is an element still to open, or a tail string to emit once its element is done.
    todo: list[Any] = [el]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            yield item
            continue
        if item.text:
            tag = item.tag if isinstance(item.tag, str) else ""
            if tag == "sup" or tag == f"{_MATHML}msup":
                yield superscript(item.text)
            elif tag == "sub":
                yield subscript(item.text)
            else:
                yield item.text
        pending: list[Any] = []
        for child in item:
            if isinstance(child.tag, str):
                if child.tag == f"{_MATHML}math":
                    pending.append(child.get("alttext") or _math(child))
                else:
                    pending.append(child)
            if child.tail:
                pending.append(child.tail)
        todo.extend(reversed(pending))


# MathML nested deeper than this is read as its plain text: real formulas nest a dozen levels.
_MATH_DEPTH = 64


def _math(el: Any, depth: int = 0) -> str:
    """MathML as readable text: ³He, x², CO₂. Layout whitespace between elements is dropped."""
    tag = el.tag.removeprefix(_MATHML) if isinstance(el.tag, str) else ""
    kids = [c for c in el if isinstance(c.tag, str)]
    if tag in ("mi", "mn", "mo", "mtext", "ms") or depth > _MATH_DEPTH:
        return "".join(el.itertext())
    if tag == "none" or tag == "mprescripts":
        return ""
    if tag == "msup" and len(kids) == 2:
        return _math(kids[0], depth + 1) + superscript(_math(kids[1], depth + 1))
    if tag == "msub" and len(kids) == 2:
        return _math(kids[0], depth + 1) + subscript(_math(kids[1], depth + 1))
    if tag == "msubsup" and len(kids) == 3:
        return (
            _math(kids[0], depth + 1)
            + subscript(_math(kids[1], depth + 1))
            + superscript(_math(kids[2], depth + 1))
        )
    if tag == "mmultiscripts" and kids:
        split = next((i for i, k in enumerate(kids) if k.tag == f"{_MATHML}mprescripts"), len(kids))
        post, pre = kids[1:split], kids[split + 1 :]

        def scripts(pairs: list[Any]) -> str:
            return "".join(
                subscript(_math(sub, depth + 1)) + superscript(_math(sup, depth + 1))
                for sub, sup in zip(pairs[::2], pairs[1::2], strict=False)
            )

        return scripts(pre) + _math(kids[0], depth + 1) + scripts(post)
    return "".join(_math(k, depth + 1) for k in kids)
