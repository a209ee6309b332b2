"""The corpus folder: which files it holds, their hashes, and reading each into a Document
with its line of the index report (indexed, skipped or failed, and why)."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from io import BufferedReader
from pathlib import Path
from typing import TYPE_CHECKING

from docqa.ingest import (
    Extracted,
    ExtractionError,
    Format,
    SkippedFileError,
    extract,
    reader_failure,
)
from docqa.models import DocqaError, Document, DocumentRecord

if TYPE_CHECKING:
    from docqa.config import Settings

UNREADABLE = "unreadable"
"""Hash recorded for a file that cannot be read, so a later readable version counts as new."""
OUTSIDE = "outside"
"""Hash recorded for a refused file: a link that leaves the corpus folder (its target is
never read) or one whose target does not exist."""
BROKEN_LINK = "a broken link: its target does not exist"
SETTLE_NS = 2_000_000_000
"""A file modified less than this long before it is read may change again within the same
tick of the file system's clock (a jiffy on Linux, 2 s on FAT) without its modification time
moving: its time is not recorded, so the next run hashes it instead of trusting it."""

Extractor = Callable[[str, bytes], tuple[Format, Extracted]]
"""Reads a file's bytes with its format's reader (docqa.ingest.extract, or a bounded run of it)."""
Stamp = tuple[int, int]
"""(size in bytes, modification time in ns) of a file."""


class CorpusError(DocqaError):
    """The corpus folder is missing, empty or not a folder."""


@dataclass(frozen=True)
class CorpusFile:
    """A file found in the corpus folder; `refused` says why it will not be read, if so."""

    name: str
    path: Path
    refused: str = ""


def document_id(name: str) -> str:
    """A stable identifier for a document name, safe in a URL: a slug and a short hash."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "document"
    return f"{slug}-{hashlib.sha1(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def check_corpus_folder(corpus_dir: Path) -> None:
    """Raise CorpusError unless the corpus folder exists and is a folder."""
    if corpus_dir.exists() and not corpus_dir.is_dir():
        raise CorpusError(f"corpus folder {corpus_dir} is a file, not a folder")
    if not corpus_dir.is_dir():
        raise CorpusError(
            f"corpus folder {corpus_dir} does not exist: create it and add documents to it"
        )


def list_corpus(corpus_dir: Path) -> list[CorpusFile]:
    """Every visible file under the corpus folder, in a stable order; links that leave the
    folder, and broken links, are listed as refused (their targets are never read)."""
    check_corpus_folder(corpus_dir)
    root = corpus_dir.resolve()
    files = []
    try:
        paths = sorted(corpus_dir.rglob("*"))
    except OSError as error:
        raise CorpusError(f"cannot list corpus folder {corpus_dir}: {error.strerror}") from error
    for path in paths:
        relative = path.relative_to(corpus_dir)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_symlink() and not path.exists():  # its target is gone, or a loop of links
            files.append(CorpusFile(relative.as_posix(), path, BROKEN_LINK))
            continue
        try:
            inside = path.resolve().is_relative_to(root)
            is_file = path.is_file()
        except OSError:  # a link loop, or a file removed while listed
            inside, is_file = True, False
        if not inside and (is_file or path.is_symlink()):
            what = "file" if is_file else "folder"
            refused = f"a link to a {what} outside the corpus folder"
            files.append(CorpusFile(relative.as_posix(), path, refused))
        elif is_file:
            files.append(CorpusFile(relative.as_posix(), path))
    if not files:
        raise CorpusError(f"corpus folder {corpus_dir} holds no file: add a document to it")
    return files


def corpus_files(corpus_dir: Path) -> list[Path]:
    """The paths of the corpus files that are read (links out of the folder left out)."""
    return [f.path for f in list_corpus(corpus_dir) if not f.refused]


def open_document(path: Path) -> BufferedReader:
    """Open a corpus file to read its bytes: every read of a corpus file goes through here."""
    return open(path, "rb")


def content_hash(path: Path) -> str:
    """SHA-256 of a file, read in blocks (a large file is never held in memory whole)."""
    with open_document(path) as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_hash(file: CorpusFile) -> str | None:
    """SHA-256 of a corpus file; a marker for refused or unreadable ones; None once removed."""
    if file.refused:
        return OUTSIDE
    try:
        return content_hash(file.path)
    except FileNotFoundError:
        return None  # removed between listing and reading: no longer in the corpus
    except OSError as error:
        return f"{UNREADABLE}: {error.strerror}"


def stamp_of(file: CorpusFile) -> Stamp | None:
    """(size, modification time) of a corpus file; None for a refused one or one that cannot
    be looked at."""
    if file.refused:
        return None
    try:
        status = file.path.stat()
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns


def settled(modified_ns: int) -> int:
    """The modification time to record for a file read now: 0 when it changed too recently
    to be told apart from a change still to come (SETTLE_NS)."""
    return modified_ns if time.time_ns() - modified_ns >= SETTLE_NS else 0


def hash_corpus(
    corpus_dir: Path, known: Mapping[str, tuple[Stamp, str]] | None = None
) -> dict[str, str]:
    """SHA-256 of every corpus file, keyed by its name; used to detect a stale index. A file
    whose (size, modification time) is the one `known` records is not read: the hash recorded
    with it is taken."""
    known = known or {}
    hashes = {}
    for file in list_corpus(corpus_dir):
        recorded = known.get(file.name)
        if recorded is not None and stamp_of(file) == recorded[0]:
            hashes[file.name] = recorded[1]
            continue
        digest = file_hash(file)
        if digest is not None:
            hashes[file.name] = digest
    return hashes


def find_same_content(corpus_dir: Path, data: bytes) -> str | None:
    """The name of a corpus file holding exactly these bytes, or None. Only files of the
    same size are read (hashed); a missing or empty folder holds none."""
    try:
        files = list_corpus(corpus_dir)
    except CorpusError:
        return None
    digest = ""
    for file in files:
        stamp = stamp_of(file)
        if stamp is None or stamp[0] != len(data):
            continue
        digest = digest or hashlib.sha256(data).hexdigest()
        if file_hash(file) == digest:
            return file.name
    return None


def _type_of(name: str) -> str:
    from docqa.ingest import format_for

    found = format_for(name)
    if found is not None:
        return found.name
    suffix = Path(name).suffix.lower()
    return suffix[1:] if suffix else ""


def read_file(
    file: CorpusFile, max_bytes: int, max_chars: int, extractor: Extractor = extract
) -> tuple[Document | None, DocumentRecord]:
    """Read one corpus file into a Document and its report line; never raises for the file's
    own problems (they become a skipped or failed record). `extractor` runs its format's
    reader (the index build's runs it in a bounded child: docqa.isolation)."""
    record = DocumentRecord(
        document_id(file.name),
        file.name,
        _type_of(file.name),
        "skipped",
        added_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    if file.refused:
        return None, _with(record, reason=file.refused)
    try:
        status = file.path.stat()
        record = _with(record, size=status.st_size, modified_ns=settled(status.st_mtime_ns))
        if status.st_size > max_bytes:
            return None, _over_file_limit(record, max_bytes)
        with open_document(file.path) as handle:
            data = handle.read()
    except OSError as error:
        failed = _with(record, status="failed", modified_ns=0)  # tried again next run
        return None, _with(failed, reason=f"cannot be read: {error.strerror}")
    record = _with(record, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    try:
        found, extracted = extractor(file.name, data)
    except SkippedFileError as error:
        return None, _with(
            record, reason=str(error), limit=error.limit, limit_value=error.limit_value
        )
    except ExtractionError as error:
        return None, _with(record, status="failed", reason=str(error))
    except MemoryError:
        raise
    except Exception as error:  # the extractor's own failure, not the reader's: tried again
        reason = f"{reader_failure(error, 'reading')}; it is tried again by the next run"
        return None, _with(record, status="failed", reason=reason, sha256="", modified_ns=0)
    record = _with(record, chars=len(extracted.text))
    if record.chars > max_chars:
        return None, _over_text_limit(record, max_chars)
    document = Document(file.name, extracted.text, extracted.blocks, extracted.page_starts)
    return document, _with(
        record,
        status="indexed",
        type=found.name,
        pages=extracted.pages,
        encoding=extracted.encoding,
        ocr_pages=extracted.ocr_pages,
    )


def _over_file_limit(record: DocumentRecord, max_bytes: int) -> DocumentRecord:
    reason = (
        f"{record.size / 1e6:.1f} MB is over the size limit of {max_bytes / 1e6:.1f} MB "
        "(DOCQA_MAX_FILE_BYTES)"
    )
    return _with(
        record, status="skipped", reason=reason, limit="max_file_bytes", limit_value=max_bytes
    )


def _over_text_limit(record: DocumentRecord, max_chars: int) -> DocumentRecord:
    reason = (
        f"its text of {record.chars:,} characters is over the limit of {max_chars:,} "
        "(DOCQA_MAX_DOCUMENT_CHARS)"
    )
    return _with(
        record, status="skipped", reason=reason, limit="max_document_chars", limit_value=max_chars
    )


READING_LIMITS = {
    "max_pages": "DOCQA_MAX_PAGES",
    "read_timeout_s": "DOCQA_READ_TIMEOUT_S",
    "read_memory_mb": "DOCQA_READ_MEMORY_MB",
}
"""The limits of reading a file (in a child process: docqa.isolation), by setting; a file
skipped for one is read again only when that setting is raised or turned off (0)."""


def skipped_for_limit(record: DocumentRecord) -> bool:
    """Whether a file was skipped for a limit (its size, its length of text, a reading
    limit); a record of an earlier docqa, which did not name the limit, is known by its
    reason."""
    return record.status == "skipped" and bool(record.limit or "(DOCQA_MAX_" in record.reason)


def raised_limit(record: DocumentRecord, settings: Settings) -> float | None:
    """The value a reading limit a file was skipped for has now, when it was raised or turned
    off since (the file must be read again); None otherwise."""
    if record.limit not in READING_LIMITS:
        return None
    now: float = getattr(settings, record.limit)
    return now if not now or now > record.limit_value else None


def judge_again(record: DocumentRecord, settings: Settings) -> DocumentRecord | None:
    """The verdict on an unchanged file skipped for a limit, judged against the settings'
    limits from its record, without reading it; None when it may fit them now (it must be
    read: it is under them, or an earlier docqa's record does not say)."""
    if record.limit in READING_LIMITS:
        return None if raised_limit(record, settings) is not None else record
    if record.size > settings.max_file_bytes:
        return _over_file_limit(record, settings.max_file_bytes)
    if record.limit == "max_document_chars" and record.chars > settings.max_document_chars:
        return _over_text_limit(record, settings.max_document_chars)
    return None


def kept_verdict(old: DocumentRecord, settings: Settings) -> DocumentRecord | None:
    """The record of a file whose content has not changed since `old` was made, when the file
    need not be read again: a skip (one for a limit judged again against the settings), or a
    failure of its reader; None for an indexed file (its vectors decide), a file that could
    not be read (tried again) or one that may fit the limits now."""
    if skipped_for_limit(old):
        return judge_again(old, settings)
    if old.status == "skipped" or (old.status == "failed" and old.sha256):
        return old
    return None


def _with(record: DocumentRecord, **changes: object) -> DocumentRecord:
    return replace(record, **changes)  # type: ignore[arg-type]


def read_corpus(
    corpus_dir: Path, max_bytes: int | None = None, max_chars: int | None = None
) -> list[Document]:
    """The documents of the corpus folder that can be read (the others are left out)."""
    from docqa.config import Settings

    fields = Settings.model_fields
    max_bytes = max_bytes or fields["max_file_bytes"].default
    max_chars = max_chars or fields["max_document_chars"].default
    documents = []
    for file in list_corpus(corpus_dir):
        document, _ = read_file(file, max_bytes, max_chars)
        if document is not None:
            documents.append(document)
    return documents
