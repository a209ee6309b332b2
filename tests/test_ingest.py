"""Format readers on small files the tests generate: structure, pages, no chrome, offsets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from docqa.indexing.chunking import ChunkSettings, chunk_document, map_to_document
from docqa.ingest import Extracted, ExtractionError, SkippedFileError, extract
from docqa.models import Document
from documents import FACTS, html_page, plain_text, write_docx, write_pdf

HEADINGS = [heading for heading, _ in FACTS.values()]


def blocks_of(extracted: Extracted, kind: str) -> list[str]:
    return [b.text for b in extracted.blocks if b.kind == kind]


def assert_blocks_slice_the_text(extracted: Extracted) -> None:
    for block in extracted.blocks:
        assert extracted.text[block.start : block.end] == block.text


def assert_chunks_slice_the_text(name: str, extracted: Extracted) -> None:
    """Every sentence of every chunk is found at its mapped span of the extracted text."""
    document = Document(name, extracted.text, extracted.blocks, extracted.page_starts)
    chunks = chunk_document(document, ChunkSettings())
    assert chunks
    for chunk in chunks:
        for start, end in chunk.sentences:
            begin, stop = map_to_document(chunk, start), map_to_document(chunk, end - 1) + 1
            assert extracted.text[begin:stop].split() == chunk.text[start:end].split()


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> Extracted:
    path = write_pdf(tmp_path_factory.mktemp("pdf") / "report.pdf")
    return extract("report.pdf", path.read_bytes())[1]


def test_pdf_headings_come_from_font_sizes(pdf: Extracted) -> None:
    assert blocks_of(pdf, "heading") == HEADINGS


def test_pdf_running_header_and_page_numbers_never_reach_the_text(pdf: Extracted) -> None:
    assert "Annual Report" not in pdf.text
    assert all(not block.text.strip().isdigit() for block in pdf.blocks)


def test_pdf_blocks_carry_the_page_they_are_on(pdf: Extracted) -> None:
    pages = {b.text: b.page for b in pdf.blocks if b.kind == "heading"}
    assert pages == {"Membership and Fees": 1, "Meeting Schedule": 2, "History of the Club": 2}
    assert pdf.pages == 2


def test_pdf_chunks_carry_their_page_and_slice_the_text(pdf: Extracted) -> None:
    document = Document("report.pdf", pdf.text, pdf.blocks, pdf.page_starts)
    pages = {c.section: c.page for c in chunk_document(document, ChunkSettings())}
    assert pages == {"Membership and Fees": 1, "Meeting Schedule": 2, "History of the Club": 2}
    assert_blocks_slice_the_text(pdf)
    assert_chunks_slice_the_text("report.pdf", pdf)


def test_encrypted_pdf_fails_with_a_reason(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "locked.pdf", password="secret")
    with pytest.raises(ExtractionError, match="encrypted"):
        extract("locked.pdf", path.read_bytes())


def test_pdf_without_a_text_layer_or_a_page_image_fails_with_a_reason(tmp_path: Path) -> None:
    from fpdf import FPDF

    scan = FPDF()
    scan.add_page()
    scan.rect(20, 20, 100, 100, style="F")  # a picture, no text
    scan.output(str(tmp_path / "scan.pdf"))
    with pytest.raises(ExtractionError, match="no text layer and no scanned page image to OCR"):
        extract("scan.pdf", (tmp_path / "scan.pdf").read_bytes())


def test_damaged_pdf_fails_with_a_reason() -> None:
    with pytest.raises(ExtractionError, match="PDF"):
        extract("broken.pdf", b"%PDF-1.4\n this is not a PDF body")


def test_docx_heading_styles_make_the_sections(tmp_path: Path) -> None:
    extracted = extract("handbook.docx", write_docx(tmp_path / "h.docx").read_bytes())[1]
    assert blocks_of(extracted, "heading") == HEADINGS
    assert extracted.pages is None
    assert_chunks_slice_the_text("handbook.docx", extracted)


def test_docx_table_rows_carry_their_headers_and_footers_are_left_out(tmp_path: Path) -> None:
    extracted = extract("handbook.docx", write_docx(tmp_path / "h.docx").read_bytes())[1]
    assert blocks_of(extracted, "row")[-1] == "Telescope: Dobsonian · Aperture: 200 mm"
    assert "Confidential" not in extracted.text


def long_docx(paragraphs: int) -> bytes:
    """A DOCX of short paragraphs, every tenth a Heading 2 ("Part n"); python-docx makes one
    of each and the rest are copies of their XML (add_heading takes ~0.6 ms a call)."""
    import copy
    import io

    import docx

    document = docx.Document()
    heading = document.add_heading("Part", level=2)._p
    line = document.add_paragraph("Line")._p
    body = document.element.body
    section = body.sectPr
    for template in (heading, line, section):
        body.remove(template)
    for i in range(paragraphs):
        paragraph = copy.deepcopy(line if i % 10 else heading)
        text = f"Line {i} of the long handbook." if i % 10 else f"Part {i // 10}"
        paragraph.find(".//" + docx.oxml.ns.qn("w:t")).text = text
        body.append(paragraph)
    body.append(section)
    saved = io.BytesIO()
    document.save(saved)
    return saved.getvalue()


def test_docx_styles_are_read_once_not_per_paragraph(monkeypatch: pytest.MonkeyPatch) -> None:
    """Paragraph.style searches the styles part on every call: ~1 ms a paragraph."""
    import docx.document
    import docx.text.paragraph

    def per_paragraph_lookup(paragraph: object) -> None:
        raise AssertionError("Paragraph.style looks the styles up again for each paragraph")

    data = long_docx(20_000)
    styles_reads = 0
    original_styles = docx.document.Document.styles

    def count_styles(document: docx.document.Document) -> object:
        nonlocal styles_reads
        styles_reads += 1
        return original_styles.__get__(document)

    monkeypatch.setattr(docx.text.paragraph.Paragraph, "style", property(per_paragraph_lookup))
    monkeypatch.setattr(docx.document.Document, "styles", property(count_styles))
    extracted = extract("long.docx", data)[1]
    assert blocks_of(extracted, "heading") == [f"Part {i}" for i in range(2_000)]
    assert len(blocks_of(extracted, "paragraph")) == 18_000
    assert styles_reads == 1


def saved_docx(document: Any) -> bytes:
    import io

    saved = io.BytesIO()
    document.save(saved)
    return saved.getvalue()


def set_outline_level(paragraph: Any, level: str) -> None:
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    element = OxmlElement("w:outlineLvl")
    element.set(qn("w:val"), level)
    paragraph._p.get_or_add_pPr().append(element)


def test_docx_style_based_on_a_heading_style_makes_headings() -> None:
    import docx
    from docx.enum.style import WD_STYLE_TYPE

    document = docx.Document()
    chapter = document.styles.add_style("Chapter Title", WD_STYLE_TYPE.PARAGRAPH)
    chapter.base_style = document.styles["Heading 1"]
    document.add_paragraph("Chapter one", style="Chapter Title")
    document.add_paragraph("Body text under it.")
    extracted = extract("styles.docx", saved_docx(document))[1]
    assert blocks_of(extracted, "heading") == ["Chapter one"]


def test_docx_outline_level_on_the_paragraph_decides_over_its_style() -> None:
    import docx

    document = docx.Document()
    set_outline_level(document.add_paragraph("Outlined by hand"), "0")
    set_outline_level(document.add_heading("Heading made body text", level=1), "9")  # 9: body
    extracted = extract("levels.docx", saved_docx(document))[1]
    assert blocks_of(extracted, "heading") == ["Outlined by hand"]


def test_html_keeps_headings_and_drops_nav_script_style_and_footer() -> None:
    extracted = extract("page.html", html_page().encode())[1]
    assert blocks_of(extracted, "heading") == ["Riverside Astronomy Club", *HEADINGS]
    for chrome in ("Join us", "tracking", "color", "Copyright"):
        assert chrome not in extracted.text
    assert_chunks_slice_the_text("page.html", extracted)


def test_html_entities_are_decoded_and_no_markup_remains() -> None:
    extracted = extract("page.html", html_page().encode())[1]
    assert "45 € for adults" in extracted.text
    assert "<" not in extracted.text and "&" not in extracted.text


def test_html_table_row_carries_its_headers() -> None:
    page = b"<table><tr><th>Day</th><th>Talk</th></tr><tr><td>Monday</td><td>Mars</td></tr></table>"
    assert extract("t.html", page)[1].text == "Day: Monday · Talk: Mars"


def test_markdown_atx_and_setext_headings_and_inline_markup_removed() -> None:
    source = (
        "# Club *handbook*\n\nIntro with a [link](http://x.example) and `code`.\n\n"
        "Meetings\n--------\n\nWe meet on **Tuesdays**.\n\n"
        "| Day | Talk |\n|-----|------|\n| Monday | Mars |\n"
    )
    extracted = extract("h.md", source.encode())[1]
    assert blocks_of(extracted, "heading") == ["Club handbook", "Meetings"]
    assert "Intro with a link and code." in extracted.text
    assert "We meet on Tuesdays." in extracted.text
    assert "Day | Talk\nMonday | Mars" in extracted.text
    for markup in ("*", "[", "`", "#", "---"):
        assert markup not in extracted.text


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16", "cp1252", "utf-8-sig"])
def test_text_in_common_encodings_is_decoded_and_the_encoding_reported(encoding: str) -> None:
    text = plain_text().replace("Members may", "Les membres du café résumé: members may")
    extracted = extract("notes.txt", text.encode(encoding))[1]
    assert "café résumé" in extracted.text
    assert extracted.encoding
    assert text.encode(encoding).decode(extracted.encoding).lstrip("\ufeff") == text


def test_plain_text_keeps_todays_rules() -> None:
    extracted = extract("notes.txt", plain_text().encode())[1]
    assert blocks_of(extracted, "heading") == [h.upper() for h in HEADINGS]
    assert extracted.text == plain_text()


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.md", b"  \n\n ", "empty file"),
        ("image.txt", bytes(range(256)) * 8, "binary data"),
        ("photo.jpg", b"\xff\xd8\xff\xe0", "unsupported type .jpg"),
        ("Makefile", b"all:\n", "unsupported type"),
    ],
)
def test_files_that_are_not_documents_are_skipped_with_a_reason(
    name: str, data: bytes, reason: str
) -> None:
    with pytest.raises(SkippedFileError, match=reason):
        extract(name, data)
