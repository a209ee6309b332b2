"""Reading documents of every supported format into the same cleaned blocks.

Each format is one module with `read(data: bytes) -> Extracted`; FORMATS maps file suffixes
to them, so a new format is one new module and one line here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from docqa.ingest import docx, html, markdown, pdf, text
from docqa.ingest.base import (
    Extracted,
    ExtractionError,
    Part,
    SkippedFileError,
    assemble,
    page_at,
)
from docqa.models import DocqaError

__all__ = [
    "FORMATS",
    "Extracted",
    "ExtractionError",
    "Format",
    "Part",
    "SkippedFileError",
    "assemble",
    "extract",
    "format_for",
    "page_at",
    "reader_failure",
]


@dataclass(frozen=True)
class Format:
    """A document format: its name in reports, the suffixes it is known by, its reader."""

    name: str
    suffixes: tuple[str, ...]
    read: Callable[[bytes], Extracted]


FORMATS = (
    Format("pdf", (".pdf",), pdf.read),
    Format("docx", (".docx",), docx.read),
    Format("html", (".html", ".htm", ".xhtml"), html.read),
    Format("markdown", (".md", ".markdown"), markdown.read),
    Format("text", (".txt", ".text"), text.read),
)
_BY_SUFFIX = {suffix: f for f in FORMATS for suffix in f.suffixes}
log = logging.getLogger("docqa.ingest")


def format_for(name: str) -> Format | None:
    """The format a file name's suffix announces, or None when docqa does not read it."""
    dot = name.rfind(".")
    return _BY_SUFFIX.get(name[dot:].lower()) if dot > name.rfind("/") else None


def extract(name: str, data: bytes) -> tuple[Format, Extracted]:
    """Read a file's bytes with the reader of its format; SkippedFileError when unsupported."""
    found = format_for(name)
    if found is None:
        suffix = name[name.rfind(".") :] if "." in name.rsplit("/", 1)[-1] else "(no suffix)"
        known = ", ".join(s for f in FORMATS for s in f.suffixes)
        raise SkippedFileError(f"unsupported type {suffix} (docqa reads {known})")
    if not data.strip():
        raise SkippedFileError("empty file")
    extracted = read_alone(found, data)
    if not extracted.blocks:
        raise SkippedFileError("no text in it")
    return found, extracted


def read_alone(found: Format, data: bytes) -> Extracted:
    """Run a format's reader; whatever a parser raises on hostile input (a RecursionError
    from nesting or a loop, a library's own bug) becomes the file's ExtractionError, so a
    file that breaks its reader fails alone. MemoryError and interrupts are not the file's
    verdict: they pass through."""
    try:
        return found.read(data)
    except (SkippedFileError, ExtractionError, MemoryError):
        raise
    except DocqaError as error:  # a reader's own verdict of another kind: kept in its words
        raise ExtractionError(str(error)) from error
    except Exception as error:
        log.debug("the %s reader failed", found.name, exc_info=True)
        raise reader_failure(error, f"the {found.name} reader") from error


def reader_failure(error: Exception, reader: str) -> ExtractionError:
    """The file's error for an exception its reader raised, in one line."""
    if isinstance(error, RecursionError):
        return ExtractionError(
            f"could not be read: {reader} gave up on structure nested too deeply or "
            "referring to itself in a loop (RecursionError)"
        )
    detail = " ".join(str(error).split())[:200]
    cause = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
    return ExtractionError(f"could not be read: {reader} failed on it ({cause})")
