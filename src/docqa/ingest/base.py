"""What every format reader returns: the extracted text and its cleaned blocks with pages."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from docqa.models import Block, DocqaError


class SkippedFileError(DocqaError):
    """A file that is not a document docqa reads (unsupported type, binary, empty), or one
    over a reading limit: then `limit` names the setting and `limit_value` its value."""

    def __init__(self, message: str, limit: str = "", limit_value: float = 0) -> None:
        super().__init__(message)
        self.limit = limit
        self.limit_value = limit_value


class ExtractionError(DocqaError):
    """A document of a supported type whose text cannot be extracted (encrypted, damaged)."""


@dataclass(frozen=True)
class Part:
    """A heading or paragraph as a reader found it, before it is placed in the text."""

    kind: str  # "heading" | "paragraph" | "row" (a table row with its column headers;
    # one passage of its own) ("entry" only from the plain-text rules)
    text: str
    page: int | None = None


@dataclass(frozen=True)
class Extracted:
    """A document's extracted text, its blocks (offsets into that text) and page starts."""

    text: str
    blocks: tuple[Block, ...]
    page_starts: tuple[int, ...] = ()
    """Where page i + 1 starts in `text`; empty for unpaged formats."""
    encoding: str | None = None
    ocr_pages: int = 0
    """How many of its pages were read by OCR (scanned pages of a PDF)."""

    @property
    def pages(self) -> int | None:
        """The number of pages, or None for an unpaged format."""
        return len(self.page_starts) or None


def tidy(text: str) -> str:
    """Whitespace runs inside each line made one space; blank lines dropped (tables keep rows)."""
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def assemble(parts: Iterable[Part], pages: int = 0, encoding: str | None = None) -> Extracted:
    """Join the parts into one text (blank line between blocks) with a block per part."""
    pieces: list[str] = []
    blocks: list[Block] = []
    length = 0
    for part in parts:
        text = tidy(part.text)
        if not text:
            continue
        if pieces:
            pieces.append("\n\n")
            length += 2
        blocks.append(Block(part.kind, text, length, length + len(text), ((0, length),), part.page))
        pieces.append(text)
        length += len(text)
    return Extracted("".join(pieces), tuple(blocks), page_starts(blocks, pages, length), encoding)


def page_starts(blocks: list[Block], pages: int, length: int) -> tuple[int, ...]:
    """Where each page starts: at its first block, or where the next text starts if it has none."""
    starts = [length] * pages
    for block in reversed(blocks):
        if block.page is not None and 1 <= block.page <= pages:
            starts[block.page - 1] = block.start
    for page in range(pages - 2, -1, -1):  # a page without text starts where the next does
        starts[page] = min(starts[page], starts[page + 1])
    return tuple(starts)


def page_at(page_starts: tuple[int, ...], position: int) -> int | None:
    """The 1-based page holding a position of the text, or None for an unpaged document."""
    if not page_starts:
        return None
    return max(1, bisect.bisect_right(page_starts, position))
