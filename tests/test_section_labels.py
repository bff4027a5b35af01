from __future__ import annotations

from pathlib import Path

from watcher.text.section_labels import category_of


def test_a_label_alone_gets_the_category_nlm_gave_it_in_every_real_record(corpus: Path) -> None:
    """NLM's table of labels is the judge: every (Label, NlmCategory) pair of the shared corpus's
    efetch records, as NLM wrote it, is what category_of gives for the label alone."""
    import gzip

    from lxml import etree

    pairs: dict[str, str] = {}
    for path in sorted(corpus.glob("*.xml*")):
        data = path.read_bytes()
        data = gzip.decompress(data) if path.suffix == ".gz" else data
        if b"<AbstractText" not in data:
            continue
        for el in etree.fromstring(data, etree.XMLParser(huge_tree=True)).iter("AbstractText"):
            if el.get("Label") and el.get("NlmCategory"):
                pairs[el.get("Label")] = el.get("NlmCategory")
    assert len(pairs) >= 75
    assert {label: category_of(label) for label in pairs} == pairs
