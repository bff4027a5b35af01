"""The fake NCBI's PubMed term matcher: enough of PubMed's search syntax to run a librarian's
query against records in PubMed's efetch XML and get the answer PubMed would give.

What it reads from each record's XML (https://www.nlm.nih.gov/bsd/licensee/elements_descriptions.html):
ArticleTitle, AbstractText, KeywordList, MeshHeadingList (descriptors, qualifiers, major topics),
ChemicalList and SupplMeshList (substance names), PublicationTypeList, CollectiveName, authors.

Field tags, as PubMed's User Guide (https://pubmed.ncbi.nlm.nih.gov/help/#search-tags) defines them:
- [ti] title; [tiab] title, abstract and author keywords;
- [tw] text words: title, abstract, keywords, MeSH headings and subheadings, substance names,
  publication types and corporate authors;
- [mh] MeSH heading, exploded to its narrower headings (a small explicit tree, MESH_NARROWER, for
  the headings the tests use); "Heading/qualifier"[mh]; [mh:noexp]; [majr] major topic only;
- [nm] substance names (ChemicalList and SupplMeshList); [pt] publication type;
- [cn] corporate (collective) author, matched as a whole name (or its start, with a wildcard:
  the stricter reading, so a query that works here works however PubMed indexes group names);
- [au] author "Lastname Initials", truncated to longer initials ("herold k" finds Herold KC)
  unless the name is in double quotes ("Herold K"[au] finds only Herold K), as PubMed's help
  says of author searches;
- [auid] author identifier: an ORCID iD, against AuthorList/Author/Identifier Source="ORCID",
  whichever form the publisher sent it in (bare, https://orcid.org/…, http://…);
- [uid] (or [pmid]) the record's PMID;
- date ranges "YYYY/MM/DD"[crdt] : "YYYY/MM/DD"[crdt] for crdt, edat and mhda;
- untagged terms: anywhere in the record's searchable text (PubMed's All Fields runs Automatic
  Term Mapping, which the fake does not imitate).
Words are split on anything that is not a letter or digit (so "anti-CD3" is the phrase "anti cd3"
and "hOKT3gamma1(Ala-Ala)" is "hokt3gamma1 ala ala"), Greek letters are spelled out (γ = gamma), a
"quoted phrase" must appear as consecutive words within one title, abstract section, keyword,
heading or substance name (stricter than PubMed for a phrase missing from its phrase index, which
PubMed then searches as its words ANDed), and a wildcard (*) ends a word with any characters, on any word of a
phrase, but only after at least four characters (NLM Tech Bull 2024 May-Jun;(458):e5); a shorter
stem is searched as the literal word. Boolean operators are applied left to right, as PubMed does:
parenthesise.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date

from lxml import etree

# Narrower headings for the MeSH trees the tests use (MeSH 2025; a subset, not the whole tree).
MESH_NARROWER: dict[str, tuple[str, ...]] = {
    "diabetes mellitus": (
        "diabetes mellitus, type 1",
        "diabetes mellitus, type 2",
        "diabetes, gestational",
    ),
    "diabetes mellitus, type 1": ("wolfram syndrome",),
    "antibodies, monoclonal": (
        "antibodies, monoclonal, humanized",
        "antibodies, monoclonal, murine-derived",
        "basiliximab",
    ),
    "antibodies, monoclonal, humanized": ("daclizumab", "alemtuzumab", "natalizumab"),
    "antibodies, monoclonal, murine-derived": ("muromonab-cd3", "rituximab"),
    "antigens, cd": ("cd3 complex", "antigens, cd20"),
    "receptors, interleukin-2": ("interleukin-2 receptor alpha subunit",),
    "transplantation": ("islets of langerhans transplantation", "pancreas transplantation"),
    # Animals [B01.050] holds every animal heading, Humans included (Primates > Hominidae >
    # Humans): that is why the Cochrane Handbook's human-studies limit is written
    # NOT (animals[mh] NOT humans[mh]). The levels between (Chordata, Vertebrates, Mammals,
    # Rodentia, Muridae, Murinae …) are collapsed here.
    "animals": ("humans", "mice", "rats", "macaca", "swine"),
    "mice": ("mice, inbred strains", "mice, transgenic"),
    "mice, inbred strains": ("mice, inbred nod", "mice, inbred c57bl", "mice, inbred balb c"),
}

GREEK = {
    "α": "alpha",
    "β": "beta",
    "γ": "gamma",
    "δ": "delta",
    "ε": "epsilon",
    "κ": "kappa",
    "λ": "lambda",
    "μ": "mu",
    "τ": "tau",
    "ω": "omega",
}

TAGS = {
    "mesh terms": "mh",
    "mesh": "mh",
    "mh": "mh",
    "mesh terms:noexp": "mh:noexp",
    "mh:noexp": "mh:noexp",
    "majr": "majr",
    "mesh major topic": "majr",
    "tiab": "tiab",
    "title/abstract": "tiab",
    "ti": "ti",
    "title": "ti",
    "tw": "tw",
    "text word": "tw",
    "nm": "nm",
    "supplementary concept": "nm",
    "pt": "pt",
    "publication type": "pt",
    "cn": "cn",
    "corporate author": "cn",
    "au": "au",
    "author": "au",
    "uid": "uid",
    "pmid": "uid",
    "auid": "auid",
    "author identifier": "auid",
    "all fields": "all",
    "crdt": "crdt",
    "create date": "crdt",
    "edat": "edat",
    "entrez date": "edat",
    "mhda": "mhda",
    "mesh date": "mhda",
}
DATE_TAGS = {"crdt", "edat", "mhda"}


def words(text: str) -> list[str]:
    """PubMed-style words: lowercase, Greek spelled out, split on non-alphanumerics."""
    text = "".join(GREEK.get(c, c) for c in text.lower())
    text = unicodedata.normalize("NFKD", text)
    return re.findall(r"[a-z0-9]+", text)


@dataclass
class Indexed:
    """One record's searchable fields, each a list of word sequences (one per text unit)."""

    title: list[list[str]] = field(default_factory=list)
    abstract: list[list[str]] = field(default_factory=list)
    keywords: list[list[str]] = field(default_factory=list)
    mesh: list[tuple[str, str | None, bool]] = field(default_factory=list)
    substances: list[str] = field(default_factory=list)
    pub_types: list[str] = field(default_factory=list)
    collectives: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    orcids: set[str] = field(default_factory=set)  # each as its 16 characters (orcid_key)
    anywhere: list[list[str]] = field(default_factory=list)
    dates: dict[str, date] = field(default_factory=dict)
    pmid: int | None = None

    def units(self, tag: str) -> list[list[str]]:
        if tag == "ti":
            return self.title
        if tag == "tiab":
            return self.title + self.abstract + self.keywords
        if tag == "nm":
            return [words(s) for s in self.substances]
        if tag == "cn":
            return [words(c) for c in self.collectives]
        if tag == "tw":
            headings = [words(d) for d, _, _ in self.mesh]
            headings += [words(q) for _, q, _ in self.mesh if q]
            return (
                self.title
                + self.abstract
                + self.keywords
                + headings
                + self.units("nm")
                + [words(p) for p in self.pub_types]
                + self.units("cn")
            )
        return self.anywhere


def index(xml: bytes, text: str, dates: dict[str, date]) -> Indexed:
    """Read one <PubmedArticle> (or book article) the way PubMed indexes it."""
    if not xml.strip():  # a bare record some tests make: only its text, searchable as a title
        return Indexed(title=[words(text)], anywhere=[words(text)], dates=dates)
    root = etree.fromstring(xml)

    def texts(path: str) -> list[str]:
        return ["".join(el.itertext()) for el in root.iterfind(path)]

    ix = Indexed(dates=dates)
    pmid = (root.findtext(".//MedlineCitation/PMID") or "").strip()
    ix.pmid = int(pmid) if pmid.isdigit() else None
    ix.title = [words(t) for t in texts(".//ArticleTitle") + texts(".//BookTitle")]
    ix.abstract = [words(t) for t in texts(".//Abstract/AbstractText")]
    ix.abstract += [words(t) for t in texts(".//OtherAbstract/AbstractText")]
    ix.keywords = [words(t) for t in texts(".//KeywordList/Keyword")]
    for heading in root.iterfind(".//MeshHeadingList/MeshHeading"):
        descriptor = heading.find("DescriptorName")
        if descriptor is None:
            continue
        name = "".join(descriptor.itertext()).strip().lower()
        major = descriptor.get("MajorTopicYN") == "Y"
        ix.mesh.append((name, None, major))
        for q in heading.iterfind("QualifierName"):
            qualifier = _qualifier("".join(q.itertext()))
            ix.mesh.append((name, qualifier, q.get("MajorTopicYN") == "Y"))
    ix.substances = [
        s.strip().lower()
        for s in texts(".//ChemicalList/Chemical/NameOfSubstance")
        + texts(".//SupplMeshList/SupplMeshName")
    ]
    ix.pub_types = [p.strip().lower() for p in texts(".//PublicationTypeList/PublicationType")]
    ix.collectives = [c.strip().lower() for c in texts(".//AuthorList/Author/CollectiveName")]
    for author in root.iterfind(".//AuthorList/Author"):
        last, initials = author.findtext("LastName"), author.findtext("Initials")
        if last:
            ix.authors.append(f"{last} {initials or ''}".strip().lower())
        for identifier in author.iterfind("Identifier"):
            if identifier.get("Source") == "ORCID" and identifier.text:
                ix.orcids.add(orcid_key(identifier.text))
    ix.anywhere = [words(text)]
    return ix


Matcher = Callable[[Indexed], bool]


def _pattern(query_words: list[str]) -> list[Callable[[str], bool]]:
    tests: list[Callable[[str], bool]] = []
    for w in query_words:
        if w.endswith("*") and len(w) > 4:
            stem = w[:-1]
            tests.append(lambda word, stem=stem: word.startswith(stem))
        else:
            literal = w.rstrip("*")
            tests.append(lambda word, literal=literal: word == literal)
    return tests


def _phrase_in(tests: list[Callable[[str], bool]], units: Iterable[list[str]]) -> bool:
    n = len(tests)
    for unit in units:
        for i in range(len(unit) - n + 1):
            if all(t(unit[i + k]) for k, t in enumerate(tests)):
                return True
    return False


def _qualifier(name: str) -> str:
    """XML writes "prevention & control"; a search writes "prevention and control"."""
    return " ".join(name.lower().replace("&", " and ").split())


def _query_words(value: str) -> list[str]:
    text = "".join(GREEK.get(c, c) for c in value.lower())
    return re.findall(r"[a-z0-9]+\*?", text)


def _exploded(heading: str) -> set[str]:
    out, todo = set(), [heading]
    while todo:
        h = todo.pop()
        if h not in out:
            out.add(h)
            todo.extend(MESH_NARROWER.get(h, ()))
    return out


def orcid_key(text: str) -> str:
    """An ORCID iD as its 16 characters, however written: publishers send it bare, as an
    orcid.org URL (http or https), with or without hyphens."""
    found = re.search(r"(\d{4})-?(\d{4})-?(\d{4})-?(\d{3}[\dXx])\s*/?\s*$", text.strip())
    return "".join(found.groups()).upper() if found else text.strip().upper()


def _day(text: str) -> date:
    parts = [int(x) for x in re.split(r"[/-]", text.strip()) if x.isdigit()]
    return date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)


def atom(value: str, tag: str, quoted: bool = False) -> Matcher:
    """A matcher for one term (`value` without quotes; `quoted` if it had them) in field `tag`."""
    if tag in ("mh", "mh:noexp", "majr"):
        heading, _, aspect = value.lower().partition("/")
        heading, qualifier = heading.strip(), _qualifier(aspect) or None
        wanted = {heading} if tag == "mh:noexp" else _exploded(heading)
        major = tag == "majr"

        def mesh(ix: Indexed) -> bool:
            return any(
                d in wanted and (qualifier is None or q == qualifier) and (m or not major)
                for d, q, m in ix.mesh
            )

        return mesh
    if tag == "pt":
        kind = value.strip().lower()
        return lambda ix: kind in ix.pub_types
    if tag == "cn":
        # A group author is one indexed name: the whole name, or its beginning with a wildcard.
        wanted = " ".join(words(value))
        if value.rstrip().endswith("*") and len(wanted) >= 4:
            return lambda ix: any(" ".join(words(c)).startswith(wanted) for c in ix.collectives)
        return lambda ix: any(" ".join(words(c)) == wanted for c in ix.collectives)
    if tag == "au":
        name = " ".join(words(value))
        if quoted:
            return lambda ix: any(" ".join(words(a)) == name for a in ix.authors)
        return lambda ix: any(" ".join(words(a)).startswith(name) for a in ix.authors)
    if tag == "auid":
        wanted = orcid_key(value)
        return lambda ix: wanted in ix.orcids
    tests = _pattern(_query_words(value))
    if not tests:
        return lambda ix: False
    return lambda ix: _phrase_in(tests, ix.units(tag))


_TOKEN = re.compile(r'\s*(\(|\)|:|"[^"]*"(?:\s*\[[^\]]*\])?|[^\s()":\[]+(?:\[[^\]]*\])?)')


@dataclass
class Compiled:
    match: Matcher
    terms: list[tuple[str, Matcher]]  # each field term alone, for PhraseNotFound


def compile_term(term: str) -> Compiled:
    """Compile a PubMed query; `match` is False for every record when the term is empty."""
    tokens = [t for t in _TOKEN.findall(term) if t.strip()]
    terms: list[tuple[str, Matcher]] = []
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def split(tok: str) -> tuple[str, str]:
        m = re.fullmatch(r"(.*?)\s*\[([^\]]*)\]", tok, re.S)
        value, tag = (m.group(1), m.group(2)) if m else (tok, "all")
        return value.strip().strip('"'), TAGS.get(tag.strip().lower(), tag.strip().lower())

    def unit() -> Matcher:
        tok = take()
        if tok == "(":
            inner = expr()
            if peek() == ")":
                take()
            return inner
        value, tag = split(tok)
        if peek() == ":":
            take()
            high, high_tag = split(take())
            kind = high_tag if high_tag in DATE_TAGS else tag
            lo, hi = _day(value), _day(high)
            return lambda ix: kind in ix.dates and lo <= ix.dates[kind] <= hi
        if tag in DATE_TAGS:
            day = _day(value)
            return lambda ix: ix.dates.get(tag) == day
        if tag == "uid":  # an id, not a phrase: never "not found" in the ErrorList
            uid = int(value) if value.isdigit() else -1
            return lambda ix: ix.pmid == uid
        m = atom(value, tag, quoted=tok.startswith('"'))
        terms.append((value.lower(), m))
        return m

    def expr() -> Matcher:
        left = unit()
        while peek() is not None and peek() != ")":
            op = peek().upper()  # type: ignore[union-attr]
            if op in ("AND", "OR", "NOT"):
                take()
            else:
                op = "AND"  # adjacent terms are ANDed
            right = unit()
            if op == "OR":
                left = (lambda a, b: lambda ix: a(ix) or b(ix))(left, right)
            elif op == "NOT":
                left = (lambda a, b: lambda ix: a(ix) and not b(ix))(left, right)
            else:
                left = (lambda a, b: lambda ix: a(ix) and b(ix))(left, right)
        return left

    if not tokens:
        return Compiled(lambda ix: False, [])
    match = expr()
    return Compiled(match, terms)


def short_wildcards(term: str) -> list[str]:
    """Wildcards PubMed would not expand: fewer than four characters before the asterisk."""
    return [w for w in re.findall(r"[A-Za-z0-9]+\*", term) if len(w) - 1 < 4]
