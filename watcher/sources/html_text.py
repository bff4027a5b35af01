"""Europe PMC's titles and abstracts, which are HTML fragments, as text and sections. Pure.

Europe PMC writes MEDLINE's labelled sections as `<h4>Label</h4>`, a journal's run-in headings
as `<b>Label:</b>`, and `<sup>`, `<sub>`, `<i>` where the journal set them; a "<" or ">" that is
text stays as it was written ("aged <70", "p < .001)", "c.7271T>G") and the rest is escaped as
entities. Some titles come escaped once more (`m&lt;sup&gt;6&lt;/sup&gt;A`): their markup is
read as markup.

The standard library's HTMLParser reads them. Its tokenizer follows HTML's rule that a "<" not
followed by a letter, "/", "!" or "?" is text
(https://html.spec.whatwg.org/multipage/parsing.html#tag-open-state), and it hands over events,
so sections are built as the fragment is read and a tag no abstract uses ("p<IC90") is kept as
the text it was. lxml.html reads these fragments too, but how depends on the libxml2 under it:
2.14 replaced its HTML tokenizer, and older ones read such text otherwise.

Text comes out as a PubMed record's does (pubmed_xml): sub- and superscripts through its
helpers (H₂S, 10³), other markup dropped, whitespace collapsed; each section has NLM's category
for its label (text.section_labels.category_of), as PubMed's AbstractText carries it.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from watcher.models import AbstractSection
from watcher.text.section_labels import category_of
from watcher.text.subscripts import subscript, superscript

_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BOLD = frozenset({"b", "strong"})
_SCRIPTS = {"sup": superscript, "sub": subscript}
# Tags that end a line of text: a bold run after one may be a heading.
_BREAKS = frozenset(
    {"p", "br", "div", "li", "ul", "ol", "dl", "dt", "dd", "hr", "blockquote", "section"}
    | {"table", "tr", "td", "th", "thead", "tbody", "caption", "title"}
)
_INLINE = frozenset(
    {"i", "em", "u", "s", "strike", "span", "a", "sc", "small", "big", "tt", "code", "font"}
    | {"abbr", "cite", "var", "ins", "del", "q", "mark", "kbd", "samp", "dfn", "bdi", "bdo"}
)
_KNOWN = _HEADINGS | _BOLD | _SCRIPTS.keys() | _BREAKS | _INLINE
# A run-in bold heading: a few words ("Keywords:", "Background"), not a bold sentence.
_HEADING_LENGTH = 60
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*$")
# Markup escaped once more than the rest, as some titles are: decoded once before reading.
_ESCAPED_TAG = re.compile(r"&lt;/?(?:sup|sub|i|b|em|strong|u|sc)&gt;", re.IGNORECASE)


def abstract_sections(value: str | None) -> tuple[AbstractSection, ...]:
    """An abstract as PubMed's AbstractText elements would hold it: the text before any heading
    unlabelled, then one section per heading, each labelled and categorised."""
    reader = _Reader(sections=True)
    reader.read(value or "")
    return tuple(
        AbstractSection(label, text, category_of(label) if label else None)
        for label, text in reader.sections
    )


def plain_text(value: str | None) -> str:
    """A title or keyword: its text on one line, headings and all."""
    reader = _Reader(sections=False)
    reader.read(value or "")
    return " ".join(text for _, text in reader.sections)


class _Reader(HTMLParser):
    """One fragment's events → (label, text) sections; `sections=False` reads one run of text."""

    def __init__(self, *, sections: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.wanted = sections
        self.sections: list[tuple[str | None, str]] = []
        self.label: str | None = None
        self.parts: list[str] = []  # the current section's text
        # Open elements whose text is held until they close: a heading, a bold run that may be
        # one, a sub- or superscript. (tag, text, what came before a bold run)
        self.held: list[tuple[str, list[str], str]] = []
        self.at_break = True  # nothing written since the start, a heading or a line break

    def read(self, value: str) -> None:
        self.feed(html.unescape(value) if _ESCAPED_TAG.search(value) else value)
        self.close()
        while self.held:  # left open to the end: its text is text
            tag, text, _ = self.held.pop()
            if tag in _SCRIPTS:
                self._write(_SCRIPTS[tag]("".join(text)))
            else:  # a heading's text is its own line
                self._write((" " if tag in _HEADINGS else "") + "".join(text))
        self._end_section()

    def handle_data(self, data: str) -> None:
        self._write(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _KNOWN:
            self._write(self.get_starttag_text() or "")
        elif tag in _BREAKS:
            self._break()
        elif tag in _SCRIPTS or (self.wanted and not self.held and tag in _HEADINGS | _BOLD):
            self.held.append((tag, [], self._before_bold() if tag in _BOLD else ""))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _KNOWN:
            self._write(self.get_starttag_text() or "")
        elif tag in _BREAKS:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag not in _KNOWN:
            self._write(f"</{tag}>")
            return
        if tag in _BREAKS:
            self._break()
            return
        if not any(t == tag for t, _, _ in self.held):
            return  # an inline tag, or one closed that never opened
        while self.held:  # closing what was left open inside it too
            open_tag, text, before = self.held.pop()
            self._close(open_tag, " ".join("".join(text).split()), before, "".join(text))
            if open_tag == tag:
                return

    def _close(self, tag: str, words: str, before: str, raw: str) -> None:
        if tag in _SCRIPTS:
            self._write(_SCRIPTS[tag](raw))
        elif tag in _HEADINGS and words:
            self._end_section()
            self.label = words.rstrip(":").strip() or None
        elif tag in _BOLD and _is_heading(words, before):
            self._end_section()
            self.label = words.rstrip(":").strip()
        else:
            self._write(raw)

    def _before_bold(self) -> str:
        """What precedes a bold run: "break" (nothing, or a line break), "sentence" (the end
        of one) or "text"."""
        if self.at_break:
            return "break"
        return "sentence" if _SENTENCE_END.search("".join(self.parts).rstrip()) else "text"

    def _write(self, text: str) -> None:
        if self.held:
            self.held[-1][1].append(text)
            return
        self.parts.append(text)
        if not text.isspace():
            self.at_break = False

    def _break(self) -> None:
        self._write(" ")
        if not self.held:
            self.at_break = True

    def _end_section(self) -> None:
        text = " ".join("".join(self.parts).split())
        if text:
            self.sections.append((self.label, text))
        self.label = None
        self.parts = []
        self.at_break = True


def _is_heading(words: str, before: str) -> bool:
    """A bold run is a heading where a line starts with it, or a sentence ends before it and
    it ends with a colon ("… alterations. <b>Keywords:</b> …"); bold words in a sentence are
    text."""
    if not words or len(words) > _HEADING_LENGTH or before == "text":
        return False
    return before == "break" or words.endswith(":")
