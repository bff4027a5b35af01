"""PubMed XML (efetch, MEDLINE files) → Article records. Pure.

An efetch body is parsed without the parts never read (pubmed_prepass.py cuts them by bytes);
a file streams one record at a time, so memory stays bounded whatever its size. Each record is
read by pubmed_record.py (its lists by pubmed_lists.py, element text by pubmed_elements.py).
Element reference: https://www.nlm.nih.gov/bsd/licensee/elements_descriptions.html
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import IO, Any

from lxml import etree

from watcher.errors import SourceError
from watcher.models import Article
from watcher.sources.pubmed_elements import text_of
from watcher.sources.pubmed_prepass import kept_spans
from watcher.sources.pubmed_record import pmid_and_version, read_article

log = logging.getLogger(__name__)

ErrorSink = Callable[[str], None]
# Told each PMID a DeleteCitation names: NCBI deleted the record from PubMed.
DeletionSink = Callable[[int], None]

_RECORD_TAGS = ("PubmedArticle", "PubmedBookArticle", "MedlineCitation", "DeleteCitation")
# In a PubmedArticleSet (what efetch sends) a MedlineCitation is always inside its PubmedArticle
# (DTD: PubmedArticleSet holds PubmedArticle, PubmedBookArticle, DeleteCitation): its end event,
# one a record, would only be skipped.
_SET_TAGS = ("PubmedArticle", "PubmedBookArticle", "DeleteCitation")
_ARTICLE_SET = re.compile(rb"<PubmedArticleSet[\s>]")


class XmlError(SourceError):
    """The bytes are not well-formed XML (e.g. a body cut off in transit)."""


# Safe parsing of what a server sends: no entity expansion (libxml2 also refuses an entity
# bomb outright), no DTD, no network or file access, and libxml2's default limits (nesting
# depth 256, text nodes of 10 MB), far above any real record.
_SAFE = {"huge_tree": False, "resolve_entities": False, "load_dtd": False, "no_network": True}


def parse_articles(
    source: bytes | IO[bytes],
    on_error: ErrorSink | None = None,
    on_deleted: DeletionSink | None = None,
) -> Iterator[Article]:
    """Yield the articles of a PubmedArticleSet or MedlineCitationSet, in document order.

    A record that cannot be read is reported to `on_error` and skipped; each PMID a
    DeleteCitation names is told to `on_deleted`; malformed XML raises XmlError (the caller
    decides whether to fetch again).

    An efetch body (bytes) is read without the parts of each record no field comes from (see
    pubmed_prepass.kept_spans), fed to the parser _FEED bytes at a time, never copied whole; a
    stream (a MEDLINE file) is read with everything in it. Either way the parser hands over one
    record at a time, cleared once read, so memory stays bounded whatever the size, at no cost
    in speed (bench/README.md: design notes).
    """
    n = 0
    try:
        if isinstance(source, bytes):
            tags = _SET_TAGS if _ARTICLE_SET.search(source, 0, 4096) else _RECORD_TAGS
            parser = etree.XMLPullParser(events=("end",), tag=tags, **_SAFE)
            feed, events = parser.feed, parser.read_events
            # The kept parts, fed _FEED bytes at a time (records are read and freed as they
            # complete): each feed joins the pieces it holds, so the cuts in a record do not
            # each cost a call into the parser.
            view = memoryview(source)
            pieces: list[memoryview] = []
            size = 0
            for start, stop in kept_spans(source):
                for at in range(start, stop, _FEED):
                    piece = view[at : min(at + _FEED, stop)]
                    pieces.append(piece)
                    size += len(piece)
                    if size < _FEED:
                        continue
                    feed(b"".join(pieces))
                    pieces.clear()
                    size = 0
                    for article in _records(events(), on_error, on_deleted, n):
                        n += 1
                        if article is not None:
                            yield article
            feed(b"".join(pieces))
            pieces.clear()
            view.release()
            parser.close()
            pending = events()
        else:
            pending = etree.iterparse(source, events=("end",), tag=_RECORD_TAGS, **_SAFE)
        for article in _records(pending, on_error, on_deleted, n):
            n += 1
            if article is not None:
                yield article
    except etree.XMLSyntaxError as exc:
        raise XmlError(f"malformed PubMed XML after {n} records: {exc}") from None


# Bytes handed to the parser at a time; iterparse reads a stream 32 KB at a time.
_FEED = 1 << 15


def _records(
    events: Iterator[tuple[str, Any]],
    on_error: ErrorSink | None,
    on_deleted: DeletionSink | None,
    n: int,
) -> Iterator[Article | None]:
    """One item per record among `events` (None where it is a deletion or could not be read),
    each freed once read with the siblings before it; `n` counts the records before these."""
    for _event, el in events:
        tag = el.tag
        parent = el.getparent()
        # A MedlineCitation inside a PubmedArticle is read with its PubmedArticle.
        if tag == "MedlineCitation" and parent is not None and parent.tag == "PubmedArticle":
            continue
        n += 1
        if tag != "DeleteCitation":
            yield _read_record(el, n, on_error)
        else:
            _deleted(el, on_error, on_deleted)
            yield None
        # Free what was read: the record and the siblings before it.
        el.clear(keep_tail=False)
        if parent is not None:
            while el.getprevious() is not None:
                del parent[0]


def _deleted(el: Any, on_error: ErrorSink | None, on_deleted: DeletionSink | None) -> None:
    """The PMIDs of a DeleteCitation (DTD: DeleteCitation (PMID+)): the records NCBI deleted,
    in an efetch answer those asked for that PubMed no longer holds."""
    for child in el.iterchildren("PMID"):
        try:
            pmid, _version = pmid_and_version(child)
        except ValueError as exc:
            if on_error is not None:
                on_error(f"a DeleteCitation skipped: {exc}")
            continue
        if on_deleted is not None:
            on_deleted(pmid)


def _read_record(el: Any, n: int, on_error: ErrorSink | None) -> Article | None:
    """The record's article, or None once its fault is reported: one bad record never costs
    the others of its batch."""
    try:
        return read_article(el)
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        pmid = text_of(el.find(".//PMID")) or "?"
        message = f"record {n} (PMID {pmid}) skipped: {exc}"
        log.warning("%s", message)
        if on_error is not None:
            on_error(message)
        return None
