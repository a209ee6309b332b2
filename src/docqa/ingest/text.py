"""Plain text in any common encoding: detected, then cut by the plain-text cleaning rules."""

from __future__ import annotations

import codecs

from docqa.ingest.base import Extracted, SkippedFileError
from docqa.ingest.cleaning import split_blocks

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_ALLOWED_CONTROLS = frozenset("\t\n\r\f\v")
_MAX_CONTROL_SHARE = 0.01
"""Text files hold almost no control characters; binary data decoded as text holds many."""


def decode(data: bytes) -> tuple[str, str]:
    """The text of a file and the encoding it was read with; binary data is refused."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _checked(data.decode(encoding, errors="replace"), encoding)
    try:
        return _checked(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise SkippedFileError("binary data, not text")
    return _checked(str(best), best.encoding)


def _checked(text: str, encoding: str) -> tuple[str, str]:
    controls = sum(1 for c in text if c < " " and c not in _ALLOWED_CONTROLS)
    if "\x00" in text or controls > _MAX_CONTROL_SHARE * max(len(text), 1):
        raise SkippedFileError("binary data, not text")
    return text, encoding.replace("_", "-")


def read(data: bytes) -> Extracted:
    """Decode a text file and cut it into headings, paragraphs and dated entries."""
    text, encoding = decode(data)
    return Extracted(text, tuple(split_blocks(text)), (), encoding)
