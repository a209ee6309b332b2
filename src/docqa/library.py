"""The corpus folder as a document library: stable ids, safe file names, adding and removing
files. Files are written to a hidden temporary name and linked into place, so a reader never
sees half a file and an existing document is never overwritten."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import unicodedata
from pathlib import Path

from docqa.corpus import SUFFIXES, CorpusError, corpus_files
from docqa.models import DocqaError

MAX_NAME_CHARS = 120
"""Longest file name kept for an upload (a longer one is cut before its suffix): well under
the 255 bytes most file systems allow, even in UTF-8 with room for " (999)"."""
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')


class UploadError(DocqaError):
    """An uploaded file that is refused: no name, empty, or not readable as a document."""


class UnsupportedTypeError(UploadError):
    """An uploaded file of a type docqa does not read."""


class DocumentNotFoundError(DocqaError):
    """No document of the library has this id."""


def document_id(name: str) -> str:
    """A stable identifier for a document name, safe in a URL: a slug and a short hash."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "document"
    return f"{slug}-{hashlib.sha1(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def document_type(name: str) -> str:
    """The type of a document, from its suffix ("txt", "md", ...)."""
    return Path(name).suffix.lower().lstrip(".")


def supported_suffixes() -> tuple[str, ...]:
    """The file suffixes docqa reads."""
    return SUFFIXES


def safe_filename(raw: str) -> str:
    """The file name an upload is stored under: its last path component only (no folders,
    no `..`), printable, without leading dots (hidden files are never indexed) or characters
    that are unsafe on common file systems; raises UploadError when nothing is left."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", "".join(c for c in name if c.isprintable()))
    name = re.sub(r"\s+", " ", name).strip(" .")
    stem, suffix = os.path.splitext(name)
    stem = stem.strip(" .")[: MAX_NAME_CHARS - len(suffix)]
    if not stem or not suffix:
        raise UploadError(
            f"the file name {raw[:80]!r} has no usable name or no suffix: name it e.g. report.txt"
        )
    return stem + suffix


def check_type(name: str) -> None:
    """Raises UnsupportedTypeError unless docqa reads files of this name's type."""
    suffix = Path(name).suffix.lower()
    if suffix not in supported_suffixes():
        known = ", ".join(supported_suffixes())
        raise UnsupportedTypeError(
            f"{name}: files of type {suffix or '(none)'} are not supported; docqa reads {known}"
        )


def check_content(name: str, data: bytes) -> None:
    """Raises UploadError for a file that cannot be indexed: empty, or text that is not UTF-8."""
    if not data.strip():
        raise UploadError(f"{name} is empty: there is nothing in it to index")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UploadError(
            f"{name} is not UTF-8 text (byte {error.start}): convert it, e.g. `iconv -t UTF-8`"
        ) from error


def store_file(corpus_dir: Path, name: str, data: bytes) -> str:
    """Write a new document into the corpus folder; returns the name it was stored under.

    When `name` is taken (by an earlier or a concurrent upload) the file is kept as
    "name (2).txt", "name (3).txt", ...: the link into place fails rather than replace.
    """
    corpus_dir.mkdir(parents=True, exist_ok=True)
    temporary = corpus_dir / f".upload-{secrets.token_hex(8)}"
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        stem, suffix = os.path.splitext(name)
        for attempt in range(1, 1000):
            candidate = name if attempt == 1 else f"{stem} ({attempt}){suffix}"
            try:
                os.link(temporary, corpus_dir / candidate)
            except FileExistsError:
                continue
            return candidate
        raise UploadError(f"{name}: too many documents already have this name: rename it")
    finally:
        temporary.unlink(missing_ok=True)


def remove_file(corpus_dir: Path, name: str) -> None:
    """Remove a document from the corpus folder (already gone is fine)."""
    path = (corpus_dir / name).resolve()
    if not path.is_relative_to(corpus_dir.resolve()):
        raise DocumentNotFoundError(f"{name} is not in the corpus folder")
    path.unlink(missing_ok=True)


def library_names(corpus_dir: Path) -> list[str]:
    """The names of the documents in the corpus folder; empty when there are none."""
    with contextlib.suppress(CorpusError):
        return [p.relative_to(corpus_dir).as_posix() for p in corpus_files(corpus_dir)]
    return []
