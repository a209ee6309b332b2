"""The regression gate: eval/baseline.json holds each set's quality metrics, and a change
may not lower any of them by more than the tolerance."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from docqa.engine import Engine
from docqa.evaluation.metrics import Report
from docqa.evaluation.sets import EvaluationError

QUALITY_METRICS = (
    "hit@1",
    "hit@3",
    "hit@5",
    "mrr@10",
    "ndcg@10",
    "answer_accuracy",
    "short_em",
    "short_f1",
    "squad2_f1",
    "abstention_precision",
    "abstention_recall",
    "false_abstention",
    "confidence_auroc",
    "followup_accuracy",
    "followup_token_f1",
)
"""The rates a change may not lower (the baseline holds these, never latencies)."""
LOWER_IS_BETTER = frozenset({"false_abstention"})
TOLERANCE = 0.02
"""Largest accepted drop of a rate: about two of the ~120 answerable brief questions."""
BASELINE_PATH = Path("eval/baseline.json")


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
    reports: dict[str, tuple[Path, Report]], configuration: dict[str, Any]
) -> dict[str, Any]:
    """What eval/baseline.json holds: per set, its path, size, quality metrics and misses."""
    return {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "configuration": configuration,
        "sets": {
            name: {
                "set": path.as_posix(),
                "questions": len(report.outcomes),
                "metrics": {m: report.metrics[m] for m in QUALITY_METRICS if m in report.metrics},
                "missed": sorted(o.id for o in report.misses()),
            }
            for name, (path, report) in reports.items()
        },
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
    if not isinstance(record, dict) or not isinstance(record.get("sets"), dict):
        raise EvaluationError(f"{path} has no sets: rewrite it with `docqa eval --update-baseline`")
    return record


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
