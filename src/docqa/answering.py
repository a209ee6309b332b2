"""Hits -> Answer: choose the sentences that answer, single out the short answer, cite them,
or abstain.

The short answer is the reader's span of the best evidence sentence (reader.py, a
fine-tuned MiniLM).
The confidence is a logistic model of generic features (CONFIDENCE_FEATURES below, the
reader's score among them), fitted on the public SQuAD 2.0 articles and the brief's set by
scripts/fit_answer_model.py with every figure held out by article; the weights live in
answer_model.json.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from docqa.chunking import map_to_document
from docqa.config import Settings
from docqa.index import Index, tokenize
from docqa.models import Citation, DocqaError
from docqa.reader import Reader, default_reader
from docqa.retrieval import Retrieval, ScoredSentence

NOT_COVERED = "The document does not say. The closest passages are listed below."
ANSWER_HITS = 3
"""Answers are taken from the sentences of this many top hits."""
MODEL_PATH = Path(__file__).with_name("answer_model.json")
# A name (a capitalised word after the first) or a number in the question.
_NAME = re.compile(r"(?<=[\s\"“(])[A-Z][\w-]*|\b\d+\b")
CONFIDENCE_FEATURES = (
    "similarity",
    "overlap",
    "fits",
    "unknown_terms",
    "unknown_name",
    "window_coverage",
    "window_missing_names",
    "rarest_missing",
    "margin",
    "reader",
    "hit_score",
)
"""What the confidence is a logistic model of, all about the question and its evidence:
the best sentence's cosine, its share of the question's terms and whether it can hold the
kind of answer asked for; the share of question terms the corpus never uses and whether
the question names something it never mentions; the share of the question's terms, and of
its names and numbers, found in the passage of the best sentence, and how rare the rarest
missing term is; the best sentence's lead over the best sentence of another passage; the
reader's score for its span against no answer (clipped to +-READER_CLIP); the best
passage's score."""
READER_CLIP = 20.0


class AnswerModelError(DocqaError):
    """answer_model.json is missing or does not match the features of this version."""


@dataclass(frozen=True)
class AnswerModel:
    """The fitted weights of the confidence (logistic) model."""

    version: int
    confidence_weights: tuple[float, ...]
    confidence_bias: float

    @classmethod
    def from_json(cls, record: dict[str, object]) -> AnswerModel:
        """The model from its JSON record; refuses a record made for other features."""
        confidence = record.get("confidence")
        if not isinstance(confidence, dict):
            raise AnswerModelError("answer model has no confidence part")
        if list(confidence.get("features", [])) != list(CONFIDENCE_FEATURES):
            raise AnswerModelError(
                "answer model was fitted on other features: run scripts/fit_answer_model.py"
            )
        try:
            model = cls(
                int(record.get("version", 0)),  # type: ignore[call-overload]
                tuple(float(w) for w in confidence["weights"]),
                float(confidence["bias"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise AnswerModelError(f"answer model has a malformed weight ({error!r})") from error
        if len(model.confidence_weights) != len(CONFIDENCE_FEATURES):
            raise AnswerModelError("answer model has one weight per feature missing or extra")
        return model


def load_model(path: Path) -> AnswerModel:
    """The model stored at `path`; AnswerModelError names what is wrong with it."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise AnswerModelError(
            f"cannot read the answer model {path}: {error} (reinstall docqa, or rewrite it "
            "with scripts/fit_answer_model.py)"
        ) from error
    if not isinstance(record, dict):
        raise AnswerModelError(f"the answer model {path} is not a JSON object")
    return AnswerModel.from_json(record)


@lru_cache(maxsize=1)
def default_model() -> AnswerModel:
    """The model shipped in answer_model.json (read once)."""
    return load_model(MODEL_PATH)


@dataclass(frozen=True)
class Composed:
    """What answering makes of a retrieval."""

    text: str
    answered: bool
    confidence: float
    citations: list[Citation]
    short_answer: str | None = None


def logistic(z: float) -> float:
    """The logistic function, safe for large |z|."""
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def confidence_of(features: tuple[float, ...], model: AnswerModel) -> float:
    """A 0..1 confidence that the evidence answers the question."""
    z = model.confidence_bias + sum(
        w * x for w, x in zip(model.confidence_weights, features, strict=True)
    )
    return logistic(z)


def unknown_share(index: Index, weights: dict[str, float]) -> float:
    """The IDF-weighted share of query terms absent from every chunk."""
    total = sum(weights.values())
    if total <= 0:
        return 1.0
    vocabulary = index.lexical.vocab_dict
    return sum(w for t, w in weights.items() if t not in vocabulary) / total


def names_unknown_thing(index: Index, question: str) -> bool:
    """Whether the question names something (or a number) that no chunk mentions."""
    vocabulary = index.lexical.vocab_dict
    for name in _NAME.findall(question):
        terms = tokenize([name])[0]
        if terms and not any(t in vocabulary for t in terms):
            return True
    return False


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


def evidence_text(index: Index, chosen: list[ScoredSentence]) -> str:
    """The chosen sentences as the answer shows them (and the reader reads them)."""
    return " ".join(index.chunks[s.row].text[s.start : s.end] for s in chosen)


def reader_context(index: Index, chosen: list[ScoredSentence]) -> str:
    """What the reader reads: the best of the chosen sentences. The neighbour held 3 % of
    the short answers the held-out readers got right from both (SQuAD, F1 > 0.5) and
    half the reading time of a two-sentence answer."""
    best = max(chosen, key=lambda s: s.score)
    return index.chunks[best.row].text[best.start : best.end]


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


def passage_terms(index: Index, row: int) -> frozenset[str]:
    """Every BM25 term of a chunk, its section title included."""
    return frozenset().union(*index.sentence_terms(row))


def confidence_features(
    index: Index,
    retrieval: Retrieval,
    question: str,
    best: ScoredSentence,
    reader_score: float,
) -> tuple[float, ...]:
    """The features of CONFIDENCE_FEATURES, in that order."""
    weights = retrieval.term_weights
    total = sum(weights.values()) or 1.0
    window = passage_terms(index, best.row)
    missing = [w for t, w in weights.items() if t not in window]
    names = [tokenize([name])[0] for name in _NAME.findall(question)]
    names = [n for n in names if n]
    missing_names = (
        sum(not any(t in window for t in n) for n in names) / len(names) if names else 0.0
    )
    ceiling = math.log(1.0 + (len(index.chunks) + 0.5) / 0.5)
    other = next((s.score for s in retrieval.sentences if s.row != best.row), 0.0)
    return (
        best.similarity,
        best.overlap,
        float(best.fits),
        unknown_share(index, weights),
        float(names_unknown_thing(index, question)),
        1.0 - sum(missing) / total,
        missing_names,
        max(missing, default=0.0) / ceiling,
        best.score - other,
        max(-READER_CLIP, min(READER_CLIP, reader_score)),
        retrieval.hits[0].score if retrieval.hits else 0.0,
    )


def compose_answer(
    index: Index,
    retrieval: Retrieval,
    question: str,
    settings: Settings,
    model: AnswerModel | None = None,
    reader: Reader | None = None,
) -> Composed:
    """The evidence sentences, the short answer, whether it answers, and the citations."""
    model = model or default_model()
    reader = reader or default_reader(settings.encoder_threads)
    rows = {index.row_of[hit.chunk.id] for hit in retrieval.hits[:ANSWER_HITS]}
    chosen = select_sentences(retrieval.sentences, rows, settings.answer_max_chars)
    if not chosen:
        return Composed(NOT_COVERED, False, 0.0, [])
    best = max(chosen, key=lambda s: s.score)
    reading = reader.read(question, reader_context(index, chosen))
    features = confidence_features(index, retrieval, question, best, reading.score)
    confidence = confidence_of(features, model)
    if confidence < settings.abstain_below:
        return Composed(NOT_COVERED, False, confidence, [])
    citations = make_citations(index, retrieval, chosen)
    return Composed(evidence_text(index, chosen), True, confidence, citations, reading.text or None)
