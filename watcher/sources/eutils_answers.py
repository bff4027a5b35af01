"""What E-utilities' answers mean, apart from how they are fetched: esearch XML and JSON (old DTD
or new), NCBI's error bodies, and NCBI's 200-with-an-error answers. Pure: bytes in, data out.

E-utilities reference: https://www.ncbi.nlm.nih.gov/books/NBK25499/
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from lxml import etree

from watcher.errors import QueryError
from watcher.sources.http import RetryableError, snippet
from watcher.sources.pubmed_xml import XmlError


@dataclass(frozen=True)
class SearchPage:
    count: int
    pmids: list[int]
    webenv: str | None
    query_key: str | None
    query_translation: str | None
    errors: list[str]
    warnings: list[str]


def check_body(body: bytes) -> None:
    """NCBI sometimes answers 200 with a JSON rate-limit error or an HTML error page."""
    head = body[:512].lstrip()
    if head.startswith(b"{") and b'"error"' in head:
        try:
            message = json.loads(body).get("error", "")
        except ValueError:
            message = snippet(body)
        # {"error":"API rate limit exceeded",...} under a 200 is a 429 in all but its status.
        raise RetryableError(f"NCBI error: {message}", throttled="rate limit" in str(message))
    lower = head[:200].lower()
    if lower.startswith((b"<!doctype html", b"<html")):
        raise RetryableError(f"an HTML page instead of data: {snippet(body)}")
    if not head:
        raise RetryableError("an empty body")


_WHOLE_ERROR = re.compile(rb"<(e\w+Result)>\s*<ERROR>(.*?)</ERROR>\s*</\1>", re.S)


def ncbi_error(body: bytes) -> str | None:
    """The message of an E-utilities answer that is only an error, in any utility's XML
    (<eSearchResult><ERROR>…) or JSON ({"esearchresult": {"ERROR": …}}); else None."""
    head = body[:4096].lstrip()
    if head.startswith(b"{"):
        try:
            data = json.loads(body)
        except ValueError:
            return None
        inner = next((v for k, v in data.items() if k.endswith("result")), data)
        if isinstance(inner, dict) and "ERROR" in inner and len(inner) == 1:
            return str(inner["ERROR"])
        return None
    m = _WHOLE_ERROR.search(head)
    return " ".join(m.group(2).decode("utf-8", "replace").split()) if m else None


def parse_esearch(body: bytes) -> SearchPage:
    """An esearch answer, XML or JSON, old DTD or new. An <ERROR> is a QueryError."""
    if body.lstrip().startswith(b"{"):
        return _parse_esearch_json(body)
    try:
        root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise XmlError(f"malformed esearch XML: {exc}") from None
    error = root.findtext("ERROR") if root.tag != "ERROR" else root.text
    if root.tag not in ("eSearchResult", "ERROR"):
        raise XmlError(f"esearch answered with <{root.tag}>")
    if error and root.find("Count") is None:
        raise_query_error(error)
    errors = [f"{e.tag}: {e.text}" for e in root.iterfind("ErrorList/*") if e.text]
    warnings = [f"{w.tag}: {w.text}" for w in root.iterfind("WarningList/*") if w.text]
    return SearchPage(
        count=int(root.findtext("Count") or 0),
        pmids=[int(i.text) for i in root.iterfind("IdList/Id") if i.text],
        webenv=root.findtext("WebEnv"),
        query_key=root.findtext("QueryKey"),
        query_translation=root.findtext("QueryTranslation"),
        errors=errors,
        warnings=warnings,
    )


def _parse_esearch_json(body: bytes) -> SearchPage:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise XmlError(f"malformed esearch JSON: {exc}") from None
    result = data.get("esearchresult", data)
    if "ERROR" in result and "count" not in result:
        raise_query_error(str(result["ERROR"]))
    errors = [
        f"{k}: {', '.join(map(str, v))}" for k, v in (result.get("errorlist") or {}).items() if v
    ]
    warnings = [
        f"{k}: {', '.join(map(str, v))}" for k, v in (result.get("warninglist") or {}).items() if v
    ]
    return SearchPage(
        count=int(result.get("count", 0)),
        pmids=[int(i) for i in result.get("idlist", [])],
        webenv=result.get("webenv"),
        query_key=result.get("querykey"),
        query_translation=result.get("querytranslation"),
        errors=errors,
        warnings=warnings,
    )


# NCBI's history server answers these (under HTTP 200) when it no longer holds a search: an
# expired WebEnv, or one it lost under load (usehistory=y makes every esearch write to it).
_HISTORY_LOST = ("unable to obtain query", "cannot retrieve history")


def history_lost(message: str) -> bool:
    return any(s in message.lower() for s in _HISTORY_LOST)


def raise_query_error(message: str) -> None:
    text = " ".join(message.split())
    # Backend hiccups come as <ERROR> too; they pass when asked again.
    if any(s in text.lower() for s in ("temporarily", "try again", "timed out", "unavailable")):
        raise RetryableError(f"NCBI: {text}")
    raise QueryError(f"NCBI rejected the search: {text}")
