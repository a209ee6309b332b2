"""PDF text layer through pdfminer.six: its layout analysis gives text boxes with font sizes
and positions, so headings come from font sizes and running headers, footers and page
numbers can be recognised by repetition and place. A page without a text layer but covered
by an image (a scan) is read by OCR (ocr.py); a page with drawn lines is searched for tables
(pdf_tables.py), whose rows become passages with their column headers."""

from __future__ import annotations

import io
import logging
import re
import statistics
from collections import Counter
from dataclasses import dataclass, replace

from docqa.ingest.base import Extracted, ExtractionError, Part, assemble
from docqa.ingest.cleaning import keeps_hyphen
from docqa.ingest.pdf_tables import PdfTable, find_tables

HEADING_RATIO = 1.15
"""A line set at least this much larger than the body text is a heading (the body is the
size most characters are set in; 12 pt body and 14 pt headings is the smallest common step)."""
MAX_HEADING_CHARS = 120
MARGIN_SHARE = 0.12
"""Running headers and footers sit in the top or bottom 12% of the page."""
MIN_LAYER_CHARS = 20
"""A page whose text layer holds fewer characters (none, a page number, a scanner's stamp)
has no text layer to speak of: it is OCRed when an image covers it."""
SCAN_SHARE = 0.5
"""An image covering at least half the page makes it a scanned page (a logo or a figure does
not)."""
MIN_RULINGS = 4
"""Pages with at least this many drawn lines and rectangles are searched for tables (the
fewest a ruled table of two rows and two columns is drawn with); table finding triples the
time a page takes, so pages of text alone are not searched."""
_PAGE_NUMBER = re.compile(
    r"^(?:page\s*)?[-–—]?\s*\d{1,4}\s*[-–—]?(?:\s*(?:of|/)\s*\d{1,4})?$", re.I
)
_TERMINAL = re.compile(r"[.!?:][\"'”’)\]]*$")
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


@dataclass
class _Line:
    text: str
    size: float
    top: float  # distance from the top of the page, as a share of its height
    bottom: float  # distance from the bottom, as a share
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    """(left, top, right, bottom) in points from the page's top left corner."""


@dataclass
class _Box:
    page: int
    lines: list[_Line]
    table: bool = False
    """The rows of a table, one line each (already labelled with their column headers)."""


@dataclass(frozen=True)
class _Page:
    number: int
    chars: int
    """Characters of its text layer."""
    image_share: float
    """Share of the page its largest image covers."""
    rulings: int
    """Drawn lines and rectangles on it (table borders, underlines, frames)."""


def _read_boxes(data: bytes) -> tuple[list[_Box], list[_Page]]:
    """The text boxes of every page, with each line's font size and place, and what each
    page holds besides (its characters, images and drawn lines)."""
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import (
        LAParams,
        LTChar,
        LTFigure,
        LTImage,
        LTLine,
        LTRect,
        LTTextContainer,
        LTTextLine,
    )

    boxes: list[_Box] = []
    pages: list[_Page] = []
    for number, page in enumerate(extract_pages(io.BytesIO(data), laparams=LAParams()), 1):
        height = max(page.height, 1.0)
        area = max(page.width * page.height, 1.0)
        chars, image_share, rulings = 0, 0.0, 0
        for element in page:
            if isinstance(element, LTFigure | LTImage):
                image_share = max(image_share, _covered(element.bbox, page.bbox) / area)
            elif isinstance(element, LTLine | LTRect):
                rulings += 1
            if not isinstance(element, LTTextContainer):
                continue
            lines = []
            for line in element:
                if not isinstance(line, LTTextLine) or not line.get_text().strip():
                    continue
                sizes = [c.size for c in line if isinstance(c, LTChar) and c.get_text().strip()]
                size = statistics.median(sizes) if sizes else 0.0
                top = (page.y1 - line.y1) / height
                bottom = (line.y0 - page.y0) / height
                box = (line.x0, page.y1 - line.y1, line.x1, page.y1 - line.y0)
                lines.append(_Line(" ".join(line.get_text().split()), size, top, bottom, box))
                chars += len(lines[-1].text)
            if lines:
                boxes.append(_Box(number, lines))
        pages.append(_Page(number, chars, image_share, rulings))
    return boxes, pages


def _covered(bbox: tuple[float, float, float, float], page: tuple[float, ...]) -> float:
    """The area of a box that lies on the page."""
    width = min(bbox[2], page[2]) - max(bbox[0], page[0])
    height = min(bbox[3], page[3]) - max(bbox[1], page[1])
    return max(width, 0.0) * max(height, 0.0)


def is_scanned(page: _Page) -> bool:
    """Whether a page has no text layer but an image covering it: it is read by OCR."""
    return page.chars < MIN_LAYER_CHARS and page.image_share >= SCAN_SHARE


def ocr_boxes(data: bytes, numbers: list[int]) -> list[_Box]:
    """The paragraphs OCR reads on these pages, as boxes of lines like the text layer's."""
    from docqa.ingest.ocr import read_scanned_pages

    return [
        _Box(number, [_Line(ln.text, ln.size, ln.top, ln.bottom, ln.box) for ln in paragraph])
        for number, paragraphs in read_scanned_pages(data, numbers)
        for paragraph in paragraphs
    ]


def place_tables(boxes: list[_Box], tables: list[PdfTable]) -> list[_Box]:
    """Each table's lines of text replaced by one box of its rows, where the table stands."""
    placed: list[_Box] = []
    waiting = list(tables)
    for box in boxes:
        here = [table for table in tables if table.page == box.page]
        lines = [line for line in box.lines if not any(_inside(line, t) for t in here)]
        top = box.lines[0].box[1]
        while waiting and (waiting[0].page, waiting[0].box[1]) <= (box.page, top):
            placed.append(_table_box(waiting.pop(0)))
        if lines:
            placed.append(replace(box, lines=lines))
    return placed + [_table_box(table) for table in waiting]


def _inside(line: _Line, table: PdfTable) -> bool:
    """Whether a line's middle lies within a table."""
    x = (line.box[0] + line.box[2]) / 2
    y = (line.box[1] + line.box[3]) / 2
    left, top, right, bottom = table.box
    return left <= x <= right and top <= y <= bottom


def _table_box(table: PdfTable) -> _Box:
    return _Box(table.page, [_Line(text, 0.0, 0.5, 0.5) for text in table.lines], table=True)


def _chrome_key(text: str) -> str:
    return re.sub(r"\d+", "#", text.lower())


def drop_chrome(boxes: list[_Box], pages: int) -> list[_Box]:
    """Remove page numbers and lines repeated in the margins of most pages."""

    def in_margin(line: _Line) -> bool:
        return line.top < MARGIN_SHARE or line.bottom < MARGIN_SHARE

    seen = Counter(
        key
        for key in {
            (box.page, _chrome_key(line.text))
            for box in boxes
            for line in box.lines
            if in_margin(line)
        }
    )
    repeated = Counter(key for _, key in seen)
    threshold = max(2, (pages + 1) // 2)
    kept = []
    for box in boxes:
        lines = [
            line
            for line in box.lines
            if not (
                in_margin(line)
                and (_PAGE_NUMBER.match(line.text) or repeated[_chrome_key(line.text)] >= threshold)
            )
        ]
        if lines:
            kept.append(replace(box, lines=lines))
    return kept


def body_size(boxes: list[_Box]) -> float:
    """The font size most characters are set in."""
    sizes: Counter[float] = Counter()
    for box in boxes:
        for line in box.lines if not box.table else ():
            sizes[round(line.size, 1)] += len(line.text)
    return sizes.most_common(1)[0][0] if sizes else 0.0


def join_lines(lines: list[str], vocabulary: set[str]) -> str:
    """Lines of a paragraph joined; a word split by a hyphen at a line end is rejoined."""
    text = ""
    for line in lines:
        if text.endswith("-") and len(text) > 1 and not keeps_hyphen(text, line, vocabulary):
            text = text[:-1] + line
        else:
            text = f"{text} {line}" if text else line
    return text


def pdf_parts(boxes: list[_Box], vocabulary: set[str]) -> list[Part]:
    """Headings (by font size) and paragraphs; a paragraph cut by a page break is rejoined."""
    body = body_size(boxes)
    parts: list[Part] = []
    for box in boxes:
        if box.table:
            parts.extend(Part("row", line.text, box.page) for line in box.lines)
            continue
        large = all(line.size >= body * HEADING_RATIO for line in box.lines)
        text = join_lines([line.text for line in box.lines], vocabulary)
        if large and len(text) <= MAX_HEADING_CHARS:
            parts.append(Part("heading", text, box.page))
        elif (
            parts
            and parts[-1].kind == "paragraph"
            and not _TERMINAL.search(parts[-1].text)
            and text[:1].islower()
        ):
            previous = parts.pop()
            parts.append(
                Part("paragraph", join_lines([previous.text, text], vocabulary), previous.page)
            )
        else:
            parts.append(Part("paragraph", text, box.page))
    return parts


def read(data: bytes) -> Extracted:
    """The text of a PDF as headings and paragraphs with their pages: its text layer, OCR of
    its scanned pages, and its tables row by row."""
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from pdfminer.pdfparser import PDFSyntaxError
    from pdfminer.psexceptions import PSException

    logging.getLogger("pdfminer").setLevel(logging.ERROR)  # font and CropBox chatter
    try:
        boxes, pages = _read_boxes(data)
    except (PDFPasswordIncorrect, PDFEncryptionError) as error:
        raise ExtractionError(
            "encrypted (password-protected) PDF: save an unprotected copy, "
            "e.g. `qpdf --decrypt IN OUT`"
        ) from error
    except (PDFSyntaxError, PSException, ValueError, TypeError, KeyError) as error:
        raise ExtractionError(f"damaged PDF ({error or type(error).__name__})") from error
    scanned = [page.number for page in pages if is_scanned(page)]
    if scanned:
        boxes = [box for box in boxes if box.page not in scanned] + ocr_boxes(data, scanned)
        boxes.sort(key=lambda box: box.page)  # stable: each page keeps its reading order
    ruled = [p.number for p in pages if p.rulings >= MIN_RULINGS and p.number not in scanned]
    if ruled:
        try:
            tables = find_tables(data, ruled)
        except (PDFSyntaxError, PSException, ValueError, TypeError, KeyError):
            tables = []  # pdfminer has read these pages: their tables stay as text boxes
        boxes = place_tables(boxes, tables)
    boxes = drop_chrome(boxes, len(pages))
    if not boxes:
        found = f"OCR found no text on its {len(scanned)} scanned page(s)" if scanned else ""
        raise ExtractionError(found or "no text layer and no scanned page image to OCR")
    vocabulary = {
        w.lower() for box in boxes for line in box.lines for w in _WORD.findall(line.text)
    }
    return replace(assemble(pdf_parts(boxes, vocabulary), len(pages)), ocr_pages=len(scanned))
