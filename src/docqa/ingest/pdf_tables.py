"""Tables of a PDF found by pdfplumber (built on pdfminer.six): the ruled tables of a page,
each as its place on the page and its rows labelled with their column headers (tables.py).

pdfplumber's default strategy finds tables by their drawn borders; tables laid out with
spaces alone are not found and stay text boxes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from docqa.ingest.tables import Cell, table_lines


@dataclass(frozen=True)
class PdfTable:
    """A table on a page: its box in points from the page's top left, and its row lines."""

    page: int
    box: tuple[float, float, float, float]
    lines: list[str]


def find_tables(data: bytes, numbers: list[int]) -> list[PdfTable]:
    """The tables pdfplumber finds on these 1-based pages, in page order."""
    import pdfplumber

    found = []
    with pdfplumber.open(io.BytesIO(data), pages=numbers) as document:
        for page in document.pages:
            for table in page.find_tables():
                lines = table_lines(table_rows(table))
                if lines:
                    left, top, right, bottom = table.bbox
                    found.append(PdfTable(page.page_number, (left, top, right, bottom), lines))
    return found


def table_rows(table: Any) -> list[list[Cell]]:
    """A pdfplumber table as rows of cells: a cell merged across columns spans them, one
    merged across rows is repeated in each (as HTML's `rowspan` is in html.py)."""
    starts = [column.bbox[0] if column.bbox else 0.0 for column in table.columns]
    above = [""] * len(starts)  # the text at each column of the row above
    rows = []
    for row, texts in zip(table.rows, table.extract(), strict=True):
        cells: list[Cell] = []
        right = float("-inf")  # where the last cell of this row ends
        for column, (box, text) in enumerate(zip(row.cells, texts, strict=True)):
            if box is not None:
                cells.append(Cell(text or ""))
                right = box[2]
            elif cells and starts[column] < right - 1:  # covered by the cell to its left
                cells[-1] = Cell(cells[-1].text, cells[-1].span + 1)
            else:  # covered by the cell above
                cells.append(Cell(above[column]))
        above = [cell.text for cell in cells for _ in range(cell.span)]
        rows.append(cells)
    return rows
