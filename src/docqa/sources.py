"""A cited source in its document: the document's extracted text (the text the chunks'
offsets point into) with its headings, sections and pages as spans, and for a PDF its pages
as images with the boxes of a cited span on them. Extracted texts and rendered pages are
kept in bounded LRU caches, so showing a source again costs neither an extraction nor a
render."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cachetools import LRUCache

from docqa.config import Settings
from docqa.indexing.chunking import INTRODUCTION
from docqa.indexing.corpus import open_document
from docqa.ingest import Extracted, Format, extract
from docqa.isolation import extract_bounded
from docqa.library import DocumentNotFoundError, document_type
from docqa.models import Block, DocqaError
from docqa.pages import (
    PDFIUM_LOCK,
    Box,
    PageImage,
    ViewerError,
    page_count,
    render_page,
    span_boxes,
)

TEXT_CACHE_CHARS = 20_000_000
"""Characters of extracted text kept (about 20 MB for English): a few book-sized documents,
or hundreds of reports; a document longer than this is extracted on every view."""
PAGE_CACHE_BYTES = 64 * 1024 * 1024
"""Bytes of rendered PNG pages kept: ~800 text pages at 1190 x 1684 pixels (~80 KB each)."""
MAX_SPAN_CHARS = 20_000
"""Longest span whose boxes are looked up (a cited sentence is far shorter)."""

T = TypeVar("T")


class PageNotFoundError(DocumentNotFoundError):
    """A page number outside the document's pages."""


@dataclass(frozen=True)
class Span:
    """A titled stretch of the text: a heading (its own text) or a section (its heading's)."""

    title: str
    start: int
    end: int


@dataclass(frozen=True)
class DocumentText:
    """A document's extracted text with its headings, sections and pages as spans."""

    name: str
    type: str
    text: str
    headings: tuple[Span, ...]
    sections: tuple[Span, ...]
    pages: tuple[tuple[int, int], ...]
    """(start, end) of page i + 1 in `text`; empty for an unpaged format."""


def section_spans(blocks: tuple[Block, ...]) -> list[Span]:
    """Each section from its heading (or the first block, for the introduction) to its last
    block; a heading with nothing under it is a section of its own."""
    sections: list[Span] = []
    for block in blocks:
        if block.kind == "heading" or not sections:
            title = block.text if block.kind == "heading" else INTRODUCTION
            sections.append(Span(title, block.start, block.end))
        else:
            last = sections[-1]
            sections[-1] = Span(last.title, last.start, block.end)
    return sections


def page_spans(starts: tuple[int, ...], length: int) -> tuple[tuple[int, int], ...]:
    """(start, end) of each page from where each starts."""
    return tuple(zip(starts, [*starts[1:], length][: len(starts)], strict=True))


def read_document(name: str, data: bytes, settings: Settings | None) -> tuple[Format, Extracted]:
    """The format's reader run on a file: with settings, within their reading limits in a
    child process, as the index build reads it (a first view never holds the service's
    memory or a thread past the limits); without, in this process."""
    if settings is not None and settings.read_timeout_s:
        return extract_bounded(name, data, settings)
    # A scanned PDF is read by OCR through PDFium, which must not run beside a page render.
    lock = PDFIUM_LOCK if document_type(name) == "pdf" else contextlib.nullcontext()
    with lock:
        return extract(name, data)


def read_text(path: Path, name: str, settings: Settings | None = None) -> DocumentText:
    """Extract a corpus file's text as indexing does, with its spans."""
    with open_document(path) as handle:
        data = handle.read()
    try:
        found, extracted = read_document(name, data, settings)
    except DocqaError as error:
        raise ViewerError(f"{name} cannot be shown: {error}") from error
    headings = tuple(Span(b.text, b.start, b.end) for b in extracted.blocks if b.kind == "heading")
    return DocumentText(
        name,
        found.name,
        extracted.text,
        headings,
        tuple(section_spans(extracted.blocks)),
        page_spans(extracted.page_starts, len(extracted.text)),
    )


@dataclass
class SizedCache:
    """A thread-safe LRU cache bounded by the total size of its values."""

    max_size: int
    size_of: Callable[[Any], int]
    entries: LRUCache = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.entries = LRUCache(maxsize=self.max_size, getsizeof=self.size_of)

    def get_or_make(self, key: Hashable, make: Callable[[], T]) -> T:
        """The cached value of `key`, made (outside the lock) and kept when missing; a value
        over the whole bound is returned without being kept."""
        with self.lock:
            value = self.entries.get(key)
        if value is not None:
            return value
        value = make()
        if self.size_of(value) <= self.max_size:
            with self.lock:
                self.entries[key] = value
        return value

    def size(self) -> int:
        """The total size of the values kept."""
        with self.lock:
            return int(self.entries.currsize)


@dataclass
class SourceViewer:
    """The documents of a corpus folder as a viewer shows them, with bounded caches."""

    corpus_dir: Path
    settings: Settings | None = None
    """The reading limits a document's text is extracted within (None: read in process)."""
    texts: SizedCache = field(
        default_factory=lambda: SizedCache(TEXT_CACHE_CHARS, lambda d: len(d.text))
    )
    pages: SizedCache = field(
        default_factory=lambda: SizedCache(PAGE_CACHE_BYTES, lambda p: len(p.png))
    )

    def stamp(self, name: str) -> tuple[str, int, int]:
        """A cache key that changes when the file does: name, size, modification time."""
        try:
            status = (self.corpus_dir / name).stat()
        except OSError as error:
            raise DocumentNotFoundError(f"{name} is no longer in the library") from error
        return name, status.st_size, status.st_mtime_ns

    def text(self, name: str) -> DocumentText:
        """The document's extracted text with its spans (cached)."""
        key = self.stamp(name)
        path = self.corpus_dir / name
        return self.texts.get_or_make(key, lambda: read_text(path, name, self.settings))

    def pdf_bytes(self, name: str) -> bytes:
        """The bytes of a PDF of the library; ViewerError for another format."""
        if document_type(name) != "pdf":
            raise ViewerError(
                f"{name} is not a PDF: it has no pages to show; GET /documents/{{id}}/text "
                "gives its text"
            )
        with open_document(self.corpus_dir / name) as handle:
            return handle.read()

    def page(self, name: str, number: int) -> PageImage:
        """Page `number` (1-based) of a PDF as a PNG (cached)."""
        key = (*self.stamp(name), number)
        return self.pages.get_or_make(key, lambda: self.render(name, number))

    def render(self, name: str, number: int) -> PageImage:
        """Render a page, refusing a number outside the document's pages."""
        data = self.pdf_bytes(name)
        check_page(name, number, page_count(data))
        return render_page(data, number)

    def boxes(self, name: str, number: int, start: int, end: int) -> list[Box]:
        """Where the document's text[start:end] lies on page `number`, page-relative."""
        data = self.pdf_bytes(name)
        check_page(name, number, page_count(data))
        text = self.text(name).text
        if not 0 <= start < end <= len(text):
            raise ViewerError(
                f"the span {start}-{end} is outside the text of {name} (0-{len(text)}): "
                "send a source's start and end, or a citation's document_start and document_end"
            )
        if end - start > MAX_SPAN_CHARS:
            raise ViewerError(f"the span is over {MAX_SPAN_CHARS:,} characters: send a sentence's")
        return span_boxes(data, number, text[start:end])


def check_page(name: str, number: int, pages: int) -> None:
    """Raise PageNotFoundError unless 1 <= number <= pages."""
    if not 1 <= number <= pages:
        raise PageNotFoundError(f"{name} has pages 1 to {pages}: there is no page {number}")
