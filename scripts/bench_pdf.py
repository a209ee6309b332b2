"""Measure PDF reading costs: OCR speed and accuracy on the tests' 5-page scan at a DPI, and
what looking for tables with pdfplumber costs on a 30-page PDF of text.

    .venv/bin/python scripts/bench_pdf.py --dpi 300 --repeat 3
"""

from __future__ import annotations

import argparse
import difflib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from docqa.ingest import ocr, pdf
from documents import SCANNED_PAGES, write_scanned_pdf

TEXT = (
    "The committee reviewed the budget for the coming year and agreed to fund the new "
    "library wing, the repairs to the roof and a study of the heating system. "
) * 6


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and its finished children (Tesseract)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def measure_ocr(data: bytes, repeat: int) -> tuple[list[float], list[float], int, int]:
    """Wall and CPU seconds per page (render + Tesseract), and word errors of the body text
    out of all its words."""
    seconds: list[float] = []
    cpu: list[float] = []
    errors = total = 0
    program = ocr.tesseract_program()
    for _ in range(repeat):
        started, used = time.perf_counter(), cpu_seconds()
        for number, image, dpi in ocr.render_pages(data, [1, 2, 3, 4, 5]):
            paragraphs = ocr.parse_tsv(ocr.run_tesseract(program, image, dpi, number), dpi)
            seconds.append(time.perf_counter() - started)
            cpu.append(cpu_seconds() - used)
            read = " ".join(line.text for paragraph in paragraphs for line in paragraph).split()
            truth = " ".join(SCANNED_PAGES[number - 1]).split()
            matcher = difflib.SequenceMatcher(a=truth, b=read, autojunk=False)
            errors += len(truth) - sum(block.size for block in matcher.get_matching_blocks())
            total += len(truth)
            started, used = time.perf_counter(), cpu_seconds()
    return seconds, cpu, errors, total


def text_pdf() -> bytes:
    """A 30-page PDF of headings and paragraphs, no tables."""
    from fpdf import FPDF

    document = FPDF()
    for number in range(30):
        document.add_page()
        document.set_font("Helvetica", "B", 16)
        document.cell(0, 10, f"Chapter {number}")
        document.ln(14)
        document.set_font("Helvetica", size=11)
        for _ in range(5):
            document.multi_cell(0, 6, TEXT)
            document.ln(4)
    return bytes(document.output())


def measure_tables(data: bytes, repeat: int) -> tuple[float, float]:
    """Median seconds of reading the PDF (text boxes; ruled pages only searched for tables)
    and of pdfplumber searching every page for tables."""
    import pdfplumber

    reading, searching = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        pdf.read(data)
        reading.append(time.perf_counter() - started)
        started = time.perf_counter()
        with pdfplumber.open(io.BytesIO(data)) as document:
            for page in document.pages:
                page.find_tables()
        searching.append(time.perf_counter() - started)
    return statistics.median(reading), statistics.median(searching)


def main() -> None:
    """Print the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dpi", type=int, default=ocr.DPI)
    parser.add_argument("--repeat", type=int, default=3)
    arguments = parser.parse_args()
    ocr.DPI = arguments.dpi
    with tempfile.TemporaryDirectory() as folder:
        scan = write_scanned_pdf(Path(folder) / "scan.pdf").read_bytes()
    seconds, cpu, errors, total = measure_ocr(scan, arguments.repeat)
    median = statistics.median(seconds)
    print(
        f"OCR at {arguments.dpi} dpi: median {median:.2f} s a page = {1 / median:.2f} pages/s "
        f"(5-page scan x {arguments.repeat}; min {min(seconds):.2f} s, max {max(seconds):.2f} s)"
        f"; CPU {statistics.median(cpu):.2f} s a page; body words wrong: {errors} of {total}"
    )
    reading, searching = measure_tables(text_pdf(), arguments.repeat)
    print(
        f"30-page text PDF: read in {reading:.2f} s; pdfplumber find_tables on every page "
        f"would add {searching:.2f} s ({searching / reading:.0%} more); with no ruled page "
        "none is searched"
    )


if __name__ == "__main__":
    main()
