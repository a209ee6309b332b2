"""The corpus folder: which files it holds, their hashes, and reading each into a Document
with its line of the index report (indexed, skipped or failed, and why)."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

from docqa.ingest import ExtractionError, SkippedFileError, extract
from docqa.models import DocqaError, Document, DocumentRecord

UNREADABLE = "unreadable"
"""Hash recorded for a file that cannot be read, so a later readable version counts as new."""
OUTSIDE = "outside"
"""Hash recorded for a link that leaves the corpus folder (its target is never read)."""


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


def _check_folder(corpus_dir: Path) -> None:
    if corpus_dir.exists() and not corpus_dir.is_dir():
        raise CorpusError(f"corpus folder {corpus_dir} is a file, not a folder")
    if not corpus_dir.is_dir():
        raise CorpusError(
            f"corpus folder {corpus_dir} does not exist: create it and add documents to it"
        )


def list_corpus(corpus_dir: Path) -> list[CorpusFile]:
    """Every visible file under the corpus folder, in a stable order; links that leave the
    folder are listed as refused (their targets are never read)."""
    _check_folder(corpus_dir)
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


def file_hash(file: CorpusFile) -> str | None:
    """SHA-256 of a corpus file; a marker for refused or unreadable ones; None once removed."""
    if file.refused:
        return OUTSIDE
    try:
        return hashlib.sha256(file.path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None  # removed between listing and reading: no longer in the corpus
    except OSError as error:
        return f"{UNREADABLE}: {error.strerror}"


def hash_corpus(corpus_dir: Path) -> dict[str, str]:
    """SHA-256 of every corpus file, keyed by its name; used to detect a stale index."""
    hashes = {}
    for file in list_corpus(corpus_dir):
        digest = file_hash(file)
        if digest is not None:
            hashes[file.name] = digest
    return hashes


def _type_of(name: str) -> str:
    from docqa.ingest import format_for

    found = format_for(name)
    if found is not None:
        return found.name
    suffix = Path(name).suffix.lower()
    return suffix[1:] if suffix else ""


def read_file(
    file: CorpusFile, max_bytes: int, max_chars: int
) -> tuple[Document | None, DocumentRecord]:
    """Read one corpus file into a Document and its report line; never raises for the file's
    own problems (they become a skipped or failed record)."""
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
        size = file.path.stat().st_size
        if size > max_bytes:
            return None, _with(
                record,
                size=size,
                reason=f"{size / 1e6:.1f} MB is over the size limit of {max_bytes / 1e6:.1f} MB "
                "(DOCQA_MAX_FILE_BYTES)",
            )
        data = file.path.read_bytes()
    except OSError as error:
        return None, _with(record, status="failed", reason=f"cannot be read: {error.strerror}")
    record = _with(record, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    try:
        found, extracted = extract(file.name, data)
    except SkippedFileError as error:
        return None, _with(record, reason=str(error))
    except ExtractionError as error:
        return None, _with(record, status="failed", reason=str(error))
    if len(extracted.text) > max_chars:
        return None, _with(
            record,
            reason=f"its text of {len(extracted.text):,} characters is over the limit of "
            f"{max_chars:,} (DOCQA_MAX_DOCUMENT_CHARS)",
        )
    document = Document(file.name, extracted.text, extracted.blocks, extracted.page_starts)
    return document, _with(
        record,
        status="indexed",
        type=found.name,
        pages=extracted.pages,
        encoding=extracted.encoding,
    )


def _with(record: DocumentRecord, **changes: object) -> DocumentRecord:
    from dataclasses import replace

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
