"""The HTML digest as a reader's mail client draws it: headless Chromium at a phone's width
(375 px) and a laptop's (1024 px), light and dark, every section present. Measured from the
browser's computed styles: no horizontal scroll, no text under 14 px, tap targets at least
44 × 44 px, body text contrast at least 4.5:1 (WCAG 2.x's AA level, computed as WCAG defines
relative luminance)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from watcher.config import load_config
from watcher.digest.build import build_digest, with_followups
from watcher.digest.present import present_followups
from watcher.digest.render import Renderer, trim
from watcher.followups import pubmed_url
from watcher.identity import pmid_key
from watcher.mail import html_part_size
from watcher.models import ERRATUM, RETRACTION, Change, StoredChange
from watcher.sources.pubmed_xml import parse_articles
from watcher.subscriptions import Recipient

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
  const bg_of = (e) => parse(getComputedStyle(e).backgroundColor).slice(0, 3);
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
    const r = a.getBoundingClientRect(), s = getComputedStyle(a);
    const fontSize = parseFloat(s.fontSize);
    const lineHeight = s.lineHeight === 'normal' ? 1.2 * fontSize : parseFloat(s.lineHeight);
    return {el: label(a), width: r.width, height: r.height, fontSize, lineHeight,
            align: s.textAlign};
  });
  // Words split over two lines: each whitespace-separated word of the overview's rows and of
  // the badges as a Range, whose client rects must all sit on one line.
  const broken = [];
  for (const el of document.querySelectorAll('.ov, .b')) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      for (const m of n.textContent.matchAll(/\S+/g)) {
        const range = document.createRange();
        range.setStart(n, m.index);
        range.setEnd(n, m.index + m[0].length);
        const tops = new Set([...range.getClientRects()].map((q) => Math.round(q.top)));
        if (tops.size > 1) broken.push(`${label(el)}: ${m[0]}`);
      }
    }
  }
  // The room inside each title link under its last line of text.
  const titles = [...document.querySelectorAll('a.t')].map((a) => {
    const range = document.createRange();
    range.selectNodeContents(a);
    const lines = [...range.getClientRects()];
    const last = Math.max(...lines.map((q) => q.bottom));
    return {el: label(a), under: a.getBoundingClientRect().bottom - last};
  });
  const bg = (sel) => {
    const e = document.querySelector(sel);
    return e ? parse(getComputedStyle(e).backgroundColor).slice(0, 3) : null;
  };
  const retracted = [...document.querySelectorAll('.p .rt, .more .rt')].map((a) => {
    const next = a.nextElementSibling;
    return {el: label(a), text: a.textContent.trim(), href: a.getAttribute('href'),
            background: bg_of(a), next: next ? (next.className || next.tagName.toLowerCase()) : ''};
  });
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    texts, links, broken, titles, retracted,
    preprint: bg('.b-preprint'), alert: bg('.b-alert'),
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


FIELD = FIXTURES / "field"
MAX_ITEMS = 13  # enough for both subscriptions to show papers in full, and a title list


def build_page(folder: Path, trimmed: bool = False) -> Path:
    """A digest with every section: follow-ups (with when and under which subscription the
    reader received each paper), the retracted papers flagged at the top, the overview (with
    a retracted paper's flag), the order line, two subscriptions with badges, drug and trial
    links, a closest mark, a retracted paper, errata and an expression of concern linked to
    their notices, a preprint, the title list (with a retracted paper), PMIDs and the footer.
    `trimmed`: the HTML part fitted, as mail does, to a budget that leaves room for five
    titles and no full entry, so that it says what it moved and left out."""
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
        FIELD / "t1d-presentation.xml",
        FIELD / "t1d-alerts.xml",
        FIXTURES / "followups" / "metapub-35649368.xml",
    ]
    for path in files:
        for a in parse_articles(path.read_bytes()):
            articles[pmid_key(a.pmid)] = a
    names = [s.name for s in cfg.subscriptions]
    papers = {item: [names[i % 2]] for i, item in enumerate(articles)}
    # The paper the reader likes is Herold 2019 (teplizumab in relatives), not one of these.
    liked = [a for a in parse_articles((FIELD / "t1d-antibodies.xml").read_bytes())][3:4]
    reader = Recipient("a@example.org", "full", MAX_ITEMS, "relevance")
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
                first,
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
                second,
                ERRATUM,
                "n2",
                pubmed_url(2),
                "Erratum in Cell Rep. 2022 Jun 28;39(13):111044.",
            ),
            NOW,
        ),
    ]
    received = {first: (date(2026, 10, 5), [names[0]]), second: (date(2026, 9, 7), names)}
    ctx = with_followups(ctx, present_followups(changes, articles, received))
    full = [p for g in ctx.groups for p in g.papers]
    assert ctx.compact and ctx.overview and len(ctx.groups) == 2 and ctx.followups
    assert any(p.retraction for p in full) and any(p.retraction for p in ctx.compact)
    assert any(o.alerts for o in ctx.overview)
    html = folder / "digest.html"
    renderer = Renderer()
    if trimmed:
        budget = html_part_size(renderer.html(trim(ctx, full=0, listed=5)))
        rendered = renderer.render(ctx, html_part_size, budget)
    else:
        rendered = renderer.render(ctx)
    html.write_text(rendered.html, encoding="utf-8")
    return html


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_page(tmp_path_factory.mktemp("render"))


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same digest over its budget: its papers moved to the title list, the last ones
    only in the attachment and the PMID line, and a note saying so."""
    return build_page(tmp_path_factory.mktemp("trimmed"), trimmed=True)


def shoot(
    browser: Browser, name: str, tmp_path: Path, selector: str | None = None, below: int = 0
) -> None:
    """A screenshot for a person to look at (WATCHER_SCREENSHOTS, else the test's tmp dir)."""
    shots = Path(SHOTS) if SHOTS else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    browser.screenshot(shots / f"{name}.png", selector, below)


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
@pytest.mark.parametrize("width", [375, 1024])
def test_the_digest_reads_well_at_phone_and_laptop_width(
    browser, page, tmp_path, width, dark
) -> None:
    browser.load(page, width, dark)
    got = browser.evaluate(MEASURE)
    scheme = "dark" if dark else "light"
    shoot(browser, f"digest-{width}-{scheme}", tmp_path)
    shoot(browser, f"overview-{width}-{scheme}", tmp_path, ".pad")
    shoot(browser, f"retracted-{width}-{scheme}", tmp_path, "td.p:has(> .rt)")

    sections = " ".join(got["sections"])
    for what in ("fubox", "grp", "ovh", "ord", "pm", "ft", "more", "b-close"):
        assert f".{what}" in sections or f" {what}" in sections, f"no {what} section drawn"
    assert_reads_well(got)
    assert len(got["retracted"]) == 2, "a RETRACTED mark in full and in the title list"
    # A preprint's badge has a colour of its own, not the alerts' red.
    assert got["preprint"] and got["alert"] and got["preprint"] != got["alert"]


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_a_trimmed_digest_says_so_and_reads_well_on_a_phone(
    browser, trimmed, tmp_path, dark
) -> None:
    browser.load(trimmed, 375, dark)
    got = browser.evaluate(MEASURE)
    shoot(browser, f"trimmed-375-{'dark' if dark else 'light'}", tmp_path, ".more", 600)
    notes = browser.evaluate("[...document.querySelectorAll('.note')].map((e) => e.textContent)")
    assert any("Gmail cuts a message" in n for n in notes), notes
    assert any("more: all are in the attachment and in the PMID line" in n for n in notes)
    assert_reads_well(got)


def assert_reads_well(got: dict[str, Any]) -> None:
    assert got["scrollWidth"] <= got["innerWidth"], "the page scrolls sideways"
    small = [t for t in got["texts"] if t["size"] < 14]
    assert small == [], f"text under 14 px: {small[:5]}"
    faint = [t for t in got["texts"] if t["contrast"] < 4.5]
    assert faint == [], f"contrast under 4.5:1: {faint[:5]}"
    tiny = [a for a in got["links"] if a["height"] < 44 or a["width"] < 44]
    assert tiny == [], f"tap targets under 44 px: {tiny[:5]}"
    # Issue 24, item 7: links left-aligned, at a normal line height however they wrap.
    tall = [a for a in got["links"] if a["lineHeight"] > 1.6 * a["fontSize"]]
    assert tall == [], f"links with tall lines: {tall[:5]}"
    centred = [a for a in got["links"] if a["align"] not in ("left", "start")]
    assert centred == [], f"links not left-aligned: {centred[:5]}"
    # No word of the overview or of a badge broken across lines ("anti-T- / cell").
    assert got["broken"] == [], f"words broken across lines: {got['broken'][:5]}"
    # A one-line title has no more room under it than a longer one (no min-height gap).
    gaps = [t for t in got["titles"] if t["under"] > 14]
    assert gaps == [], f"empty space under titles: {gaps[:5]}"
    # A retracted paper is unmistakable: a red RETRACTED before its title, linking the notice.
    for mark in got["retracted"]:
        assert mark["text"] == "RETRACTED" and mark["href"].startswith("https://pubmed.")
        r, g, b = mark["background"]
        assert r > 150 and g < 60 and b < 60, mark
        assert mark["next"] in ("t", "a"), mark  # the title's link follows
