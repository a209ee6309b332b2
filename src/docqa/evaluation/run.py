"""Running a set through the engine: each question (follow-ups inside their conversation)
becomes an Outcome."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from docqa.answer.conversation import Turn
from docqa.answer.retrieval import weak_hits
from docqa.engine import Engine
from docqa.evaluation.metrics import Outcome, Report, summarise, summarise_by_kind
from docqa.evaluation.sets import EvaluationSet, Question, relevant_rank
from docqa.models import Answer

Progress = Callable[[list[Question]], Iterable[Question]]


def normalise(text: str) -> str:
    """Lowercase with whitespace runs collapsed, for phrase matching."""
    return re.sub(r"\s+", " ", text).strip().lower()


def evaluate(
    engine: Engine,
    evaluation_set: EvaluationSet,
    k: int = 10,
    progress: Progress = lambda q: q,
    mode: str = "hybrid",
) -> Report:
    """Run every question through the engine (follow-ups after the turns they follow) and
    score it."""
    by_id = {q.id: q for q in evaluation_set.questions}
    answers: dict[str, Answer] = {}
    outcomes = []
    for question in progress(evaluation_set.questions):
        history = _history_for(engine, by_id, answers, question, k, mode)
        answer = engine.ask(question.question, k=k, history=history, mode=mode)
        answers[question.id] = answer
        rank = relevant_rank(answer, evaluation_set.targets.get(question.id, []))
        outcomes.append(outcome_of(question, answer, rank))
    return Report(summarise(outcomes), outcomes, summarise_by_kind(outcomes))


def _history_for(
    engine: Engine,
    by_id: dict[str, Question],
    answers: dict[str, Answer],
    question: Question,
    k: int,
    mode: str,
) -> list[Turn]:
    """The conversation a follow-up is asked in: the turns it follows, oldest first, as the
    engine answered them."""
    chain: list[Question] = []
    earlier = by_id.get(question.follow_up_of or "")
    while earlier is not None:
        chain.append(earlier)
        earlier = by_id.get(earlier.follow_up_of or "")
    history: list[Turn] = []
    for turn in reversed(chain):
        if turn.id not in answers:
            answers[turn.id] = engine.ask(turn.question, k=k, history=list(history), mode=mode)
        history.append(Turn.from_answer(answers[turn.id]))
    return history


def contains_gold(answer: Answer, golds: tuple[str, ...]) -> bool:
    """Whether an answer (not an abstention) holds one of the gold phrases."""
    text = normalise(answer.text)
    return answer.answered and any(normalise(g) in text for g in golds)


def outcome_of(question: Question, answer: Answer, rank: int | None) -> Outcome:
    """Score one answer: right when it holds a gold phrase, or abstains without gold."""
    correct = contains_gold(answer, question.golds) if question.answerable else not answer.answered
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
        answer.short_answer,
        question.golds,
        question.document,
        tuple(sorted(weak_hits(list(answer.hits[:5])))),
    )
