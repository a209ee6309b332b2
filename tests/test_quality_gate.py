"""Quality gate: with the real model, the repo's set may not score below eval/baseline.json.

A rate may drop by at most docqa.evaluation.TOLERANCE (0.02 absolute); false_abstention,
where lower is better, may rise by at most as much. When a change makes the answers
better, accept the new scores with `docqa eval --update-baseline` and commit the file.
"""

from pathlib import Path
from typing import Any

import pytest

from docqa.config import Settings
from docqa.corpus import read_corpus
from docqa.engine import Engine
from docqa.evaluation import (
    TOLERANCE,
    Report,
    configuration_of,
    evaluate,
    format_miss,
    load_questions,
    read_baseline,
    regressions,
)

ROOT = Path(__file__).resolve().parents[1]
SET = "eval/questions.jsonl"
BASELINE = ROOT / "eval" / "baseline.json"


def load_baseline() -> dict[str, Any]:
    baseline = read_baseline(BASELINE)
    if baseline is None:
        pytest.fail(f"{BASELINE} is missing: create it with `docqa eval --update-baseline`")
    return baseline


def test_the_baseline_was_taken_on_this_evaluation_set() -> None:
    baseline = load_baseline()
    questions = load_questions(ROOT / SET)
    assert baseline["set"] == SET
    assert baseline["questions"] == len(questions), (
        f"the baseline scored {baseline['questions']} questions, {SET} holds {len(questions)}: "
        "re-run `docqa eval --update-baseline`"
    )


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, dict[str, Any]]:
    """The set run through an index of the repo's corpus built in a temporary folder."""
    baseline = load_baseline()
    settings = Settings(corpus_dir=ROOT / "corpus", index_dir=tmp_path_factory.mktemp("index"))
    engine = Engine.load(settings)
    k = int(baseline.get("configuration", {}).get("k", 10))
    report = evaluate(engine, load_questions(ROOT / SET), read_corpus(settings.corpus_dir), k)
    return report, configuration_of(engine, k)


@pytest.mark.model
def test_quality_does_not_fall_below_the_baseline(
    scored: tuple[Report, dict[str, Any]],
) -> None:
    report, configuration = scored
    baseline = load_baseline()
    regressed = regressions(report.metrics, baseline["metrics"], TOLERANCE)
    misses = report.misses()
    before = set(baseline.get("missed", []))
    new_misses = [o for o in misses if o.id not in before]
    changed = {
        name: (baseline.get("configuration", {}).get(name), value)
        for name, value in configuration.items()
        if baseline.get("configuration", {}).get(name) != value
    }
    summary = "\n".join(
        [
            f"baseline of {baseline.get('created_at')}; tolerance {TOLERANCE}",
            *(f"REGRESSED {line}" for line in regressed),
            *(
                f"setting {name}: baseline {old!r}, now {new!r}"
                for name, (old, new) in changed.items()
            ),
            f"\nnewly missed since the baseline ({len(new_misses)}):",
            *(format_miss(o) for o in new_misses),
            f"\nall questions missed now ({len(misses)}):",
            *(format_miss(o) for o in misses),
        ]
    )
    print(summary)
    if regressed:
        pytest.fail(f"{len(regressed)} quality metric(s) fell below the baseline\n{summary}")
