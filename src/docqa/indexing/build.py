"""Building and updating the index: read the corpus, chunk and embed only what changed,
write a new build folder and switch CURRENT to it atomically, under the folder's lock; and
opening the index, brought up to date first when it is missing, stale or damaged.

A build killed at any point leaves the previous index in use (see store.py for the layout).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from docqa.config import Settings
from docqa.indexing.chunking import chunk_document, window_chunks
from docqa.indexing.corpus import (
    CorpusError,
    check_corpus_folder,
    file_hash,
    kept_verdict,
    list_corpus,
    read_file,
    settled,
    stamp_of,
)
from docqa.indexing.index import Index
from docqa.indexing.manifest import (
    FORMAT_VERSION,
    chunk_settings,
    chunker_description,
    compare_corpus,
    records_of,
)
from docqa.indexing.segments import indexed_documents, plan_segments, segments_intact
from docqa.indexing.store import (
    IndexBuildError,
    IndexCorruptError,
    IndexError_,
    IndexStaleError,
    Notify,
    check_index,
    current_build,
    load_build,
    read_manifest,
)
from docqa.indexing.vectors import DocumentVectors, Progress, embed_documents
from docqa.indexing.writing import write_build, write_failure
from docqa.isolation import ChildFailedError, ChildLimitError, extract_bounded
from docqa.models import Chunk, Document, DocumentRecord

Builder = Callable[[Settings, bool], Path]
"""Brings the index up to date (rebuilding all with the flag) and returns its build folder:
by default update_index here; the service runs it in a child process."""


def open_index(
    settings: Settings,
    notify: Notify | None = None,
    progress: Any = None,
    builder: Builder | None = None,
) -> Index:
    """Load the index, bringing it up to date first (with `builder`, when given) when it is
    missing, stale or damaged.

    With `settings.auto_rebuild` off, a missing, stale or damaged index is refused with a
    message that says how to rebuild it. When the update cannot be made (an unreadable
    corpus, a read-only index folder, a full disk) but the previous index is intact, that
    index is used and `notify` is told why.
    """
    from docqa.indexing.build import update_index
    from docqa.indexing.store import IndexBuildError

    if settings.index_dir.exists() and not settings.index_dir.is_dir():
        raise IndexBuildError(f"index folder {settings.index_dir} is a file, not a folder")
    try:
        return load_build(check_index(settings))
    except (IndexError_, CorpusError) as problem:
        if not settings.auto_rebuild:
            if isinstance(problem, IndexCorruptError):
                raise IndexCorruptError(
                    f"{problem}. Run `docqa index --force` to rebuild it"
                ) from problem
            raise
        if notify and not isinstance(problem, CorpusError):
            reason = problem.reason if isinstance(problem, IndexStaleError) else problem
            notify(f"{reason}: building it now")
        # A damaged build is rebuilt whole: its segments are not to be kept.
        force = isinstance(problem, IndexCorruptError)
        build = builder or (lambda settings, force: update_index(settings, progress, force).folder)
        try:
            return load_build(build(settings, force))
        except (
            IndexBuildError,
            IndexStaleError,
            CorpusError,
            ChildFailedError,  # the builder's child process died or went over its limits
            ChildLimitError,
        ) as failure:
            previous = _intact_previous(settings)
            if previous is None:
                raise failure from None
            if notify:
                notify(
                    f"warning: {failure}; answering from the previous index "
                    f"(built {previous.manifest.get('built_at', 'earlier')})"
                )
            return previous


def _intact_previous(settings: Settings) -> Index | None:
    """The index in use, if it loads, whatever the corpus now holds."""
    try:
        folder = current_build(settings.index_dir)
        return load_build(folder) if folder is not None else None
    except (IndexError_, OSError):
        return None


class NothingToIndexError(IndexStaleError):
    """No corpus file could be indexed; the message carries the per-file report."""


@dataclass(frozen=True)
class IndexReport:
    """The outcome of an index update: the build in use and one record per corpus file."""

    folder: Path
    documents: tuple[DocumentRecord, ...]
    chunks: int
    seconds: float
    embedded_documents: int = 0
    """Documents read and embedded by this update (the others kept their vectors)."""
    rebuilt: bool = True
    """False when the index already matched the corpus and nothing was done."""

    def count(self, status: str) -> int:
        """How many files have this status."""
        return sum(1 for record in self.documents if record.status == status)


def chunk_corpus(documents: list[Document], settings: Settings) -> list[Chunk]:
    """The chunks of every document, cut by the chunker the settings name."""
    if settings.chunker == "windows":
        return [
            c
            for d in documents
            for c in window_chunks(d, settings.window_chars, settings.window_overlap)
        ]
    return [c for d in documents for c in chunk_document(d, chunk_settings(settings))]


@contextlib.contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """Hold the index folder's lock: a second build waits for the first to finish."""
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        handle = open(index_dir / ".lock", "w")  # noqa: SIM115 (held across the yield)
    except (FileExistsError, NotADirectoryError) as error:
        raise IndexBuildError(f"index folder {index_dir} is a file, not a folder") from error
    except OSError as error:
        raise IndexBuildError(
            f"cannot write to index folder {index_dir}: {error.strerror}"
        ) from error
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _reusable(settings: Settings, force: bool) -> tuple[dict[str, Any], Path | None]:
    """The manifest and folder of the build in use, when its segments can be kept: same
    format, model, chunker and precision, and every segment's files as they were written."""
    if force:
        return {}, None
    try:
        folder = current_build(settings.index_dir)
        if folder is None:
            return {}, None
        manifest = read_manifest(folder)
        same = (
            manifest.get("format_version") == FORMAT_VERSION
            and manifest.get("model") == settings.model
            and manifest.get("chunker") == chunker_description(settings)
            and manifest.get("passage_precision", "fp32") == settings.passage_precision
        )
        if not same or not segments_intact(folder, manifest):
            return {}, None
    except IndexError_:  # damaged or unreadable: build from scratch
        return {}, None
    return manifest, folder


def _read_changed(
    settings: Settings, manifest: dict[str, Any], progress: Progress | None
) -> tuple[list[DocumentRecord], dict[str, str], set[str], list[list[Chunk]]]:
    """Records and hashes of every file; the names of unchanged indexed ones (their vectors
    are kept); the rest read and cut into chunks at once, so that no more than one
    document's text is held at a time.

    A file of the size and modification time recorded is unchanged without being read; one
    whose time moved is hashed, and unchanged if its hash is the recorded one. An unchanged
    file keeps its vectors, or its verdict (a skip for its size judged again against the
    settings' limits, from its record); only a new, changed or newly fitting file is read.
    """
    previous = {r.name: r for r in records_of(manifest)}
    hashes = manifest.get("documents", {})
    indexed = indexed_documents(manifest) if manifest else set()
    records, corpus, reused, read = [], {}, set(), []
    files = list_corpus(settings.corpus_dir)
    if progress:  # at once: the first file may take a while to read
        progress("reading", 0, len(files))
    bounded = functools.partial(extract_bounded, settings=settings)  # a bad file fails alone
    for done, file in enumerate(files, 1):
        old = previous.get(file.name)
        stamp = stamp_of(file)
        recorded = (old.size, old.modified_ns) if old is not None and old.modified_ns else None
        same_stamp = recorded is not None and stamp == recorded
        digest = (hashes.get(file.name) if same_stamp else None) or file_hash(file)
        if digest is None:
            continue  # removed while we were listing
        unchanged = _unchanged(old, file.name in indexed, settings)
        if unchanged is not None and stamp is not None and hashes.get(file.name) == digest:
            if not same_stamp:  # touched, or recorded by an earlier docqa: record its time
                unchanged = replace(unchanged, size=stamp[0], modified_ns=settled(stamp[1]))
            records.append(unchanged)
            corpus[file.name] = digest
            if unchanged.status == "indexed":
                reused.add(file.name)
            continue
        try:
            document, record = read_file(
                file, settings.max_file_bytes, settings.max_document_chars, bounded
            )
        except FileNotFoundError:
            continue
        if old and old.sha256 == record.sha256 and old.added_at:
            record = replace(record, added_at=old.added_at)
        records.append(record)
        corpus[file.name] = record.sha256 or digest
        if document is not None:
            read.append(chunk_corpus([document], settings))
        if progress:
            progress("reading", done, len(files))
    return records, corpus, reused, read


def _unchanged(
    old: DocumentRecord | None, has_vectors: bool, settings: Settings
) -> DocumentRecord | None:
    """The record an unchanged file keeps without being read, or None when it must be read."""
    if old is None:
        return None
    if old.status == "indexed":
        return old if has_vectors else None
    return kept_verdict(old, settings)


def _with_counts(record: DocumentRecord, vectors: DocumentVectors | None) -> DocumentRecord:
    if vectors is None:
        if record.status == "indexed":  # read, but cut into no chunk at all
            return replace(record, status="skipped", reason="no text in it")
        return record
    sections = len({c.section for c in vectors.chunks})
    return replace(record, chunks=len(vectors.chunks), sections=sections)


def nothing_indexed(records: list[DocumentRecord], corpus_dir: Path) -> str:
    """The message for a corpus where no file could be indexed, naming each file's reason."""
    reasons = "; ".join(f"{r.name}: {r.reason}" for r in records)
    return f"no document in {corpus_dir} could be indexed ({reasons})"


def update_index(
    settings: Settings, progress: Progress | None = None, force: bool = False
) -> IndexReport:
    """Bring the index up to date with the corpus: only added or changed files are read and
    embedded, removed ones dropped, unchanged ones keep their vectors. With `force`, every
    file is read and embedded again. Safe to call from a background thread."""
    started = time.perf_counter()
    index_dir = settings.index_dir
    check_corpus_folder(settings.corpus_dir)  # before the lock creates the index folder
    with build_lock(index_dir):
        try:
            return _update_locked(settings, progress, force, started)
        except OSError as error:
            raise write_failure(error, index_dir) from error


def _update_locked(
    settings: Settings, progress: Progress | None, force: bool, started: float
) -> IndexReport:
    from docqa.indexing.encoders import cached_encoders

    index_dir = settings.index_dir
    manifest, folder = _reusable(settings, force)
    if folder is not None and not force:
        precision_same = manifest.get("encoder_precision") == settings.encoder_precision
        if precision_same and not compare_corpus(manifest, settings):
            kept_records = records_of(manifest)
            chunks = int(manifest.get("chunks", 0))
            return IndexReport(folder, kept_records, chunks, 0.0, 0, False)
    for leftover in index_dir.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for pointer in index_dir.glob(".CURRENT-*"):  # from a build killed while switching
        pointer.unlink(missing_ok=True)
    temporary = index_dir / f".tmp-{os.getpid()}-{time.time_ns()}"
    temporary.mkdir()
    try:
        records, corpus, reused, read = _read_changed(settings, manifest, progress)
        passage_encoder, query_encoder = cached_encoders(
            settings.model,
            settings.encoder_precision,
            index_dir,
            settings.passage_precision,
            progress,
        )
        new = embed_documents(read, passage_encoder, progress)
        records = [r if r.name in reused else _with_counts(r, new.get(r.name)) for r in records]
        if not new and not reused:
            raise NothingToIndexError(nothing_indexed(records, settings.corpus_dir))
        if progress:
            progress("writing", 0, 1)
        order = [r.name for r in records]
        plan = plan_segments(folder, manifest, reused, new, order)
        dimension = next((v.passages.shape[1] for v in new.values()), manifest.get("dimension"))
        written = write_build(
            settings, temporary, records, corpus, plan, query_encoder, int(dimension or 0)
        )
        if progress:
            progress("writing", 1, 1)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    final = index_dir / f"build-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9:09d}"
    os.rename(temporary, final)
    _point_to(index_dir, final.name)
    _remove_old_builds(index_dir, keep=final.name)
    seconds = time.perf_counter() - started
    return IndexReport(final, tuple(records), written["chunks"], seconds, len(read), True)


def build_index(settings: Settings, progress: Progress | None = None, force: bool = True) -> Path:
    """Build the index (from scratch with `force`, else incrementally); the build folder."""
    return update_index(settings, progress, force).folder


def _point_to(index_dir: Path, name: str) -> None:
    """Switch CURRENT to build `name` atomically; when that fails (a full disk), the build
    is removed and CURRENT still names the previous one."""
    pointer = index_dir / f".CURRENT-{os.getpid()}"
    try:
        pointer.write_text(name + "\n", encoding="utf-8")
        with open(pointer) as handle:
            os.fsync(handle.fileno())
        os.replace(pointer, index_dir / "CURRENT")
    except OSError as error:
        pointer.unlink(missing_ok=True)
        shutil.rmtree(index_dir / name, ignore_errors=True)
        raise write_failure(error, index_dir) from error


def _remove_old_builds(index_dir: Path, keep: str) -> None:
    for old in index_dir.glob("build-*"):
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
