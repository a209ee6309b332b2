"""Question -> ranked hits: dense (FAISS) and lexical (BM25) rankings, fused and reranked."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from docqa.config import Settings
from docqa.embedding import Embedder
from docqa.index import Index, tokenize
from docqa.models import Hit


@dataclass
class Ranking:
    """Candidate chunk rows with their scores, best first."""

    rows: list[int]
    scores: list[float]


@dataclass
class Retrieval:
    """The outcome of one search: hits, the query vector and where the time went."""

    hits: list[Hit]
    query_vector: np.ndarray
    query_tokens: list[str]
    timings_ms: dict[str, float] = field(default_factory=dict)


def dense_ranking(index: Index, vector: np.ndarray, n: int) -> Ranking:
    """The n chunks closest to the query vector by cosine similarity."""
    scores, rows = index.dense.search(vector.reshape(1, -1), min(n, index.dense.ntotal))
    keep = rows[0] >= 0
    return Ranking(rows[0][keep].tolist(), scores[0][keep].tolist())


def lexical_ranking(index: Index, tokens: list[str], n: int) -> Ranking:
    """The n chunks with the highest BM25 score that share at least one query term."""
    if not tokens:
        return Ranking([], [])
    scores = index.lexical.get_scores(tokens)
    n = min(n, len(scores))
    top = np.argpartition(-scores, n - 1)[:n]
    top = top[np.argsort(-scores[top], kind="stable")]
    top = top[scores[top] > 0]
    return Ranking(top.tolist(), scores[top].tolist())


def fuse_rrf(rankings: list[Ranking], k: int) -> dict[int, float]:
    """Reciprocal rank fusion: each ranking adds 1 / (k + rank) to a chunk's score."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, row in enumerate(ranking.rows, start=1):
            fused[row] = fused.get(row, 0.0) + 1.0 / (k + rank)
    return fused


def fuse_scores(rankings: list[Ranking]) -> dict[int, float]:
    """Normalised score fusion: each ranking's scores scaled to 0..1 by its best, then summed."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        if not ranking.scores:
            continue
        top = max(ranking.scores)
        for row, score in zip(ranking.rows, ranking.scores, strict=True):
            fused[row] = fused.get(row, 0.0) + (score / top if top > 0 else 0.0)
    return fused


def sentence_similarity(index: Index, vector: np.ndarray, row: int) -> float:
    """The best cosine similarity between the query and one sentence of a chunk."""
    start, end = index.sentence_starts[row], index.sentence_starts[row + 1]
    if end <= start:
        return 0.0
    return float(np.max(index.sentence_vectors[start:end] @ vector))


def search(
    index: Index, embedder: Embedder, query: str, k: int, settings: Settings, mode: str = "hybrid"
) -> Retrieval:
    """Rank the chunks for a query: `mode` is hybrid (default), dense or lexical."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    vector = embedder.embed([query])[0]
    timings["encode"] = _lap(clock)
    clock = time.perf_counter()
    dense = (
        dense_ranking(index, vector, settings.candidates) if mode != "lexical" else Ranking([], [])
    )
    timings["dense"] = _lap(clock)
    clock = time.perf_counter()
    tokens = tokenize([query])[0]
    lexical = (
        lexical_ranking(index, tokens, settings.candidates) if mode != "dense" else Ranking([], [])
    )
    timings["lexical"] = _lap(clock)
    clock = time.perf_counter()
    hits = rank_hits(index, vector, dense, lexical, k, settings)
    timings["fusion"] = _lap(clock)
    return Retrieval(hits, vector, tokens, timings)


def rank_hits(
    index: Index, vector: np.ndarray, dense: Ranking, lexical: Ranking, k: int, settings: Settings
) -> list[Hit]:
    """Fuse the two rankings and keep the k best as hits."""
    rankings = [r for r in (dense, lexical) if r.rows]
    if settings.fusion == "rrf":
        fused = fuse_rrf(rankings, settings.rrf_k)
    else:
        fused = fuse_scores(rankings)
    dense_scores = dict(zip(dense.rows, dense.scores, strict=True))
    lexical_scores = dict(zip(lexical.rows, lexical.scores, strict=True))
    order = sorted(fused, key=lambda row: (-fused[row], row))[:k]
    return [
        Hit(
            index.chunks[row],
            rank,
            fused[row],
            dense_scores.get(
                row, float(index.dense.reconstruct(row) @ vector) if dense.rows else 0.0
            ),
            lexical_scores.get(row, 0.0),
        )
        for rank, row in enumerate(order, start=1)
    ]


def _lap(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
