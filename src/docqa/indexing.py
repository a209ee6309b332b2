"""Building and updating the index: read the corpus, chunk and embed only what changed,
write a new build folder and switch CURRENT to it atomically, under the folder's lock.

A build killed at any point leaves the previous index in use (see index.py for the layout).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from docqa.chunking import chunk_document, window_chunks
from docqa.config import Settings
from docqa.corpus import (
    check_corpus_folder,
    file_hash,
    kept_verdict,
    list_corpus,
    read_file,
    settled,
    stamp_of,
)
from docqa.index import (
    FORMAT_VERSION,
    HNSW_FROM,
    IndexError_,
    IndexStaleError,
    chunk_record,
    chunk_settings,
    chunker_description,
    compare_corpus,
    current_build,
    load_build,
    make_dense_index,
    manifest_for,
    read_manifest,
    records_of,
    tokenize,
)
from docqa.isolation import extract_bounded
from docqa.models import Chunk, Document, DocumentRecord

Progress = Callable[[str, int, int], None]
"""Told (stage, done, total) as a build advances; stages: reading, embedding sentences
(passage vectors are made from the sentences')."""
EMBED_BATCH = 64
"""Texts embedded per call; progress is reported per batch."""
EMBED_THREADS = os.cpu_count() or 1
"""Batches embedded at once, each on one onnxruntime thread that sleeps when idle. Calls of
one thread each in parallel used both cores, where one call on onnxruntime's own thread
pool kept the wall time at the CPU time on the benchmark book (`docqa bench --parts indexing`)."""
ENCODER_BATCH = 8
"""Texts per onnxruntime run when indexing: on length-sorted texts of the 411 KB benchmark
book, batches of 8 took 15-20 % less CPU than 32 (sentences 2.2 against 2.7 s, passages
2.6 against 3.2 s; 1 and 128 were slower still): small batches stay in the CPU caches."""


class IndexBuildError(IndexError_):
    """The index cannot be written (a read-only folder, a full disk, a path that is a file)."""


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


@dataclass
class _Vectors:
    """The chunks of one document with their passage and sentence vectors."""

    chunks: list[Chunk]
    passages: np.ndarray
    sentences: list[np.ndarray]


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


def passage_embedder(encoder: Path) -> Any:
    """The embedder of an index build: one onnxruntime thread per call, so that `embed_all`
    can run a call on every core at once."""
    from docqa import embedding

    return embedding.OnnxEmbedder(
        encoder, batch_size=ENCODER_BATCH, intra_op_num_threads=1, spinning=False
    )


def embed_all(embedder: Any, texts: list[str], progress: Progress | None, stage: str) -> np.ndarray:
    """Embed texts in batches of similar length (longest first), `EMBED_THREADS` batches at
    once, telling `progress` after each batch: sorting the whole list means no batch pads
    short texts to a long one."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    batches = [order[start : start + EMBED_BATCH] for start in range(0, len(order), EMBED_BATCH)]
    vectors = np.zeros((len(texts), embedder.dimension), np.float32)
    done = 0
    # onnxruntime runs a session from several threads at once and releases the GIL meanwhile.
    with ThreadPoolExecutor(EMBED_THREADS) as pool:
        embedded = pool.map(lambda rows: embedder.embed([texts[i] for i in rows]), batches)
        for rows, batch_vectors in zip(batches, embedded, strict=True):
            vectors[rows] = batch_vectors
            done += len(rows)
            if progress:
                progress(stage, done, len(texts))
    return vectors


def passage_vectors(
    embedder: Any, chunks: list[Chunk], sentence_vectors: np.ndarray, progress: Progress | None
) -> np.ndarray:
    """A passage's vector: the sum of its sentences' vectors and its section title's,
    normalised, instead of embedding the passage text again.

    Passages only propose candidates; answers rank by their best sentence. Built this way,
    `docqa eval` gave the same figures on the three sets (brief hit@1 0.951, answer accuracy
    0.878; squad2 hit@1 0.832, hit@5 0.966, contains gold 0.692; quac hit@1 0.667) as with
    embedded passages (0.951, 0.878; 0.831, 0.964, 0.692; 0.667), and passages were the
    longer half of the texts an index build embeds.
    """
    titles = sorted({chunk.section.title() for chunk in chunks if chunk.section})
    title_vectors = dict(zip(titles, embed_all(embedder, titles, None, "titles"), strict=True))
    passages = np.zeros((len(chunks), embedder.dimension), np.float32)
    cursor = 0
    for row, chunk in enumerate(chunks):
        count = len(chunk.sentences)
        vector = sentence_vectors[cursor : cursor + count].sum(axis=0)
        if chunk.section:
            vector = vector + title_vectors[chunk.section.title()]
        passages[row] = vector / max(float(np.linalg.norm(vector)), 1e-12)
        cursor += count
    return passages


def _write_lexical(folder: Path, chunks: list[Chunk]) -> None:
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(tokenize([f"{c.section} {c.text}" for c in chunks]), show_progress=False)
    retriever.save(str(folder))


def _reusable(settings: Settings, force: bool) -> tuple[dict[str, Any], dict[str, _Vectors]]:
    """The manifest and per-document vectors of the build in use, when they can be kept."""
    if force:
        return {}, {}
    try:
        folder = current_build(settings.index_dir)
        if folder is None:
            return {}, {}
        manifest = read_manifest(folder)
        same = (
            manifest.get("format_version") == FORMAT_VERSION
            and manifest.get("model") == settings.model
            and manifest.get("chunker") == chunker_description(settings)
            and manifest.get("passage_precision", "fp32") == settings.passage_precision
        )
        if not same:
            return {}, {}
        index = load_build(folder)
        passages = index.dense.reconstruct_n(0, index.dense.ntotal)
    except (IndexError_, RuntimeError):  # damaged or unreadable: build from scratch
        return {}, {}
    kept: dict[str, _Vectors] = {}
    starts = index.sentence_starts
    for row, chunk in enumerate(index.chunks):
        entry = kept.setdefault(chunk.document, _Vectors([], np.zeros(0), []))
        entry.chunks.append(chunk)
        entry.sentences.append(index.sentence_vectors[starts[row] : starts[row + 1]])
    rows = {chunk.id: row for row, chunk in enumerate(index.chunks)}
    for entry in kept.values():
        entry.passages = passages[[rows[c.id] for c in entry.chunks]]
    return manifest, kept


def _read_changed(
    settings: Settings,
    manifest: dict[str, Any],
    kept: dict[str, _Vectors],
    progress: Progress | None,
) -> tuple[list[DocumentRecord], dict[str, str], dict[str, _Vectors], list[list[Chunk]]]:
    """Records and hashes of every file; vectors kept for unchanged ones; the rest read and
    cut into chunks at once, so that no more than one document's text is held at a time.

    A file of the size and modification time recorded is unchanged without being read; one
    whose time moved is hashed, and unchanged if its hash is the recorded one. An unchanged
    file keeps its vectors, or its verdict (a skip for its size judged again against the
    settings' limits, from its record); only a new, changed or newly fitting file is read.
    """
    previous = {r.name: r for r in records_of(manifest)}
    hashes = manifest.get("documents", {})
    records, corpus, reused, read = [], {}, {}, []
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
        unchanged = _unchanged(old, file.name in kept, settings)
        if unchanged is not None and stamp is not None and hashes.get(file.name) == digest:
            if not same_stamp:  # touched, or recorded by an earlier docqa: record its time
                unchanged = replace(unchanged, size=stamp[0], modified_ns=settled(stamp[1]))
            records.append(unchanged)
            corpus[file.name] = digest
            if unchanged.status == "indexed":
                reused[file.name] = kept[file.name]
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
    return kept_verdict(old, settings.max_file_bytes, settings.max_document_chars)


def _embed_documents(
    chunked: list[list[Chunk]], encoder: Path, progress: Progress | None
) -> dict[str, _Vectors]:
    """Embed the chunks of newly read documents (sentences, then passages from them)."""
    chunks = [chunk for document in chunked for chunk in document]
    if not chunks:
        return {}
    embedder = passage_embedder(encoder)
    texts = [c.text[s:e] for c in chunks for s, e in c.sentences]
    if progress:  # at once: the first batches wait for the encoder to load
        progress("embedding sentences", 0, len(texts))
    sentence_vectors = embed_all(embedder, texts, progress, "embedding sentences")
    passages = passage_vectors(embedder, chunks, sentence_vectors, progress)
    result: dict[str, _Vectors] = {}
    cursor = 0
    for chunk in chunks:
        entry = result.setdefault(chunk.document, _Vectors([], np.zeros(0), []))
        entry.chunks.append(chunk)
        entry.sentences.append(sentence_vectors[cursor : cursor + len(chunk.sentences)])
        cursor += len(chunk.sentences)
        entry.passages = np.zeros(0)  # set below, once per document
    rows = {id(c): row for row, c in enumerate(chunks)}
    for entry in result.values():
        entry.passages = passages[[rows[id(c)] for c in entry.chunks]]
    return result


def _with_counts(record: DocumentRecord, vectors: _Vectors | None) -> DocumentRecord:
    if vectors is None:
        if record.status == "indexed":  # read, but cut into no chunk at all
            return replace(record, status="skipped", reason="no text in it")
        return record
    sections = len({c.section for c in vectors.chunks})
    return replace(record, chunks=len(vectors.chunks), sections=sections)


def write_build(
    settings: Settings,
    folder: Path,
    records: list[DocumentRecord],
    corpus: dict[str, str],
    vectors: dict[str, _Vectors],
    query_encoder: Path,
) -> dict[str, Any]:
    """Write the chunks, vectors, lexical index, encoder and manifest into `folder`; a
    write that fails (a full disk) raises IndexBuildError, and the caller removes `folder`."""
    try:
        return _write_parts(settings, folder, records, corpus, vectors, query_encoder)
    except (OSError, RuntimeError) as error:  # faiss reports a failed write as RuntimeError
        if isinstance(error, RuntimeError) and not disk_full(error) and "write" not in str(error):
            raise  # not a write: a bug, not the disk
        raise write_failure(error, folder.parent) from error


def _write_parts(
    settings: Settings,
    folder: Path,
    records: list[DocumentRecord],
    corpus: dict[str, str],
    vectors: dict[str, _Vectors],
    query_encoder: Path,
) -> dict[str, Any]:
    import faiss

    from docqa.encoders import install_encoder

    ordered = [vectors[r.name] for r in records if r.name in vectors]
    chunks = [c for v in ordered for c in v.chunks]
    passages = np.concatenate([v.passages for v in ordered]).astype(np.float32)
    sentences = [s for v in ordered for s in v.sentences]
    starts = np.cumsum([0] + [len(s) for s in sentences]).astype(np.int64)
    install_encoder(query_encoder, folder / "encoder")
    faiss.write_index(make_dense_index(passages), str(folder / "dense.faiss"))
    _save_rows(folder / "sentences.npy", sentences, int(passages.shape[1]))
    np.save(folder / "sentence_starts.npy", starts)
    _write_lexical(folder / "lexical", chunks)
    with open(folder / "chunks.jsonl", "w", encoding="utf-8") as handle:
        for chunk in chunks:
            handle.write(json.dumps(chunk_record(chunk), ensure_ascii=False) + "\n")
    kind = "flat" if len(chunks) <= HNSW_FROM else "hnsw"
    manifest = manifest_for(settings, corpus, int(passages.shape[1]), kind)
    manifest["chunks"] = len(chunks)
    manifest["records"] = [asdict(record) for record in records]
    (folder / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    return manifest


def _save_rows(path: Path, parts: list[np.ndarray], dimension: int) -> None:
    """Save the parts' rows as one float32 .npy, part by part: never a second copy of all."""
    shape = (sum(len(part) for part in parts), dimension)
    with open(path, "wb") as handle:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False}
        np.lib.format.write_array_header_1_0(handle, {**header, "shape": shape})
        for part in parts:
            handle.write(np.ascontiguousarray(part, dtype="<f4").tobytes())


def disk_full(error: BaseException) -> bool:
    """Whether a failed write ran out of disk space (or of the user's quota)."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    return any(words in str(error) for words in ("No space left on device", "quota exceeded"))


def write_failure(error: OSError | RuntimeError, index_dir: Path) -> IndexBuildError:
    """The one-line error for an index that could not be written."""
    if disk_full(error):
        words = (isinstance(error, OSError) and error.strerror) or "No space left on device"
        return IndexBuildError(
            f"the disk is full ({words}): the new index could not be written in {index_dir}; "
            "the index in use is unchanged. Free space and run `docqa index` again"
        )
    if isinstance(error, OSError):
        where = f" ({error.filename})" if error.filename else ""
        return IndexBuildError(
            f"cannot write the index in {index_dir}: {error.strerror or error}{where}"
        )
    return IndexBuildError(f"cannot write the index in {index_dir}: {error}")


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
    from docqa.encoders import cached_encoders

    index_dir = settings.index_dir
    manifest, kept = _reusable(settings, force)
    folder = current_build(index_dir) if manifest else None
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
        records, corpus, reused, read = _read_changed(settings, manifest, kept, progress)
        passage_encoder, query_encoder = cached_encoders(
            settings.model,
            settings.encoder_precision,
            index_dir,
            settings.passage_precision,
            progress,
        )
        vectors = {**reused, **_embed_documents(read, passage_encoder, progress)}
        records = [_with_counts(r, vectors.get(r.name)) for r in records]
        if not vectors:
            raise NothingToIndexError(nothing_indexed(records, settings.corpus_dir))
        if progress:
            progress("writing", 0, 1)
        write_build(settings, temporary, records, corpus, vectors, query_encoder)
        if progress:
            progress("writing", 1, 1)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    final = index_dir / f"build-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9:09d}"
    os.rename(temporary, final)
    _point_to(index_dir, final.name)
    _remove_old_builds(index_dir, keep=final.name)
    chunks = sum(len(v.chunks) for v in vectors.values())
    seconds = time.perf_counter() - started
    return IndexReport(final, tuple(records), chunks, seconds, len(read), True)


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
