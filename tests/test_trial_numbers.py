from __future__ import annotations

import pytest

from watcher.text.trial_numbers import find_ids, link


@pytest.mark.parametrize(
    ("text", "expected", "url"),
    [
        (
            "ClinicalTrials.gov number, NCT 01030861.",
            "NCT01030861",
            "https://clinicaltrials.gov/study/NCT01030861",
        ),
        ("(NCT01030861)", "NCT01030861", "https://clinicaltrials.gov/study/NCT01030861"),
        ("ISRCTN 14274380", "ISRCTN14274380", "https://www.isrctn.com/ISRCTN14274380"),
        (
            "EudraCT 2007-007146-34",
            "2007-007146-34",
            "https://www.clinicaltrialsregister.eu/ctr-search/search?query=2007-007146-34",
        ),
        (
            "EU CT number 2023-503456-12-00",
            "2023-503456-12-00",
            "https://trialsearch.who.int/Trial2.aspx?TrialID=2023-503456-12-00",
        ),
        (
            "ACTRN12610000123456",
            "ACTRN12610000123456",
            "https://www.anzctr.org.au/ACTRN12610000123456.aspx",
        ),
        (
            "ChiCTR-IOR-17013041",
            "ChiCTR-IOR-17013041",
            "https://trialsearch.who.int/Trial2.aspx?TrialID=ChiCTR-IOR-17013041",
        ),
        (
            "ChiCTR2000029308",
            "ChiCTR2000029308",
            "https://trialsearch.who.int/Trial2.aspx?TrialID=ChiCTR2000029308",
        ),
        ("DRKS00004567", "DRKS00004567", "https://drks.de/search/en/trial/DRKS00004567"),
        (
            "UMIN-CTR 000012345",
            "UMIN000012345",
            "https://trialsearch.who.int/Trial2.aspx?TrialID=JPRN-UMIN000012345",
        ),
        (
            "jRCTs031180123",
            "jRCTs031180123",
            "https://trialsearch.who.int/Trial2.aspx?TrialID=jRCTs031180123",
        ),
        (
            "CTRI/2020/05/025114",
            "CTRI/2020/05/025114",
            "https://trialsearch.who.int/Trial2.aspx?TrialID=CTRI/2020/05/025114",
        ),
        ("KCT0001234", "KCT0001234", "https://trialsearch.who.int/Trial2.aspx?TrialID=KCT0001234"),
        (
            "IRCT20200225046622N1",
            "IRCT20200225046622N1",
            "https://trialsearch.who.int/Trial2.aspx?TrialID=IRCT20200225046622N1",
        ),
        (
            "PACTR201509001234567",
            "PACTR201509001234567",
            "https://trialsearch.who.int/Trial2.aspx?TrialID=PACTR201509001234567",
        ),
        (
            "Netherlands Trial Register NTR 1234",
            "NTR1234",
            "https://trialsearch.who.int/Trial2.aspx?TrialID=NTR1234",
        ),
        (
            "registered as NL7713",
            "NL7713",
            "https://trialsearch.who.int/Trial2.aspx?TrialID=NL7713",
        ),
        ("RBR-7x8kp2", "RBR-7x8kp2", "https://trialsearch.who.int/Trial2.aspx?TrialID=RBR-7x8kp2"),
        (
            "TCTR20170101001",
            "TCTR20170101001",
            "https://trialsearch.who.int/Trial2.aspx?TrialID=TCTR20170101001",
        ),
    ],
)
def test_every_registry_is_found_and_linked(text: str, expected: str, url: str) -> None:
    assert list(find_ids(text)) == [expected]
    assert link(expected).url == url


def test_numbers_that_are_not_trials_are_left_alone() -> None:
    text = (
        "The ethics committee approved protocol NL53652.018.15 on 2015-06-01; HbA1c fell from "
        "8.4% to 5.8% (P < 0.001) in 2007-2009, ISBN 978-0-12-345678-9."
    )
    assert list(find_ids(text)) == []


def test_eudract_and_ctis_are_labelled_with_their_registry() -> None:
    assert link("2007-007146-34").label == "EudraCT 2007-007146-34"
    assert link("2023-503456-12-00").label == "CTIS 2023-503456-12-00"
    assert link("NCT01030861").label == "NCT01030861"


def _every_pattern(text: str) -> list[str]:
    """find_ids without its literal guards: every registry's pattern on the whole text."""
    import re as _re

    from watcher.text.trial_numbers import REGISTRIES

    taken: list[tuple[int, int]] = []
    out = []
    for reg in REGISTRIES:
        for m in reg.pattern.finditer(text):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue
            taken.append(m.span())
            out.append(reg.prefix + _re.sub(r"\s+", "", m.group(1)))
    return out


@pytest.mark.parametrize(
    "text",
    [
        "Registered as NCT 01234567, ISRCTN12345678 and EudraCT 2004-000123-45.",
        "CTIS 2023-501234-12-00; ChiCTR-IOR-17012345; UMIN-CTR 000012345; jRCTs031180001",
        "JapicCTI-101234, JPRN-UMIN000012345, CTRI/2019/01/017001, KCT0001234",
        "IRCT20100101003456N2, PACTR201901123456789, NTR1234, NL 12345, RBR-2abc3d",
        "TCTR20190101001, SLCTR/2019/001, RPCEC00000123, DRKS00004567, ACTRN12610000123456",
        "No registry here: NLR rose, 2019-123456 patients, the NTRK gene.",
    ],
)
def test_literal_guards_change_no_finding(text: str) -> None:
    assert list(find_ids(text)) == _every_pattern(text)


def test_literal_guards_change_no_finding_on_the_corpus(corpus) -> None:
    from watcher.sources.pubmed_xml import parse_articles

    checked = 0
    for path in sorted(corpus.glob("*.xml")):
        data = path.read_bytes()
        if b"<PubmedArticleSet" not in data[:3000]:
            continue
        for a in parse_articles(data):
            text = "\n".join(s.text for s in a.abstract)
            assert list(find_ids(text)) == _every_pattern(text), a.pmid
            checked += 1
    assert checked >= 30
