"""The design a not-yet-indexed record's title states (issue 24): read over real titles
(tests/fixtures/titles/designs.tsv), shown as badges, and ranked by the evidence order."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import NamedTuple

import pytest

from watcher.config import load_config
from watcher.digest import design, ranking
from watcher.digest.badges import badges
from watcher.digest.build import build_digest
from watcher.identity import pmid_key
from watcher.models import Article

from .conftest import write_config

TITLES = Path(__file__).parent / "fixtures" / "titles" / "designs.tsv"
NOW = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)


class Case(NamedTuple):
    expected: tuple[str, ...]
    types: tuple[str, ...]
    title: str
    source: str


def cases() -> list[Case]:
    out = []
    for line in TITLES.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        expected, types, title, source = line.split("\t")
        wanted = () if expected == "-" else tuple(expected.split(";"))
        out.append(Case(wanted, tuple(types.split(";")), title, source))
    return out


def record(case: Case, pmid: int = 1, status: str = "Publisher") -> Article:
    return Article(
        pmid=pmid,
        title=case.title,
        status=status,
        publication_types=case.types,
        pub_year=2026,
        epub_date=date(2026, 11, 1),
    )


def test_the_cases_cover_every_design_and_each_kind_of_distractor() -> None:
    all_cases = cases()
    assert len(all_cases) >= 90
    named = {d for c in all_cases for d in c.expected}
    assert named == {
        *design.SYNTHESES,
        design.RCT,
        "Phase I trial",
        "Phase I/II trial",
        "Phase II trial",
        "Phase II/III trial",
        "Phase III trial",
        design.COHORT,
        design.OBSERVATIONAL,
        design.GUIDELINE,
        design.CONSENSUS,
    }
    kinds = {t for c in all_cases if not c.expected for t in c.types}
    assert {"Comment", "Letter", "Editorial", "News", "Published Erratum"} <= kinds
    assert sum(c.source.startswith("PMID") for c in all_cases) >= 50  # real titles


@pytest.mark.parametrize("case", cases(), ids=lambda c: f"{c.source}: {c.title[:60]}")
def test_design_read_from_a_real_title(case: Case) -> None:
    assert design.from_title(record(case)) == case.expected
    shown = [label for label, _ in badges(record(case))]
    for found in case.expected:
        assert f"{found} (from title)" in shown
    assert not any(label.endswith("(from title)") for label in shown if not case.expected)


@pytest.mark.parametrize("case", [c for c in cases() if c.expected][:12], ids=lambda c: c.source)
def test_an_indexed_record_keeps_to_its_publication_types(case: Case) -> None:
    assert design.from_title(record(case, status="MEDLINE")) == ()
    assert not [b for b, _ in badges(record(case, status="MEDLINE")) if "title" in b]


def test_a_badge_from_the_title_is_not_repeated_beside_the_publisher_type() -> None:
    rct = Article(
        pmid=1,
        title="Abatacept in stage 1 relatives: a randomized, double-masked, controlled trial",
        status="Publisher",
        publication_types=("Journal Article", "Randomized Controlled Trial", "Clinical Trial"),
    )
    assert [b for b, _ in badges(rct)] == ["RCT"]
    phase = Article(
        pmid=2,
        title="Golimumab in new-onset type 1 diabetes: a phase 2 study",
        status="Publisher",
        publication_types=("Clinical Trial",),
    )
    assert [b for b, _ in badges(phase)] == ["Phase II trial (from title)"]  # not "Clinical trial"


def by_source(source: str) -> Case:
    [case] = [c for c in cases() if c.source == source]
    return case


def test_evidence_order_follows_what_the_titles_say(tmp_path: Path) -> None:
    """Strongest first by the tiers, the commentary on a trial among the others, not the
    trials (it was ranked among them, issue 24)."""
    chosen = [
        by_source("PMID 26431759"),  # commentary quoting an RCT's title
        by_source("PMID 26702177"),  # cross-sectional
        by_source("PMID 26702392"),  # phase I
        by_source("PMID 26702161"),  # randomised controlled trial
        by_source("PMID 26702254"),  # systematic review and meta-analysis
        by_source("PMID 26703908"),  # national cohort
        by_source("PMID 26432311"),  # a narrative review, not indexed: nothing to read
    ]
    arts = {pmid_key(i): record(c, pmid=i) for i, c in enumerate(chosen, 1)}
    assert [ranking.evidence_tier(a) for a in arts.values()] == [6, 3, 2, 1, 0, 3, 6]
    subs = '[[subscription]]\nname = "All"\nquery = "x"\nrecipients = ["a@example.org"]\n'
    cfg = load_config(
        write_config(tmp_path, "http://127.0.0.1:9/", subs, extra='[mail]\norder = "evidence"\n')
    )
    ctx = build_digest(
        "a@example.org", {k: ["All"] for k in arts}, arts, cfg.subscriptions, cfg.mail,
        cfg.path, NOW,
    )  # fmt: skip
    assert ctx.order == "evidence"
    assert [p.pmid for p in ctx.groups[0].papers] == [5, 4, 3, 6, 2, 7, 1]
    trials = {p.pmid for p in ctx.groups[0].papers if p.is_trial}
    assert trials == {3, 4}
