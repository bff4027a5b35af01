"""The HTML digest as a reader's mail client draws it: headless Chromium at a phone's width
(375 px) and a laptop's (1024 px), light and dark, every section present. Measured from the
browser's computed styles: no horizontal scroll, no text under 14 px, tap targets at least
44 × 44 px, body text contrast at least 4.5:1 (WCAG 2.x's AA level, computed as WCAG defines
relative luminance)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.config import load_config
from watcher.digest import Renderer, build_digest, present_followups, with_followups
from watcher.followups import ERRATUM, RETRACTION, Change, StoredChange, pubmed_url
from watcher.identity import pmid_key
from watcher.models import Recipient
from watcher.sources.pubmed_xml import parse_articles

from .browser import Browser, find_chromium
from .conftest import write_config

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (apt-get install chromium; .ci/run does it as root), "
    "or name it in WATCHER_TEST_CHROMIUM",
)
FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)
# Where screenshots go for a person to look at: WATCHER_SCREENSHOTS, else the test's tmp dir.
SHOTS = os.environ.get("WATCHER_SCREENSHOTS")

# Every text element's size and colours, every link's box and the page's width, in one pass.
MEASURE = r"""
(() => {
  const parse = (c) => (c.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const label = (el) =>
    `${el.tagName.toLowerCase()}.${el.className || ''} "${el.textContent.trim().slice(0, 40)}"`;
  const texts = [];
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.getClientRects().length === 0) continue;
    const s = getComputedStyle(el);
    const fg = parse(s.color).slice(0, 3), bg = background(el);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    texts.push({el: label(el), size: parseFloat(s.fontSize), contrast: (hi + 0.05) / (lo + 0.05)});
  }
  const links = [...document.querySelectorAll('a')].map((a) => {
    const r = a.getBoundingClientRect();
    return {el: label(a), width: r.width, height: r.height};
  });
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    texts, links,
    sections: [...document.querySelectorAll('.grp, .ovh, .ord, .pm, .ft, .more, .b-close, .fubox')]
      .map(label),
  };
})()
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM is not None
    b = Browser(CHROMIUM)
    b.open_page()
    yield b
    b.close()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digest with every section: follow-ups, overview, order line, two subscriptions with
    badges, drug and trial links and a closest mark, the overflow list, PMIDs and the footer."""
    folder = tmp_path_factory.mktemp("render")
    subs = (
        '[[subscription]]\nname = "Anti-CD3 in T1D"\nquery = "teplizumab"\n'
        'recipients = ["a@example.org"]\n'
        '[[subscription]]\nname = "Vasculitis and other antibodies"\nquery = "x"\n'
        'recipients = ["a@example.org"]\n'
    )
    extra = '[mail]\nadmin = "Lab Admin <admin@lab.example.org>"\n'
    cfg = load_config(write_config(folder, "http://127.0.0.1:9/", subs, extra=extra))
    articles = {}
    files = [
        *sorted((FIXTURES / "efetch").glob("*.xml")),
        FIXTURES / "field" / "t1d-presentation.xml",
    ]
    for path in files:
        for a in parse_articles(path.read_bytes()):
            articles[a.pmid] = a
    names = [s.name for s in cfg.subscriptions]
    papers = {pmid: [names[i % 2]] for i, pmid in enumerate(articles)}
    liked = [next(iter(articles.values()))]
    reader = Recipient("a@example.org", "full", 10, "relevance")
    ctx = build_digest(
        "a@example.org",
        papers,
        articles,
        cfg.subscriptions,
        cfg.mail,
        cfg.path,
        NOW,
        reader=reader,
        liked=liked,
    )
    # Follow-ups (issue 14): a retraction and an erratum to papers received earlier.
    first, second = list(articles)[:2]
    changes = [
        StoredChange(
            1,
            Change(
                pmid_key(first),
                RETRACTION,
                "n1",
                pubmed_url(1),
                "Retraction in Am J Respir Crit Care Med. 2026 Nov 1;212(9):1301.",
            ),
            NOW,
        ),
        StoredChange(
            2,
            Change(
                pmid_key(second),
                ERRATUM,
                "n2",
                pubmed_url(2),
                "Erratum in Cell Rep. 2022 Jun 28;39(13):111044.",
            ),
            NOW,
        ),
    ]
    ctx = with_followups(
        ctx, present_followups(changes, {pmid_key(p): articles[p] for p in articles})
    )
    assert ctx.compact and ctx.overview and len(ctx.groups) == 2 and ctx.followups
    html = folder / "digest.html"
    html.write_text(Renderer().render(ctx).html, encoding="utf-8")
    return html


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
@pytest.mark.parametrize("width", [375, 1024])
def test_the_digest_reads_well_at_phone_and_laptop_width(
    browser, page, tmp_path, width, dark
) -> None:
    browser.load(page, width, dark)
    got = browser.evaluate(MEASURE)
    shots = Path(SHOTS) if SHOTS else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    browser.screenshot(shots / f"digest-{width}-{'dark' if dark else 'light'}.png")

    sections = " ".join(got["sections"])
    for what in ("fubox", "grp", "ovh", "ord", "pm", "ft", "more", "b-close"):
        assert f".{what}" in sections or f" {what}" in sections, f"no {what} section drawn"
    assert got["scrollWidth"] <= got["innerWidth"], "the page scrolls sideways"
    small = [t for t in got["texts"] if t["size"] < 14]
    assert small == [], f"text under 14 px: {small[:5]}"
    faint = [t for t in got["texts"] if t["contrast"] < 4.5]
    assert faint == [], f"contrast under 4.5:1: {faint[:5]}"
    tiny = [a for a in got["links"] if a["height"] < 44 or a["width"] < 44]
    assert tiny == [], f"tap targets under 44 px: {tiny[:5]}"
