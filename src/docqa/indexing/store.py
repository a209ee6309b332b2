"""The index on disk: its build folders, segments and manifest, loaded (into an Index) and
checked; the errors of an index.

Layout of the index folder:

    index/CURRENT            name of the build folder in use (replaced atomically)
    index/build-<stamp>/     manifest.json, encoder/ (ONNX query encoder), segments/
    index/build-<stamp>/segments/<name>/
                             chunks.jsonl, dense.faiss, sentences.npy, sentence_starts.npy,
                             terms/ (BM25 term counts); a segment is written once and
                             hard-linked into later builds while its documents stay
    index/.tmp-*/            a build in progress; never read, removed by the next build
    index/.lock              held while a build runs, so two builds never interleave
    index/encoders/          the ONNX encoders of the model, made once (encoders.py)
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from docqa.config import Settings
from docqa.indexing.index import Index, Segment
from docqa.indexing.lexical import TermCounts
from docqa.indexing.manifest import compare_corpus
from docqa.models import Chunk, DocqaError

HNSW_FROM = 20_000
"""Up to this many chunks exact (flat) search is used; above it HNSW. Flat search costs
~0.09 ms per 1,000 vectors (88 ms at 1M on one core, `docqa bench`), so from ~20k chunks
on it is slower than HNSW at HNSW_EF_SEARCH (~2 ms even at 1M)."""

HNSW_M = 32

HNSW_EF_CONSTRUCTION = 40

HNSW_EF_SEARCH = 256
"""HNSW graph degree and search depths, by measurement (`docqa bench`, 1M vectors): efSearch
256 finds 0.97 of the exact top 10 in 2.1 ms (128: 0.94; 512: 0.98 in 4.0 ms); at 100k,
efConstruction 40 gave a better recall than 80 (0.958 against 0.943 at efSearch 128)."""

Notify = Callable[[str], None]


class IndexError_(DocqaError):
    """Base of the index errors (named with a trailing underscore: IndexError is builtin)."""


class IndexMissingError(IndexError_):
    """No index has been built yet."""


class IndexStaleError(IndexError_):
    """The index does not match the corpus or the settings."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class IndexCorruptError(IndexError_):
    """An index file is missing, truncated or unreadable."""


def embedding_text(chunk: Chunk) -> str:
    """What is embedded for a chunk: its section title (if any) gives the passage context."""
    return f"{chunk.section.title()}: {chunk.text}" if chunk.section else chunk.text


def make_dense_index(vectors: np.ndarray) -> Any:
    """Exact inner-product search for small corpora, HNSW for large ones."""
    import faiss

    if len(vectors) > HNSW_FROM:
        return make_hnsw_index(vectors)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


def make_hnsw_index(vectors: np.ndarray) -> Any:
    """An HNSW graph over the vectors for inner-product search."""
    import faiss

    index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = HNSW_EF_SEARCH
    index.add(vectors)
    return index


def chunk_record(chunk: Chunk) -> dict[str, Any]:
    return {
        "id": chunk.id,
        "document": chunk.document,
        "section": chunk.section,
        "ordinal": chunk.ordinal,
        "start": chunk.start,
        "end": chunk.end,
        "text": chunk.text,
        "sentences": chunk.sentences,
        "offsets": chunk.offsets,
        "page": chunk.page,
    }


def _chunk_from(record: dict[str, Any]) -> Chunk:
    return Chunk(
        record["id"],
        record["document"],
        record["section"],
        record["ordinal"],
        record["start"],
        record["end"],
        record["text"],
        tuple((int(s), int(e)) for s, e in record["sentences"]),
        tuple((int(c), int(o)) for c, o in record["offsets"]),
        record.get("page"),
    )


def current_build(index_dir: Path) -> Path | None:
    """The build folder in use, or None when no index was ever built."""
    pointer = index_dir / "CURRENT"
    try:
        if not pointer.is_file():
            return None
    except OSError as error:
        raise IndexCorruptError(f"{pointer} is unreadable: {error.strerror}") from error
    try:
        folder = index_dir / pointer.read_text(encoding="utf-8").strip()
    except (OSError, ValueError) as error:
        raise IndexCorruptError(f"{pointer} is unreadable: {error}") from error
    if not folder.name.startswith("build-") or not folder.is_dir():
        raise IndexCorruptError(f"{pointer} names a build folder that is missing")
    return folder


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a build folder."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise IndexCorruptError(f"{folder / 'manifest.json'} is unreadable: {error}") from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("documents", {}), dict):
        raise IndexCorruptError(f"{folder / 'manifest.json'} is not a manifest")
    return manifest


def check_index(settings: Settings) -> Path:
    """The current build folder if it fits the corpus and settings; raises otherwise."""
    folder = current_build(settings.index_dir)
    if folder is None:
        raise IndexMissingError(f"no index in {settings.index_dir} yet (run `docqa index`)")
    reasons = compare_corpus(read_manifest(folder), settings)
    if reasons:
        reason = f"the index in {settings.index_dir} is stale: {'; '.join(reasons)}"
        raise IndexStaleError(f"{reason}. Run `docqa index --force` to rebuild it", reason)
    return folder


SEGMENT_FILES = (
    "chunks.jsonl",
    "dense.faiss",
    "sentences.npy",
    "sentence_starts.npy",
    "terms/counts.npz",
    "terms/terms.json",
)
"""The files of a segment folder (index/build-*/segments/<name>/)."""


def segment_stamps(folder: Path) -> dict[str, list[int]]:
    """Size and modification time of each file of a segment folder, recorded in the
    manifest: a later build keeps the segment (linked, not read) only while they match."""
    stamps = {}
    for name in SEGMENT_FILES:
        status = (folder / name).stat()
        stamps[name] = [status.st_size, status.st_mtime_ns]
    return stamps


def segment_entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's list of segments (name, chunk count, documents, file stamps)."""
    entries = manifest.get("segments")
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("name"), str) for e in entries
    ):
        raise IndexCorruptError("the manifest does not list the index's segments")
    return entries


def sentence_count(folder: Path) -> int:
    """How many sentence vectors a build folder holds (read from its segments' offsets)."""
    entries = segment_entries(read_manifest(folder))
    paths = [folder / "segments" / entry["name"] / "sentence_starts.npy" for entry in entries]
    return sum(int(np.load(path, mmap_mode="r")[-1]) for path in paths)


def load_build(folder: Path, previous: Index | None = None) -> Index:
    """Load a build folder into memory; raises IndexCorruptError on damaged files. Segments
    `previous` (the index answering now) holds already are taken from it, not read again."""
    manifest = read_manifest(folder)
    loaded = {segment.name: segment for segment in previous.segments} if previous else {}
    segments, dropped = [], []
    for entry in segment_entries(manifest):
        name = entry["name"]
        segment = loaded.get(name) or load_segment(folder / "segments" / name, name)
        if len(segment.chunks) != entry.get("chunks"):
            raise IndexCorruptError(
                f"the index in {folder} is damaged: segment {name} has "
                f"{len(segment.chunks)} chunks, its manifest says {entry.get('chunks')}"
            )
        if segment.dense.d != manifest.get("dimension"):
            raise IndexCorruptError(
                f"the index in {folder} is damaged: its vectors do not match its chunks"
            )
        segments.append(segment)
        dropped.append(frozenset(dropped_documents(entry)))
    index = Index(segments, manifest, folder, dropped)
    if len(index.chunks) != manifest.get("chunks"):
        raise IndexCorruptError(
            f"the index in {folder} is damaged: its parts disagree on the chunk count"
        )
    return index


def dropped_documents(entry: dict[str, Any]) -> list[str]:
    """The documents a segment entry holds in its files but the index no longer has."""
    dropped = entry.get("dropped", [])
    if not isinstance(dropped, list) or not all(isinstance(name, str) for name in dropped):
        raise IndexCorruptError("the manifest's list of dropped documents is damaged")
    return dropped


def live_chunk_count(entry: dict[str, Any]) -> int:
    """How many chunks of a segment entry belong to documents the index still has."""
    sizes = dict(zip(entry.get("documents", []), entry.get("sizes", []), strict=False))
    return int(entry["chunks"]) - sum(sizes.get(name, 0) for name in dropped_documents(entry))


def load_segment(folder: Path, name: str) -> Segment:
    """Load one segment folder; raises IndexCorruptError on damaged files."""
    import faiss

    try:
        with open(folder / "chunks.jsonl", encoding="utf-8") as handle:
            chunks = [_chunk_from(json.loads(line)) for line in handle]
        dense = faiss.read_index(str(folder / "dense.faiss"))
        terms = TermCounts.load(folder / "terms")
        sentence_vectors = np.load(folder / "sentences.npy")
        starts = np.load(folder / "sentence_starts.npy")
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,  # the term counts' .npz
    ) as error:
        raise IndexCorruptError(
            f"the index in {folder.parent.parent} is damaged ({error})"
        ) from error
    where = folder.parent.parent
    if starts.ndim != 1 or starts.dtype.kind not in "iu" or sentence_vectors.ndim != 2:
        raise IndexCorruptError(
            f"the index in {where} is damaged: its sentence arrays have the wrong shape"
        )
    counts = [len(chunks), dense.ntotal, len(starts) - 1, terms.counts.shape[0]]
    if any(count != counts[0] for count in counts):
        raise IndexCorruptError(
            f"the index in {where} is damaged: its parts disagree on the chunk count"
        )
    if starts[-1] != len(sentence_vectors) or sentence_vectors.shape[1] != dense.d:
        raise IndexCorruptError(
            f"the index in {where} is damaged: its vectors do not match its chunks"
        )
    return Segment(name, chunks, dense, terms, sentence_vectors, starts)


class IndexBuildError(IndexError_):
    """The index cannot be written (a read-only folder, a full disk, a path that is a file)."""
