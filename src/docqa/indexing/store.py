"""The index on disk and in memory: FAISS vectors, BM25, chunks and the manifest, loaded
and checked; the errors of an index.

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

import bisect
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from docqa.config import Settings
from docqa.indexing.lexical import Bm25, TermCounts, tokenize
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
class Segment:
    """A part of the index written by one build and kept by later ones while its documents
    stay: its chunks, their passage vectors (FAISS), term counts and sentence vectors."""

    name: str
    chunks: list[Chunk]
    dense: Any  # faiss.Index over normalised chunk vectors (inner product = cosine)
    terms: TermCounts
    sentence_vectors: np.ndarray
    sentence_starts: np.ndarray  # chunk i owns rows sentence_starts[i]:sentence_starts[i + 1]

    def documents(self) -> list[str]:
        """The documents of the segment, in index order."""
        return list(dict.fromkeys(chunk.document for chunk in self.chunks))


@dataclass
class Index:
    """Everything retrieval needs, loaded in memory: the segments of a build, searched as
    one. Rows run across segments in order, over their live chunks only: `dropped` names,
    per segment, documents removed since it was written (left in its files, never found)."""

    segments: list[Segment]
    manifest: dict[str, Any]
    path: Path
    dropped: list[frozenset[str]] = field(default_factory=list)
    chunks: list[Chunk] = field(init=False, repr=False)
    lexical: Bm25 = field(init=False, repr=False)
    """BM25 over every segment's live chunks with corpus-wide statistics."""
    starts: list[int] = field(init=False, repr=False)
    """The first row of each segment, and the row count at the end."""
    live: list[np.ndarray | None] = field(init=False, repr=False)
    """Per segment, the places of its live chunks in its files (None: all are live)."""
    row_of: dict[str, int] = field(init=False, repr=False)
    _sentence_terms: dict[int, list[frozenset[str]]] = field(init=False, repr=False)
    _hidden: list[Any] = field(init=False, repr=False)
    document_rows: dict[str, list[int]] = field(init=False, repr=False)
    """The chunk rows of each document, in index order."""

    def __post_init__(self) -> None:
        dropped = self.dropped or [frozenset()] * len(self.segments)
        self.live, self._hidden, self.chunks = [], [], []
        terms, counts = [], []
        for segment, names in zip(self.segments, dropped, strict=True):
            live = _live_rows(segment, names)
            self.live.append(live)
            self._hidden.append(_hidden_selector(segment, live))
            chunks = segment.chunks if live is None else [segment.chunks[r] for r in live.tolist()]
            self.chunks += chunks
            counts.append(len(chunks))
            terms.append(segment.terms if live is None else segment.terms.rows(live))
        self.starts = [0, *np.cumsum(counts).tolist()]
        self.lexical = Bm25(terms)
        self.row_of = {chunk.id: row for row, chunk in enumerate(self.chunks)}
        self.document_rows = {}
        for row, chunk in enumerate(self.chunks):
            self.document_rows.setdefault(chunk.document, []).append(row)
        self._sentence_terms = {}

    @property
    def document_frequencies(self) -> np.ndarray:
        """How many chunks hold each BM25 term (by the term's column in its vocabulary)."""
        return self.lexical.document_frequencies

    def rows_of(self, documents: frozenset[str]) -> np.ndarray:
        """The chunk rows of the named documents, sorted (for restricting a search)."""
        rows = [row for name in documents for row in self.document_rows.get(name, ())]
        return np.array(sorted(rows), dtype=np.int64)

    def locate(self, row: int) -> tuple[Segment, int]:
        """The segment holding a row, and the chunk's place in the segment's files."""
        at = bisect.bisect_right(self.starts, row) - 1
        local, live = row - self.starts[at], self.live[at]
        return self.segments[at], local if live is None else int(live[local])

    def passage_vector(self, row: int) -> np.ndarray:
        """The passage vector of a chunk."""
        segment, local = self.locate(row)
        return np.asarray(segment.dense.reconstruct(local))

    def sentence_vectors_of(self, row: int) -> np.ndarray:
        """The vectors of a chunk's sentences, in order."""
        segment, local = self.locate(row)
        starts = segment.sentence_starts
        return segment.sentence_vectors[starts[local] : starts[local + 1]]

    def dense_search(
        self, vector: np.ndarray, n: int, only: np.ndarray | None = None
    ) -> tuple[list[int], list[float]]:
        """The rows of the n chunks closest to the vector, best first, with their cosine
        (among the rows `only`, when given): each segment's n best, merged."""
        found: list[tuple[float, int]] = []
        ends = self.starts[1:]
        parts = zip(self.segments, self.live, self._hidden, self.starts[:-1], ends, strict=True)
        for segment, live, hidden, first, end in parts:
            local = None
            if only is not None:
                local = only[(only >= first) & (only < end)] - first
                if not len(local):
                    continue
                local = local if live is None else live[local]
            scores, places = search_vectors(segment.dense, vector, n, local, hidden)
            rows = places if live is None else np.searchsorted(live, places).tolist()
            found += [(score, row + first) for score, row in zip(scores, rows, strict=True)]
        found.sort(key=lambda pair: (-pair[0], pair[1]))
        return [row for _, row in found[:n]], [score for score, _ in found[:n]]

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


def _live_rows(segment: Segment, dropped: frozenset[str]) -> np.ndarray | None:
    """The places of a segment's chunks not of a dropped document; None when all are."""
    if not dropped:
        return None
    kept = [row for row, chunk in enumerate(segment.chunks) if chunk.document not in dropped]
    return np.array(kept, dtype=np.int64)


def _hidden_selector(segment: Segment, live: np.ndarray | None) -> Any:
    """A FAISS selector that skips a segment's dropped chunks (kept for every search), or
    None when none is dropped."""
    if live is None:
        return None
    import faiss

    mask = np.ones(len(segment.chunks), dtype=bool)
    mask[live] = False
    return faiss.IDSelectorNot(faiss.IDSelectorBatch(np.flatnonzero(mask)))


def search_vectors(
    dense: Any,
    vector: np.ndarray,
    n: int,
    only: np.ndarray | None = None,
    hidden: Any = None,
) -> tuple[list[float], list[int]]:
    """The n rows of one FAISS index closest to the vector, among the rows `only` when
    given, else skipping those `hidden` selects out: FAISS skips them inside the search, so
    n are still found."""
    import faiss as faiss_module

    faiss: Any = faiss_module  # its type stubs lack the search parameter classes
    selector = faiss.IDSelectorBatch(only) if only is not None else hidden
    if selector is None:
        scores, rows = dense.search(vector.reshape(1, -1), min(n, dense.ntotal))
    else:
        params = (
            faiss.SearchParametersHNSW(sel=selector, efSearch=dense.hnsw.efSearch)
            if isinstance(dense, faiss.IndexHNSW)
            else faiss.SearchParameters(sel=selector)
        )
        count = max(1, min(n, len(only) if only is not None else dense.ntotal))
        scores, rows = dense.search(vector.reshape(1, -1), count, params=params)
    keep = rows[0] >= 0
    return scores[0][keep].tolist(), rows[0][keep].tolist()


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
    segments = []
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
    dropped = [frozenset(dropped_documents(entry)) for entry in segment_entries(manifest)]
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
