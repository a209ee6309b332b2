"""What `docqa bench` measures and the targets it reports against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from docqa.models import DocqaError

STAGES = ("encode", "dense", "lexical", "fusion", "answer", "total")


PARTS = ("in_process", "encoder", "http", "workers", "cold_start", "scaling", "ann", "indexing")
"""What a run can measure; the in-process part always runs, as it measures the floor."""


CONCURRENCIES = (1, 4, 8, 16)


HEAVY_MODULES = ("torch", "transformers", "sentence_transformers")


QUESTIONS_FILE = Path("eval/questions.jsonl")


COLD_QUESTION = "When did EU-NATO coordination slow down?"


# The targets this benchmark reports against (see the README's performance section).
TARGET_ANSWER_RATIO = 8.0
"""In-process answer p50 against the query encoder floor (the reader reads whole passages)."""


TARGET_DESIGN_RATIO = 1.5
"""In-process answer p50 against this design's floor: one query encode plus one reader pass
over the passages the answer reads."""


TARGET_HTTP_EXTRA_MS = 3.0


TARGET_THROUGHPUT_SHARE = 0.8


TARGET_COLD_ASK_S = 1.5


TARGET_ANN_P50_MS = 10.0


TARGET_ANN_RECALL = 0.95


Notify = Callable[[str], None]


class BenchmarkError(DocqaError):
    """A measurement could not be taken (a child process failed, the server never came up)."""


@dataclass(frozen=True)
class Plan:
    """How much to measure: the full run, or the quick one for CI."""

    quick: bool
    questions: int
    encoder_questions: int
    capacity_seconds: float
    http_requests: int
    http_seconds: float
    cold_runs: int
    real_scales: tuple[int, ...]
    synthetic_scale: int
    scale_questions: int
    ann_vectors: int
    ann_queries: int
    flat_queries: int
    ef_search: tuple[int, ...]
    parts: tuple[str, ...] = PARTS

    @classmethod
    def for_mode(cls, quick: bool) -> Plan:
        """The quick plan keeps every part but shrinks it to about two minutes."""
        if quick:
            return cls(
                quick=True,
                questions=40,
                encoder_questions=20,
                capacity_seconds=2.0,
                http_requests=200,
                http_seconds=3.0,
                cold_runs=1,
                real_scales=(1,),
                synthetic_scale=100,
                scale_questions=20,
                ann_vectors=100_000,
                ann_queries=100,
                flat_queries=30,
                ef_search=(64, 256),
            )
        return cls(
            quick=False,
            questions=400,
            encoder_questions=60,
            capacity_seconds=4.0,
            http_requests=2000,
            http_seconds=10.0,
            cold_runs=3,
            real_scales=(1, 10, 100),
            synthetic_scale=1000,
            scale_questions=100,
            ann_vectors=1_000_000,
            ann_queries=200,
            flat_queries=30,
            ef_search=(16, 32, 64, 128, 256, 512),
        )
