"""The evaluation report: tables for the terminal, report.md with charts, atomic writes."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docqa.answer.confidence import abstention_cut
from docqa.config import Settings
from docqa.evaluation.gate import QUALITY_METRICS, is_regression
from docqa.evaluation.metrics import CURVE_K, STAGES, Outcome, Report, hit_curve, reliability
from docqa.evaluation.sets import EvaluationError, EvaluationSet

if TYPE_CHECKING:
    from matplotlib.figure import Figure

KINDS_UNANSWERABLE = ("unanswerable", "near", "squad-impossible")
REPORT_DIR = Path("eval/reports")


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
    names = [*QUALITY_METRICS, "squad2_em", "mean_passage_chars"]
    names += ["weak_relevant", "weak_other_sources", "ece", "shown_at_0.8", "right_at_0.8"]
    if baseline is None:
        return markdown_table(["metric", "value"], [[n, number(metrics[n])] for n in names])
    rows = []
    for name in names:
        before = baseline.get(name)
        if before is None:
            rows.append([name, number(metrics[name]), "", ""])
            continue
        flag = "  REGRESSED" if is_regression(name, metrics[name], before) else ""
        change = f"{metrics[name] - before:+.4f}{flag}"
        rows.append([name, number(metrics[name]), number(before), change])
    return markdown_table(["metric", "value", "baseline", "change"], rows)


def latency_table(metrics: dict[str, float]) -> str:
    """p50 and p95 milliseconds of each stage."""
    rows = [
        [stage, f"{metrics[f'{stage}_ms_p50']:.2f}", f"{metrics[f'{stage}_ms_p95']:.2f}"]
        for stage in STAGES
    ]
    return markdown_table(["stage", "p50 ms", "p95 ms"], rows)


def reliability_table(outcomes: list[Outcome]) -> str:
    """The answers shown by confidence bin: how many, mean confidence, share right."""
    rows = [
        [
            f"{row['low']:.1f}-{row['high']:.1f}",
            f"{row['answers']:.0f}",
            f"{row['confidence']:.3f}",
            f"{row['right']:.3f}",
        ]
        for row in reliability(outcomes)
    ]
    return markdown_table(["confidence", "answers", "mean confidence", "right"], rows)


def kind_table(by_kind: dict[str, dict[str, float | None]]) -> str:
    """Answer accuracy and hit@1 per question kind."""
    rows = [
        [
            kind,
            f"{values['questions']:.0f}",
            number(values["answer_accuracy"]),
            "n/a" if values["hit@1"] is None else number(values["hit@1"]),
        ]
        for kind, values in by_kind.items()
    ]
    return markdown_table(["kind", "questions", "answer_accuracy", "hit@1"], rows)


def number(value: float | None) -> str:
    """A rate with four decimals, a larger figure with one."""
    if value is None:
        return ""
    return f"{value:.1f}" if abs(value) > 1.0 else f"{value:.4f}"


def miss_reason(outcome: Outcome) -> str:
    """Why an outcome counts as a miss, in a few words."""
    if outcome.expected is None:
        return "answered, but the documents do not say"
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
        f"    short:    {outcome.short_answer}\n"
        f"    answer:   {' '.join(outcome.answer.split())}\n"
        f"    rank of right passage: {rank}   confidence: {outcome.confidence:.2f}"
    )


def format_report(
    report: Report,
    evaluation_set: EvaluationSet,
    baseline: dict[str, Any] | None,
    shown: int | None = None,
) -> str:
    """The report for a terminal: metrics, latency, per-kind table, then the misses (the
    first `shown` of them, or every one)."""
    misses = report.misses()
    parts = [
        f"set {evaluation_set.name}: {len(report.outcomes)} questions from "
        f"{evaluation_set.path.as_posix()}"
        + (f", compared with the baseline of {baseline['created_at']}" if baseline else ""),
        "",
        metrics_table(report.metrics, baseline["metrics"] if baseline else None),
        "",
        latency_table(report.metrics),
        "",
        kind_table(report.by_kind),
        "",
        "reliability of the answers shown (right: short answer F1 >= 0.5 against a gold):",
        reliability_table(report.outcomes),
        "",
        f"misses ({len(misses)}" + ("" if shown is None else f", the first {shown} shown") + "):",
        *(format_miss(o) for o in misses[:shown]),
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


def write_report(
    report: Report,
    folder: Path,
    evaluation_set: EvaluationSet,
    settings: Settings,
    baseline: dict[str, Any] | None,
) -> list[Path]:
    """Write report.md and its PNG charts into `folder`; returns the files written."""
    charts = {
        "hit_at_k.png": plot_hit_curve(report.outcomes),
        "accuracy_by_kind.png": plot_kind_accuracy(report.by_kind),
        "confidence.png": plot_confidence(report.outcomes, abstention_cut(settings)),
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
            f"{len(report.outcomes)} questions of set {evaluation_set.name} from "
            f"`{evaluation_set.path.as_posix()}`, "
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
            "## Reliability of the confidence",
            "",
            "The answers shown, by confidence: an answer is right when its short answer has "
            "SQuAD token F1 >= 0.5 against a gold answer (`ece`: the gap between confidence "
            "and the share right, weighted by answers).",
            "",
            reliability_table(report.outcomes),
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
