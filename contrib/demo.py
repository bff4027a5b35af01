"""An offline demo: the example config's subscriptions polled against the fake NCBI, Europe PMC
and ClinicalTrials.gov servers from the test suite, then their digests written as .eml and .html
files to look at: papers, preprints and a trial's status change in one digest.

    python contrib/demo.py [OUT_DIR]

Nothing reaches the internet: the fake serves PubMed-format records about monoclonal
antibodies in type 1 diabetes on 127.0.0.1, and the watcher runs its real poll and digest code
against it, through the `watcher` command line.
"""

from __future__ import annotations

import re
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fakes.clinicaltrials import FakeClinicalTrials, study  # noqa: E402
from tests.fakes.europepmc import FakeEuropePmc, load_record  # noqa: E402
from tests.fakes.icite import FakeICite  # noqa: E402
from tests.fakes.ncbi import FakeNCBI  # noqa: E402
from tests.fakes.records import from_file, synthetic  # noqa: E402
from watcher.cli import main  # noqa: E402
from watcher.poll import ncbi_today  # noqa: E402

TRIAL = ("Journal Article", "Randomized Controlled Trial", "Clinical Trial, Phase II")
PAPERS = [
    (
        "Teplizumab (anti-CD3) delays type 1 diabetes in relatives at risk",
        TRIAL,
        [
            "BACKGROUND",
            "Teplizumab is an Fc receptor-nonbinding anti-CD3 monoclonal antibody.",
            "CONCLUSIONS",
            "Teplizumab delayed progression to clinical type 1 diabetes in "
            "high-risk relatives; prevention trials should continue.",
        ],
        ("NCT01030861",),
    ),
    (
        "Otelixizumab and C-peptide preservation in new-onset type 1 diabetes",
        TRIAL,
        [
            "RESULTS",
            "Otelixizumab at low doses preserved C-peptide at 12 months.",
            "CONCLUSIONS",
            "Anti-CD3 treatment is feasible early in type 1 diabetes.",
        ],
        (),
    ),
    (
        "Rituximab, anti-CD20 B-lymphocyte depletion and beta-cell function in type 1 diabetes",
        ("Journal Article", "Randomized Controlled Trial"),
        ["CONCLUSIONS", "Rituximab partially preserved beta-cell function over one year."],
        ("NCT00279305",),
    ),
    (
        "Basiliximab versus daclizumab induction in islet transplantation: a meta-analysis",
        ("Meta-Analysis", "Systematic Review"),
        [
            "CONCLUSIONS",
            "IL-2 receptor blockade with basiliximab or daclizumab supported insulin "
            "independence after islet transplantation.",
        ],
        (),
    ),
    (
        "Monoclonal antibodies for prevention of type 1 diabetes in autoantibody-positive "
        "relatives: a review",
        ("Journal Article", "Review"),
        [
            "",
            "Teplizumab, rituximab and abatacept were tested for prevention in relatives with "
            "two or more autoantibodies.",
        ],
        (),
    ),
]
MESH = (
    "Diabetes Mellitus, Type 1",
    "Antibodies, Monoclonal, Humanized",
    "Islets of Langerhans Transplantation",
)


def demo_records(today) -> list:
    records = []
    for i, (title, types, abstract, trials) in enumerate(PAPERS):
        sections = [(abstract[k], abstract[k + 1]) for k in range(0, len(abstract), 2)]
        records.append(
            synthetic(
                90_000_001 + i,
                title,
                edat=today - timedelta(days=i),
                abstract=sections if sections[0][0] else sections[0][1],
                pub_types=types,
                trials=trials,
                mesh=MESH,
                keywords=(
                    "type 1 diabetes",
                    "islet transplantation",
                    "prevention",
                    "at-risk",
                    "relatives",
                ),
            )
        )
    # The field's landmark trials and its distractors (synthesised in PubMed's schema, see
    # tests/fixtures/field/PROVENANCE.md), shown as if just added.
    records += from_file(
        REPO / "tests" / "fixtures" / "field" / "t1d-antibodies.xml",
        edat=today - timedelta(days=1),
    )
    # A real record too (rituximab in the abstract), exactly as NCBI served it.
    records += from_file(
        REPO / "tests" / "fixtures" / "efetch" / "metapub-39077977.xml",
        edat=today - timedelta(days=2),
    )
    return records


def demo_registries(epmc: FakeEuropePmc, ctgov: FakeClinicalTrials, today) -> None:
    epmc.add(load_record("europepmc-preprint.json"), today - timedelta(days=2))
    ctgov.put(
        study(
            "NCT01030861",  # the trial the first demo paper cites
            "Teplizumab to delay stage 3 type 1 diabetes in autoantibody-positive relatives",
            "RECRUITING",
            (today - timedelta(days=3)).isoformat(),
            enrollment=120,
        )
    )


def registries(
    config: str, epmc: FakeEuropePmc, ctgov: FakeClinicalTrials, icite: FakeICite
) -> str:
    """The example's [europepmc], [clinicaltrials] and [icite] tables, pointed at the fakes."""
    for name, fake_api in (("europepmc", epmc), ("clinicaltrials", ctgov), ("icite", icite)):
        config = re.sub(
            rf"# \[{name}\]\n# base_url = \"[^\"]+\"[^\n]*\n# rate_limit = [^\n]*\n",
            f'[{name}]\nbase_url = "{fake_api.base_url}"\nrate_limit = 50\n',
            config,
        )
    return config


def run(out: Path) -> list[Path]:
    fake = FakeNCBI().start()
    epmc = FakeEuropePmc().start()
    ctgov = FakeClinicalTrials().start()
    icite = FakeICite().start()
    try:
        today = ncbi_today(datetime.now(UTC))
        fake.add(demo_records(today))
        fake.feeds["teplizumab"] = [90_000_001, 90_000_005]
        demo_registries(epmc, ctgov, today)
        folder = Path(tempfile.mkdtemp(prefix="watcher-demo-"))
        config = (REPO / "config.example.toml").read_text()
        config = config.replace(
            '# base_url = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"',
            f'base_url = "{fake.base_url}"',
        )
        config = re.sub(r'rss = "[^"]+"', f'rss = "{fake.feed_url("teplizumab")}"', config)
        config = registries(config, epmc, ctgov, icite)
        (folder / "watcher.toml").write_text(config)
        cfg = str(folder / "watcher.toml")
        if main(["-c", cfg, "poll"]) != 0:
            raise SystemExit("the demo poll failed")
        # The trial stops recruiting: the next poll finds the change.
        ctgov.put(
            study(
                "NCT01030861",  # the trial the first demo paper cites
                "Teplizumab to delay stage 3 type 1 diabetes in autoantibody-positive relatives",
                "ACTIVE_NOT_RECRUITING",
                today.isoformat(),
                enrollment=120,
            )
        )
        if main(["-c", cfg, "poll"]) != 0:
            raise SystemExit("the second demo poll failed")
        if main(["-c", cfg, "digest", "--dry-run", "--out", str(out)]) != 0:
            raise SystemExit("the demo digest failed")
        return sorted(out.glob("*.html"))
    finally:
        fake.stop()
        epmc.stop()
        ctgov.stop()
        icite.stop()


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-digests").resolve()
    pages = run(target)
    print(f"\nOpen the digests in a browser: {', '.join(str(p) for p in pages)}")
