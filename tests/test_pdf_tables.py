"""PDF tables (ruled, found by pdfplumber) become one passage per row with its column
headers, where the table stands; pages without drawn lines are not searched for tables.
Expected rows come from DIRECTORY_ROWS in tests/documents.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from docqa.config import Settings
from docqa.ingest import Extracted, extract, pdf
from docqa.ingest.pdf_tables import PdfTable
from documents import DIRECTORY_ROWS, write_pdf, write_table_pdf


def read(path: Path) -> Extracted:
    return extract(path.name, path.read_bytes())[1]


def labelled(row: tuple[str, ...]) -> str:
    return " · ".join(
        f"{header}: {cell}" for header, cell in zip(DIRECTORY_ROWS[0], row, strict=True)
    )


def test_pdf_table_rows_are_paragraphs_with_their_column_headers(tmp_path: Path) -> None:
    extracted = read(write_table_pdf(tmp_path / "directory.pdf"))
    assert [(b.kind, b.text, b.page) for b in extracted.blocks] == [
        ("heading", "Phone Directory", 1),
        ("paragraph", "Each department answers its own extension during office hours.", 1),
        *(("row", labelled(row), 1) for row in DIRECTORY_ROWS[1:]),
        ("paragraph", "Call the switchboard on extension 4400 when nobody answers.", 1),
    ]
    assert labelled(DIRECTORY_ROWS[1]) == (
        "Department: Logistics · Extension: 4417 · Head: Maria Olsen"
    )


def test_pdf_cell_merged_across_columns_is_labelled_with_both_headers(tmp_path: Path) -> None:
    from fpdf import FPDF

    document = FPDF()
    document.add_page()
    document.set_font("Helvetica", size=11)
    with document.table() as table:
        for cells in (("Site", "Department", "Extension"), ("North", "Logistics", "4417")):
            row = table.row()
            for text in cells:
                row.cell(text)
        row = table.row()
        row.cell("Shared front desk", colspan=2)
        row.cell("4400")
        table.row().cell("Closed on Sundays", colspan=3)
    document.output(str(tmp_path / "merged.pdf"))
    assert [b.text for b in read(tmp_path / "merged.pdf").blocks] == [
        "Site: North · Department: Logistics · Extension: 4417",
        "Site / Department: Shared front desk · Extension: 4400",
        "Closed on Sundays",
    ]


def test_pdf_cell_merged_across_rows_is_repeated_in_each(tmp_path: Path) -> None:
    from fpdf import FPDF

    document = FPDF()
    document.add_page()
    document.set_font("Helvetica", size=11)
    with document.table() as table:
        row = table.row()
        for text in ("Site", "Department", "Extension"):
            row.cell(text)
        row = table.row()
        row.cell("North", rowspan=2)
        row.cell("Logistics")
        row.cell("4417")
        row = table.row()
        row.cell("Finance")
        row.cell("4420")
    document.output(str(tmp_path / "rowspan.pdf"))
    assert [b.text for b in read(tmp_path / "rowspan.pdf").blocks] == [
        "Site: North · Department: Logistics · Extension: 4417",
        "Site: North · Department: Finance · Extension: 4420",
    ]


def test_pages_without_drawn_lines_are_not_searched_for_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    searched: list[list[int]] = []

    def recording(data: bytes, numbers: list[int]) -> list[PdfTable]:
        searched.append(numbers)
        return []

    monkeypatch.setattr(pdf, "find_tables", recording)
    read(write_pdf(tmp_path / "report.pdf"))
    read(write_table_pdf(tmp_path / "directory.pdf"))
    assert searched == [[1]]  # the directory's page only


@pytest.mark.model
def test_a_question_about_a_pdf_table_cell_is_answered_with_that_cell(tmp_path: Path) -> None:
    from docqa.engine import Engine
    from docqa.indexing.build import update_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(write_table_pdf(tmp_path / "directory.pdf"), corpus / "directory.pdf")
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index")
    update_index(settings)
    answer = Engine.load(settings).ask("What is the phone extension of the Logistics department?")
    assert "4417" in answer.text
    assert answer.citations[0].text == labelled(DIRECTORY_ROWS[1])  # the row, not a neighbour
