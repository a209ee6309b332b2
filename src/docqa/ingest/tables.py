"""Tables as text a question about one cell can be answered from: each row with its headers.

A body row becomes one line of "header: cell" pairs joined by " · ", e.g.
"Department: Logistics · Extension: 4417 · Head: Maria Olsen", and each line is a paragraph
of its own, so the chunker can cut between rows and a row never loses its column names.

Which rows are the header is the reader's call when the markup says so (HTML `<thead>` or
rows of `<th>` only, DOCX rows marked "repeat as header row"). When it does not, the first
row is taken as the header. A first row that is data after all then labels the others with
its values, which keeps every cell in the text; telling such a table apart would take a
guess (bold text? no numbers?) that fails as often as it helps. Tables of one row or one
column have no header: each row is a line of its cells. A table whose body rows start with
row headers (HTML `<th>` first cells) and has no header row is a key-value list: each row
reads "key: value". Empty cells are left out; a cell equal to its header, or spanning the
whole width (a section row), is written alone; a cell spanning several columns is labelled
with all their headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

CELL_SEPARATOR = " · "


@dataclass(frozen=True)
class Cell:
    """A table cell as a reader found it: its text and the grid columns it covers."""

    text: str
    span: int = 1
    header: bool = False
    """Marked as a header cell by the markup (an HTML `<th>`)."""


def table_lines(rows: list[list[Cell]], header_rows: int | None = None) -> list[str]:
    """The table as lines of text: each body row with its column headers (see module doc).

    `header_rows` is how many leading rows the markup marks as the header; None when it marks
    none, which makes the first row the header unless the table is one row or one column wide,
    or its rows start with row headers.
    """
    rows = [[Cell(" ".join(c.text.split()), max(c.span, 1), c.header) for c in r] for r in rows]
    if header_rows is None:
        header_rows = 1 if has_unmarked_header(rows) else 0
    header = [row for row in rows[:header_rows] if any(cell.text for cell in row)]
    body = [row for row in rows[header_rows:] if any(cell.text for cell in row)]
    if not header or not body:
        return [row_line(row) for row in (*header, *body) if row_line(row)]
    labels = column_labels(header)
    width = max(len(labels), *(sum(cell.span for cell in row) for row in body))
    return [line for row in body if (line := labelled_line(row, labels, width))]


def has_unmarked_header(rows: list[list[Cell]]) -> bool:
    """Whether an unmarked table's first row is taken as its header (see module doc)."""
    filled = [row for row in rows if any(cell.text for cell in row)]
    if len(filled) < 2 or max(sum(cell.span for cell in row) for row in filled) < 2:
        return False
    return not all(row[0].header and not row[-1].header for row in filled[1:])


def column_labels(header: list[list[Cell]]) -> list[str]:
    """Each grid column's header text; several header rows give "upper / lower"."""
    columns: list[list[str]] = []
    for row in header:
        for column, cell in enumerate(grid(row)):
            while len(columns) <= column:
                columns.append([])
            if cell.text and cell.text not in columns[column]:
                columns[column].append(cell.text)
    return [" / ".join(texts) for texts in columns]


def grid(row: list[Cell]) -> Iterator[Cell]:
    """The cell at each grid column of a row: a spanning cell once per column it covers."""
    for cell in row:
        for _ in range(cell.span):
            yield cell


def labelled_line(row: list[Cell], labels: list[str], width: int) -> str:
    """One body row as "header: cell" pairs."""
    pairs = []
    column = 0
    for cell in row:
        names = list(dict.fromkeys(label for label in labels[column : column + cell.span] if label))
        label = " / ".join(names)
        column += cell.span
        if not cell.text:
            continue
        if not label or label == cell.text or (cell.span == width and width > 1):
            pairs.append(cell.text)
        else:
            pairs.append(f"{label}: {cell.text}")
    return CELL_SEPARATOR.join(pairs)


def row_line(row: list[Cell]) -> str:
    """A row of a table without a header row: its cells, a leading row header as the key."""
    texts = [cell.text for cell in row if cell.text]
    if len(texts) > 1 and row[0].header and row[0].text and not row[-1].header:
        return f"{texts[0]}: {CELL_SEPARATOR.join(texts[1:])}"
    return CELL_SEPARATOR.join(texts)
