"""What a run of a set is scored by: retrieval ranks, answers, short answers (official
SQuAD 2.0 EM/F1), abstention and how well the confidence separates the two classes."""

from __future__ import annotations

import collections
import math
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

STAGES = ("encode", "dense", "lexical", "fusion", "answer", "total")
CURVE_K = 10


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
    """1-based rank of the first passage that holds the expected answer, None if absent."""
    correct: bool
    top_section: str
    passage_chars: list[int]
    timings_ms: dict[str, float]
    short_answer: str | None = None
    golds: tuple[str, ...] = ()
    document: str = ""
    weak_ranks: tuple[int, ...] = ()
    """Ranks among the first 5 sources that are shown as weak matches (retrieval.weak_hits)."""


@dataclass
class Report:
    """Metrics over a whole set, per question kind, and the outcomes they came from."""

    metrics: dict[str, float]
    outcomes: list[Outcome] = field(default_factory=list)
    by_kind: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def misses(self) -> list[Outcome]:
        """Questions answered wrongly, retrieved at rank > 1, or wrongly (not) abstained."""
        return [
            o for o in self.outcomes if not o.correct or (o.expected is not None and o.rank != 1)
        ]


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal (official SQuAD 2.0 script)."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Harmonic mean of token precision and recall after normalisation (official script:
    two empty strings agree, one empty string scores 0)."""
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = collections.Counter(predicted) & collections.Counter(expected)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def squad_scores(outcome: Outcome, text: str | None) -> tuple[float, float]:
    """Official SQuAD 2.0 EM and F1 of a prediction (None = no answer), max over the gold
    answers; a question without gold scores 1 only when nothing is predicted."""
    if not outcome.golds:
        return (1.0, 1.0) if text is None else (0.0, 0.0)
    if text is None:
        return 0.0, 0.0
    return (
        max(exact_match(text, g) for g in outcome.golds),
        max(token_f1(text, g) for g in outcome.golds),
    )


def short_prediction(outcome: Outcome) -> str | None:
    """The short answer as a prediction: None when abstained or when no span was given."""
    return outcome.short_answer if outcome.answered and outcome.short_answer else None


def auroc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half);
    0.5 when a class is empty."""
    if not positives or not negatives:
        return 0.5
    scores = np.array(positives + negatives)
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks of ties (Mann-Whitney U).
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    positive_ranks = ranks[: len(positives)].sum()
    u = positive_ranks - len(positives) * (len(positives) + 1) / 2.0
    return float(u / (len(positives) * len(negatives)))


def summarise(outcomes: list[Outcome]) -> dict[str, float]:
    """hit@k, MRR@10, nDCG@10, answer accuracy, abstention and latency over the outcomes.

    Each answerable question has one relevant passage (the best-ranked one holding its
    answer), so nDCG@10 is 1 / log2(rank + 1). With no abstention at all, abstention
    precision is 1: no abstention was wrong.
    """
    answerable = [o for o in outcomes if o.expected is not None]
    unanswerable = [o for o in outcomes if o.expected is None]
    follow_ups = [o for o in outcomes if o.kind == "followup"]
    short = [squad_scores(o, short_prediction(o)) for o in answerable]
    overall = [squad_scores(o, short_prediction(o)) for o in outcomes]
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
        "short_em": _mean(em for em, _ in short),
        "short_f1": _mean(f1 for _, f1 in short),
        "squad2_em": _mean(em for em, _ in overall),
        "squad2_f1": _mean(f1 for _, f1 in overall),
        "abstention_precision": _share(o.expected is None for o in abstained) if abstained else 1.0,
        "abstention_recall": _share(not o.answered for o in unanswerable),
        "false_abstention": _share(not o.answered for o in answerable),
        "confidence_auroc": auroc(
            [o.confidence for o in answerable], [o.confidence for o in unanswerable]
        ),
        "followup_accuracy": _share(o.correct for o in follow_ups),
        "followup_token_f1": _mean(
            max((token_f1(o.answer, g) for g in o.golds), default=float(not o.answered))
            if o.answered
            else float(not o.golds)
            for o in follow_ups
        ),
        "mean_passage_chars": _mean(c for o in outcomes for c in o.passage_chars),
        **weak_match_rates(answerable),
        **calibration(outcomes),
    }
    for stage in STAGES:
        values = [o.timings_ms.get(stage, 0.0) for o in outcomes]
        metrics[f"{stage}_ms_p50"] = float(np.percentile(values, 50)) if values else 0.0
        metrics[f"{stage}_ms_p95"] = float(np.percentile(values, 95)) if values else 0.0
    return {name: round(value, 4) for name, value in metrics.items()}


RIGHT_F1 = 0.5
"""A short answer with at least this SQuAD token F1 against a gold answer is right (the
label the confidence is fitted on, scripts/fit_answer_model.py)."""
HIGH_CONFIDENCE = 0.8
BINS = 10


def is_right(outcome: Outcome) -> bool:
    """Whether an answer shown is right: its short answer matches a gold (F1 >= RIGHT_F1),
    or, without a short answer, its text holds one."""
    if not outcome.answered or not outcome.golds:
        return False
    if outcome.short_answer:
        return max(token_f1(outcome.short_answer, g) for g in outcome.golds) >= RIGHT_F1
    return outcome.correct


def reliability(outcomes: list[Outcome]) -> list[dict[str, float]]:
    """The answers shown, in BINS confidence bins: how many, their mean confidence and the
    share that is right."""
    shown = [o for o in outcomes if o.answered]
    table = []
    for number in range(BINS):
        low, high = number / BINS, (number + 1) / BINS
        inside = [
            o for o in shown if low <= o.confidence < high or (high == 1.0 and o.confidence == 1.0)
        ]
        if inside:
            table.append(
                {
                    "low": low,
                    "high": high,
                    "answers": float(len(inside)),
                    "confidence": _mean(o.confidence for o in inside),
                    "right": _share(is_right(o) for o in inside),
                }
            )
    return table


def calibration(outcomes: list[Outcome]) -> dict[str, float]:
    """Expected calibration error of the answers shown (bins weighted by their size), and
    how many are shown at >= HIGH_CONFIDENCE and the share of those that is right."""
    table = reliability(outcomes)
    shown = sum(row["answers"] for row in table)
    high = [o for o in outcomes if o.answered and o.confidence >= HIGH_CONFIDENCE]
    return {
        "ece": sum(abs(r["right"] - r["confidence"]) * r["answers"] for r in table) / shown
        if shown
        else 0.0,
        "shown_at_0.8": float(len(high)),
        "right_at_0.8": _share(is_right(o) for o in high) if high else 1.0,
    }


def weak_match_rates(answerable: list[Outcome]) -> dict[str, float]:
    """How the weak-match mark (under half the best score) falls on the first 5 sources of
    answerable questions: the share of questions whose passage holding the answer is marked
    (it should be none), and the share of their other sources that are."""
    shown = [o for o in answerable if o.rank is not None and o.rank <= 5]
    others = sum(len(o.passage_chars) - (o.rank is not None and o.rank <= 5) for o in answerable)
    weak_others = sum(len(o.weak_ranks) - (o.rank in o.weak_ranks) for o in answerable)
    return {
        "weak_relevant": _share(o.rank in o.weak_ranks for o in shown),
        "weak_other_sources": weak_others / others if others else 0.0,
    }


def summarise_by_kind(outcomes: list[Outcome]) -> dict[str, dict[str, float | None]]:
    """Per question kind: count, answer accuracy (abstaining counts for unanswerable kinds)
    and hit@1 (None for kinds without an answer)."""
    kinds: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        kinds.setdefault(outcome.kind, []).append(outcome)
    table: dict[str, dict[str, float | None]] = {}
    for kind, group in kinds.items():
        answerable = [o for o in group if o.expected is not None]
        table[kind] = {
            "questions": float(len(group)),
            "answer_accuracy": round(_share(o.correct for o in group), 4),
            "hit@1": round(_share(o.rank == 1 for o in answerable), 4) if answerable else None,
        }
    return table


def hit_curve(outcomes: list[Outcome], max_k: int = CURVE_K) -> list[float]:
    """hit@k of the answerable questions for k = 1..max_k."""
    ranks = [o.rank for o in outcomes if o.expected is not None]
    return [_share(r is not None and r <= k for r in ranks) for k in range(1, max_k + 1)]


def _share(flags: Iterable[bool]) -> float:
    values = list(flags)
    return sum(values) / len(values) if values else 0.0


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return float(sum(items) / len(items)) if items else 0.0
