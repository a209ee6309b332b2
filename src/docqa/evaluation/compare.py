"""`docqa eval --compare`: retrieval modes and chunkers side by side on the same set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docqa.config import Settings
from docqa.engine import Engine
from docqa.evaluation.metrics import Report
from docqa.evaluation.report import markdown_table, number
from docqa.evaluation.run import Progress, evaluate
from docqa.evaluation.sets import EvaluationSet


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
    evaluation_set: EvaluationSet,
    k: int,
    workdir: Path,
    notify: Callable[[str], None] = lambda message: None,
    progress: Callable[[str], Progress] = lambda label: lambda q: q,
) -> list[tuple[str, Report]]:
    """Score every variant of VARIANTS, building the indexes they need inside `workdir`."""
    from docqa.indexing.build import build_index

    current = Engine.load(settings, notify=notify)
    results = []
    for ordinal, variant in enumerate(VARIANTS):
        engine = current
        if variant.changes:
            changed = settings.model_copy(
                update={**dict(variant.changes), "index_dir": workdir / f"variant-{ordinal}"}
            )
            notify(f"building the index for {variant_name(changed, variant.mode)}")
            build_index(changed)
            engine = Engine.load(changed, notify=notify)
        name = variant_name(engine.settings, variant.mode)
        report = evaluate(engine, evaluation_set, k, progress(name), variant.mode)
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
    rows = [[name] + [number(r.metrics[c]) for c in COMPARE_COLUMNS] for name, r in results]
    return markdown_table(["configuration", *COMPARE_COLUMNS], rows)
