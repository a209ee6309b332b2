"""Hits -> Answer: read the top passages for the short answer, cite the sentences it stands
in, and say how sure that is, or abstain.

1. The retrieval-only probability (confidence.py) is known first: under the model's
   `skip_below` the reader is not run and docqa abstains. A question about a subject as a
   whole ("Tell me about X") is answered by its best sentences at that probability, with
   no short answer.
2. The reader (reader.py) reads the model's `read_passages` top passages, every window in
   one batch, and returns the best span over them with its margin over no answer.
3. The evidence is the sentence(s) of that passage holding the span; the confidence is the
   fitted probability that the answer is right, from the reader's margin and the evidence's
   retrieval features. Under the abstention cut docqa says the documents do not say.
"""

from __future__ import annotations

from dataclasses import dataclass

from docqa.answer.cells import cell_reading
from docqa.answer.confidence import (
    AnswerModel,
    abstention_cut,
    default_model,
    retrieval_features,
    with_reading,
)
from docqa.answer.kinds import asks_for_overview
from docqa.answer.reader import Reader, Reading, default_reader
from docqa.answer.retrieval import Retrieval, ScoredSentence
from docqa.config import Settings
from docqa.indexing.chunking import map_to_document
from docqa.indexing.index import Index
from docqa.models import Citation

NOT_COVERED = "The documents do not say. The closest passages are listed below."
NEIGHBOUR = True


@dataclass(frozen=True)
class Composed:
    """What answering makes of a retrieval."""

    text: str
    answered: bool
    confidence: float
    citations: list[Citation]
    short_answer: str | None = None


def passage_rows(index: Index, retrieval: Retrieval, count: int) -> list[int]:
    """Index rows of the first `count` hits, best first."""
    return [index.row_of[hit.chunk.id] for hit in retrieval.hits[:count]]


def best_sentence(retrieval: Retrieval, rows: list[int]) -> ScoredSentence | None:
    """The best-scoring sentence of the given rows."""
    return next((s for s in retrieval.sentences if s.row in rows), None)


def span_sentences(retrieval: Retrieval, row: int, reading: Reading) -> list[ScoredSentence]:
    """The sentences of a passage that the reader's span overlaps, in text order (the
    best-scoring sentence of the passage when the span is empty)."""
    own = [s for s in retrieval.sentences if s.row == row]
    covering = [s for s in own if s.start < reading.end and reading.start < s.end]
    if reading.end <= reading.start or not covering:
        return own[:1]
    return sorted(covering, key=lambda s: s.start)


def with_neighbour(
    retrieval: Retrieval, chosen: list[ScoredSentence], max_chars: int
) -> list[ScoredSentence]:
    """The span's sentence with its better-scoring neighbour in the passage when both fit
    in max_chars: the sentence holding a short answer often leans on the one before
    ("It operated from 2007...")."""
    if len(chosen) != 1:
        return chosen
    only = chosen[0]
    neighbours = [
        s
        for s in retrieval.sentences
        if s.row == only.row
        and (0 <= s.start - only.end <= 2 or 0 <= only.start - s.end <= 2)
        and (only.end - only.start) + (s.end - s.start) + 1 <= max_chars
    ]
    if not neighbours:
        return chosen
    return sorted([only, max(neighbours, key=lambda s: s.score)], key=lambda s: s.start)


def evidence_text(index: Index, chosen: list[ScoredSentence]) -> str:
    """The chosen sentences as the answer shows them."""
    return " ".join(index.chunks[s.row].text[s.start : s.end] for s in chosen)


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


@dataclass(frozen=True)
class Read:
    """The reader's span over the top passages and the evidence sentences it stands in."""

    reading: Reading
    chosen: list[ScoredSentence]
    features: dict[str, float]


def read_top(
    index: Index, retrieval: Retrieval, question: str, rows: list[int], reader: Reader
) -> Read | None:
    """Run the reader over the passages of `rows`; None when they hold no sentence."""
    passages = [index.chunks[row].text for row in rows]
    reading = reader.read_passages(question, passages)
    reading = cell_reading(question, passages[reading.passage], reading)
    chosen = span_sentences(retrieval, rows[reading.passage], reading)
    if not chosen:
        return None
    evidence = max(chosen, key=lambda s: s.score)
    features = with_reading(retrieval_features(index, retrieval, question, evidence), reading)
    return Read(reading, chosen, features)


def overview(
    index: Index,
    retrieval: Retrieval,
    best: ScoredSentence,
    confidence: float,
    settings: Settings,
    model: AnswerModel,
) -> Composed:
    """The answer to a question about a subject as a whole: its best sentence and neighbour,
    no short answer (no one span answers it), at the retrieval-only confidence."""
    if confidence < abstention_cut(settings, model):
        return Composed(NOT_COVERED, False, confidence, [])
    chosen = with_neighbour(retrieval, [best], settings.answer_max_chars)
    return Composed(
        evidence_text(index, chosen), True, confidence, make_citations(index, retrieval, chosen)
    )


def compose_answer(
    index: Index,
    retrieval: Retrieval,
    question: str,
    settings: Settings,
    model: AnswerModel | None = None,
    reader: Reader | None = None,
) -> Composed:
    """The short answer, its evidence sentences and citations, and the confidence; or an
    abstention with the confidence it fell short by."""
    model = model or default_model()
    rows = passage_rows(index, retrieval, model.read_passages)
    best = best_sentence(retrieval, rows)
    if best is None:
        return Composed(NOT_COVERED, False, 0.0, [])
    before = model.retrieval.probability(retrieval_features(index, retrieval, question, best))
    if asks_for_overview(question):
        return overview(index, retrieval, best, before, settings, model)
    if before < model.skip_below:
        return Composed(NOT_COVERED, False, before, [])
    read = read_top(
        index, retrieval, question, rows, reader or default_reader(settings.encoder_threads)
    )
    if read is None:
        return Composed(NOT_COVERED, False, 0.0, [])
    confidence = model.confidence.probability(read.features)
    if confidence < abstention_cut(settings, model):
        return Composed(NOT_COVERED, False, confidence, [])
    chosen = read.chosen
    if NEIGHBOUR:
        chosen = with_neighbour(retrieval, chosen, settings.answer_max_chars)
    citations = make_citations(index, retrieval, chosen)
    return Composed(
        evidence_text(index, chosen),
        True,
        confidence,
        citations,
        read.reading.text or None,
    )
