"""Scoring retrieval and answers against the evaluation set, and the regression report."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from docqa.conversation import Turn, resolve_query
from docqa.engine import Engine
from docqa.models import Answer, DocqaError, Document

KINDS_UNANSWERABLE = ("unanswerable", "near")


class EvaluationError(DocqaError):
    """The evaluation set is missing or malformed."""


@dataclass(frozen=True)
class Question:
    """One item of the evaluation set."""

    id: str
    kind: str
    question: str
    answer: str | None
    evidence: str | None
    section: str | None
    follow_up_of: str | None

    @property
    def answerable(self) -> bool:
        return self.answer is not None


@dataclass
class Outcome:
    """What came back for one question, and how it scored."""

    id: str
    kind: str
    question: str
    expected: str | None
    answer: str
    answered: bool
    confidence: float
    rank: int | None
    """1-based rank of the first relevant passage in the top 10, None if absent."""
    correct: bool
    top_section: str
    passage_chars: list[int]
    timings_ms: dict[str, float]


@dataclass
class Report:
    """Metrics over a whole set and the outcomes they came from."""

    metrics: dict[str, float]
    outcomes: list[Outcome] = field(default_factory=list)

    def misses(self) -> list[Outcome]:
        """Questions answered wrongly, retrieved at rank > 1, or wrongly (not) abstained."""
        return [
            o for o in self.outcomes if not o.correct or (o.expected is not None and o.rank != 1)
        ]


def load_questions(path: Path) -> list[Question]:
    """Read a JSON-lines evaluation set."""
    if not path.is_file():
        raise EvaluationError(f"evaluation set {path} does not exist")
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            questions.append(Question(**{f: record.get(f) for f in Question.__dataclass_fields__}))
        except (ValueError, TypeError) as error:
            raise EvaluationError(
                f"{path}:{number}: not a valid question record ({error})"
            ) from error
    return questions


def normalise(text: str) -> str:
    """Lowercase with whitespace runs collapsed, for phrase matching."""
    return re.sub(r"\s+", " ", text).strip().lower()


def locate(evidence: str, answer: str, documents: list[Document]) -> tuple[str, int] | None:
    """The document and original-text position where the expected answer is stated."""
    for document in documents:
        collapsed, positions = _collapse(document.text)
        at = collapsed.find(re.sub(r"\s+", " ", evidence).strip())
        if at >= 0:
            inner = evidence.find(answer)
            return document.name, positions[at + max(inner, 0)]
    return None


def _collapse(text: str) -> tuple[str, list[int]]:
    parts, positions = [], []
    for match in re.finditer(r"\S+", text):
        if parts:
            parts.append(" ")
            positions.append(match.start() - 1)
        parts.append(match.group())
        positions.extend(range(match.start(), match.end()))
    return "".join(parts), positions


def relevant_rank(answer: Answer, target: tuple[str, int] | None) -> int | None:
    """The rank of the first hit whose span contains the expected answer."""
    if target is None:
        return None
    document, position = target
    for hit in answer.hits:
        if hit.chunk.document == document and hit.chunk.start <= position < hit.chunk.end:
            return hit.rank
    return None


def evaluate(
    engine: Engine,
    questions: list[Question],
    documents: list[Document],
    k: int = 10,
    progress: Callable[[Iterable[Question]], Iterable[Question]] = lambda q: q,
) -> Report:
    """Run every question through the engine (follow-ups after their first turn) and score."""
    by_id = {q.id: q for q in questions}
    outcomes = []
    for question in progress(questions):
        history = _history_for(engine, by_id, question)
        answer = engine.ask(question.question, k=k, history=history)
        target = (
            locate(question.evidence, question.answer, documents)
            if question.evidence and question.answer
            else None
        )
        if question.answerable and target is None:
            raise EvaluationError(f"{question.id}: its evidence is not in any corpus document")
        outcomes.append(_outcome(question, answer, relevant_rank(answer, target)))
    return Report(summarise(outcomes), outcomes)


def _history_for(engine: Engine, by_id: dict[str, Question], question: Question) -> list[Turn]:
    first = by_id.get(question.follow_up_of or "")
    if first is None:
        return []
    query, standalone = resolve_query(first.question, [])
    return [Turn(first.question, query, standalone)]


def _outcome(question: Question, answer: Answer, rank: int | None) -> Outcome:
    if question.answerable:
        correct = answer.answered and normalise(question.answer or "") in normalise(answer.text)
    else:
        correct = not answer.answered
    return Outcome(
        question.id,
        question.kind,
        question.question,
        question.answer,
        answer.text,
        answer.answered,
        answer.confidence,
        rank,
        correct,
        answer.hits[0].chunk.section if answer.hits else "",
        [len(h.chunk.text) for h in answer.hits[:5]],
        answer.timings_ms,
    )


def summarise(outcomes: list[Outcome]) -> dict[str, float]:
    """hit@k, MRR@10, nDCG@10, answer accuracy, abstention and latency over the outcomes."""
    answerable = [o for o in outcomes if o.expected is not None]
    unanswerable = [o for o in outcomes if o.expected is None]
    follow_ups = [o for o in outcomes if o.kind == "followup"]
    ranks = [o.rank for o in answerable]
    abstained = [o for o in outcomes if not o.answered]
    metrics = {
        "questions": float(len(outcomes)),
        "hit@1": _share(r is not None and r <= 1 for r in ranks),
        "hit@3": _share(r is not None and r <= 3 for r in ranks),
        "hit@5": _share(r is not None and r <= 5 for r in ranks),
        "mrr@10": _mean(1.0 / r if r is not None and r <= 10 else 0.0 for r in ranks),
        "ndcg@10": _mean(
            1.0 / math.log2(r + 1) if r is not None and r <= 10 else 0.0 for r in ranks
        ),
        "answer_accuracy": _share(o.correct for o in answerable),
        "abstention_precision": _share(o.expected is None for o in abstained) if abstained else 1.0,
        "abstention_recall": _share(not o.answered for o in unanswerable),
        "false_abstention": _share(not o.answered for o in answerable),
        "followup_accuracy": _share(o.correct for o in follow_ups),
        "mean_passage_chars": _mean(c for o in outcomes for c in o.passage_chars),
    }
    for stage in ("encode", "dense", "lexical", "fusion", "answer", "total"):
        values = [o.timings_ms.get(stage, 0.0) for o in outcomes]
        metrics[f"{stage}_ms_p50"] = float(np.percentile(values, 50)) if values else 0.0
        metrics[f"{stage}_ms_p95"] = float(np.percentile(values, 95)) if values else 0.0
    return {name: round(value, 4) for name, value in metrics.items()}


def _share(flags: Iterable[bool]) -> float:
    values = list(flags)
    return sum(values) / len(values) if values else 0.0


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return float(sum(items) / len(items)) if items else 0.0


def report_json(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data."""
    return {"metrics": report.metrics, "misses": [asdict(o) for o in report.misses()]}
