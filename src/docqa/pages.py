"""PDF pages as images, and where a span of text lies on a page, through pypdfium2 (PDFium,
the PDF engine of Chromium): it renders a page in tens of milliseconds and gives each
character's box, which pdfminer would take seconds to lay out.

PDFium is not thread-safe: every call into it holds PDFIUM_LOCK.
"""

from __future__ import annotations

import io
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from docqa.models import DocqaError

PDFIUM_LOCK = threading.Lock()
SCALE = 2.0
"""Pixels per PDF point (144 dpi): an A4 page is 1190 x 1684 pixels, sharp on a HiDPI screen."""
MAX_PIXELS = 4_000_000
"""A larger page (a poster, a plan) is rendered at a smaller scale, to bound time and memory."""
PNG_COMPRESS_LEVEL = 1
"""zlib level 1: a text page encodes in half the time of the default 6, ~10% larger."""


class ViewerError(DocqaError):
    """A view the document cannot give: pages of a document that is not a PDF, a span
    outside its text, a PDF that PDFium cannot open."""


@dataclass(frozen=True)
class PageImage:
    """A rendered page: PNG bytes and its size in pixels."""

    png: bytes
    width: int
    height: int


@dataclass(frozen=True)
class Box:
    """A rectangle on a page, as shares of the page's width and height from its top left."""

    x: float
    y: float
    width: float
    height: float


@contextmanager
def opened(data: bytes) -> Iterator[Any]:
    """The PDF open in PDFium, under the lock; ViewerError when it cannot be opened."""
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as error:
            raise ViewerError(f"the PDF cannot be opened ({error})") from error
        try:
            yield document
        finally:
            document.close()


def page_count(data: bytes) -> int:
    """The number of pages of a PDF."""
    with opened(data) as document:
        return len(document)


def render_page(data: bytes, number: int) -> PageImage:
    """Page `number` (1-based) as a PNG at SCALE (less for a very large page)."""
    with opened(data) as document:
        page = document[number - 1]
        width, height = page.get_size()
        scale = min(SCALE, (MAX_PIXELS / max(width * height, 1.0)) ** 0.5)
        image = page.render(scale=scale).to_pil()
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return PageImage(buffer.getvalue(), image.width, image.height)


def folded(text: str) -> tuple[str, list[int]]:
    """The letters and digits of `text`, NFKC-normalised and lower-cased, with the index in
    `text` each comes from: extraction joined hyphenated words and whitespace differently."""
    letters: list[str] = []
    origins: list[int] = []
    for index, char in enumerate(text):
        for part in unicodedata.normalize("NFKC", char).lower():
            if part.isalnum():
                letters.append(part)
                origins.append(index)
    return "".join(letters), origins


def find_span(page_text: str, wanted: str) -> range:
    """The characters of `page_text` that hold `wanted`, or, when it runs over a page break
    (or a running header dropped in extraction cuts it), its longest beginning or end found
    there; an empty range when none of it is."""
    page, origins = folded(page_text)
    needle, _ = folded(wanted)
    if not needle or not page:
        return range(0)
    at = page.find(needle)
    if at >= 0:
        return range(origins[at], origins[at + len(needle) - 1] + 1)
    head = longest(lambda n: page.find(needle[:n]), len(needle))
    tail = longest(lambda n: page.rfind(needle[-n:]), len(needle))
    size = max(head[0], tail[0])
    if size < min(len(needle), MIN_PART_CHARS):
        return range(0)
    found = head[1] if head[0] >= tail[0] else tail[1]
    return range(origins[found], origins[found + size - 1] + 1)


MIN_PART_CHARS = 12
"""A part of a span shorter than this (in letters and digits) is not taken for it: a few
letters occur on most pages."""


def longest(find: Any, limit: int) -> tuple[int, int]:
    """The largest n <= limit for which find(n) >= 0, and that position (0, -1 if none):
    a prefix (or suffix) found on the page means every shorter one is, so bisect."""
    low, high, where = 0, limit, -1
    while low < high:
        middle = (low + high + 1) // 2
        position = find(middle)
        if position >= 0:
            low, where = middle, position
        else:
            high = middle - 1
    return low, where


def line_boxes(chars: list[tuple[float, float, float, float]]) -> list[tuple[float, ...]]:
    """Character boxes (left, bottom, right, top) merged into one box per line: a character
    starts a new line when it is left of the one before or outside the line's height."""
    lines: list[list[float]] = []
    previous_left = float("-inf")
    for left, bottom, right, top in chars:
        if right <= left or top <= bottom:
            continue  # a space or a generated line break
        line = lines[-1] if lines else None
        if (
            line is None
            or left < previous_left - 1.0
            or not line[1] <= (bottom + top) / 2 <= line[3]
        ):
            lines.append([left, bottom, right, top])
        else:
            line[:] = [
                min(line[0], left),
                min(line[1], bottom),
                max(line[2], right),
                max(line[3], top),
            ]
        previous_left = left
    return [tuple(line) for line in lines]


def span_boxes(data: bytes, number: int, wanted: str) -> list[Box]:
    """The boxes of the lines that hold `wanted` on page `number`, page-relative; empty when
    the text is not on that page."""
    import pypdfium2.raw as raw

    with opened(data) as document:
        page = document[number - 1]
        textpage = page.get_textpage()
        count = textpage.count_chars()
        page_text = "".join(chr(raw.FPDFText_GetUnicode(textpage, i)) for i in range(count))
        found = find_span(page_text, wanted)
        chars = [textpage.get_charbox(i, loose=True) for i in found]
        left, bottom, right, top = page.get_bbox()
        rotation = page.get_rotation()
    width, height = max(right - left, 1e-6), max(top - bottom, 1e-6)
    boxes = [
        Box((x0 - left) / width, (top - y1) / height, (x1 - x0) / width, (y1 - y0) / height)
        for x0, y0, x1, y1 in line_boxes(chars)
    ]
    return [rotated(box, rotation) for box in boxes]


def rotated(box: Box, degrees: int) -> Box:
    """A page-relative box on the page as shown, turned clockwise by the page's /Rotate."""
    if degrees == 90:
        return Box(1 - box.y - box.height, box.x, box.height, box.width)
    if degrees == 180:
        return Box(1 - box.x - box.width, 1 - box.y - box.height, box.width, box.height)
    if degrees == 270:
        return Box(box.y, 1 - box.x - box.width, box.height, box.width)
    return box
