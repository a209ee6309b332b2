"""In-process latency: Engine.ask by stage, each question paired with a bare encode."""

from __future__ import annotations

from typing import Any

from docqa.bench.encoder import time_encodes
from docqa.bench.plan import STAGES
from docqa.bench.stats import percentile, summarize


def measure_in_process(engine: Any, questions: list[str]) -> dict[str, Any]:
    """Engine.ask latency by stage, each question paired with a bare encode of it (the floor)."""
    for question in questions[:10]:
        engine.ask(question)
    floor: list[float] = []
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for i, question in enumerate(questions):
        # Alternate which goes first, so neither always finds the caches warm.
        if i % 2:
            floor.extend(time_encodes(engine.embedder, [question]))
        answer = engine.ask(question)
        if not i % 2:
            floor.extend(time_encodes(engine.embedder, [question]))
        for stage in STAGES:
            stages[stage].append(answer.timings_ms[stage])
    floor_ms = percentile(floor, 50)
    return {
        "floor": {
            "median_ms": round(floor_ms, 3),
            "p95_ms": round(percentile(floor, 95), 3),
            "n": len(floor),
        },
        "stages": {stage: summarize(values, floor_ms) for stage, values in stages.items()},
    }
