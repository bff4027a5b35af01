"""Clinical-trial registry numbers: found in free text, told apart, and linked. Pure.

The WHO's International Clinical Trials Registry Platform lists the primary registries and the
shape of their numbers (https://www.who.int/tools/clinical-trials-registry-platform); a number
whose registry has no stable page per trial is linked to ICTRP's own record of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple
from urllib.parse import quote


class Registry(NamedTuple):
    name: str
    # In free text: tolerant of "NCT 01234567", "ISRCTN: 12345678", "UMIN-CTR 000012345".
    pattern: re.Pattern[str]
    # The normalised number: prefix + the digits found, spaces and colons gone.
    prefix: str
    url: str | None  # format string with {id}; None: ICTRP's page


def _r(name: str, pattern: str, prefix: str, url: str | None, flags: int = 0) -> Registry:
    return Registry(name, re.compile(pattern, flags), prefix, url)


ICTRP = "https://trialsearch.who.int/Trial2.aspx?TrialID={id}"
# Order matters where shapes overlap: CTIS (YYYY-5NNNNN-NN-NN) before EudraCT (YYYY-NNNNNN-NN).
REGISTRIES: tuple[Registry, ...] = (
    _r(
        "ClinicalTrials.gov",
        r"\bNCT[\s#:-]{0,2}(\d{8})\b",
        "NCT",
        "https://clinicaltrials.gov/study/{id}",
    ),
    _r("ISRCTN", r"\bISRCTN[\s#:-]{0,2}(\d{8})\b", "ISRCTN", "https://www.isrctn.com/{id}"),
    _r("CTIS", r"(?<![\d-])((?:19|20)\d{2}-\d{6}-\d{2}-\d{2})(?![\d-])", "", ICTRP),
    _r(
        "EudraCT",
        r"(?<![\d-])(?:EUCTR)?((?:19|20)\d{2}-\d{6}-\d{2})(?!-?\d)",
        "",
        "https://www.clinicaltrialsregister.eu/ctr-search/search?query={id}",
    ),
    _r("ANZCTR", r"\bACTRN[\s#:-]{0,2}(\d{14})\b", "ACTRN", "https://www.anzctr.org.au/{id}.aspx"),
    _r("ChiCTR", r"\b(ChiCTR-?(?:[A-Z]{2,4}-)?\d{8,10})\b", "", None),
    _r("DRKS", r"\bDRKS[\s#:-]{0,2}(\d{8})\b", "DRKS", "https://drks.de/search/en/trial/{id}"),
    _r("UMIN", r"\bUMIN(?:[\s-]?CTR)?[\s#:-]{0,2}(\d{9})\b", "UMIN", None),
    _r("JPRN", r"\b(JPRN-[A-Za-z]+\d+|jRCT[sa]?\d{9,10}|JapicCTI-\d{6})\b", "", None),
    _r("CTRI", r"\bCTRI[\s:]{0,2}/?\s?(\d{4}/\d{2,3}/\d{6})\b", "CTRI/", None),
    _r("CRiS", r"\bKCT[\s#:-]{0,2}(\d{7})\b", "KCT", None),
    _r("IRCT", r"\bIRCT[\s#:-]{0,2}(\d{8,14}N\d{1,3})\b", "IRCT", None),
    _r("PACTR", r"\bPACTR[\s#:-]{0,2}(\d{15,16})\b", "PACTR", None),
    _r("NTR", r"\bNTR[\s#:-]{0,2}(\d{2,5})\b", "NTR", None),
    _r("NTR", r"\bNL[\s-]?(\d{4,5})\b(?!\.\d)", "NL", None),  # the register's numbers since 2018
    _r("ReBec", r"\b(RBR-[0-9a-z]{6,8})\b", "", None),
    _r("TCTR", r"\bTCTR[\s#:-]{0,2}(\d{11})\b", "TCTR", None),
    _r("SLCTR", r"\bSLCTR[\s:]{0,2}/?(\d{4}/\d{3})\b", "SLCTR/", None),
    _r("RPCEC", r"\bRPCEC[\s#:-]{0,2}(\d{8})\b", "RPCEC", None),
)
# Most abstracts name no registry: a search for the prefixes first spares them the regexes.
_PREFIXES = (
    "NCT",
    "ISRCTN",
    "ACTRN",
    "ChiCTR",
    "DRKS",
    "UMIN",
    "JPRN",
    "jRCT",
    "Japic",
    "CTRI",
    "KCT",
    "IRCT",
    "PACTR",
    "NTR",
    "NL",
    "RBR-",
    "TCTR",
    "SLCTR",
    "RPCEC",
)
# One search for any of them, or EudraCT's and CTIS's "-123456-": one pass over the text, not
# one per prefix.
_HINT = re.compile("|".join(map(re.escape, _PREFIXES)) + r"|-\d{6}-")


_EU_HINT = re.compile(r"-\d{6}-")
# The literal each registry's numbers cannot be written without: a pattern runs only where its
# literal is in the text, a substring test being far cheaper than a pattern. A registry
# missing here is always tried.
_LITERALS: dict[str, tuple[str, ...]] = {
    "ClinicalTrials.gov": ("NCT",),
    "ISRCTN": ("ISRCTN",),
    "ANZCTR": ("ACTRN",),
    "ChiCTR": ("ChiCTR",),
    "DRKS": ("DRKS",),
    "UMIN": ("UMIN",),
    "JPRN": ("JPRN-", "jRCT", "JapicCTI-"),
    "CTRI": ("CTRI",),
    "CRiS": ("KCT",),
    "IRCT": ("IRCT",),
    "PACTR": ("PACTR",),
    "NTR": ("NTR", "NL"),
    "ReBec": ("RBR-",),
    "TCTR": ("TCTR",),
    "SLCTR": ("SLCTR",),
    "RPCEC": ("RPCEC",),
}
_EU_REGISTRIES = frozenset({"CTIS", "EudraCT"})  # YYYY-NNNNNN-NN(-NN): no literal, a shape


class TrialLink(NamedTuple):
    registry: str | None
    label: str
    url: str | None


def find_ids(text: str) -> Iterator[str]:
    """Registry numbers written in `text`, normalised ("NCT 01030861" → "NCT01030861")."""
    if _HINT.search(text) is None:
        return
    taken: list[tuple[int, int]] = []
    eu = _EU_HINT.search(text) is not None
    for reg in REGISTRIES:
        if reg.name in _EU_REGISTRIES:
            if not eu:
                continue
        elif reg.name in _LITERALS and not any(lit in text for lit in _LITERALS[reg.name]):
            continue
        for m in reg.pattern.finditer(text):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue  # a CTIS number also looks like EudraCT's plus a suffix
            taken.append(m.span())
            yield reg.prefix + re.sub(r"\s+", "", m.group(1))


def identify(trial_id: str) -> Registry | None:
    for reg in REGISTRIES:
        m = reg.pattern.fullmatch(trial_id) or reg.pattern.match(trial_id)
        if m and m.end() == len(trial_id):
            return reg
    return None


def link(trial_id: str) -> TrialLink:
    """The registry's page for one trial, or ICTRP's record where the registry has no stable one."""
    reg = identify(trial_id)
    if reg is None:
        return TrialLink(None, trial_id, ICTRP.format(id=quote(trial_id, safe="")))
    label = trial_id if reg.name not in ("EudraCT", "CTIS") else f"{reg.name} {trial_id}"
    ictrp_id = f"JPRN-{trial_id}" if reg.name == "UMIN" else trial_id
    url = (reg.url or ICTRP).format(id=quote(ictrp_id if reg.url is None else trial_id, safe="/-"))
    return TrialLink(reg.name, label, url)


def unique(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ids))
