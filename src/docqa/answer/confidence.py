"""How sure docqa is that its answer is right: features of the question, its retrieval and
the reader's span, and the fitted logistic models that turn them into a probability.

Two models live in answer_model.json, both fitted by scripts/fit_answer_model.py on
held-out articles (the reader never trained on them):
- `confidence`: the probability that the answer shown is right (its short answer matches
  a gold answer, SQuAD token F1 >= 0.5), from retrieval and reader features. This is the
  figure shown; `docqa eval` reports how well it is calibrated.
- `retrieval`: the same probability from retrieval features alone, known before the reader
  runs; under its `skip_below` the reader is not run and docqa abstains.
Each model names the features it uses (FEATURES holds every one docqa can compute); the fit
script drops those that carry no weight held out.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from docqa.answer.reader import Reading
from docqa.answer.retrieval import Retrieval, ScoredSentence
from docqa.config import Settings
from docqa.indexing.index import Index
from docqa.indexing.lexical import tokenize
from docqa.models import DocqaError

MODEL_PATH = Path(__file__).with_name("answer_model.json")
VERSION = 3
READER_CLIP = 20.0
"""The reader's margin is clipped to +-this: beyond it the probability hardly moves, and an
empty window's -inf stays finite."""
# A name (a capitalised word after the first) or a number in the question.
_NAME = re.compile(r"(?<=[\s\"“(])[A-Z][\w-]*|\b\d+\b")
FEATURES = (
    "similarity",
    "overlap",
    "fits",
    "unknown_terms",
    "unknown_name",
    "window_coverage",
    "window_missing_names",
    "rarest_missing",
    "margin",
    "hit_score",
    "reader",
    "reader_rank",
)
"""Every feature docqa computes, all about the question and its evidence: the evidence
sentence's cosine to the query, its share of the question's terms and whether it can hold
the kind of answer asked for; the share of question terms the corpus never uses and whether
the question names something it never mentions; the share of the question's terms, and of
its names and numbers, found in the evidence's passage, and how rare the rarest missing
term is; the best sentence's lead over the best sentence of another passage; the best
passage's score; the reader's span-vs-no-answer margin (clipped to +-READER_CLIP) and the
rank of the passage its span is in (1 = the best hit; 0 before the reader runs)."""
RETRIEVAL_FEATURES = tuple(f for f in FEATURES if not f.startswith("reader"))


class AnswerModelError(DocqaError):
    """answer_model.json is missing, malformed, or names features docqa does not compute."""


@dataclass(frozen=True)
class Logistic:
    """One fitted logistic model over named features."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float

    def probability(self, values: dict[str, float]) -> float:
        """The model's probability for these feature values."""
        z = self.bias + sum(w * values[f] for f, w in zip(self.features, self.weights, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    @classmethod
    def from_json(cls, record: Any, name: str) -> Logistic:
        if not isinstance(record, dict):
            raise AnswerModelError(f"answer model has no {name} part")
        try:
            model = cls(
                tuple(str(f) for f in record["features"]),
                tuple(float(w) for w in record["weights"]),
                float(record["bias"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise AnswerModelError(
                f"answer model's {name} part is malformed ({error!r})"
            ) from error
        unknown = [f for f in model.features if f not in FEATURES]
        if unknown:
            raise AnswerModelError(
                f"answer model's {name} part uses features this version does not compute "
                f"({', '.join(unknown)}): run scripts/fit_answer_model.py"
            )
        if len(model.weights) != len(model.features):
            raise AnswerModelError(
                f"answer model's {name} part has one weight per feature too few or many"
            )
        return model


@dataclass(frozen=True)
class AnswerModel:
    """The fitted confidence, the reader-skipping model, and the cuts chosen with them."""

    confidence: Logistic
    retrieval: Logistic
    abstain_below: float
    """Answers with a lower confidence abstain (chosen held out by the fit script)."""
    skip_below: float
    """Under this retrieval-only probability the reader is not run (docqa abstains)."""
    read_passages: int
    """How many top passages the reader reads (chosen by F1 against windows read)."""

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> AnswerModel:
        """The model from its JSON record; refuses a record made for another version."""
        if record.get("version") != VERSION:
            raise AnswerModelError(
                f"answer model is version {record.get('version')!r}, docqa reads version "
                f"{VERSION}: run scripts/fit_answer_model.py"
            )
        try:
            return cls(
                Logistic.from_json(record.get("confidence"), "confidence"),
                Logistic.from_json(record.get("retrieval"), "retrieval"),
                float(record["abstain_below"]),
                float(record["skip_below"]),
                int(record["read_passages"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise AnswerModelError(f"answer model has a malformed cut ({error!r})") from error


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


def abstention_cut(settings: Settings, model: AnswerModel | None = None) -> float:
    """The confidence under which docqa abstains: DOCQA_ABSTAIN_BELOW when set, else the
    cut fitted with the model."""
    if settings.abstain_below is not None:
        return settings.abstain_below
    return (model or default_model()).abstain_below


def unknown_share(index: Index, weights: dict[str, float]) -> float:
    """The IDF-weighted share of query terms absent from every chunk."""
    total = sum(weights.values())
    if total <= 0:
        return 1.0
    vocabulary = index.lexical.vocabulary
    return sum(w for t, w in weights.items() if t not in vocabulary) / total


def names_unknown_thing(index: Index, question: str) -> bool:
    """Whether the question names something (or a number) that no chunk mentions."""
    vocabulary = index.lexical.vocabulary
    for name in _NAME.findall(question):
        terms = tokenize([name])[0]
        if terms and not any(t in vocabulary for t in terms):
            return True
    return False


def passage_terms(index: Index, row: int) -> frozenset[str]:
    """Every BM25 term of a chunk, its section title included."""
    return frozenset().union(*index.sentence_terms(row))


def retrieval_features(
    index: Index, retrieval: Retrieval, question: str, sentence: ScoredSentence
) -> dict[str, float]:
    """The features known before the reader runs, about `sentence` and its passage."""
    weights = retrieval.term_weights
    total = sum(weights.values()) or 1.0
    window = passage_terms(index, sentence.row)
    missing = [w for t, w in weights.items() if t not in window]
    names = [n for n in (tokenize([name])[0] for name in _NAME.findall(question)) if n]
    missing_names = (
        sum(not any(t in window for t in n) for n in names) / len(names) if names else 0.0
    )
    ceiling = math.log(1.0 + (len(index.chunks) + 0.5) / 0.5)
    best = retrieval.sentences[0].score if retrieval.sentences else sentence.score
    other = next((s.score for s in retrieval.sentences if s.row != sentence.row), 0.0)
    return {
        "similarity": sentence.similarity,
        "overlap": sentence.overlap,
        "fits": float(sentence.fits),
        "unknown_terms": unknown_share(index, weights),
        "unknown_name": float(names_unknown_thing(index, question)),
        "window_coverage": 1.0 - sum(missing) / total,
        "window_missing_names": missing_names,
        "rarest_missing": max(missing, default=0.0) / ceiling,
        "margin": best - other,
        "hit_score": retrieval.hits[0].score if retrieval.hits else 0.0,
        "reader": 0.0,
        "reader_rank": 0.0,
    }


def with_reading(features: dict[str, float], reading: Reading) -> dict[str, float]:
    """The features with the reader's margin and the rank of the passage it read from."""
    margin = max(-READER_CLIP, min(READER_CLIP, reading.score))
    return {**features, "reader": margin, "reader_rank": float(reading.passage + 1)}
