"""The index on disk and in memory: FAISS vectors, BM25, chunks and the manifest, loaded
and checked; the errors of an index.

Layout of the index folder:

    index/CURRENT            name of the build folder in use (replaced atomically)
    index/build-<stamp>/     manifest.json, chunks.jsonl, dense.faiss, sentences.npy,
                             lexical/ (bm25s), encoder/ (ONNX query encoder)
    index/.tmp-*/            a build in progress; never read, removed by the next build
    index/.lock              held while a build runs, so two builds never interleave
    index/encoders/          the ONNX encoders of the model, made once (encoders.py)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from docqa.config import Settings
from docqa.indexing.lexical import tokenize
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


@dataclass
class Index:
    """Everything retrieval needs, loaded in memory."""

    chunks: list[Chunk]
    dense: Any  # faiss.Index over normalised chunk vectors (inner product = cosine)
    lexical: Any  # bm25s.BM25 over the chunks' stemmed tokens
    sentence_vectors: np.ndarray
    sentence_starts: np.ndarray  # chunk i owns rows sentence_starts[i]:sentence_starts[i + 1]
    manifest: dict[str, Any]
    path: Path
    row_of: dict[str, int] = field(init=False, repr=False)
    document_frequencies: np.ndarray = field(init=False, repr=False)
    """How many chunks hold each BM25 term (by the term's column in the BM25 vocabulary)."""
    _sentence_terms: dict[int, list[frozenset[str]]] = field(init=False, repr=False)
    document_rows: dict[str, list[int]] = field(init=False, repr=False)
    """The chunk rows of each document, in index order."""

    def __post_init__(self) -> None:
        self.row_of = {chunk.id: row for row, chunk in enumerate(self.chunks)}
        self.document_rows = {}
        for row, chunk in enumerate(self.chunks):
            self.document_rows.setdefault(chunk.document, []).append(row)
        self.document_frequencies = np.diff(self.lexical.scores["indptr"])
        self._sentence_terms = {}

    def rows_of(self, documents: frozenset[str]) -> np.ndarray:
        """The chunk rows of the named documents, sorted (for restricting a search)."""
        rows = [row for name in documents for row in self.document_rows.get(name, ())]
        return np.array(sorted(rows), dtype=np.int64)

    def sentence_terms(self, row: int) -> list[frozenset[str]]:
        """The BM25 terms of each sentence of a chunk and of its section title (tokenised
        once, then kept): "the resources list" finds a sentence under that heading."""
        terms = self._sentence_terms.get(row)
        if terms is None:
            chunk = self.chunks[row]
            title = set(tokenize([chunk.section])[0])
            sentences = tokenize([chunk.text[s:e] for s, e in chunk.sentences])
            terms = [frozenset(title.union(t)) for t in sentences]
            self._sentence_terms[row] = terms
        return terms


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


def load_build(folder: Path) -> Index:
    """Load a build folder into memory; raises IndexCorruptError on damaged files."""
    import bm25s
    import faiss

    manifest = read_manifest(folder)
    try:
        with open(folder / "chunks.jsonl", encoding="utf-8") as handle:
            chunks = [_chunk_from(json.loads(line)) for line in handle]
        dense = faiss.read_index(str(folder / "dense.faiss"))
        lexical = bm25s.BM25.load(str(folder / "lexical"))
        sentence_vectors = np.load(folder / "sentences.npy")
        starts = np.load(folder / "sentence_starts.npy")
    # bm25s raises AttributeError on a parameter file of the wrong shape.
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        RuntimeError,
        EOFError,
    ) as error:
        raise IndexCorruptError(f"the index in {folder} is damaged ({error})") from error
    if starts.ndim != 1 or starts.dtype.kind not in "iu" or sentence_vectors.ndim != 2:
        raise IndexCorruptError(
            f"the index in {folder} is damaged: its sentence arrays have the wrong shape"
        )
    # A list, not a set: a damaged manifest may hold unhashable counts.
    counts: list[Any] = [len(chunks), dense.ntotal, len(starts) - 1]
    counts += [manifest.get("chunks"), lexical.scores.get("num_docs")]
    if any(count != counts[0] for count in counts):
        raise IndexCorruptError(
            f"the index in {folder} is damaged: its parts disagree on the chunk count"
        )
    dimensions = [dense.d, sentence_vectors.shape[1]]
    if starts[-1] != len(sentence_vectors) or dimensions != [manifest.get("dimension")] * 2:
        raise IndexCorruptError(
            f"the index in {folder} is damaged: its vectors do not match its chunks"
        )
    return Index(chunks, dense, lexical, sentence_vectors, starts, manifest, folder)


class IndexBuildError(IndexError_):
    """The index cannot be written (a read-only folder, a full disk, a path that is a file)."""
