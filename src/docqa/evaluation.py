"""Scoring retrieval and answers against the evaluation set, and the regression report."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from docqa.config import Settings
from docqa.conversation import Turn
from docqa.corpus import read_corpus
from docqa.engine import Engine
from docqa.models import Answer, DocqaError, Document

if TYPE_CHECKING:
    from matplotlib.figure import Figure

KINDS_UNANSWERABLE = ("unanswerable", "near")
QUALITY_METRICS = (
    "hit@1",
    "hit@3",
    "hit@5",
    "mrr@10",
    "ndcg@10",
    "answer_accuracy",
    "abstention_precision",
    "abstention_recall",
    "false_abstention",
    "followup_accuracy",
)
"""The rates a change may not lower (the baseline holds these, never latencies)."""
LOWER_IS_BETTER = frozenset({"false_abstention"})
TOLERANCE = 0.02
"""Largest accepted drop of a rate: about two of the ~120 answerable questions."""
STAGES = ("encode", "dense", "lexical", "fusion", "answer", "total")
BASELINE_PATH = Path("eval/baseline.json")
REPORT_DIR = Path("eval/reports")
CURVE_K = 10

Progress = Callable[[list["Question"]], Iterable["Question"]]


class EvaluationError(DocqaError):
    """The evaluation set or the baseline is missing or malformed."""


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


@dataclass(frozen=True)
class Target:
    """Where a question's expected answer stands in the original text of a document."""

    document: str
    start: int
    end: int


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


# --- the set ---------------------------------------------------------------------------------


def load_questions(path: Path) -> list[Question]:
    """Read a JSON-lines evaluation set; a bad line is reported with its number."""
    if not path.is_file():
        raise EvaluationError(f"evaluation set {path} does not exist (see --set)")
    questions: list[Question] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        question = _parse_question(line, f"{path}:{number}")
        if question.id in seen:
            raise EvaluationError(f"{path}:{number}: id {question.id} is used twice")
        if question.follow_up_of is not None and question.follow_up_of not in seen:
            raise EvaluationError(
                f"{path}:{number}: {question.id} follows up {question.follow_up_of}, "
                "which is not an earlier question of the set"
            )
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise EvaluationError(f"evaluation set {path} holds no questions")
    return questions


def _parse_question(line: str, where: str) -> Question:
    try:
        record = json.loads(line)
    except ValueError as error:
        raise EvaluationError(f"{where}: not valid JSON ({error})") from error
    if not isinstance(record, dict):
        raise EvaluationError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for name in ("id", "kind", "question"):
        if not isinstance(record.get(name), str) or not record[name].strip():
            raise EvaluationError(f"{where}: '{name}' is missing or not a text")
    if record.get("answer") is not None and not record.get("evidence"):
        raise EvaluationError(f"{where}: {record['id']} has an answer but no evidence")
    return Question(
        record["id"],
        record["kind"],
        record["question"],
        record.get("answer"),
        record.get("evidence"),
        record.get("section"),
        record.get("follow_up_of"),
    )


# --- matching answers to passages ------------------------------------------------------------


def normalise(text: str) -> str:
    """Lowercase with whitespace runs collapsed, for phrase matching."""
    return re.sub(r"\s+", " ", text).strip().lower()


def locate(evidence: str, answer: str, documents: list[Document]) -> Target | None:
    """The document and original-text span where the expected answer is stated.

    The evidence sentence is matched with whitespace collapsed (the source is wrapped PDF
    text); the answer is the part of it the span covers, or the whole evidence if absent.
    """
    evidence = " ".join(evidence.split())
    answer = " ".join(answer.split())
    inner = evidence.find(answer)
    offset, length = (inner, len(answer)) if inner >= 0 else (0, len(evidence))
    for document in documents:
        collapsed, positions = _collapse(document.text)
        at = collapsed.find(evidence)
        if at >= 0:
            first, last = at + offset, at + offset + length - 1
            return Target(document.name, positions[first], positions[last] + 1)
    return None


def _collapse(text: str) -> tuple[str, list[int]]:
    """Text with whitespace runs as one space, and each character's original position."""
    parts: list[str] = []
    positions: list[int] = []
    for match in re.finditer(r"\S+", text):
        if parts:
            parts.append(" ")
            positions.append(match.start() - 1)
        parts.append(match.group())
        positions.extend(range(match.start(), match.end()))
    return "".join(parts), positions


def relevant_rank(answer: Answer, target: Target | None) -> int | None:
    """The rank of the first hit whose span holds the whole expected answer."""
    if target is None:
        return None
    for hit in answer.hits:
        chunk = hit.chunk
        inside = chunk.start <= target.start and target.end <= chunk.end
        if chunk.document == target.document and inside:
            return hit.rank
    return None


def find_targets(questions: list[Question], documents: list[Document]) -> dict[str, Target | None]:
    """The answer span of every answerable question; raises if an evidence is not found."""
    targets: dict[str, Target | None] = {}
    for question in questions:
        if question.answer is None or question.evidence is None:
            targets[question.id] = None
            continue
        target = locate(question.evidence, question.answer, documents)
        if target is None:
            raise EvaluationError(f"{question.id}: its evidence is not in any corpus document")
        targets[question.id] = target
    return targets


# --- running the set -------------------------------------------------------------------------


def evaluate(
    engine: Engine,
    questions: list[Question],
    documents: list[Document],
    k: int = 10,
    progress: Progress = lambda q: q,
    mode: str = "hybrid",
) -> Report:
    """Run every question through the engine (follow-ups after their first turn) and score."""
    targets = find_targets(questions, documents)
    by_id = {q.id: q for q in questions}
    answers: dict[str, Answer] = {}
    outcomes = []
    for question in progress(questions):
        history = _history_for(engine, by_id, answers, question, k, mode)
        answer = engine.ask(question.question, k=k, history=history, mode=mode)
        answers[question.id] = answer
        outcomes.append(_outcome(question, answer, relevant_rank(answer, targets[question.id])))
    return Report(summarise(outcomes), outcomes, summarise_by_kind(outcomes))


def _history_for(
    engine: Engine,
    by_id: dict[str, Question],
    answers: dict[str, Answer],
    question: Question,
    k: int,
    mode: str,
) -> list[Turn]:
    """The conversation a follow-up is asked in: its first turn, as the engine answered it."""
    first = by_id.get(question.follow_up_of or "")
    if first is None:
        return []
    if first.id not in answers:
        answers[first.id] = engine.ask(first.question, k=k, mode=mode)
    return [Turn.from_answer(answers[first.id])]


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


# --- metrics ---------------------------------------------------------------------------------


def summarise(outcomes: list[Outcome]) -> dict[str, float]:
    """hit@k, MRR@10, nDCG@10, answer accuracy, abstention and latency over the outcomes.

    Each answerable question has one relevant passage (the best-ranked one holding its
    answer), so nDCG@10 is 1 / log2(rank + 1). With no abstention at all, abstention
    precision is 1: no abstention was wrong.
    """
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
    for stage in STAGES:
        values = [o.timings_ms.get(stage, 0.0) for o in outcomes]
        metrics[f"{stage}_ms_p50"] = float(np.percentile(values, 50)) if values else 0.0
        metrics[f"{stage}_ms_p95"] = float(np.percentile(values, 95)) if values else 0.0
    return {name: round(value, 4) for name, value in metrics.items()}


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


def is_regression(name: str, current: float, baseline: float, tolerance: float = TOLERANCE) -> bool:
    """Whether a metric moved the wrong way by more than the tolerance."""
    change = current - baseline
    worse = change if name in LOWER_IS_BETTER else -change
    return worse > tolerance + 1e-9


def regressions(
    current: dict[str, float], baseline: dict[str, float], tolerance: float = TOLERANCE
) -> list[str]:
    """One line per quality metric of the baseline that the current metrics fall behind."""
    return [
        f"{name}: {baseline[name]:.4f} -> {current[name]:.4f} "
        f"({current[name] - baseline[name]:+.4f}; "
        f"{'rises' if name in LOWER_IS_BETTER else 'drops'} of more than {tolerance} fail)"
        for name in QUALITY_METRICS
        if name in baseline and is_regression(name, current[name], baseline[name], tolerance)
    ]


# --- baseline --------------------------------------------------------------------------------


def configuration_of(engine: Engine, k: int) -> dict[str, Any]:
    """The settings that decide the scores, with the chunker the index was built with."""
    chosen = engine.settings.model_dump(
        mode="json", include={"model", "candidates", "abstain_below"}
    )
    chosen["answer_max_chars"] = engine.settings.answer_max_chars
    chosen["chunker"] = engine.index.manifest.get("chunker")
    chosen["k"] = k
    return chosen


def baseline_record(
    report: Report, set_path: Path, configuration: dict[str, Any]
) -> dict[str, Any]:
    """What eval/baseline.json holds: quality metrics, the set, the time and the settings."""
    return {
        "set": set_path.as_posix(),
        "questions": len(report.outcomes),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "configuration": configuration,
        "metrics": {name: report.metrics[name] for name in QUALITY_METRICS},
        "missed": sorted(o.id for o in report.misses()),
    }


def read_baseline(path: Path) -> dict[str, Any] | None:
    """The stored baseline, None when there is none yet."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise EvaluationError(
            f"{path} is not valid JSON ({error}): rewrite it with `docqa eval --update-baseline`"
        ) from error
    if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
        raise EvaluationError(
            f"{path} has no metrics: rewrite it with `docqa eval --update-baseline`"
        )
    return record


@contextlib.contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """A temporary sibling of `path` to write, renamed over it once written: a reader never
    sees a half-written file, and a failed write leaves the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file atomically."""
    with replaced_atomically(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


# --- text and Markdown -----------------------------------------------------------------------


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table padded to line up in a terminal too."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join(
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
        for line in lines
    )


def metrics_table(metrics: dict[str, float], baseline: dict[str, float] | None = None) -> str:
    """The quality metrics, with the baseline and the change beside them when given."""
    names = [*QUALITY_METRICS, "mean_passage_chars"]
    if baseline is None:
        return markdown_table(["metric", "value"], [[n, _number(metrics[n])] for n in names])
    rows = []
    for name in names:
        before = baseline.get(name)
        if before is None:
            rows.append([name, _number(metrics[name]), "", ""])
            continue
        flag = "  REGRESSED" if is_regression(name, metrics[name], before) else ""
        change = f"{metrics[name] - before:+.4f}{flag}"
        rows.append([name, _number(metrics[name]), _number(before), change])
    return markdown_table(["metric", "value", "baseline", "change"], rows)


def latency_table(metrics: dict[str, float]) -> str:
    """p50 and p95 milliseconds of each stage."""
    rows = [
        [stage, f"{metrics[f'{stage}_ms_p50']:.2f}", f"{metrics[f'{stage}_ms_p95']:.2f}"]
        for stage in STAGES
    ]
    return markdown_table(["stage", "p50 ms", "p95 ms"], rows)


def kind_table(by_kind: dict[str, dict[str, float | None]]) -> str:
    """Answer accuracy and hit@1 per question kind."""
    rows = [
        [
            kind,
            f"{values['questions']:.0f}",
            _number(values["answer_accuracy"]),
            "n/a" if values["hit@1"] is None else _number(values["hit@1"]),
        ]
        for kind, values in by_kind.items()
    ]
    return markdown_table(["kind", "questions", "answer_accuracy", "hit@1"], rows)


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.1f}" if abs(value) > 1.0 else f"{value:.4f}"


def miss_reason(outcome: Outcome) -> str:
    """Why an outcome counts as a miss, in a few words."""
    if outcome.expected is None:
        return "answered, but the document does not say"
    problems = []
    if not outcome.answered:
        problems.append("abstained")
    elif not outcome.correct:
        problems.append("wrong answer")
    if outcome.rank is None:
        problems.append("right passage not retrieved")
    elif outcome.rank != 1:
        problems.append(f"right passage at rank {outcome.rank}")
    return "; ".join(problems)


def format_miss(outcome: Outcome) -> str:
    """One miss: id, kind, why, question, expected phrase, the answer and the passage rank."""
    rank = "-" if outcome.rank is None else str(outcome.rank)
    expected = outcome.expected if outcome.expected is not None else "(no answer: abstain)"
    return (
        f"{outcome.id} [{outcome.kind}] {miss_reason(outcome)}\n"
        f"    question: {outcome.question}\n"
        f"    expected: {expected}\n"
        f"    answer:   {' '.join(outcome.answer.split())}\n"
        f"    rank of right passage: {rank}   confidence: {outcome.confidence:.2f}"
    )


def format_report(report: Report, set_path: Path, baseline: dict[str, Any] | None) -> str:
    """The report for a terminal: metrics, latency, per-kind table, then every miss."""
    misses = report.misses()
    parts = [
        f"{len(report.outcomes)} questions from {set_path}"
        + (f", compared with the baseline of {baseline['created_at']}" if baseline else ""),
        "",
        metrics_table(report.metrics, baseline["metrics"] if baseline else None),
        "",
        latency_table(report.metrics),
        "",
        kind_table(report.by_kind),
        "",
        f"misses ({len(misses)}):",
        *(format_miss(o) for o in misses),
    ]
    return "\n".join(parts)


def report_json(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data."""
    return {
        "metrics": report.metrics,
        "by_kind": report.by_kind,
        "hit_curve": [round(v, 4) for v in hit_curve(report.outcomes)],
        "misses": [asdict(o) for o in report.misses()],
    }


# --- report folder ---------------------------------------------------------------------------


def write_report(
    report: Report,
    folder: Path,
    set_path: Path,
    settings: Settings,
    baseline: dict[str, Any] | None,
) -> list[Path]:
    """Write report.md and its PNG charts into `folder`; returns the files written."""
    charts = {
        "hit_at_k.png": plot_hit_curve(report.outcomes),
        "accuracy_by_kind.png": plot_kind_accuracy(report.by_kind),
        "confidence.png": plot_confidence(report.outcomes, settings.abstain_below),
    }
    written = []
    for name, figure in charts.items():
        save_figure(figure, folder / name)
        written.append(folder / name)
    misses = report.misses()
    text = "\n".join(
        [
            "# docqa evaluation",
            "",
            f"{len(report.outcomes)} questions from `{set_path.as_posix()}`, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
            "",
            "## Metrics",
            "",
            metrics_table(report.metrics, baseline["metrics"] if baseline else None),
            "",
            "## Latency",
            "",
            latency_table(report.metrics),
            "",
            "## By question kind",
            "",
            kind_table(report.by_kind),
            "",
            "## Charts",
            "",
            "![hit@k for k = 1..10](hit_at_k.png)",
            "![answer accuracy by question kind](accuracy_by_kind.png)",
            "![confidence of answerable and unanswerable questions](confidence.png)",
            "",
            f"## Misses ({len(misses)})",
            "",
            "```",
            *(format_miss(o) for o in misses),
            "```",
            "",
        ]
    )
    write_text_atomic(folder / "report.md", text)
    return [folder / "report.md", *written]


def _figure(width: float = 6.0, height: float = 3.6) -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise EvaluationError(
            "the charts of --report need matplotlib: pip install 'docqa[report]'"
        ) from error
    figure = Figure(figsize=(width, height), dpi=100, layout="tight")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: Path) -> None:
    """Save a chart as PNG atomically."""
    with replaced_atomically(path) as temporary:
        figure.savefig(temporary, format="png")


def plot_hit_curve(outcomes: list[Outcome]) -> Figure:
    """hit@k against k for k = 1..10."""
    figure = _figure()
    axes = figure.add_subplot()
    ks = list(range(1, CURVE_K + 1))
    values = hit_curve(outcomes)
    axes.plot(ks, values, marker="o")
    for k, value in zip(ks, values, strict=True):
        axes.annotate(
            f"{value:.2f}", (k, value), textcoords="offset points", xytext=(0, 6), ha="center"
        )
    axes.set(xlabel="k", ylabel="hit@k", title="Answer passage in the top k", ylim=(0, 1.08))
    axes.set_xticks(ks)
    axes.grid(alpha=0.3)
    return figure


def plot_kind_accuracy(by_kind: dict[str, dict[str, float | None]]) -> Figure:
    """Answer accuracy per question kind (abstaining is right for unanswerable kinds)."""
    figure = _figure()
    axes = figure.add_subplot()
    kinds = list(by_kind)
    values = [by_kind[k]["answer_accuracy"] or 0.0 for k in kinds]
    colours = ["tab:orange" if k in KINDS_UNANSWERABLE else "tab:blue" for k in kinds]
    bars = axes.bar(kinds, values, color=colours)
    labels = [
        f"{v:.2f}\nn={by_kind[k]['questions']:.0f}" for k, v in zip(kinds, values, strict=True)
    ]
    axes.bar_label(bars, labels=labels, fontsize=8)
    axes.set(ylabel="answer accuracy", title="Answer accuracy by question kind", ylim=(0, 1.25))
    axes.tick_params(axis="x", labelsize=8)
    return figure


def plot_confidence(outcomes: list[Outcome], threshold: float) -> Figure:
    """Histogram of confidence, answerable against unanswerable, with the abstain threshold."""
    figure = _figure()
    axes = figure.add_subplot()
    bins = [step / 20 for step in range(21)]
    answerable = [o.confidence for o in outcomes if o.expected is not None]
    unanswerable = [o.confidence for o in outcomes if o.expected is None]
    axes.hist(answerable, bins=bins, alpha=0.6, label=f"answerable ({len(answerable)})")
    axes.hist(
        unanswerable, bins=bins, alpha=0.6, label=f"not in the document ({len(unanswerable)})"
    )
    axes.axvline(threshold, color="black", linestyle="--", label=f"abstain below {threshold:.2f}")
    axes.set(xlabel="confidence", ylabel="questions", title="Confidence by answerability")
    axes.legend(fontsize=8)
    return figure


# --- comparing configurations ----------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """A configuration to score: a retrieval mode and settings that differ from the current."""

    mode: str = "hybrid"
    changes: tuple[tuple[str, Any], ...] = ()
    """Settings changed; a variant with changes gets its own temporary index."""


def _sections(target: int, largest: int) -> tuple[tuple[str, Any], ...]:
    return (("chunker", "sections"), ("chunk_target_chars", target), ("chunk_max_chars", largest))


VARIANTS = (
    Variant(),
    Variant("dense"),
    Variant("lexical"),
    Variant(changes=(("chunker", "windows"), ("window_chars", 500), ("window_overlap", 100))),
    Variant(changes=_sections(300, 480)),
    Variant(changes=_sections(500, 800)),
)
"""hybrid, dense and lexical on the current index; then naive 500/100 windows and the
section chunker at a smaller and a larger size (target/max in the ratio of the defaults)."""


def variant_name(settings: Settings, mode: str) -> str:
    """A short label: retrieval mode and chunker with its sizes."""
    if settings.chunker == "windows":
        chunker = f"windows {settings.window_chars}/{settings.window_overlap} overlap"
    else:
        chunker = f"sections {settings.chunk_target_chars}/{settings.chunk_max_chars}"
    return f"{mode}, {chunker}"


def compare_variants(
    settings: Settings,
    questions: list[Question],
    documents: list[Document],
    k: int,
    workdir: Path,
    notify: Callable[[str], None] = lambda message: None,
    progress: Callable[[str], Progress] = lambda label: lambda q: q,
) -> list[tuple[str, Report]]:
    """Score every variant of VARIANTS, building the indexes they need inside `workdir`."""
    from docqa.index import build_index

    current = Engine.load(settings, notify=notify)
    results = []
    for number, variant in enumerate(VARIANTS):
        engine = current
        if variant.changes:
            changed = settings.model_copy(
                update={**dict(variant.changes), "index_dir": workdir / f"variant-{number}"}
            )
            notify(f"building the index for {variant_name(changed, variant.mode)}")
            build_index(changed)
            engine = Engine.load(changed, notify=notify)
        name = variant_name(engine.settings, variant.mode)
        report = evaluate(engine, questions, documents, k, progress(name), variant.mode)
        results.append((name, report))
    return results


COMPARE_COLUMNS = (
    "hit@1",
    "hit@5",
    "mrr@10",
    "answer_accuracy",
    "abstention_recall",
    "false_abstention",
    "mean_passage_chars",
)


def compare_table(results: list[tuple[str, Report]]) -> str:
    """One row per configuration, the columns of COMPARE_COLUMNS."""
    rows = [[name] + [_number(r.metrics[c]) for c in COMPARE_COLUMNS] for name, r in results]
    return markdown_table(["configuration", *COMPARE_COLUMNS], rows)


# --- the command -----------------------------------------------------------------------------


def run_command(options: argparse.Namespace, settings: Settings) -> int:
    """`docqa eval`: score the set, print the table (or JSON), and write what was asked."""
    set_path = Path(options.set_path)
    questions = load_questions(set_path)
    documents = read_corpus(settings.corpus_dir)
    if options.compare:
        if options.update_baseline:
            raise EvaluationError("--update-baseline takes the plain evaluation, not --compare")
        return _run_compare(options, settings, questions, documents)
    engine = Engine.load(settings, notify=_notify)
    report = evaluate(engine, questions, documents, options.k, _progress_bar("evaluating"))
    baseline = _matching_baseline(set_path, len(questions))
    if options.json:
        print(json.dumps(report_json(report), ensure_ascii=False, indent=2))
    else:
        print(format_report(report, set_path, baseline))
    if options.report:
        for path in write_report(report, Path(options.report), set_path, settings, baseline):
            _notify(f"wrote {path}")
    if options.update_baseline:
        record = baseline_record(report, set_path, configuration_of(engine, options.k))
        write_text_atomic(BASELINE_PATH, json.dumps(record, indent=2) + "\n")
        _notify(f"wrote {BASELINE_PATH} ({len(questions)} questions)")
    return 0


def _run_compare(
    options: argparse.Namespace,
    settings: Settings,
    questions: list[Question],
    documents: list[Document],
) -> int:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="docqa-compare-") as workdir:
        results = compare_variants(
            settings, questions, documents, options.k, Path(workdir), _notify, _progress_bar
        )
    table = compare_table(results)
    if options.json:
        print(json.dumps({name: r.metrics for name, r in results}, indent=2))
    else:
        print(table)
    folder = Path(options.report or REPORT_DIR)
    text = (
        f"# docqa configurations compared\n\n{len(questions)} questions from "
        f"`{Path(options.set_path).as_posix()}`, k = {options.k}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        f"Sizes are target/max characters per passage.\n\n{table}\n"
    )
    write_text_atomic(folder / "compare.md", text)
    _notify(f"wrote {folder / 'compare.md'} in {time.perf_counter() - started:.0f} s")
    return 0


def _matching_baseline(set_path: Path, count: int) -> dict[str, Any] | None:
    baseline = read_baseline(BASELINE_PATH)
    if baseline is None:
        return None
    if baseline.get("set") != set_path.as_posix() or baseline.get("questions") != count:
        _notify(
            f"{BASELINE_PATH} is for {baseline.get('set')} ({baseline.get('questions')} "
            "questions): not compared"
        )
        return None
    return baseline


def _notify(message: str) -> None:
    print(f"docqa: {message}", file=sys.stderr)


def _progress_bar(label: str) -> Progress:
    from tqdm import tqdm

    return lambda questions: tqdm(questions, desc=label, unit="q", file=sys.stderr, leave=False)
