"""In-process latency: Engine.ask by stage, each question paired with a bare encode (the
encoder floor) and with a bare encode plus one reader pass over the passages the answer
reads (the floor of this design)."""

from __future__ import annotations

import time
from typing import Any

from docqa.answer.confidence import default_model
from docqa.answer.reader import default_reader
from docqa.bench.encoder import time_encodes
from docqa.bench.plan import STAGES
from docqa.bench.stats import percentile, summarize
from docqa.models import Answer


def time_reader_pass(engine: Any, answer: Answer) -> float:
    """Milliseconds of one reader pass over the passages this answer's reader reads."""
    passages = [hit.chunk.text for hit in answer.hits[: default_model().read_passages]]
    reader = default_reader(engine.settings.encoder_threads)
    clock = time.perf_counter()
    reader.read_passages(answer.question, passages)
    return (time.perf_counter() - clock) * 1000.0


def measure_in_process(engine: Any, questions: list[str]) -> dict[str, Any]:
    """Engine.ask latency by stage, each question paired with a bare encode of it (the
    encoder floor) and with that encode plus one reader pass (the design floor)."""
    for question in questions[:10]:
        engine.ask(question)
    floor: list[float] = []
    design: list[float] = []
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for i, question in enumerate(questions):
        # Alternate which goes first, so neither always finds the caches warm.
        if i % 2:
            floor.extend(time_encodes(engine.embedder, [question]))
        answer = engine.ask(question)
        if not i % 2:
            floor.extend(time_encodes(engine.embedder, [question]))
        design.append(floor[-1] + time_reader_pass(engine, answer))
        for stage in STAGES:
            stages[stage].append(answer.timings_ms[stage])
    floor_ms = percentile(floor, 50)
    design_ms = percentile(design, 50)
    total = stages["total"]
    return {
        "floor": {
            "median_ms": round(floor_ms, 3),
            "p95_ms": round(percentile(floor, 95), 3),
            "n": len(floor),
        },
        "design_floor": {
            "median_ms": round(design_ms, 3),
            "p95_ms": round(percentile(design, 95), 3),
            "answer_p50_ratio": round(percentile(total, 50) / design_ms, 3),
            "reads_passages": default_model().read_passages,
        },
        "stages": {stage: summarize(values, floor_ms) for stage, values in stages.items()},
    }
