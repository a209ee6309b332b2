"""Quality gate: with the real model, no set may score below eval/baseline.json.

Every set of `docqa eval` is gated: the brief's own questions, the public SQuAD 2.0
articles and the public QuAC dialogues (eval/public). A rate may drop by at most
docqa.evaluation.TOLERANCE (0.02 absolute); false_abstention, where lower is better, may
rise by at most as much. When a change makes the answers better, accept the new scores
with `docqa eval --update-baseline` and commit the file.
"""

from pathlib import Path
from typing import Any

import pytest

from docqa.config import Settings
from docqa.engine import Engine
from docqa.evaluation import (
    TOLERANCE,
    Report,
    configuration_of,
    evaluate,
    format_miss,
    load_brief_set,
    load_dialogue_set,
    load_squad_set,
    read_baseline,
    regressions,
)
from docqa.evaluation.sets import SET_NAMES, EvaluationSet

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "eval" / "baseline.json"
MISSES_PRINTED = 40


def load_baseline() -> dict[str, Any]:
    baseline = read_baseline(BASELINE)
    if baseline is None:
        pytest.fail(f"{BASELINE} is missing: create it with `docqa eval --update-baseline`")
    return baseline


def load(name: str) -> EvaluationSet:
    if name == "brief":
        return load_brief_set(ROOT / "eval" / "questions.jsonl", ROOT / "corpus")
    if name == "squad2":
        return load_squad_set(ROOT / "eval" / "public" / "squad2")
    return load_dialogue_set(ROOT / "eval" / "public" / "conversations")


@pytest.mark.parametrize("name", SET_NAMES)
def test_the_baseline_was_taken_on_this_set(name: str) -> None:
    record = load_baseline()["sets"].get(name)
    assert record is not None, f"the baseline has no {name} set: `docqa eval --update-baseline`"
    count = len(load(name).questions)
    assert record["questions"] == count, (
        f"the baseline scored {record['questions']} questions of {name}, the set holds "
        f"{count}: re-run `docqa eval --update-baseline`"
    )


@pytest.fixture(scope="session")
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Report, dict[str, Any]]]:
    """Every set run through an index of its corpus built once per session (the eight SQuAD
    articles take the longest: about 40 s on 2 cores)."""
    baseline = load_baseline()
    k = int(baseline.get("configuration", {}).get("k", 10))
    results = {}
    for name in SET_NAMES:
        evaluation_set = load(name)
        settings = Settings(
            corpus_dir=evaluation_set.corpus_dir, index_dir=tmp_path_factory.mktemp(name)
        )
        engine = Engine.load(settings)
        results[name] = (evaluate(engine, evaluation_set, k), configuration_of(engine, k))
    return results


@pytest.mark.model
@pytest.mark.parametrize("name", SET_NAMES)
def test_quality_does_not_fall_below_the_baseline(
    name: str, scored: dict[str, tuple[Report, dict[str, Any]]]
) -> None:
    report, configuration = scored[name]
    baseline = load_baseline()
    record = baseline["sets"][name]
    regressed = regressions(report.metrics, record["metrics"], TOLERANCE)
    misses = report.misses()
    before = set(record.get("missed", []))
    new_misses = [o for o in misses if o.id not in before]
    changed = {
        key: (baseline.get("configuration", {}).get(key), value)
        for key, value in configuration.items()
        if key != "chunker" and baseline.get("configuration", {}).get(key) != value
    }
    summary = "\n".join(
        [
            f"set {name}, baseline of {baseline.get('created_at')}; tolerance {TOLERANCE}",
            *(f"REGRESSED {line}" for line in regressed),
            *(
                f"setting {key}: baseline {old!r}, now {new!r}"
                for key, (old, new) in changed.items()
            ),
            f"\nnewly missed since the baseline ({len(new_misses)}, "
            f"the first {MISSES_PRINTED} shown):",
            *(format_miss(o) for o in new_misses[:MISSES_PRINTED]),
        ]
    )
    print(summary)
    if regressed:
        pytest.fail(f"{len(regressed)} metric(s) of {name} fell below the baseline\n{summary}")
