"""The index in memory: the segments of a build (each its chunks, FAISS vectors, BM25 term
counts and sentence vectors) searched as one, over their live chunks only."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from docqa.indexing.lexical import Bm25, TermCounts, tokenize
from docqa.models import Chunk


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
