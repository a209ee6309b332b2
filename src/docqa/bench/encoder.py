"""The encoder floor: one query encoded alone, encodes per second, precision and threads."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from docqa.bench.plan import Plan
from docqa.bench.processes import in_child
from docqa.bench.stats import ms_since, percentile
from docqa.config import Settings


def time_encodes(embedder: Any, texts: Sequence[str]) -> list[float]:
    """Milliseconds to encode each text alone."""
    timings = []
    for text in texts:
        start = time.perf_counter()
        embedder.embed([text])
        timings.append(ms_since(start))
    return timings


def encode_throughput(embedder: Any, texts: Sequence[str], workers: int, seconds: float) -> float:
    """Single-query encodes per second with `workers` threads encoding side by side."""
    deadline = time.perf_counter() + seconds
    counts = [0] * workers

    def work(slot: int) -> None:
        for text in itertools.cycle(texts[slot::workers] or texts):
            if time.perf_counter() >= deadline:
                return
            embedder.embed([text])
            counts[slot] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


def compare_encoders(
    encoders: dict[str, Path], texts: list[str], plan: Plan
) -> list[dict[str, Any]]:
    """Floor and throughput (1 and 2 workers) of each encoder folder on 1 and 2 threads."""
    from docqa.indexing.embedding import OnnxEmbedder

    embedders = {
        (precision, threads): OnnxEmbedder(folder, intra_op_num_threads=threads)
        for precision, folder in encoders.items()
        for threads in (1, 2)
    }
    timings: dict[tuple[str, int], list[float]] = {key: [] for key in embedders}
    # Blocks taken in turn, so every setting sees the same machine; the pause lets the last
    # setting's onnxruntime threads stop spinning before the next one is timed.
    for _ in range(3):
        for key, embedder in embedders.items():
            time.sleep(0.05)
            time_encodes(embedder, texts[:3])
            timings[key].extend(time_encodes(embedder, texts))
    return [
        {
            "precision": precision,
            "threads": threads,
            "floor_ms": round(percentile(timings[precision, threads], 50), 3),
            "one_worker_per_s": round(
                encode_throughput(embedder, texts, 1, plan.capacity_seconds), 1
            ),
            "two_workers_per_s": round(
                encode_throughput(embedder, texts, 2, plan.capacity_seconds), 1
            ),
        }
        for (precision, threads), embedder in embedders.items()
    ]


def export_fp32(model: str, out_dir: Path) -> Path:
    """Export the fp32 ONNX encoder (needs torch; run in a child)."""
    from docqa.indexing.embedding import export_onnx, resolve_model_path

    return export_onnx(resolve_model_path(model), out_dir)


def reference_encode(model: str, texts: list[str], threads: int) -> dict[str, Any]:
    """Median ms to encode one query with sentence-transformers (torch); run in a child."""
    try:
        import torch

        from docqa.indexing.embedding import EmbeddingError, SentenceTransformerEmbedder
    except ImportError as error:
        return {"skipped": f"sentence-transformers is not importable ({error})"}
    torch.set_num_threads(threads or os.cpu_count() or 1)
    try:
        embedder = SentenceTransformerEmbedder(model)
    except EmbeddingError as error:
        return {"skipped": str(error)}
    time_encodes(embedder, texts[:5])
    return {"median_ms": round(percentile(time_encodes(embedder, texts), 50), 3)}


def measure_encoder(
    engine: Any, settings: Settings, questions: list[str], plan: Plan, work: Path
) -> dict[str, Any]:
    """Precision and thread settings compared, what the encoder allows on this machine (the
    best two-worker throughput of the engine's precision), and torch's cost for reference."""
    precision = getattr(engine.embedder, "precision", "fp32")
    encoders = {precision: engine.index.path / "encoder"}
    if precision != "fp32":
        encoders["fp32"] = in_child(export_fp32, settings.model, work / "fp32-encoder")
    texts = questions[: plan.encoder_questions]
    rows = compare_encoders(encoders, texts, plan)
    own = encode_throughput(engine.embedder, questions, 2, plan.capacity_seconds)
    best = max([own] + [r["two_workers_per_s"] for r in rows if r["precision"] == precision])
    reference = in_child(reference_encode, settings.model, texts, settings.encoder_threads)
    if "median_ms" in reference:
        floor = percentile(time_encodes(engine.embedder, texts), 50)
        reference["floor_ms"] = round(floor, 3)
        reference["ratio"] = round(reference["median_ms"] / floor, 3)
    return {
        "encoders": rows,
        "encoder_capacity": {
            "engine_settings_two_workers_per_s": round(own, 1),
            "best_per_s": round(best, 1),
        },
        "reference_sentence_transformers": reference,
    }
