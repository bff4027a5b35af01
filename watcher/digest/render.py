"""The digest's subject, text and HTML parts: Jinja2 over the templates, the HTML part fitted
to its size budget in bytes as sent, the text part folded to 78 columns."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from watcher.digest.context import DigestContext
from watcher.paths import shipped
from watcher.text import subscripts
from watcher.text.lines import header_safe
from watcher.text.subscripts import MarkedText

log = logging.getLogger(__name__)

# Gmail clips an HTML part past 102 KB and shows only what comes before it ("[Message
# clipped] View entire message"): the end, with the PMID line and the way out, is what is lost,
# and the clipped view drops the <style> too (hteumeuleu/email-bugs#56; Email on Acid, "Developing
# HTML Emails for Gmail: 12 Things You Must Know", item 3). Aim well under it, in bytes of the
# HTML part as sent (after its quoted-printable encoding; mail.html_part_size).
GMAIL_CLIP = 102 * 1024
HTML_BUDGET = 90_000
# Overview rows kept when even a digest of titles alone is over the budget (thousands of papers).
OVERVIEW_KEPT = 10
# Texts a Renderer keeps folded or marked up (Memo): a run's distinct ones are its papers'
# titles, author lists and abstracts, a few per paper; past this a memo starts again.
MEMO_KEPT = 50_000


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


class Renderer:
    """Jinja2 over the shipped templates, each overridable by a file in the user's folder."""

    def __init__(self, user_templates: Path | None = None) -> None:
        import jinja2

        folders = [str(user_templates)] if user_templates else []
        folders.append(str(shipped("templates")))
        loader = jinja2.FileSystemLoader(folders)
        common: dict[str, Any] = dict(
            loader=loader, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
        )
        # What is said of a paper is the same for every reader who gets it: folded (the text
        # part) and marked up (the HTML part's scripts) once per Renderer, not once per reader.
        self.folds = Memo(_wrap)
        self.marked = Memo(subscripts.html)
        self.html_env = jinja2.Environment(autoescape=True, finalize=self._html_value, **common)
        self.text_env = jinja2.Environment(autoescape=False, keep_trailing_newline=True, **common)
        for env in (self.html_env, self.text_env):
            env.filters["wrap"] = self.folds
        import css_inline

        # The template's main <style> (data-css-inline="ignore") stays in the head, where Gmail
        # (web and app, Google accounts), Apple Mail, iOS Mail, Outlook and Outlook.com read it;
        # only the small block without that attribute is inlined too, for the clients that
        # drop <style> (Gmail's app with other accounts, some webmails): what must survive
        # there. See README, "How the digest reaches its reader".
        self.inliner = css_inline.CSSInliner(
            keep_style_tags=True, keep_at_rules=True, load_remote_stylesheets=False
        )

    def render(
        self,
        ctx: DigestContext,
        html_size: Callable[[str], int] | None = None,
        budget: int = HTML_BUDGET,
    ) -> Rendered:
        """The subject, the text part and the HTML part of `ctx`. With `html_size` (how many
        bytes an HTML text takes as sent, mail.html_part_size), the HTML part is fitted to
        `budget` (fit_html); the text part always carries everything."""
        values = {"d": ctx}
        subject = header_safe(self.text_env.get_template("subject.txt").render(values))
        text = fold_text(self.text_env.get_template("digest.txt").render(values), folds=self.folds)
        if html_size is None:
            html = self.html(ctx)
        else:
            html = fit_html(ctx, self.html, html_size, budget)[1]
        return Rendered(subject, text, html)

    def _html_value(self, value: Any) -> Any:
        """What the HTML part shows for a value: article text with its marked scripts as
        <sup>/<sub> (watcher.text.subscripts); anything else as it is, escaped by Jinja."""
        if isinstance(value, MarkedText):
            from markupsafe import Markup

            return Markup(self.marked(value))
        return value

    def html(self, ctx: DigestContext) -> str:
        return self.inliner.inline(self.html_env.get_template("digest.html").render(d=ctx))


def fit_html(
    ctx: DigestContext,
    render: Callable[[DigestContext], str],
    size: Callable[[str], int],
    budget: int = HTML_BUDGET,
) -> tuple[DigestContext, str]:
    """The HTML part within `budget` bytes as sent (`size`): as it is if it fits; else the last
    papers shown in full move to the title list, as few as needed; past that the title list
    ends early with "N more" (all are in the attachment and the PMID line); past that, for
    thousands of papers, the overview keeps its first rows and the PMID line its first PMIDs.
    The context says what was left out, and the HTML says it too."""

    def fits(c: DigestContext) -> str | None:
        html = render(c)
        # Quoted-printable never shrinks a text: over the budget decoded, over it as sent.
        return html if len(html.encode()) <= budget and size(html) <= budget else None

    html = fits(ctx)
    if html is not None:
        return ctx, html
    full = sum(len(g.papers) for g in ctx.groups)
    listed = full + len(ctx.compact)
    steps: list[tuple[int, Callable[[int], DigestContext]]] = [
        (full - 1, lambda n: trim(ctx, full=n)),
        (listed - 1, lambda n: trim(ctx, full=0, listed=n)),
        (len(ctx.pmids), lambda n: trim(ctx, full=0, listed=0, overview=OVERVIEW_KEPT, pmids=n)),
    ]
    for most, step in steps:

        def attempt(n: int, step: Callable[[int], DigestContext] = step) -> str | None:
            return fits(step(n))

        found = _largest(most, attempt)
        if found is not None:
            return step(found[0]), found[1]
    smallest = steps[-1][1](0)
    log.warning("digest to %s: even its shortest HTML part is over %d bytes", ctx.recipient, budget)
    return smallest, render(smallest)


def _largest(most: int, ok: Callable[[int], str | None]) -> tuple[int, str] | None:
    """The largest n in 0..most for which ok(n) gives a result (fewer never fails where more
    succeeds), with that result; None if even 0 fails. A binary search: ~log2(most) renders."""
    if most < 0:
        return None
    best = None
    lo, hi = 0, most
    while lo <= hi:
        mid = (lo + hi) // 2
        got = ok(mid)
        if got is None:
            hi = mid - 1
        else:
            best, lo = (mid, got), mid + 1
    return best


def trim(
    ctx: DigestContext,
    *,
    full: int,
    listed: int | None = None,
    overview: int | None = None,
    pmids: int | None = None,
) -> DigestContext:
    """`ctx` with only its first `full` papers shown in full (the others first in the title
    list, as titles), the title list cut after `listed` entries, the overview after `overview`
    rows and the PMID line after `pmids` PMIDs; what it leaves out is counted, to be said."""
    papers = [p for g in ctx.groups for p in g.papers]
    kept = set(map(id, papers[:full]))
    moved = [replace(p, compact=True, abstract=()) for p in papers[full:]]
    titles = moved + list(ctx.compact)
    cut = titles if listed is None else titles[:listed]
    groups = []
    for g in ctx.groups:
        shown = tuple(p for p in g.papers if id(p) in kept)
        if shown:
            groups.append(replace(g, papers=shown))
    rows = ctx.overview if overview is None else ctx.overview[:overview]
    return replace(
        ctx,
        groups=tuple(groups),
        compact=tuple(cut),
        moved=len(moved),
        unlisted=len(titles) - len(cut),
        overview=rows,
        overview_cut=len(ctx.overview) - len(rows),
        pmids_cut=0 if pmids is None else max(0, len(ctx.pmids) - pmids),
    )


def fold_text(
    text: str, width: int = 78, folds: Callable[[str, int, str], str] | None = None
) -> str:
    """Every line of the text part within `width` columns (RFC 5322's 78), a longer one wrapped
    at spaces under its own indent; a URL is never broken, so a line holding only a URL may be
    longer. `folds` remembers lines folded before."""
    wrap = folds or _wrap
    out = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip(" "))]
        out.append(wrap(line.strip(), width, indent))
    return "\n".join(out)


class Memo:
    """`function`'s results by its arguments: a digest run mails the same paper's title,
    authors and abstract to many readers, and folding them and marking them up again for each
    was a tenth of the run. Bounded (MEMO_KEPT), as a Renderer lives as long as the daemon."""

    def __init__(self, function: Callable[..., str], kept: int = MEMO_KEPT) -> None:
        self.function = function
        self.kept = kept
        self._results: dict[tuple[Any, ...], str] = {}

    def __call__(self, *args: Any) -> str:
        result = self._results.get(args)
        if result is None:
            if len(self._results) >= self.kept:
                self._results.clear()
            result = self._results[args] = self.function(*args)
        return result


def _wrap(text: str, width: int = 76, indent: str = "") -> str:
    import textwrap

    return textwrap.fill(
        text,
        width=width,
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
