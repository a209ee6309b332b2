"""The short answer in a table row. A row passage ("Department: Finance · Extension: 4420 ·
Head: Tom Berg", as `ingest/tables.py` writes each row with its column headers) answers with
one cell's value: the cell whose column the question names. The reader, trained on prose,
tends to take several cells, or the cell the question itself names ("Logistics" for "What
is the extension of Logistics?")."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from docqa.answer.reader import Reading
from docqa.indexing.lexical import tokenize

SEPARATOR = " · "
"""Between the cells of a row (ingest/tables.py)."""
_CELL = re.compile(r"(?P<label>[^:·\n]{1,80}): (?P<value>[^\n]+)")


@dataclass(frozen=True)
class Cell:
    """A cell of a row passage: its column label, its value and the value's span."""

    label: str
    value: str
    start: int
    end: int


def row_cells(passage: str) -> list[Cell]:
    """The cells of a table-row passage, in order; [] for any other passage."""
    cells: list[Cell] = []
    at = 0
    for part in passage.split(SEPARATOR):
        match = _CELL.fullmatch(part)
        if match is None:
            return []
        start = at + match.start("value")
        cells.append(Cell(match["label"], match["value"], start, start + len(match["value"])))
        at += len(part) + len(SEPARATOR)
    return cells if len(cells) >= 2 else []


def cell_reading(question: str, passage: str, reading: Reading) -> Reading:
    """In a row passage, the reading narrowed to the cell the question asks for: the one
    whose column label shares most words with the question, among the cells whose value the
    question does not already name; when no label does, the cell the reader's span covers
    most. Any other passage keeps the reader's span."""
    cells = row_cells(passage)
    if not cells:
        return reading
    asked = set(tokenize([question])[0])
    unnamed = [c for c in cells if not set(tokenize([c.value])[0]) <= asked]
    overlaps = [(len(asked & set(tokenize([c.label])[0])), c) for c in unnamed]
    most = max((shared for shared, _ in overlaps), default=0)
    if most > 0:
        cell = next(c for shared, c in overlaps if shared == most)
    else:
        covered = [(min(c.end, reading.end) - max(c.start, reading.start), c) for c in cells]
        length, cell = max(covered, key=lambda pair: pair[0])
        if length <= 0:
            return reading
    return replace(reading, text=cell.value, start=cell.start, end=cell.end)
