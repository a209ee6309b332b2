"""OCR of scanned PDF pages: a 5-page scan (text rendered into page images, tests/documents.py)
is read by Tesseract with its pages, a mixed PDF has only its scanned page OCRed, and without
Tesseract the file is skipped with how to install it. Expected text is SCANNED_PAGES."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from docqa.cli import format_records
from docqa.config import Settings
from docqa.indexing.corpus import CorpusFile, read_file
from docqa.ingest import Extracted, ExtractionError, SkippedFileError, extract, ocr
from documents import SCANNED_PAGES, write_pdf, write_scanned_pdf

NO_TESSERACT = "Tesseract is not installed (scripts/install.sh: apt-get install tesseract-ocr)"
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason=NO_TESSERACT)
LIMIT = 10_000_000


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scanned_pdf(tmp_path_factory.mktemp("scan") / "bulletin.pdf")


@pytest.fixture(scope="module")
def scanned(scan: Path) -> Extracted:
    if shutil.which("tesseract") is None:
        pytest.skip(NO_TESSERACT)
    return extract(scan.name, scan.read_bytes())[1]


@pytest.fixture
def no_tesseract(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a folder without a `tesseract` program


@needs_tesseract
def test_every_scanned_page_is_read_by_ocr_with_its_page(scanned: Extracted) -> None:
    assert (scanned.pages, scanned.ocr_pages) == (5, 5)
    expected = [
        (kind, text, page)
        for page, (heading, body) in enumerate(SCANNED_PAGES, 1)
        for kind, text in (("heading", heading), ("paragraph", body))
    ]
    assert [(b.kind, b.text, b.page) for b in scanned.blocks] == expected


@needs_tesseract
def test_running_header_and_page_numbers_of_a_scan_are_left_out(scanned: Extracted) -> None:
    assert "Bulletin" not in scanned.text.replace("Harbour Society Bulletin", "")
    assert not any(block.text.isdigit() for block in scanned.blocks)


@needs_tesseract
def test_a_mixed_pdf_has_only_its_scanned_page_ocred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_scanned_pdf(tmp_path / "mixed.pdf", text_first_page=True)
    ocred: list[int] = []
    run = ocr.run_tesseract

    def recording(program: str, image: bytes, dpi: float, number: int) -> str:
        ocred.append(number)
        return run(program, image, dpi, number)

    monkeypatch.setattr(ocr, "run_tesseract", recording)
    extracted = extract(path.name, path.read_bytes())[1]
    assert (ocred, extracted.ocr_pages) == ([2], 1)
    pages = {b.text: b.page for b in extracted.blocks}
    assert pages[SCANNED_PAGES[0][1]] == 1  # typed: its text layer
    assert pages[SCANNED_PAGES[1][1]] == 2  # scanned: OCR


@needs_tesseract
def test_the_report_line_says_how_many_pages_were_ocred(tmp_path: Path) -> None:
    path = write_scanned_pdf(tmp_path / "mixed.pdf", text_first_page=True)
    _, record = read_file(CorpusFile(path.name, path), LIMIT, LIMIT)
    assert (record.status, record.pages, record.ocr_pages) == ("indexed", 2, 1)
    assert "pdf, 2 pages (1 by OCR), " in format_records([record])


@pytest.mark.usefixtures("no_tesseract")
def test_without_tesseract_a_scan_is_skipped_saying_how_to_install_it(scan: Path) -> None:
    _, record = read_file(CorpusFile(scan.name, scan), LIMIT, LIMIT)
    assert (record.status, record.reason) == (
        "skipped",
        "scanned pages need Tesseract: apt-get install tesseract-ocr",
    )


@pytest.mark.usefixtures("no_tesseract")
def test_without_tesseract_a_pdf_with_a_text_layer_is_still_read(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "report.pdf")
    extracted = extract(path.name, path.read_bytes())[1]
    assert (extracted.pages, extracted.ocr_pages) == (2, 0)


def test_a_page_with_a_small_picture_and_no_text_is_not_ocred(tmp_path: Path) -> None:
    from fpdf import FPDF
    from PIL import Image

    document = FPDF()
    document.add_page()
    document.image(Image.new("L", (200, 200), 0), x=20, y=20, w=50, h=50)  # a logo, not a scan
    document.output(str(tmp_path / "logo.pdf"))
    with pytest.raises(ExtractionError, match="no text layer and no scanned page image to OCR"):
        extract("logo.pdf", (tmp_path / "logo.pdf").read_bytes())


def test_more_scanned_pages_than_the_limit_skip_the_file(
    scan: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ocr, "MAX_PAGES", 4)
    with pytest.raises(SkippedFileError, match="5 scanned pages are over the limit of 4 OCRed"):
        extract(scan.name, scan.read_bytes())


@needs_tesseract
def test_a_page_over_the_time_limit_fails_the_file_naming_the_page(
    scan: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ocr, "PAGE_TIMEOUT_S", 0.001)
    with pytest.raises(ExtractionError, match="OCR of page 1 took over"):
        extract(scan.name, scan.read_bytes())


@pytest.mark.model
@needs_tesseract
def test_a_question_about_the_scan_is_answered_citing_page_3(scan: Path, tmp_path: Path) -> None:
    from docqa.engine import Engine
    from docqa.indexing.build import update_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(scan, corpus / scan.name)
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index")
    [record] = update_index(settings).documents
    assert (record.status, record.ocr_pages) == ("indexed", 5)
    answer = Engine.load(settings).ask("When was the harbour lighthouse first lit?")
    assert "14 March 1871" in answer.text
    cited = {c.chunk_id for c in answer.citations}
    assert {hit.chunk.page for hit in answer.hits if hit.chunk.id in cited} == {3}
