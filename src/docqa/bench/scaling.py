"""Scaling with the corpus: build, query and cold-start indexes of growing corpora."""

from __future__ import annotations

import gc
import shutil
from pathlib import Path
from typing import Any

from docqa.bench.cold_start import cold_ask
from docqa.bench.corpora import write_scaled_corpus
from docqa.bench.plan import BenchmarkError, Notify, Plan
from docqa.bench.processes import docqa_command, in_child, run_timed, settings_env
from docqa.bench.stats import percentile
from docqa.bench.vectors import build_synthetic_index
from docqa.config import Settings


def folder_mb(folder: Path, skip: str = "encoder") -> float:
    """Size of the files under a folder in MB, leaving out the `skip` subfolder."""
    total = sum(
        path.stat().st_size
        for path in folder.rglob("*")
        if path.is_file() and skip not in path.relative_to(folder).parts
    )
    return round(total / 2**20, 2)


def index_facts(index_dir: Path) -> dict[str, Any]:
    """Chunks, sentences, dense index kind and size on disk of the current build."""
    from docqa.indexing.store import current_build, read_manifest, sentence_count

    folder = current_build(index_dir)
    if folder is None:
        raise BenchmarkError(f"no index was built in {index_dir}")
    manifest = read_manifest(folder)
    return {
        "chunks": manifest["chunks"],
        "sentences": sentence_count(folder),
        "dense_index": manifest.get("dense_index"),
        "index_mb": folder_mb(folder),
        "encoder_mb": folder_mb(folder / "encoder", skip="\0")
        if (folder / "encoder").is_dir()
        else 0,
    }


def measure_queries(settings: Settings, questions: list[str]) -> dict[str, float]:
    """p50 of Engine.ask (total and dense/lexical stages) on an index, in this process."""
    from docqa.engine import Engine

    engine = Engine.load(settings.model_copy(update={"auto_rebuild": False}))
    for question in questions[:5]:
        engine.ask(question)
    answers = [engine.ask(question) for question in questions]
    result = {
        f"{stage}_p50_ms": round(percentile([a.timings_ms[stage] for a in answers], 50), 3)
        for stage in ("total", "encode", "dense", "lexical", "fusion", "answer")
    }
    del engine, answers
    gc.collect()
    return result


def measure_scale(
    settings: Settings,
    factor: int,
    real: bool,
    questions: list[str],
    plan: Plan,
    work: Path,
    notify: Notify,
) -> dict[str, Any]:
    """Build, query and cold-start an index of the brief copied `factor` times."""
    corpus_dir = settings.corpus_dir
    if factor > 1:
        corpus_dir = write_scaled_corpus(settings.corpus_dir, work / f"corpus-{factor}x", factor)
    scaled = settings.model_copy(
        update={"corpus_dir": corpus_dir, "index_dir": work / f"index-{factor}x"}
    )
    notify(f"scaling {factor}x: building ({'real' if real else 'synthetic'} vectors)")
    if real:
        build = run_timed(
            docqa_command("index", "--force"), settings_env(scaled), work, f"index-{factor}x"
        )
    else:
        build = in_child(build_synthetic_index, scaled, query_encoder_dir(settings))
    row: dict[str, Any] = {
        "factor": factor,
        "vectors": "real" if real else "synthetic",
        "documents": len(list(corpus_dir.glob("*.txt"))),
        "build_s": build["seconds"],
        "build_peak_rss_mb": build["peak_rss_mb"],
        **index_facts(scaled.index_dir),
    }
    notify(f"scaling {factor}x: {row['chunks']} chunks; querying")
    row.update(measure_queries(scaled, questions[: plan.scale_questions]))
    cold = cold_ask(settings_env(scaled, auto_rebuild=False), work)
    row["cold_ask_s"] = cold["seconds"]
    row["ask_peak_rss_mb"] = cold["peak_rss_mb"]
    shutil.rmtree(scaled.index_dir, ignore_errors=True)
    return row


def query_encoder_dir(settings: Settings) -> Path:
    """The query encoder folder of the current build."""
    from docqa.indexing.store import current_build

    folder = current_build(settings.index_dir)
    if folder is None:
        raise BenchmarkError(f"no index in {settings.index_dir} (run `docqa index`)")
    return folder / "encoder"


def project_real_build(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Embedding rate from the two largest real builds, and the real build time it implies
    for each synthetic row."""
    real = [r for r in rows if r["vectors"] == "real"]
    if len(real) < 2:
        return None
    small, large = real[-2], real[-1]
    texts = large["chunks"] + large["sentences"] - small["chunks"] - small["sentences"]
    rate = texts / max(large["build_s"] - small["build_s"], 1e-9)
    for row in rows:
        if row["vectors"] == "synthetic":
            row["projected_real_build_s"] = round(
                row["build_s"] + (row["chunks"] + row["sentences"]) / rate, 1
            )
    return {"texts_per_s": round(rate, 1), "from_factors": [small["factor"], large["factor"]]}


def measure_scaling(
    settings: Settings, questions: list[str], plan: Plan, work: Path, notify: Notify
) -> dict[str, Any]:
    """The scaling rows (real builds, then the synthetic one) and the embedding rate."""
    rows = [
        measure_scale(settings, factor, factor in plan.real_scales, questions, plan, work, notify)
        for factor in (*plan.real_scales, plan.synthetic_scale)
    ]
    return {
        "scaling": rows,
        "embedding_rate": project_real_build(rows),
        "build": {k: rows[0][k] for k in ("build_s", "build_peak_rss_mb", "chunks")},
    }
