"""PDF text layer through pdfminer.six: its layout analysis gives text boxes with font sizes
and positions, so headings come from font sizes and running headers, footers and page
numbers can be recognised by repetition and place. Scanned (image-only) PDFs are refused."""

from __future__ import annotations

import io
import logging
import re
import statistics
from collections import Counter
from dataclasses import dataclass

from docqa.cleaning import keeps_hyphen
from docqa.ingest.base import Extracted, ExtractionError, Part, assemble

HEADING_RATIO = 1.15
"""A line set at least this much larger than the body text is a heading (the body is the
size most characters are set in; 12 pt body and 14 pt headings is the smallest common step)."""
MAX_HEADING_CHARS = 120
MARGIN_SHARE = 0.12
"""Running headers and footers sit in the top or bottom 12% of the page."""
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


@dataclass
class _Box:
    page: int
    lines: list[_Line]


def _read_boxes(data: bytes) -> tuple[list[_Box], int]:
    """The text boxes of every page, with each line's font size and place."""
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTChar, LTTextContainer, LTTextLine

    boxes: list[_Box] = []
    pages = 0
    for number, page in enumerate(extract_pages(io.BytesIO(data), laparams=LAParams()), 1):
        pages = number
        height = max(page.height, 1.0)
        for element in page:
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
                lines.append(_Line(" ".join(line.get_text().split()), size, top, bottom))
            if lines:
                boxes.append(_Box(number, lines))
    return boxes, pages


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
            kept.append(_Box(box.page, lines))
    return kept


def body_size(boxes: list[_Box]) -> float:
    """The font size most characters are set in."""
    sizes: Counter[float] = Counter()
    for box in boxes:
        for line in box.lines:
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
    """The text layer of a PDF as headings and paragraphs with their pages."""
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
    boxes = drop_chrome(boxes, pages)
    if not boxes:
        raise ExtractionError("no text layer (a scanned or image-only PDF); OCR is not supported")
    vocabulary = {
        w.lower() for box in boxes for line in box.lines for w in _WORD.findall(line.text)
    }
    return assemble(pdf_parts(boxes, vocabulary), pages)
