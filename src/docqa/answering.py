"""Hits -> Answer: choose the sentences that answer, cite them, or abstain."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from docqa.chunking import map_to_document
from docqa.config import Settings
from docqa.index import Index, tokenize
from docqa.models import Citation, Hit

NOT_COVERED = "The document does not say. The closest passages are listed below."
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b|\b\d{1,2}(st|nd|rd|th)? century\b")
_MONTH = re.compile(
    r"\b(January|February|March|April|May|June|July|August|September|October|November|December)\b"
)
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|twelve|twenty|hundred|thousand|"
    r"million|first|second|third|fourth|fifth|sixth|dozen|several|many)\b",
    re.IGNORECASE,
)
_ASKS_DATE = re.compile(r"\b(when|what year|which year|what date|since when|how long ago)\b", re.I)
_ASKS_NUMBER = re.compile(r"\b(how many|how much|what number|what percentage|how large)\b", re.I)


@dataclass(frozen=True)
class Candidate:
    """A sentence of a hit, scored as a possible answer."""

    hit: Hit
    start: int
    end: int
    score: float
    similarity: float
    overlap: float


def term_weights(index: Index, tokens: list[str]) -> dict[str, float]:
    """IDF of each query term over the chunks; a term the corpus never uses weighs most."""
    vocabulary = index.lexical.vocab_dict
    frequencies = np.diff(index.lexical.scores["indptr"])
    total = len(index.chunks)
    weights = {}
    for token in tokens:
        column = vocabulary.get(token)
        df = int(frequencies[column]) if column is not None and column < len(frequencies) else 0
        weights[token] = math.log(1.0 + (total - df + 0.5) / (df + 0.5))
    return weights


def overlap(weights: dict[str, float], text: str) -> float:
    """The IDF-weighted share of the query terms that occur in `text`."""
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    present = set(tokenize([text])[0])
    return sum(w for t, w in weights.items() if t in present) / total


def answer_type_fits(question: str, sentence: str) -> bool:
    """A 'when' question needs a date in the sentence, a 'how many' question a number."""
    if _ASKS_DATE.search(question):
        return bool(_YEAR.search(sentence) or _MONTH.search(sentence))
    if _ASKS_NUMBER.search(question):
        return bool(_NUMBER.search(sentence))
    return True


def score_sentences(
    index: Index, hits: list[Hit], vector: np.ndarray, question: str, weights: dict[str, float]
) -> list[Candidate]:
    """Score every sentence of the top hits against the question, best first."""
    candidates = []
    for hit in hits:
        first = int(index.sentence_starts[index.row_of[hit.chunk.id]])
        for offset, (start, end) in enumerate(hit.chunk.sentences):
            sentence = hit.chunk.text[start:end]
            similarity = float(index.sentence_vectors[first + offset] @ vector)
            shared = overlap(weights, sentence)
            fits = answer_type_fits(question, sentence)
            score = similarity + 0.5 * shared + 0.1 / hit.rank - (0 if fits else 0.3)
            candidates.append(Candidate(hit, start, end, score, similarity, shared))
    return sorted(candidates, key=lambda c: -c.score)


def confidence_of(
    best: Candidate, weights: dict[str, float], question: str, sentence: str
) -> float:
    """A 0..1 confidence from the best sentence's similarity and the query-term coverage."""
    sentence_fit = 1.0 if answer_type_fits(question, sentence) else 0.0
    z = 8.0 * (best.similarity - 0.35) + 3.0 * (best.overlap - 0.4) + 2.0 * (sentence_fit - 1.0)
    return 1.0 / (1.0 + math.exp(-z))


def select_citations(candidates: list[Candidate], max_chars: int) -> list[Candidate]:
    """The best sentence, plus the next best when it follows it and both fit in max_chars."""
    if not candidates:
        return []
    best = candidates[0]
    chosen = [best]
    for other in candidates[1:3]:
        same_chunk = other.hit.chunk.id == best.hit.chunk.id
        adjacent = same_chunk and (
            other.start - best.end in (1, 2) or best.start - other.end in (1, 2)
        )
        size = (best.end - best.start) + (other.end - other.start) + 1
        if adjacent and size <= max_chars and other.score >= best.score - 0.15:
            chosen.append(other)
            break
    return sorted(chosen, key=lambda c: c.start)


def make_citations(chosen: list[Candidate]) -> list[Citation]:
    """Citations for the chosen sentences, with spans in the chunk and in the document."""
    return [
        Citation(
            c.hit.rank,
            c.hit.chunk.id,
            c.hit.chunk.text[c.start : c.end],
            c.start,
            c.end,
            map_to_document(c.hit.chunk, c.start),
            map_to_document(c.hit.chunk, c.end - 1) + 1,
        )
        for c in chosen
    ]


def compose_answer(
    index: Index,
    hits: list[Hit],
    vector: np.ndarray,
    question: str,
    tokens: list[str],
    settings: Settings,
) -> tuple[str, bool, float, list[Citation]]:
    """The short answer text, whether it answers, its confidence and its citations."""
    weights = term_weights(index, tokens)
    candidates = score_sentences(index, hits[:3], vector, question, weights)
    if not candidates:
        return NOT_COVERED, False, 0.0, []
    best = candidates[0]
    sentence = best.hit.chunk.text[best.start : best.end]
    confidence = confidence_of(best, weights, question, sentence)
    if confidence < settings.abstain_below:
        return NOT_COVERED, False, confidence, []
    citations = make_citations(select_citations(candidates, settings.answer_max_chars))
    return " ".join(c.text for c in citations), True, confidence, citations
