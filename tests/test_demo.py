from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from .conftest import REPO


@pytest.mark.slow
def test_the_offline_demo_polls_the_example_config_and_writes_digests(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("demo", REPO / "contrib" / "demo.py")
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    pages = demo.run(tmp_path / "out")
    names = sorted(p.name for p in pages)
    assert names == [
        "clinician@example.org-0_7_Europe_Paris.html",
        "clinician@example.org-0_7_mon_Europe_Paris.html",
        "endocrinology-team@example.org-0_7_mon_Europe_Paris.html",
        "transplant-lab@example.org-0_7_mon_Europe_Paris.html",
    ]
    transplant = (tmp_path / "out" / names[3]).read_text()
    assert "Basiliximab versus daclizumab induction" in transplant
    assert "Meta-analysis" in transplant and "Teplizumab (anti-CD3)" not in transplant
    assert len(list((tmp_path / "out").glob("*.eml"))) == 4
    weekly = (tmp_path / "out" / names[1]).read_text()
    # All three kinds in one digest: PubMed papers, a preprint, a trial and its change.
    assert "pubmed.ncbi.nlm.nih.gov" in weekly
    assert "Preprint (medRxiv)" in weekly and "europepmc.org/article/PPR/PPR900001" in weekly
    assert "Trial registry updates" in weekly and "Recruiting → Active, not recruiting" in weekly
    updates = weekly[weekly.index("Trial registry updates") :]
    assert "Cited by" in updates and "Teplizumab (anti-CD3) delays type 1 diabetes" in updates
