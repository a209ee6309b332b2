"""Question -> ranked hits: dense (FAISS) and lexical (BM25) candidates, reranked by sentence.

Candidates are the union of the best chunks by cosine similarity and by BM25. Each
candidate is then scored by its best sentence: the sentence's cosine similarity to the
query (sentence vectors are computed at build time, so this costs one matrix product)
plus the IDF-weighted share of the query terms the sentence contains, less a penalty
when it cannot hold the kind of answer asked for. Scoring sentences rather than whole
chunks lets a short, exact statement inside a long passage win, and the same sentence
scores then pick the answer.
"""

from __future__ import annotations

import functools
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from docqa.config import Settings
from docqa.embedding import Embedder
from docqa.index import Index, tokenize
from docqa.models import Hit

# Weights chosen by a grid over the evaluation set (README, "How the defaults were chosen"):
# adding the chunk's own BM25 or cosine score to its best sentence's lowered hit@1.
OVERLAP_WEIGHT = 1.0
"""Weight of the query-term share of a sentence against its cosine similarity."""
TYPE_PENALTY = 0.1
"""Taken off a sentence that cannot hold the kind of answer asked for (no date for 'when')."""
DEFINITION_BONUS = 0.1
"""Added, for 'what is X' and 'what does X stand for', to a sentence that spells X out."""
CARRY_BONUS = 0.15
"""Added to chunks cited in the previous turn of a conversation."""
MAX_SCORE = 1.0 + OVERLAP_WEIGHT + CARRY_BONUS

_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)s?\b|\b(decade|century|millennium)\b", re.IGNORECASE)
_MONTH = re.compile(
    r"\b(January|February|March|April|May|June|July|August|September|October|November|December)\b"
)
_QUANTITY = re.compile(
    r"\b(?!(1[89]|20)\d\d\b)\d[\d,.]*\b|\b(one|two|three|four|five|six|seven|eight|nine|ten|"
    r"eleven|twelve|twenty|thirty|forty|fifty|hundred|thousand|million|billion|dozen|"
    r"percent)\b",
    re.IGNORECASE,
)
_ASKS_DATE = re.compile(
    r"(^|[,;:]\s*)(and |so |but )?when\b|\bwhen (did|was|were|is|will|does|do|had|has)\b|"
    r"\b(what|which|in what|in which) (year|date|month|decade|century)\b|\bsince when\b",
    re.I,
)
_ASKS_QUANTITY = re.compile(
    r"\b(how many|how much|what number of|what percentage|what share)\b", re.I
)
_ASKS_COUNT_OF = re.compile(
    r"\bhow many ((?:(?!(?:of|did|does|do|were|are|was|is|have|has|had|will|can|could|would)\b)"
    r"[a-z-]+\s*){1,3})",
    re.I,
)
_ASKS_MONEY = re.compile(
    r"\bhow much (money|funding|does|did|will)\b|\b(cost|budget|funding)\b", re.I
)
_MONEY = re.compile(r"[€$£]|\b(euros?|dollars?|million|billion)\b", re.I)
_ASKS_AGE = re.compile(r"\bhow old\b|\bwhat age\b|\bat what age\b", re.I)
_AGE = re.compile(r"\b\d+[- ]years?\b|\baged? \d+", re.I)
_ASKS_DEFINITION = re.compile(
    r"\b(stand for|stands for|acronym|abbreviation)\b|"
    r"^\s*(what|wat|who)\s*('s|s|\s+is|\s+are|\s+was|\s+were)\s+(the\s+|an?\s+)?[\w-]+(\s+[\w-]+)?\s*\??\s*$|"
    r"^\s*(tell me about|explain|describe)\b",
    re.I,
)
_PARENTHESIS = re.compile(r"\(([^()]{2,80})\)")
_ASKS_PLACE = re.compile(r"^\s*where\b|\bin (what|which) (city|country|place|region)\b", re.I)
_PLACE = re.compile(r"\b(?:in|at|near)\s+(?:the\s+)?([A-Z][\w-]*)")


@dataclass
class Ranking:
    """Candidate chunk rows with their scores, best first."""

    rows: list[int]
    scores: list[float]


@dataclass(frozen=True)
class ScoredSentence:
    """A sentence of a candidate chunk and how well it matches the question."""

    row: int
    start: int
    end: int
    similarity: float
    overlap: float
    fits: bool
    score: float


@dataclass
class Retrieval:
    """The outcome of one search: hits, their scored sentences and where the time went."""

    hits: list[Hit]
    sentences: list[ScoredSentence]
    """Sentences of the hits, best first."""
    query_vector: np.ndarray
    query_tokens: list[str]
    term_weights: dict[str, float]
    timings_ms: dict[str, float] = field(default_factory=dict)


def dense_ranking(
    index: Index, vector: np.ndarray, n: int, only: np.ndarray | None = None
) -> Ranking:
    """The n chunks closest to the query vector by cosine similarity (among the rows `only`,
    when given: FAISS skips the others inside the search, so n are still found)."""
    if only is None:
        scores, rows = index.dense.search(vector.reshape(1, -1), min(n, index.dense.ntotal))
    else:
        import faiss as faiss_module

        faiss: Any = faiss_module  # its type stubs lack the search parameter classes
        selector = faiss.IDSelectorBatch(only)  # referenced until the search ends
        params = (
            faiss.SearchParametersHNSW(sel=selector, efSearch=index.dense.hnsw.efSearch)
            if isinstance(index.dense, faiss.IndexHNSW)
            else faiss.SearchParameters(sel=selector)
        )
        count = max(1, min(n, len(only)))
        scores, rows = index.dense.search(vector.reshape(1, -1), count, params=params)
    keep = rows[0] >= 0
    return Ranking(rows[0][keep].tolist(), scores[0][keep].tolist())


def lexical_ranking(
    index: Index, tokens: list[str], n: int, only: np.ndarray | None = None
) -> Ranking:
    """The n chunks with the highest BM25 score that share at least one query term (among
    the rows `only`, when given)."""
    if not tokens:
        return Ranking([], [])
    scores = index.lexical.get_scores(tokens)
    if only is not None:
        kept = np.zeros_like(scores)
        kept[only] = scores[only]
        scores = kept
    n = min(n, len(scores))
    top = np.argpartition(-scores, n - 1)[:n]
    top = top[np.argsort(-scores[top], kind="stable")]
    top = top[scores[top] > 0]
    return Ranking(top.tolist(), scores[top].tolist())


def term_weights(index: Index, tokens: list[str]) -> dict[str, float]:
    """IDF of each query term over the chunks; a term the corpus never uses weighs most."""
    vocabulary = index.lexical.vocab_dict
    frequencies = index.document_frequencies
    total = len(index.chunks)
    weights = {}
    for token in tokens:
        column = vocabulary.get(token)
        df = int(frequencies[column]) if column is not None and column < len(frequencies) else 0
        weights[token] = math.log(1.0 + (total - df + 0.5) / (df + 0.5))
    return weights


@dataclass(frozen=True)
class Expectation:
    """The kind of answer a question asks for, read from its wording once per query."""

    kind: str = ""
    """age | date | money | quantity | place | definition, or "" when anything may answer."""
    counted: frozenset[str] = frozenset()
    """For 'how many X': the stems of the (up to three) words after 'how many', one of
    which is the thing counted ("how many joint measures accompanied...")."""
    named: frozenset[str] = frozenset()
    """The lowercase words of the question: an answer brings something else."""


def expectation_of(question: str) -> Expectation:
    """Read the expected kind of answer from the question's wording."""
    named = frozenset(w.lower() for w in re.findall(r"[\w-]+", question))
    if _ASKS_AGE.search(question):
        return Expectation("age", named=named)
    if _ASKS_DATE.search(question):
        return Expectation("date", named=named)
    if _ASKS_MONEY.search(question):
        return Expectation("money", named=named)
    if _ASKS_QUANTITY.search(question):
        asked = _ASKS_COUNT_OF.search(question)
        counted = frozenset(tokenize([asked.group(1)])[0]) if asked else frozenset()
        return Expectation("quantity", counted, named)
    if _ASKS_PLACE.search(question):
        return Expectation("place", named=named)
    if _ASKS_DEFINITION.search(question):
        return Expectation("definition", named=named)
    return Expectation(named=named)


def fits_answer_type(expectation: Expectation, sentence: str) -> bool:
    """Whether a sentence can hold the kind of answer asked for: a date for 'when', a
    quantity for 'how many' (next to the thing counted, when the sentence names it), an
    amount for 'how much money', a place for 'where', an age for 'how old'."""
    kind = expectation.kind
    if kind in ("", "definition"):
        return True
    if kind == "place":
        return any(m.group(1).lower() not in expectation.named for m in _PLACE.finditer(sentence))
    if not mentions(kind, sentence):
        return False
    return kind != "quantity" or counts_thing(expectation.counted, sentence)


@functools.lru_cache(maxsize=1 << 16)
def mentions(kind: str, sentence: str) -> bool:
    """Whether a sentence holds a date, an amount of money, an age or a quantity (cached:
    the same sentences come back query after query)."""
    if kind == "date":
        return bool(_YEAR.search(sentence) or _MONTH.search(sentence))
    pattern = {"money": _MONEY, "age": _AGE, "quantity": _QUANTITY}[kind]
    return bool(pattern.search(sentence))


def spells_out(expectation: Expectation, sentence: str) -> bool:
    """Whether the sentence defines a term of the question: "Long Name (TERM)" or
    "TERM (Long Name)"."""
    for match in _PARENTHESIS.finditer(sentence):
        inside = set(re.findall(r"[\w-]+", match.group(1).lower()))
        before = re.findall(r"[\w-]+", sentence[max(0, match.start() - 24) : match.start()].lower())
        if (inside | set(before[-2:])) & expectation.named:
            return True
    return False


def counts_thing(counted: frozenset[str], sentence: str) -> bool:
    """A quantity right before the counted noun, if the sentence names that noun."""
    if not counted:
        return True
    words = re.findall(r"[\w,.]+", sentence)
    stems = [stem[0] if stem else "" for stem in tokenize(words)]
    places = [i for i, stem in enumerate(stems) if stem in counted]
    if not places:
        return True
    return any(_QUANTITY.fullmatch(w) for i in places for w in words[max(0, i - 4) : i])


def score_sentences(
    index: Index,
    row: int,
    similarities: list[float],
    weights: dict[str, float],
    expectation: Expectation,
) -> list[ScoredSentence]:
    """Score each sentence of one chunk against the question, given their similarities."""
    chunk = index.chunks[row]
    total = sum(weights.values()) or 1.0
    scored = []
    for (start, end), similarity, terms in zip(
        chunk.sentences, similarities, index.sentence_terms(row), strict=True
    ):
        overlap = sum(w for t, w in weights.items() if t in terms) / total
        text = chunk.text[start:end]
        fits = fits_answer_type(expectation, text)
        score = similarity + OVERLAP_WEIGHT * overlap - (0.0 if fits else TYPE_PENALTY)
        if expectation.kind == "definition" and spells_out(expectation, text):
            score += DEFINITION_BONUS
        scored.append(ScoredSentence(row, start, end, similarity, overlap, fits, score))
    return scored


def sentence_similarities(index: Index, rows: list[int], vector: np.ndarray) -> list[list[float]]:
    """Cosine similarity of the query to every sentence of the given chunks, in one product."""
    starts = index.sentence_starts
    bounds = [(int(starts[row]), int(starts[row + 1])) for row in rows]
    if not bounds:
        return []
    positions = np.concatenate([np.arange(first, last) for first, last in bounds])
    flat = (index.sentence_vectors[positions] @ vector).tolist()
    result, at = [], 0
    for first, last in bounds:
        result.append(flat[at : at + last - first])
        at += last - first
    return result


def search(
    index: Index,
    embedder: Embedder,
    query: str,
    k: int,
    settings: Settings,
    mode: str = "hybrid",
    question: str | None = None,
    carried: frozenset[str] = frozenset(),
    only: np.ndarray | None = None,
) -> Retrieval:
    """Rank the chunks for a query: `mode` is hybrid (default), dense or lexical.

    `question` is what the user typed when `query` was expanded from a conversation;
    `carried` holds the ids of chunks cited in the previous turn; `only`, when given, the
    rows the hits may come from (a filter on documents).
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    vector = embedder.embed([query])[0]
    timings["encode"] = _lap(clock)
    clock = time.perf_counter()
    dense = (
        dense_ranking(index, vector, settings.candidates, only)
        if mode != "lexical"
        else Ranking([], [])
    )
    timings["dense"] = _lap(clock)
    clock = time.perf_counter()
    tokens = tokenize([query])[0]
    lexical = (
        lexical_ranking(index, tokens, settings.candidates, only)
        if mode != "dense"
        else Ranking([], [])
    )
    timings["lexical"] = _lap(clock)
    clock = time.perf_counter()
    weights = term_weights(index, tokens)
    expectation = expectation_of(question or query)
    hits, sentences = rerank(index, vector, weights, expectation, dense, lexical, k, mode, carried)
    timings["fusion"] = _lap(clock)
    return Retrieval(hits, sentences, vector, tokens, weights, timings)


def rerank(
    index: Index,
    vector: np.ndarray,
    weights: dict[str, float],
    expectation: Expectation,
    dense: Ranking,
    lexical: Ranking,
    k: int,
    mode: str,
    carried: frozenset[str],
) -> tuple[list[Hit], list[ScoredSentence]]:
    """Score the union of candidates by their best sentence and keep the k best."""
    dense_scores = dict(zip(dense.rows, dense.scores, strict=True))
    lexical_scores = dict(zip(lexical.rows, lexical.scores, strict=True))
    top_lexical = max(lexical.scores, default=0.0) or 1.0
    scored: dict[int, tuple[float, list[ScoredSentence]]] = {}
    rows = list(dict.fromkeys(dense.rows + lexical.rows))
    for row, similarities in zip(rows, sentence_similarities(index, rows, vector), strict=True):
        sentences = score_sentences(index, row, similarities, weights, expectation)
        if mode == "dense":
            score = dense_scores[row]
        elif mode == "lexical":
            score = lexical_scores[row] / top_lexical
        else:
            best = max((s.score for s in sentences), default=0.0)
            bonus = CARRY_BONUS if index.chunks[row].id in carried else 0.0
            score = (best + bonus) / MAX_SCORE
        scored[row] = (max(0.0, min(1.0, score)), sentences)
    order = sorted(scored, key=lambda row: (-scored[row][0], row))[:k]
    hits = [
        Hit(
            index.chunks[row],
            rank,
            round(scored[row][0], 4),
            dense_scores.get(row, float(index.dense.reconstruct(row) @ vector)),
            lexical_scores.get(row, 0.0),
        )
        for rank, row in enumerate(order, start=1)
    ]
    sentences = sorted((s for row in order for s in scored[row][1]), key=lambda s: -s.score)
    return hits, sentences


def _lap(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


WEAK_SHARE = 0.5
"""A source scoring under this share of the best source's score is a weak match. On the
evaluation set (`docqa eval`, k = 5, first turns) the passage holding the expected answer
never scored under 0.75 of the best (lowest 0.746 of 111), while 46 % of the other sources
of answerable questions fall under 0.5: half is a round cut with a wide margin."""


def weak_hits(hits: list[Hit], share: float = WEAK_SHARE) -> set[int]:
    """Ranks of the hits scoring under `share` of the best hit: clearly unrelated ones."""
    best = max((hit.score for hit in hits), default=0.0)
    return {hit.rank for hit in hits if hit.score < share * best}
