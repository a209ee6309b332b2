"""The whole run: measure the parts a plan names, then write the reports."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from docqa.bench.ann import measure_ann
from docqa.bench.cold_start import measure_cold_start
from docqa.bench.encoder import measure_encoder
from docqa.bench.indexing import measure_indexing
from docqa.bench.latency import measure_in_process
from docqa.bench.plan import CONCURRENCIES, Notify, Plan
from docqa.bench.processes import in_child, settings_env
from docqa.bench.questions import load_questions, question_variants
from docqa.bench.report import write_reports
from docqa.bench.scaling import measure_scaling
from docqa.bench.targets import check_targets
from docqa.bench.throughput import measure_http
from docqa.bench.workers import WORKERS, measure_workers
from docqa.config import Settings


def faiss_threads() -> int:
    """The OpenMP threads faiss searches with in this process."""
    import faiss

    threads: int = faiss.omp_get_max_threads()
    return threads


def machine_facts() -> dict[str, Any]:
    """What the numbers were measured on."""
    import faiss
    import onnxruntime

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "faiss": faiss.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def run_benchmark(settings: Settings, plan: Plan, notify: Notify) -> dict[str, Any]:
    """Measure the parts the plan names; returns the results as one JSON-able dict."""
    from docqa.engine import Engine

    started = time.perf_counter()
    results: dict[str, Any] = {
        "mode": "quick" if plan.quick else "full",
        "plan": asdict(plan),
        "machine": machine_facts(),
    }
    base = load_questions()
    questions = question_variants(base, plan.questions)
    engine = Engine.load(settings, notify)
    results["settings"] = {
        "model": settings.model,
        "encoder_threads": settings.encoder_threads,
        "encoder_precision": getattr(engine.embedder, "precision", "fp32"),
        "faiss_threads": faiss_threads(),
        "chunks": len(engine.index.chunks),
        "dense_index": engine.index.manifest.get("dense_index"),
    }
    notify(f"in-process: {len(questions)} questions, each paired with a bare encode")
    results["in_process"] = measure_in_process(engine, questions)
    results["floor_ms"] = results["in_process"]["floor"]["median_ms"]
    with tempfile.TemporaryDirectory(prefix="docqa-bench-") as scratch:
        work = Path(scratch)
        if "encoder" in plan.parts:
            notify("encoder: int8 against fp32, 1 against 2 threads; torch for reference")
            results.update(measure_encoder(engine, settings, base, plan, work))
        serve_env = settings_env(settings, auto_rebuild=False)
        if "http" in plan.parts:
            notify(f"HTTP: /chat at concurrency {', '.join(map(str, CONCURRENCIES))}")
            capacity = results.get("encoder_capacity", {}).get("best_per_s")
            results["http"] = measure_http(
                serve_env, engine.embedder, questions, capacity, plan, work
            )
        if "workers" in plan.parts:
            notify(f"HTTP: the same against docqa serve --workers {WORKERS} (Redis)")
            capacity = results.get("encoder_capacity", {}).get("best_per_s")
            results["http_workers"] = measure_workers(
                serve_env, engine.embedder, questions, capacity, plan, work
            )
        del engine
        gc.collect()
        if "cold_start" in plan.parts:
            notify("cold start: docqa ask and docqa serve in fresh processes")
            results["cold_start"] = measure_cold_start(serve_env, plan, work)
        if "scaling" in plan.parts:
            results.update(measure_scaling(settings, base, plan, work, notify))
        if "indexing" in plan.parts:
            results["indexing"] = measure_indexing(settings, plan, work, notify)
    if "ann" in plan.parts:
        notify(f"approximate search: flat against HNSW at {plan.ann_vectors:,} vectors")
        results["ann"] = in_child(
            measure_ann, plan.ann_vectors, plan.ann_queries, plan.flat_queries, plan.ef_search
        )
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    results["targets"] = check_targets(results)
    return results


def run_command(options: argparse.Namespace, settings: Settings) -> int:
    """`docqa bench [--quick] [--parts ...] [--out DIR]`: measure, then write bench.md and
    bench.json."""

    def notify(message: str) -> None:
        print(f"docqa bench: {message}", file=sys.stderr, flush=True)

    plan = Plan.for_mode(options.quick)
    if getattr(options, "parts", None):
        plan = dataclasses.replace(plan, parts=options.parts)
    results = run_benchmark(settings, plan, notify)
    json_path, md_path = write_reports(results, Path(options.out))
    for target in results["targets"]:
        mark = "ok  " if target["met"] else "MISS"
        print(f"{mark} {target['name']}: {target['measured']} (target {target['target']})")
    print(f"wrote {md_path} and {json_path}")
    return 0
