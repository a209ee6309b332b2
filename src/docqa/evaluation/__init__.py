"""Scoring retrieval, answers, short answers and abstention on the brief's set and the
public sets; the report and the regression gate."""

from docqa.evaluation.command import run_command
from docqa.evaluation.gate import (
    BASELINE_PATH,
    QUALITY_METRICS,
    TOLERANCE,
    baseline_record,
    configuration_of,
    is_regression,
    read_baseline,
    regressions,
)
from docqa.evaluation.metrics import (
    Outcome,
    Report,
    auroc,
    exact_match,
    hit_curve,
    normalize_answer,
    summarise,
    summarise_by_kind,
    token_f1,
)
from docqa.evaluation.report import format_miss, report_json, write_report, write_text_atomic
from docqa.evaluation.run import evaluate
from docqa.evaluation.sets import (
    EvaluationError,
    EvaluationSet,
    Question,
    Target,
    load_brief_set,
    load_dialogue_set,
    load_questions,
    load_set,
    load_squad_set,
    locate,
    relevant_rank,
)

__all__ = [
    "BASELINE_PATH",
    "QUALITY_METRICS",
    "TOLERANCE",
    "EvaluationError",
    "EvaluationSet",
    "Outcome",
    "Question",
    "Report",
    "Target",
    "auroc",
    "baseline_record",
    "configuration_of",
    "evaluate",
    "exact_match",
    "format_miss",
    "hit_curve",
    "is_regression",
    "load_brief_set",
    "load_dialogue_set",
    "load_questions",
    "load_set",
    "load_squad_set",
    "locate",
    "normalize_answer",
    "read_baseline",
    "regressions",
    "relevant_rank",
    "report_json",
    "run_command",
    "summarise",
    "summarise_by_kind",
    "token_f1",
    "write_report",
    "write_text_atomic",
]
