"""The fake NCBI's ELink (https://www.ncbi.nlm.nih.gov/books/NBK25499/#chapter4.ELink), PubMed to
PubMed, over a CitationGraph (tests/fakes/citations.py).

What it answers, and on what authority (docs/citations.md has the whole account):
- `cmd=neighbor` (the default), `neighbor_score` and `neighbor_history`; other commands are not
  imitated and get a plain 400 that says so.
- link names `pubmed_pubmed` (similar articles, the record itself first), `pubmed_pubmed_citedin`
  (citing papers known to PMC) and `pubmed_pubmed_refs` (its references known to PMC); without
  `linkname`, all three, in name order, as in Biopython's elink1.xml. NCBI documents that
  `linkname` "only functions when cmd is set to neighbor or neighbor_history": `neighbor_score`
  answers the scored neighbours whatever the linkname.
- several `id=` parameters: one LinkSet per parameter (a "by-id" link, so each link is tied to its
  source); one `id=` with commas: one LinkSet whose links are merged and deduplicated
  (Bio-EUtilities' elink_neighbor.xml vs elink_neighbor_corr.xml).
- `neighbor_history`: each link set is stored on the fake's history server; the LinkSet names its
  QueryKey per link name and the WebEnv (elink_nhist*.xml); a later esearch/efetch/esummary with
  that WebEnv and query_key reads it. A request with WebEnv/query_key instead of ids links that
  stored set, and adds its output to the same WebEnv.
- `term`, `mindate`/`maxdate` and `datetype`: applied after the link, only with neighbor and
  neighbor_history ("These parameters only function when cmd is set to neighbor or
  neighbor_history and dbfrom is pubmed"); the limited links come newest first, as a search
  sorts them (Biopython's elink3.xml, dates, and elink4.xml, term: date order, nearly PMID order).
- `retmode=json`: {"header": {"type": "elink", "version": "0.3"}, "linksets": [...]} with
  "linksetdbs" (links as strings; with scores, {"id", "score"} objects) or "linksetdbhistories" and
  "webenv". No saved JSON answer was found: the shape is the one NCBI's JSON clients parse.
- ids it has no record of: as `FakeNCBI.elink_unknown` says (NCBI's answer changed over the
  years): "empty", a LinkSet with the id and no links (today, rentrez#220, pubmed-mcp-server#22);
  "zero", the id shown as 0 (2015, rentrez#57); "omit", no LinkSet for it (by-id, 2016,
  rentrez#76); "error", an <ERROR> in its LinkSet.
- a malformed id (not all digits): an <ERROR>Invalid uid …</ERROR> in its LinkSet (the DTD's
  LinkSet (DbFrom, (… | ERROR)); wording as esummary's); no id at all: a top-level <ERROR>.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from .citations import SELF_SCORE

if TYPE_CHECKING:
    from .ncbi import FakeNCBI

LINKNAMES = ("pubmed_pubmed", "pubmed_pubmed_citedin", "pubmed_pubmed_refs")
COMMANDS = ("neighbor", "neighbor_score", "neighbor_history")
UNKNOWN_MODES = ("empty", "zero", "omit", "error")
XML_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE eLinkResult PUBLIC "-//NLM//DTD elink '
    '20101123//EN" "https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20101123/elink.dtd">\n'
)
# What elink served for every PMID during an NCBI outage, under HTTP 200 (quoted in a public
# issue thread, see docs/citations.md); the fake's `error` fault on elink answers it.
OUTAGE = (
    "NCBI C++ Exception: Error: TXCLIENT(CException::eUnknown) Read failed: EOF (the other "
    "side has unexpectedly closed connection)"
)
EMPTY_IDS = "Empty id list - nothing todo"

Reply = tuple[int, bytes, str, dict[str, str]]


@dataclass
class LinkSetOut:
    ids: list[str]
    error: str | None = None
    links: list[tuple[str, list[tuple[int, int | None]]]] = field(default_factory=list)
    history: list[tuple[str, int]] = field(default_factory=list)
    webenv: str | None = None


def answer(ncbi: FakeNCBI, p: dict[str, str], id_values: list[str]) -> Reply:
    json_mode = p.get("retmode") == "json"
    cmd = p.get("cmd") or "neighbor"
    if cmd not in COMMANDS:
        message = f"the fake's elink imitates cmd={', '.join(COMMANDS)}, not {cmd}"
        return 400, message.encode(), "text/plain", {}
    if "reldate" in p:
        return 400, b"the fake's elink does not imitate reldate", "text/plain", {}
    for param in ("dbfrom", "db"):
        db = p.get(param) or p.get("dbfrom", "")
        if db != "pubmed":
            return render_error(f"Invalid db name specified: {db}", json_mode)

    if p.get("WebEnv") and p.get("query_key"):
        stored = ncbi.recall(p["WebEnv"], p["query_key"])
        if stored is None:
            return render_error("Unable to obtain query #1", json_mode)
        groups = [[str(i) for i in stored]]
    else:
        groups = [_tokens(v) for v in id_values]
        groups = [g for g in groups if g]
    if not groups:
        return render_error(EMPTY_IDS, json_mode)

    if cmd == "neighbor_score":
        names: tuple[str, ...] = ("pubmed_pubmed",)
    elif p.get("linkname"):
        names = (p["linkname"],) if p["linkname"] in LINKNAMES else ()
    else:
        names = LINKNAMES
    limit = _limit(ncbi, p) if cmd != "neighbor_score" else None
    webenv = p.get("WebEnv") if cmd == "neighbor_history" else None

    out: list[LinkSetOut] = []
    for tokens in groups:
        linkset = _linkset(ncbi, tokens, names, cmd == "neighbor_score", limit)
        if linkset is None:
            continue
        if cmd == "neighbor_history" and linkset.error is None:
            kept = []
            for name, links in linkset.links:
                webenv, key = ncbi.remember(webenv, [pmid for pmid, _ in links])
                kept.append((name, key))
            if webenv is None:  # no links at all: the DTD still wants a WebEnv
                webenv, _ = ncbi.remember(None, [])
            linkset.history, linkset.links, linkset.webenv = kept, [], webenv
        out.append(linkset)
    return render(out, json_mode, scored=cmd == "neighbor_score")


def _tokens(value: str) -> list[str]:
    return [t for t in re.split(r"[,\s]+", value) if t]


def _linkset(
    ncbi: FakeNCBI,
    tokens: list[str],
    names: tuple[str, ...],
    scored: bool,
    limit: set[int] | None,
) -> LinkSetOut | None:
    bad = [t for t in tokens if not t.isdigit()]
    if bad:
        return LinkSetOut(ids=[], error=f"Invalid uid {bad[0]}")
    known = ncbi.elink_known()
    ids = [int(t) for t in tokens]
    missing = [i for i in ids if i not in known]
    mode = ncbi.elink_unknown
    assert mode in UNKNOWN_MODES, mode
    if missing and mode == "error":
        return LinkSetOut(ids=[], error=f"Invalid uid {missing[0]}")
    if mode == "omit":
        ids = [i for i in ids if i in known]
        if not ids:
            return None
    shown = ["0" if (i in missing and mode == "zero") else str(i) for i in ids]
    sources = [i for i in ids if i in known]
    links = []
    for name in names:
        found = _links(ncbi, sources, name)
        if limit is not None:
            # A limited link is a search: newest first, as esearch sorts (Biopython's elink3.xml
            # and elink4.xml are in date order, nearly PMID order, no longer score order).
            kept = [pmid for pmid, _ in found if pmid in limit]
            kept.sort(key=lambda pmid: (ncbi.records[pmid].edat, pmid), reverse=True)
            found = [(pmid, None) for pmid in kept]
        elif not scored:
            found = [(pmid, None) for pmid, _ in found]
        if found:
            links.append((name, found))
    return LinkSetOut(ids=shown, links=links)


def _links(ncbi: FakeNCBI, sources: list[int], name: str) -> list[tuple[int, int | None]]:
    graph = ncbi.graph
    if name == "pubmed_pubmed":
        scores: dict[int, int] = {}
        for pmid in sources:
            scores[pmid] = SELF_SCORE
        for pmid in sources:
            for other, score in graph.neighbours(pmid).items():
                # A link reached from two of the ids keeps its best score (no real answer shows
                # which NCBI keeps; the 2008 merged answer puts every input id first).
                scores[other] = max(scores.get(other, 0), score)
        ranked = sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        return [(pmid, score) for pmid, score in ranked]
    source_links: set[int] = set()
    for pmid in sources:
        if name == "pubmed_pubmed_citedin":
            source_links |= graph.cited_by(pmid, "pmc")
        else:
            source_links |= graph.references(pmid, "pmc")
    # Newest PMID first, as real citedin and refs lists come (Biopython's elink1.xml).
    return [(pmid, None) for pmid in sorted(source_links, reverse=True)]


def _limit(ncbi: FakeNCBI, p: dict[str, str]) -> set[int] | None:
    """The records a `term` and/or a date window let through (read as esearch reads them, the
    term's own date ranges included), or None when neither is given."""
    term = p.get("term", "").strip()
    if not term and not (p.get("mindate") and p.get("maxdate")):
        return None
    from .ncbi import _day  # here, not at the top: ncbi.py imports this module

    lo, hi = _day(p.get("mindate")), _day(p.get("maxdate"))
    if not (lo and hi):
        lo = hi = None
    found, _ = ncbi.search(term, p.get("datetype", "edat"), lo, hi, within=set(ncbi.records))
    return set(found)


def render(out: list[LinkSetOut], json_mode: bool, *, scored: bool) -> Reply:
    if json_mode:
        sets = [_json_linkset(ls, scored) for ls in out]
        body = json.dumps({"header": {"type": "elink", "version": "0.3"}, "linksets": sets})
        return 200, body.encode(), "application/json", {}
    parts = [XML_HEAD, "<eLinkResult>\n\n"]
    for ls in out:
        parts.append("  <LinkSet>\n    <DbFrom>pubmed</DbFrom>\n")
        if ls.error is not None:
            parts.append(f"    <ERROR>{escape(ls.error)}</ERROR>\n  </LinkSet>\n")
            continue
        ids = "".join(f"      <Id>{i}</Id>\n" for i in ls.ids)
        parts.append(f"    <IdList>\n{ids}    </IdList>\n")
        for name, links in ls.links:
            parts.append(
                f"    <LinkSetDb>\n      <DbTo>pubmed</DbTo>\n      <LinkName>{name}</LinkName>\n      \n"
            )
            for pmid, score in links:
                s = f"\t\t\t\t<Score>{score}</Score>\n" if score is not None else ""
                parts.append(f"        <Link>\n\t\t\t\t<Id>{pmid}</Id>\n{s}\t\t\t</Link>\n")
            parts.append("      \n    </LinkSetDb>\n")
        for name, key in ls.history:
            parts.append(
                f"    <LinkSetDbHistory>\n      <DbTo>pubmed</DbTo>\n      <LinkName>{name}</LinkName>\n"
                f"      <QueryKey>{key}</QueryKey>\n    </LinkSetDbHistory>\n"
            )
        if ls.webenv is not None:
            parts.append(f"    <WebEnv>{ls.webenv}</WebEnv>\n")
        parts.append("  </LinkSet>\n")
    parts.append("</eLinkResult>\n")
    return 200, "".join(parts).encode(), "text/xml", {}


def _json_linkset(ls: LinkSetOut, scored: bool) -> dict[str, Any]:
    if ls.error is not None:
        return {"dbfrom": "pubmed", "ERROR": ls.error}
    out: dict[str, Any] = {"dbfrom": "pubmed", "ids": ls.ids}
    if ls.links:
        out["linksetdbs"] = [
            {
                "dbto": "pubmed",
                "linkname": name,
                "links": [
                    {"id": str(pmid), "score": score} if scored else str(pmid)
                    for pmid, score in links
                ],
            }
            for name, links in ls.links
        ]
    if ls.history:
        out["linksetdbhistories"] = [
            {"dbto": "pubmed", "linkname": name, "querykey": str(key)} for name, key in ls.history
        ]
    if ls.webenv is not None:
        out["webenv"] = ls.webenv
    return out


def render_error(message: str, json_mode: bool) -> Reply:
    """A top-level <ERROR>, under HTTP 200 as NCBI sends them."""
    if json_mode:
        body = json.dumps(
            {"header": {"type": "elink", "version": "0.3"}, "linksets": [], "ERROR": message}
        )
        return 200, body.encode(), "application/json", {}
    xml = f"{XML_HEAD}<eLinkResult>\n  <ERROR>{escape(message)}</ERROR>\n</eLinkResult>\n"
    return 200, xml.encode(), "text/xml", {}
