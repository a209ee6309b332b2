"""Word documents (.docx) through python-docx: heading styles give the sections, tables are
read one paragraph per row with its column headers (see ingest/tables.py); running headers
and footers live in other parts and are never read.

Styles are read once per document from the styles part, and each paragraph's style id from
its own XML: python-docx's `Paragraph.style` searches the styles part on every call (about
a millisecond a paragraph, most of the reading time of a long document).

Table headers: the leading rows marked "repeat as header row" (w:tblHeader), else the
first row (ingest/tables.py says why).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

from docqa.ingest.base import Extracted, ExtractionError, Part, assemble
from docqa.ingest.tables import Cell, table_lines

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_HEADING_STYLE = re.compile(r"^(?:Heading \d|Title|Subtitle)$", re.IGNORECASE)
_BODY_TEXT_LEVEL = 9
"""w:outlineLvl 0-8 are heading levels 1-9; 9 is body text."""
_OFF = frozenset({"0", "false", "off"})


def _val(element: Any, path: str) -> str | None:
    """The w:val of the child at `path` (tags without namespace, "/"-separated), if any."""
    found = element.find("/".join(_W + tag for tag in path.split("/")))
    return None if found is None else found.get(_W + "val")


def _outline_level(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def heading_style_ids(styles: Any) -> tuple[frozenset[str], str | None]:
    """The ids of the paragraph styles that make headings, and the default paragraph style's id.

    A style makes headings by its name (Heading n, Title, Subtitle) or by an outline level,
    its own or one inherited through the styles it is based on.
    """
    by_id = {
        style.get(_W + "styleId"): style
        for style in styles.iterfind(_W + "style")
        if style.get(_W + "type") == "paragraph"
    }

    def level(style_id: str | None, seen: frozenset[str | None] = frozenset()) -> int:
        style = by_id.get(style_id) if style_id not in seen else None
        if style is None:
            return _BODY_TEXT_LEVEL
        own = _outline_level(_val(style, "pPr/outlineLvl"))
        return own if own is not None else level(_val(style, "basedOn"), seen | {style_id})

    headings = frozenset(
        style_id
        for style_id, style in by_id.items()
        if _HEADING_STYLE.match(_val(style, "name") or "") or level(style_id) < _BODY_TEXT_LEVEL
    )
    default = next(
        (i for i, s in by_id.items() if s.get(_W + "default") in ("1", "true", "on")), None
    )
    return headings, default


def is_heading(paragraph: Any, headings: frozenset[str], default_style: str | None) -> bool:
    """A paragraph in a heading style, or one given a heading outline level directly."""
    properties = paragraph._p.pPr
    if properties is None:
        return default_style in headings
    direct = _outline_level(_val(properties, "outlineLvl"))
    if direct is not None:
        return direct < _BODY_TEXT_LEVEL
    return (_val(properties, "pStyle") or default_style) in headings


def cell_text(cell: Any) -> str:
    """A cell's text on one line, tables nested in it included."""
    from docx.table import Table

    pieces: list[str] = []
    for item in cell.iter_inner_content():
        if isinstance(item, Table):
            pieces.extend(cell_text(inner) for row in item.rows for inner in row.cells)
        else:
            pieces.append(item.text)
    return " ".join(" ".join(pieces).split())


def table_cells(table: Any) -> tuple[list[list[Cell]], int | None]:
    """A table's rows of cells (a merged cell once, with its span) and its marked header rows."""
    rows: list[list[Cell]] = []
    marked = 0
    for row in table.rows:
        cells = [Cell("", row.grid_cols_before)] if row.grid_cols_before else []
        previous = None
        for cell in row.cells:
            if previous is not None and cell._tc is previous._tc:
                cells[-1] = Cell(cells[-1].text, cells[-1].span + 1)
            else:
                cells.append(Cell(cell_text(cell)))
            previous = cell
        rows.append(cells)
        if marked == len(rows) - 1 and is_header_row(row):  # only a leading run of them
            marked += 1
    return rows, marked if 0 < marked < len(rows) else None


def is_header_row(row: Any) -> bool:
    """A row marked "repeat as header row" (w:tblHeader, on unless its w:val turns it off)."""
    properties = row._tr.trPr
    mark = None if properties is None else properties.find(_W + "tblHeader")
    return mark is not None and mark.get(_W + "val", "on") not in _OFF


def docx_parts(document: Any) -> Iterator[Part]:
    """Headings, paragraphs and table rows of the body, in order."""
    from docx.table import Table

    headings, default_style = heading_style_ids(document.styles.element)
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            for line in table_lines(*table_cells(item)):
                yield Part("row", line)
        else:
            kind = "heading" if is_heading(item, headings, default_style) else "paragraph"
            yield Part(kind, item.text)


def read(data: bytes) -> Extracted:
    """Open a .docx file and return its blocks (unpaged: Word lays pages out when shown)."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as error:
        raise ExtractionError(f"not a readable .docx file ({error})") from error
    return assemble(docx_parts(document))
