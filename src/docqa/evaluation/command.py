"""`docqa eval`: run the brief's set and the public sets, print or write the reports, gate
or update the baseline."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from docqa.config import Settings
from docqa.engine import Engine
from docqa.evaluation.compare import compare_table, compare_variants
from docqa.evaluation.gate import BASELINE_PATH, baseline_record, configuration_of, read_baseline
from docqa.evaluation.metrics import Report
from docqa.evaluation.report import (
    REPORT_DIR,
    format_report,
    report_json,
    write_report,
    write_text_atomic,
)
from docqa.evaluation.run import Progress, evaluate
from docqa.evaluation.sets import SET_NAMES, EvaluationError, EvaluationSet, load_set

MISSES_SHOWN = 25
"""Misses printed per public set (they number in the hundreds); the brief's are all shown."""


def engine_for(evaluation_set: EvaluationSet, settings: Settings) -> Engine:
    """An engine over the set's corpus: the configured index for the brief, an index kept
    beside it (`index-eval/<set>`, rebuilt when its corpus changes) for a public set."""
    if evaluation_set.name == "brief" and evaluation_set.corpus_dir == settings.corpus_dir:
        return Engine.load(settings, notify=_notify)
    folder = settings.index_dir.with_name(settings.index_dir.name + "-eval") / evaluation_set.name
    changed = settings.model_copy(
        update={"corpus_dir": evaluation_set.corpus_dir, "index_dir": folder}
    )
    return Engine.load(changed, notify=_notify)


def run_command(options: argparse.Namespace, settings: Settings) -> int:
    """`docqa eval`: score the sets, print the tables (or JSON), and write what was asked."""
    names = options.sets or list(SET_NAMES)
    sets = [load_set(name, settings.corpus_dir) for name in names]
    if options.compare:
        if options.update_baseline:
            raise EvaluationError("--update-baseline takes the plain evaluation, not --compare")
        return _run_compare(options, settings, sets[0])
    try:
        baseline = read_baseline(BASELINE_PATH)
    except EvaluationError:
        if not options.update_baseline:
            raise
        baseline = None  # about to be rewritten
    reports: dict[str, tuple[Path, Report]] = {}
    configuration: dict[str, Any] = {}
    for evaluation_set in sets:
        engine = engine_for(evaluation_set, settings)
        report = evaluate(
            engine, evaluation_set, options.k, _progress_bar(f"evaluating {evaluation_set.name}")
        )
        reports[evaluation_set.name] = (evaluation_set.path, report)
        configuration = configuration or configuration_of(engine, options.k)
        if not options.json:
            shown = None if evaluation_set.name == "brief" else MISSES_SHOWN
            print(format_report(report, evaluation_set, _matching(baseline, evaluation_set), shown))
            print()
        if options.report:
            folder = Path(options.report)
            folder = folder if evaluation_set.name == "brief" else folder / evaluation_set.name
            written = write_report(
                report, folder, evaluation_set, settings, _matching(baseline, evaluation_set)
            )
            for path in written:
                _notify(f"wrote {path}")
    if options.json:
        data = {name: report_json(report) for name, (_, report) in reports.items()}
        print(json.dumps(data, ensure_ascii=False, indent=2))
    if options.update_baseline:
        if set(reports) != set(SET_NAMES):
            raise EvaluationError("--update-baseline needs every set: leave out --set")
        record = baseline_record(reports, configuration)
        write_text_atomic(BASELINE_PATH, json.dumps(record, indent=2) + "\n")
        _notify(f"wrote {BASELINE_PATH} ({', '.join(reports)})")
    return 0


def _run_compare(options: argparse.Namespace, settings: Settings, first: EvaluationSet) -> int:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="docqa-compare-") as workdir:
        results = compare_variants(
            settings, first, options.k, Path(workdir), _notify, _progress_bar
        )
    table = compare_table(results)
    if options.json:
        print(json.dumps({name: r.metrics for name, r in results}, indent=2))
    else:
        print(table)
    folder = Path(options.report or REPORT_DIR)
    text = (
        f"# docqa configurations compared\n\n{len(first.questions)} questions from "
        f"`{first.path.as_posix()}`, k = {options.k}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        f"Sizes are target/max characters per passage.\n\n{table}\n"
    )
    write_text_atomic(folder / "compare.md", text)
    _notify(f"wrote {folder / 'compare.md'} in {time.perf_counter() - started:.0f} s")
    return 0


def _matching(
    baseline: dict[str, Any] | None, evaluation_set: EvaluationSet
) -> dict[str, Any] | None:
    """The baseline's record of this set, if it was taken on the same questions."""
    record = (baseline or {}).get("sets", {}).get(evaluation_set.name)
    if record is None:
        return None
    if record.get("questions") != len(evaluation_set.questions):
        _notify(
            f"{BASELINE_PATH} scored {record.get('questions')} questions of "
            f"{evaluation_set.name}, the set holds {len(evaluation_set.questions)}: not compared"
        )
        return None
    return {**record, "created_at": (baseline or {}).get("created_at")}


def _notify(message: str) -> None:
    print(f"docqa: {message}", file=sys.stderr)


def _progress_bar(label: str) -> Progress:
    from tqdm import tqdm

    return lambda questions: tqdm(questions, desc=label, unit="q", file=sys.stderr, leave=False)
