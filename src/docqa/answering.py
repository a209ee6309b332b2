"""Hits -> Answer: choose the sentences that answer, cite them, or abstain."""

from __future__ import annotations

import math

from docqa.chunking import map_to_document
from docqa.config import Settings
from docqa.index import Index
from docqa.models import Citation
from docqa.retrieval import Retrieval, ScoredSentence

NOT_COVERED = "The document does not say. The closest passages are listed below."
ANSWER_HITS = 3
"""Answers are taken from the sentences of this many top hits."""
"""Answers are taken from the sentences of this many top hits."""
# Logistic model of "the document answers this", fitted on the 119 in-document and 17
# out-of-document questions of eval/questions.jsonl (unanswerable ones weighted x3, L2
# penalty) and rounded; with the 0.5 threshold it abstains on 15 of the 17 and wrongly on 2
# of the 119. See README, "Abstention".
CONFIDENCE_WEIGHTS = {"similarity": 2.0, "overlap": 0.8, "fits": 2.0, "unknown": -1.0}
CONFIDENCE_BIAS = -2.0


def confidence_of(best: ScoredSentence, unknown_share: float) -> float:
    """A 0..1 confidence from the best sentence's similarity, term share and answer type.

    `unknown_share` is the IDF-weighted share of query terms that the corpus never uses:
    a question about things the document never names is unlikely to be answered by it.
    """
    w = CONFIDENCE_WEIGHTS
    z = (
        CONFIDENCE_BIAS
        + w["similarity"] * best.similarity
        + w["overlap"] * best.overlap
        + w["fits"] * float(best.fits)
        + w["unknown"] * unknown_share
    )
    return 1.0 / (1.0 + math.exp(-z))


def unknown_share(index: Index, weights: dict[str, float]) -> float:
    """The IDF-weighted share of query terms absent from every chunk."""
    total = sum(weights.values())
    if total <= 0:
        return 1.0
    vocabulary = index.lexical.vocab_dict
    return sum(w for t, w in weights.items() if t not in vocabulary) / total


def select_sentences(
    sentences: list[ScoredSentence], rows: set[int], max_chars: int
) -> list[ScoredSentence]:
    """The best sentence and, when both fit in max_chars, its better-scoring neighbour.

    The neighbour is kept whatever its score: a sentence that matches the question often
    introduces the subject and leaves the answer to the next one (measured on the set:
    answer accuracy 0.80 with a 0.1 score margin, 0.86 with none)."""
    candidates = [s for s in sentences if s.row in rows]
    if not candidates:
        return []
    best = candidates[0]
    neighbours = [
        s
        for s in candidates
        if s.row == best.row
        and (0 <= s.start - best.end <= 2 or 0 <= best.start - s.end <= 2)
        and (best.end - best.start) + (s.end - s.start) + 1 <= max_chars
    ]
    if not neighbours:
        return [best]
    other = max(neighbours, key=lambda s: s.score)
    return sorted([best, other], key=lambda s: s.start)


def make_citations(
    index: Index, retrieval: Retrieval, chosen: list[ScoredSentence]
) -> list[Citation]:
    """Citations for the chosen sentences, with spans in the chunk and in the document."""
    rank_of = {hit.chunk.id: hit.rank for hit in retrieval.hits}
    citations = []
    for s in chosen:
        chunk = index.chunks[s.row]
        citations.append(
            Citation(
                rank_of[chunk.id],
                chunk.id,
                chunk.text[s.start : s.end],
                s.start,
                s.end,
                map_to_document(chunk, s.start),
                map_to_document(chunk, s.end - 1) + 1,
            )
        )
    return citations


def compose_answer(
    index: Index, retrieval: Retrieval, settings: Settings
) -> tuple[str, bool, float, list[Citation]]:
    """The short answer text, whether it answers, its confidence and its citations."""
    rows = {index.row_of[hit.chunk.id] for hit in retrieval.hits[:ANSWER_HITS]}
    chosen = select_sentences(retrieval.sentences, rows, settings.answer_max_chars)
    if not chosen:
        return NOT_COVERED, False, 0.0, []
    best = max(chosen, key=lambda s: s.score)
    confidence = confidence_of(best, unknown_share(index, retrieval.term_weights))
    if confidence < settings.abstain_below:
        return NOT_COVERED, False, confidence, []
    citations = make_citations(index, retrieval, chosen)
    return " ".join(c.text for c in citations), True, confidence, citations
