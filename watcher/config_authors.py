"""A subscription's `author`: an ORCID iD or a name as PubMed lists authors ("Herold KC"), or a
list of them, turned into the PubMed search for that author's papers, so a reader can follow a
group's output without writing the syntax.

    author = "0000-0002-1825-0097"            → "0000-0002-1825-0097"[auid]
    author = "https://orcid.org/0000-0002-1825-0097" (the same)
    author = "Herold KC"                      → "Herold KC"[au]
    author = ["Herold KC", "Gitelman SE"]     → ("Herold KC"[au] OR "Gitelman SE"[au])
    author = "Herold KC", query = "…"         → (…) AND "Herold KC"[au]

The search tags are PubMed's: [au] Author, searched as "last name then initials"; a name in
double quotes is searched as written, with PubMed's automatic truncation to longer initials
turned off ("Herold K" does not also find "Herold KC"); [auid] Author Identifier, the ORCID iDs
publishers send with their citations (PubMed User Guide, Search Field Tags,
https://pubmed.ncbi.nlm.nih.gov/help/#search-tags; E-utilities' EInfo for db=pubmed lists the
field as AUID, "Author - Identifier", a single token, as in Biopython's saved answer
Tests/Entrez/einfo2.xml). A record carries an ORCID only where its publisher sent one, so an
ORCID finds fewer papers than the name does, none of them someone else's.
"""

from __future__ import annotations

import re

MAX_AUTHORS = 100  # a group's members, not a faculty

# The iD itself (four groups of four, the last character a digit or X), bare or as its URL.
_ORCID = re.compile(
    r"(?:(?:https?://)?(?:www\.)?orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])/?", re.IGNORECASE
)
# "Last name" and initials, as PubMed lists authors: "Herold KC", "van der Berg J",
# "O'Brien-Smith AB"; "Herold, K.C." is read as "Herold KC".
_NAME = re.compile(r"([^\W\d_][^\W\d_'’ .-]*(?:['’ .-]+[^\W\d_]+)*?),?\s+((?:[A-Z]\.?\s?){1,4})")


def orcid_checksum(digits: str) -> str:
    """ISO 7064 MOD 11-2 over the first 15 digits: the 16th character of a valid ORCID iD
    (https://support.orcid.org/hc/en-us/articles/360006897674)."""
    total = 0
    for digit in digits:
        total = (total + int(digit)) * 2
    result = (12 - total % 11) % 11
    return "X" if result == 10 else str(result)


def author_term(text: str) -> str:
    """One author's PubMed search term. Raises ValueError saying what is wrong."""
    text = " ".join(text.split())
    if any(c.isdigit() for c in text) or "orcid" in text.lower():
        m = _ORCID.fullmatch(text)
        if not m:
            raise ValueError(
                f"{text!r} is not an ORCID iD like 0000-0002-1825-0097 (or its orcid.org URL)"
            )
        orcid = m.group(1).upper()
        digits = orcid.replace("-", "")
        if orcid_checksum(digits[:15]) != digits[15]:
            raise ValueError(
                f"{orcid} is not a valid ORCID iD: its last character should be "
                f"{orcid_checksum(digits[:15])} (a digit mistyped?)"
            )
        return f'"{orcid}"[auid]'
    m = _NAME.fullmatch(text)
    if not m:
        raise ValueError(
            f"{text!r} is not a name as PubMed lists authors: the last name, then the initials "
            'without dots ("Herold KC"), or an ORCID iD'
        )
    initials = re.sub(r"[.\s]", "", m.group(2))
    return f'"{m.group(1)} {initials}"[au]'


def author_query(terms: list[str], query: str | None) -> str:
    """The authors' terms ORed, ANDed with the subscription's own query if it has one."""
    authors = terms[0] if len(terms) == 1 else f"({' OR '.join(terms)})"
    return f"({query}) AND {authors}" if query else authors
