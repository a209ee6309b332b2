"""Text of scanned PDF pages by OCR: pypdfium2 renders a page to an image, the Tesseract
command line reads it, and its TSV output gives each line's words, height and place.

The `tesseract` program is called directly (subprocess) rather than through pytesseract: that
wrapper runs the same program, through temporary files, and adds nothing docqa uses; a direct
call passes the image on stdin and bounds each page with a timeout.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from docqa.ingest.base import ExtractionError, SkippedFileError

DPI = 300
"""Resolution pages are rendered at. On the tests' 5-page scan (`scripts/bench_pdf.py --dpi N`,
3 runs) 300 dpi read all 459 body words right for 0.90 CPU-seconds a page; 200 dpi misread
"lit on" as "liton" (6 of 459 wrong) for 0.55. Tesseract's own advice is 300 dpi."""
MAX_PAGES = 200
"""Scanned pages OCRed per file at most; a file with more is skipped with that reason rather
than indexed in part. The reading time limit (DOCQA_READ_TIMEOUT_S, 60 s: ~65 pages at the
speed above on a free core) stops a long scan first unless it is raised."""
PAGE_TIMEOUT_S = 60.0
"""Seconds Tesseract may take on one page (a page of the test scan takes under 1 s)."""
MAX_PIXELS = 40_000_000
"""A page larger than this at DPI (an A4 page is 8.7 million pixels at 300 dpi) is rendered
at a lower resolution, so an outsized page cannot take the memory."""
INSTALL_HINT = "scanned pages need Tesseract: apt-get install tesseract-ocr"


@dataclass(frozen=True)
class OcrLine:
    """A line Tesseract read: its text, height in points, and place on the page."""

    text: str
    size: float
    top: float  # distance from the top of the page, as a share of its height
    bottom: float  # distance from the bottom, as a share
    box: tuple[float, float, float, float]
    """(left, top, right, bottom) in points from the page's top left corner."""


Paragraph = list[OcrLine]


def tesseract_program() -> str:
    """The path of the `tesseract` program; SkippedFileError saying how to install it."""
    found = shutil.which("tesseract")
    if found is None:
        raise SkippedFileError(INSTALL_HINT)
    return found


def read_scanned_pages(data: bytes, numbers: list[int]) -> Iterator[tuple[int, list[Paragraph]]]:
    """The paragraphs OCR finds on each of these 1-based pages of a PDF, page by page."""
    if len(numbers) > MAX_PAGES:
        raise SkippedFileError(
            f"{len(numbers)} scanned pages are over the limit of {MAX_PAGES} OCRed per file"
        )
    program = tesseract_program()
    for number, image, dpi in render_pages(data, numbers):
        yield number, parse_tsv(run_tesseract(program, image, dpi, number), dpi)


def render_pages(data: bytes, numbers: list[int]) -> Iterator[tuple[int, bytes, float]]:
    """Each page as a grayscale image (PGM bytes), with the resolution it was rendered at."""
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as error:
        raise ExtractionError(f"damaged PDF: its pages cannot be rendered ({error})") from error
    try:
        for number in numbers:
            page = document[number - 1]
            width, height = page.get_size()
            dpi = min(DPI, 72 * (MAX_PIXELS / max(width * height, 1.0)) ** 0.5)
            image = page.render(scale=dpi / 72, grayscale=True).to_pil()
            buffer = io.BytesIO()
            image.save(buffer, "PPM")
            page.close()
            yield number, buffer.getvalue(), dpi
    finally:
        document.close()


def run_tesseract(program: str, image: bytes, dpi: float, number: int) -> str:
    """Tesseract's TSV for one page image; ExtractionError when it fails or runs too long."""
    # One thread: on a busy 2-core machine Tesseract's OpenMP threads made pages 3-12x slower.
    environment = {"OMP_THREAD_LIMIT": "1", **os.environ}
    command = [program, "stdin", "stdout", "--dpi", str(round(dpi)), "-l", "eng", "tsv"]
    try:
        done = subprocess.run(
            command, input=image, capture_output=True, timeout=PAGE_TIMEOUT_S, env=environment
        )
    except subprocess.TimeoutExpired as error:
        raise ExtractionError(
            f"OCR of page {number} took over {PAGE_TIMEOUT_S:.0f} s; the file is left out"
        ) from error
    except OSError as error:
        raise ExtractionError(f"cannot run Tesseract: {error.strerror}") from error
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = message[-1] if message else f"exit status {done.returncode}"
        raise ExtractionError(f"OCR of page {number} failed: {detail}")
    return done.stdout.decode("utf-8", "replace")


def parse_tsv(tsv: str, dpi: float) -> list[Paragraph]:
    """Tesseract's TSV as paragraphs of lines; a line's size is its height in points."""
    rows = [line.split("\t") for line in tsv.splitlines()[1:]]
    points = 72 / dpi
    page_height = 1.0
    lines: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in rows:
        if len(row) < 12:
            continue
        level, key = row[0], (row[2], row[3], row[4])
        left, top, width, height = (int(value) for value in row[6:10])
        if level == "1":
            page_height = max(height, 1)
        elif level == "4":
            lines[key] = {"box": (left, top, left + width, top + height), "words": []}
        elif level == "5" and row[11].strip() and key in lines:
            lines[key]["words"].append(row[11].strip())
    paragraphs: dict[tuple[str, str], Paragraph] = {}
    for (block, paragraph, _), line in lines.items():
        if not line["words"]:
            continue
        left, top, right, bottom = line["box"]
        paragraphs.setdefault((block, paragraph), []).append(
            OcrLine(
                " ".join(line["words"]),
                round((bottom - top) * points * 2) / 2,  # half points: OCR heights vary a pixel
                top / page_height,
                (page_height - bottom) / page_height,
                (left * points, top * points, right * points, bottom * points),
            )
        )
    return list(paragraphs.values())
