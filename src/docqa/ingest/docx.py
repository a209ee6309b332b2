"""Word documents (.docx) through python-docx: heading styles give the sections, tables are
read one row per line; running headers and footers live in other parts and are never read."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

from docqa.ingest.base import Extracted, ExtractionError, Part, assemble

_HEADING_STYLE = re.compile(r"^(?:Heading \d|Title|Subtitle)$", re.IGNORECASE)


def is_heading(paragraph: Any) -> bool:
    """A paragraph in a heading style, or one given an outline level directly."""
    style = paragraph.style.name if paragraph.style is not None else ""
    if _HEADING_STYLE.match(style or ""):
        return True
    properties = paragraph._p.pPr
    return (
        properties is not None
        and properties.find(
            "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}outlineLvl"
        )
        is not None
    )


def table_rows(table: Any) -> str:
    """A table as text: one row per line; a merged cell (repeated by python-docx) once."""
    rows = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if not cells or text != cells[-1]:
                cells.append(text)
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def docx_parts(document: Any) -> Iterator[Part]:
    """Headings, paragraphs and tables of the body, in order."""
    from docx.table import Table

    for item in document.iter_inner_content():
        if isinstance(item, Table):
            yield Part("paragraph", table_rows(item))
        else:
            yield Part("heading" if is_heading(item) else "paragraph", item.text)


def read(data: bytes) -> Extracted:
    """Open a .docx file and return its blocks (unpaged: Word lays pages out when shown)."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as error:
        raise ExtractionError(f"not a readable .docx file ({error})") from error
    return assemble(docx_parts(document))
