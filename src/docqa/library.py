"""The corpus folder as a document library: stable ids, safe file names, adding and removing
files. Files are written to a hidden temporary name and linked into place, so a reader never
sees half a file and an existing document is never overwritten."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from docqa.indexing.corpus import (
    CorpusError,
    Extractor,
    content_hash,
    corpus_files,
    document_id,
    find_same_content,
    list_corpus,
)
from docqa.ingest import FORMATS, ExtractionError, SkippedFileError, extract, format_for
from docqa.ingest.text import decode
from docqa.models import DocqaError, DocumentRecord

if TYPE_CHECKING:
    from docqa.config import Settings

__all__ = ["document_id"]  # defined in indexing/corpus.py (the index report uses it too)

MAX_NAME_CHARS = 120
"""Longest file name kept for an upload (a longer one is cut before its suffix): well under
the 255 bytes most file systems allow, even in UTF-8 with room for " (999)"."""
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')


class UploadError(DocqaError):
    """An uploaded file that is refused: no name, empty, or not readable as a document."""


class UnsupportedTypeError(UploadError):
    """An uploaded file of a type docqa does not read."""


class TooLongError(UploadError):
    """An uploaded file whose text is over the length limit (DOCQA_MAX_DOCUMENT_CHARS)."""


class StorageError(DocqaError):
    """A file could not be written into the corpus folder; nothing of it was left there."""


class DiskFullError(StorageError):
    """The disk holding the corpus folder is full (or the quota is used up)."""


class DocumentNotFoundError(DocqaError):
    """No document of the library has this id."""


@dataclass(frozen=True)
class Added:
    """A file given to the library: the document it is there (`name`), and whether it was
    stored now or the library already held the same bytes under that name."""

    name: str
    stored: bool

    @property
    def detail(self) -> str:
        """What became of the file, in words."""
        return "added" if self.stored else f"already in the library as {self.name}"


def document_type(name: str) -> str:
    """The type of a document as the index report names it ("pdf", "markdown", "text", ...),
    from its suffix; the bare suffix for a type docqa does not read."""
    found = format_for(name)
    return found.name if found is not None else Path(name).suffix.lower().lstrip(".")


def supported_suffixes() -> tuple[str, ...]:
    """The file suffixes docqa reads (one reader per format in docqa/ingest/)."""
    return tuple(suffix for found in FORMATS for suffix in found.suffixes)


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


def check_type(name: str, accepted: Sequence[str] = ()) -> None:
    """Raises UnsupportedTypeError unless docqa reads files of this name's type (and, when
    `accepted` lists suffixes, it is one of them)."""
    suffix = Path(name).suffix.lower()
    readable = supported_suffixes()
    allowed = [s for s in readable if s in {a.lower() for a in accepted}] if accepted else readable
    if suffix not in allowed:
        known = ", ".join(allowed) or "no type (DOCQA_UPLOAD_TYPES names none docqa reads)"
        raise UnsupportedTypeError(
            f"{name}: files of type {suffix or '(none)'} are not supported; docqa reads {known}"
        )


def check_content(
    name: str, data: bytes, max_chars: int | None = None, extractor: Extractor = extract
) -> None:
    """Raises UploadError for a file that cannot be indexed: empty, binary data posing as
    text, an encrypted or damaged PDF (its format's reader is run on it: `docqa add`), or
    one whose text is over `max_chars` (TooLongError, the build would skip it).

    Plain text and Markdown are measured as decoded, before their reader runs: a text's
    length is the one the build compares, a Markdown file's is that plus its markup. Other
    formats (HTML, whose markup is often most of the file, PDF, DOCX) are measured by the
    text their reader gives, as the build does."""
    check_before_reading(name, data, max_chars)
    try:
        _, extracted = extractor(name, data)
    except (SkippedFileError, ExtractionError) as error:
        raise UploadError(f"{name} cannot be indexed: {error}") from error
    if max_chars is not None:
        check_length(name, len(extracted.text), max_chars)


def check_before_reading(name: str, data: bytes, max_chars: int | None = None) -> None:
    """Raises UploadError for a file found unfit without running its reader: empty, or a
    plain text or Markdown file whose decoded text is over `max_chars` (TooLongError)."""
    if not data.strip():
        raise UploadError(f"{name} is empty: there is nothing in it to index")
    found = format_for(name)
    measured = found is not None and found.name in ("text", "markdown")
    # A character takes at least one byte: only a file longer than the limit is decoded.
    if measured and max_chars is not None and len(data) > max_chars:
        try:
            text, _ = decode(data)
        except SkippedFileError as error:
            raise UploadError(f"{name} cannot be indexed: {error}") from error
        check_length(name, len(text), max_chars)


def check_length(name: str, chars: int, max_chars: int) -> None:
    """Raises TooLongError when a document's text of `chars` characters is over the limit."""
    if chars > max_chars:
        raise TooLongError(
            f"{name}: its text of {chars:,} characters is over the limit of {max_chars:,} "
            "(DOCQA_MAX_DOCUMENT_CHARS): split it, or raise the limit"
        )


def storage_failure(error: OSError, name: str) -> StorageError:
    """The error for a file that could not be written into the corpus folder."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(
            f"the disk is full: {name} could not be stored in the corpus folder and nothing "
            "of it was kept; free space and add it again"
        )
    return StorageError(
        f"{name} could not be stored in the corpus folder: {error.strerror or error}"
    )


def store_file(corpus_dir: Path, name: str, data: bytes) -> str:
    """Write a new document into the corpus folder; returns the name it was stored under.

    When `name` is taken (by an earlier or a concurrent upload) the file is kept as
    "name (2).txt", "name (3).txt", ...: the link into place fails rather than replace.
    """
    temporary = write_hidden(corpus_dir, name, data)
    try:
        stem, suffix = os.path.splitext(name)
        for attempt in range(1, 1000):
            candidate = name if attempt == 1 else f"{stem} ({attempt}){suffix}"
            try:
                os.link(temporary, corpus_dir / candidate)
            except FileExistsError:
                continue
            return candidate
        raise UploadError(f"{name}: too many documents already have this name: rename it")
    except OSError as error:
        raise storage_failure(error, name) from error
    finally:
        temporary.unlink(missing_ok=True)


def write_hidden(corpus_dir: Path, name: str, data: bytes) -> Path:
    """Write the bytes of document `name` to a new hidden file of the corpus folder (never
    indexed), synced to disk; its path. When that fails (a full disk), nothing is left."""
    temporary = corpus_dir / f".upload-{secrets.token_hex(8)}"
    try:
        corpus_dir.mkdir(parents=True, exist_ok=True)
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise storage_failure(error, name) from error
    return temporary


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


def add_files(
    corpus_dir: Path,
    paths: list[Path],
    replace: bool = False,
    max_chars: int | None = None,
    extractor: Extractor = extract,
) -> list[Added]:
    """Copy files into the corpus folder; where each one is there. Every file is checked
    (its text against `max_chars`) before any is copied, so a bad one leaves the corpus
    unchanged. A file whose bytes the library already holds is not copied (`Added.stored`
    is False); another file of a name already taken is kept beside it as "name (2).ext",
    or replaces it with `replace`. `extractor` runs each file's reader (`docqa add` passes
    the bounded one of docqa.isolation)."""
    loaded = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise UploadError(f"cannot read {path}: {error.strerror}") from error
        name = safe_filename(path.name)
        check_type(name)
        if find_same_content(corpus_dir, data) is None:  # a copy was checked when it came
            check_content(name, data, max_chars, extractor)
        loaded.append((name, data))
    return [add_document(corpus_dir, name, data, replace) for name, data in loaded]


def add_document(corpus_dir: Path, name: str, data: bytes, replace: bool = False) -> Added:
    """Put one checked file into the corpus folder, unless a file there holds the same bytes:
    under `name`, or "name (2).ext" when it is taken. With `replace`, a file of that name is
    replaced instead (even by bytes another file holds: the name was asked for)."""
    target = corpus_dir / name
    if replace and target.is_file() and not target.is_symlink():
        if content_hash(target) == hashlib.sha256(data).hexdigest():
            return Added(name, stored=False)
        temporary = write_hidden(corpus_dir, name, data)
        try:
            os.replace(temporary, target)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise storage_failure(error, name) from error
        return Added(name, stored=True)
    same = find_same_content(corpus_dir, data)
    if same is not None:
        return Added(same, stored=False)
    return Added(store_file(corpus_dir, name, data), stored=True)


def find_document(corpus_dir: Path, name_or_id: str) -> Path:
    """The corpus file with this name (relative to the folder) or document id."""
    for file in list_corpus(corpus_dir):
        if name_or_id in (file.name, document_id(file.name)):
            return file.path
    raise DocumentNotFoundError(f"no document named {name_or_id!r} in {corpus_dir}")


def remove_documents(corpus_dir: Path, names: list[str]) -> list[str]:
    """Delete corpus files by name or id (all found first, so a typo removes nothing)."""
    paths = [find_document(corpus_dir, name) for name in names]
    removed = []
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as error:
            raise UploadError(f"cannot remove {path}: {error.strerror}") from error
        removed.append(path.relative_to(corpus_dir).as_posix())
    return removed


def library_report(settings: Settings) -> tuple[tuple[DocumentRecord, ...], list[str]]:
    """The per-file report of the index in use, and how the corpus has changed since."""
    from docqa.indexing.manifest import compare_corpus, records_of
    from docqa.indexing.store import current_build, read_manifest

    folder = current_build(settings.index_dir)
    if folder is None:
        return (), [f"no index in {settings.index_dir} yet"]
    manifest = read_manifest(folder)
    try:
        changes = compare_corpus(manifest, settings)
    except CorpusError as error:
        changes = [str(error)]
    return records_of(manifest), changes
