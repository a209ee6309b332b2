"""Fit the confidence model; write src/docqa/answer_model.json.

    python scripts/fit_answer_model.py            # cross-validate by article, then fit on all
    python scripts/fit_answer_model.py --dry-run  # only the held-out figures

Data: the public SQuAD 2.0 articles (eval/public/squad2) and the brief's set
(eval/questions.jsonl; its one document is one more fold). Every figure printed is held
out by article: each article is scored by a model fitted on the other articles only, with
the reader's short answers and scores read from eval/reports/reader-held-out.jsonl, where
scripts/train_reader.py wrote what readers trained without that article made of it.
The model is a scikit-learn logistic regression on standardised features (scikit-learn is
only needed here; docqa applies the stored weights with plain arithmetic).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from docqa import answering, reader
from docqa import engine as engine_module
from docqa.answering import (
    ANSWER_HITS,
    CONFIDENCE_FEATURES,
    MODEL_PATH,
    AnswerModel,
    AnswerModelError,
    confidence_features,
    evidence_text,
    select_sentences,
)
from docqa.config import Settings
from docqa.evaluation.command import engine_for
from docqa.evaluation.metrics import auroc, exact_match, token_f1
from docqa.evaluation.sets import load_brief_set, load_squad_set
from docqa.retrieval import Retrieval, ScoredSentence, search

VERSION = 2
READINGS = Path(__file__).resolve().parents[1] / "eval" / "reports" / "reader-held-out.jsonl"
CUT_MARGIN = 0.02
FINAL_CUT = [0.0]
CONFIDENCE_C = 1.0
BRIEF_RECALL = 0.90
"""The confidence is cut at the lowest logit that still abstains on this share of the
brief's unanswerable questions (the brief's target); the stored bias is shifted so that
docqa's 0.5 threshold falls there. Cutting by a balanced fit alone (logit 0) abstained on
0.58 of SQuAD's unanswerable questions but wrongly on 0.36 of its answerable ones."""


@dataclass
class Sample:
    """One question: its fold, label, held-out short answer and confidence features."""

    fold: str
    answerable: bool
    golds: tuple[str, ...]
    answer: str = ""
    confidence_x: np.ndarray = field(default_factory=lambda: np.zeros(len(CONFIDENCE_FEATURES)))
    evidence: str = ""


def allow_stale_model() -> None:
    """Let the engines load while the stored model was fitted on other features (the
    case this script exists for) or before scripts/train_reader.py has made the reader:
    collecting samples applies neither."""
    try:
        answering.default_model()
    except AnswerModelError:
        blank = AnswerModel(VERSION, (0.0,) * len(CONFIDENCE_FEATURES), 0.0)
        engine_module.default_model = lambda: blank  # type: ignore[attr-defined]
    try:
        reader.default_reader()
    except reader.ReaderError:
        engine_module.default_reader = lambda threads=0: None  # type: ignore[attr-defined]


def held_out_readings() -> dict[tuple[str, str], dict[str, object]]:
    """What readers trained without each question's article made of its evidence."""
    try:
        lines = READINGS.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise SystemExit(f"{error}: run scripts/train_reader.py first") from error
    readings = [json.loads(line) for line in lines if line.strip()]
    return {(str(r["fold"]), str(r["question"])): r for r in readings}


def collect(settings: Settings) -> list[Sample]:
    """Run retrieval and evidence selection for every question of both sets."""
    allow_stale_model()
    readings = held_out_readings()
    samples = []
    for evaluation_set in (load_squad_set(), load_brief_set()):
        engine = engine_for(evaluation_set, settings)
        for question in evaluation_set.questions:
            if question.follow_up_of is not None:
                continue  # follow-ups depend on a conversation; fitted on standalone turns
            fold = question.document or evaluation_set.name
            reading = readings.get((fold, question.question), {"evidence": None, "score": 0.0})
            score = float(reading["score"])  # type: ignore[arg-type]
            sample = sample_of(engine, question.question, question.golds, fold, score)
            if reading["evidence"] != sample.evidence:
                raise SystemExit(
                    f"{READINGS} was made on other evidence for {question.question!r}: "
                    "rerun scripts/train_reader.py"
                )
            sample.answer = str(reading["answer"])
            samples.append(sample)
    return samples


def evidence_of(engine, text: str) -> tuple[Retrieval, list[ScoredSentence]]:  # type: ignore[no-untyped-def]
    """The retrieval for a question and the evidence sentences docqa would answer from."""
    retrieval = search(engine.index, engine.embedder, text, 10, engine.settings, question=text)
    index = engine.index
    rows = {index.row_of[h.chunk.id] for h in retrieval.hits[:ANSWER_HITS]}
    return retrieval, select_sentences(retrieval.sentences, rows, engine.settings.answer_max_chars)


def sample_of(engine, text: str, golds: tuple[str, ...], fold: str, reader_score: float) -> Sample:  # type: ignore[no-untyped-def]
    retrieval, chosen = evidence_of(engine, text)
    index = engine.index
    sample = Sample(fold, bool(golds), golds)
    if not chosen:
        return sample
    sample.evidence = evidence_text(index, chosen)
    best = max(chosen, key=lambda s: s.score)
    sample.confidence_x = np.array(confidence_features(index, retrieval, text, best, reader_score))
    return sample


def fit(
    x: np.ndarray, y: np.ndarray, c: float, balanced: bool, weight: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Logistic regression on standardised features, returned as weights on raw features."""
    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    model = LogisticRegression(
        C=c, class_weight="balanced" if balanced else None, max_iter=2000
    ).fit((x - scaler.mean_) / scale, y, sample_weight=weight)
    weights = model.coef_[0] / scale
    bias = float(model.intercept_[0] - np.sum(model.coef_[0] * scaler.mean_ / scale))
    return weights, bias


def confidence_model(samples: list[Sample]) -> tuple[np.ndarray, float]:
    x = np.vstack([s.confidence_x for s in samples])
    y = np.array([s.answerable for s in samples], dtype=float)
    return fit(x, y, CONFIDENCE_C, balanced=False, weight=set_weights(samples))


BRIEF_WEIGHT = 3.0
"""How much more the brief's questions weigh in total than SQuAD's. Measured (brief cut at
recall 0.90, in-sample): weight 1 -> brief false abstention 0.080, SQuAD 0.161; 3 -> 0.045
and 0.113; 10 -> 0.045 and 0.117."""


def set_weights(samples: list[Sample]) -> np.ndarray:
    """Unanswerable weigh as much as answerable within each set, and the brief's set
    BRIEF_WEIGHT times as much as SQuAD's in total."""
    groups = [(s.fold == "brief", s.answerable) for s in samples]
    counts = {g: groups.count(g) for g in set(groups)}
    return np.array(
        [len(samples) / (len(counts) * counts[g]) * (BRIEF_WEIGHT if g[0] else 1.0) for g in groups]
    )


def logits(samples: list[Sample], weights: np.ndarray, bias: float) -> np.ndarray:
    return np.array([float(s.confidence_x @ weights + bias) for s in samples])


def choose_cut(samples: list[Sample], weights: np.ndarray, bias: float) -> float:
    """The lowest logit cut that abstains on BRIEF_RECALL of the brief's unanswerable
    questions (in the samples given)."""
    brief = [s for s in samples if s.fold == "brief" and not s.answerable]
    values = np.sort(logits(brief, weights, bias))
    if not len(values):
        return 0.0
    needed = int(np.ceil(BRIEF_RECALL * len(values)))
    # Just above that question, so that rounding the stored weights cannot flip it.
    return float(values[needed - 1]) + CUT_MARGIN


def cross_validate(samples: list[Sample]) -> dict[str, dict[str, float]]:
    """Held-out figures per fold and over all SQuAD folds."""
    folds = sorted({s.fold for s in samples})
    rows: list[tuple[str, bool, float, float, float, bool]] = []
    for fold in folds:
        train = [s for s in samples if s.fold != fold]
        weights, bias = confidence_model(train)
        cut = choose_cut(train, weights, bias) if fold != "brief" else FINAL_CUT[0]
        for sample in (s for s in samples if s.fold == fold):
            text = sample.answer
            z = float(sample.confidence_x @ weights + bias) - cut
            confidence = 1.0 / (1.0 + np.exp(-z))
            em = max((exact_match(text, g) for g in sample.golds), default=0.0) if text else 0.0
            f1 = max((token_f1(text, g) for g in sample.golds), default=0.0) if text else 0.0
            contains = any(g.lower() in sample.evidence.lower() for g in sample.golds)
            rows.append((fold, sample.answerable, confidence, em, f1, contains))
    return {
        name: summary([r for r in rows if keep(r[0])])
        for name, keep in (
            ("squad2 (held out by article)", lambda f: f != "brief"),
            ("brief (held out)", lambda f: f == "brief"),
            *((f, lambda g, f=f: g == f) for f in folds),
        )
    }


def summary(rows: list[tuple[str, bool, float, float, float, bool]]) -> dict[str, float]:
    answerable = [r for r in rows if r[1]]
    unanswerable = [r for r in rows if not r[1]]
    figures = {"questions": float(len(rows))}
    figures["auroc"] = auroc([r[2] for r in answerable], [r[2] for r in unanswerable])
    if unanswerable:
        figures["abstain_unanswerable"] = float(np.mean([r[2] < 0.5 for r in unanswerable]))
    figures["false_abstention"] = float(np.mean([r[2] < 0.5 for r in answerable]))
    figures["short_em"] = float(np.mean([r[3] * (r[2] >= 0.5) for r in answerable]))
    figures["short_f1"] = float(np.mean([r[4] * (r[2] >= 0.5) for r in answerable]))
    figures["short_f1_if_answered"] = float(np.mean([r[4] for r in answerable]))
    figures["evidence_contains"] = float(np.mean([r[5] for r in answerable]))
    return {k: round(v, 4) for k, v in figures.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="cross-validate only")
    options = parser.parse_args()
    started = time.perf_counter()
    samples = collect(Settings())
    print(f"{len(samples)} questions in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    weights, bias = confidence_model(samples)
    # The brief's fold cannot choose its own cut: it is scored at the cut of the final fit.
    FINAL_CUT[0] = choose_cut(samples, weights, bias)
    held_out = cross_validate(samples)
    for name, figures in held_out.items():
        print(name, json.dumps(figures))
    if options.dry_run:
        return 0
    spread = np.vstack([s.confidence_x for s in samples]).std(axis=0)
    # Weight x standard deviation: how far one typical change of a feature moves the logit.
    carried = {
        name: round(float(w * sd), 3)
        for name, w, sd in sorted(
            zip(CONFIDENCE_FEATURES, weights, spread, strict=True), key=lambda t: -abs(t[1] * t[2])
        )
    }
    print("confidence weight x spread:", json.dumps(carried))
    record = {
        "version": VERSION,
        "command": "python scripts/fit_answer_model.py",
        "fitted_on": {
            "squad2": sum(s.fold != "brief" for s in samples),
            "brief": sum(s.fold == "brief" for s in samples),
        },
        "held_out": held_out,
        "confidence": {
            "features": list(CONFIDENCE_FEATURES),
            "weights": [round(float(w), 5) for w in weights],
            "bias": round(bias - FINAL_CUT[0], 5),
            "cut_logit": round(FINAL_CUT[0], 5),
            "weight_times_spread": carried,
        },
    }
    temporary = MODEL_PATH.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    temporary.replace(MODEL_PATH)
    print(f"wrote {MODEL_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
