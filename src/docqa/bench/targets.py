"""Each performance target with the figure measured against it."""

from __future__ import annotations

from typing import Any

from docqa.bench.ann import chosen_ef
from docqa.bench.plan import (
    TARGET_ANN_P50_MS,
    TARGET_ANN_RECALL,
    TARGET_ANSWER_RATIO,
    TARGET_COLD_ASK_S,
    TARGET_DESIGN_RATIO,
    TARGET_HTTP_EXTRA_MS,
    TARGET_THROUGHPUT_SHARE,
)


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each performance target with the figure measured against it (for the parts run)."""
    total = results["in_process"]["stages"]["total"]
    targets = [
        _target(
            "in-process answer p50 / floor",
            f"<= {TARGET_ANSWER_RATIO}",
            total["p50_ratio"],
            total["p50_ratio"] <= TARGET_ANSWER_RATIO,
        )
    ]
    design = results["in_process"].get("design_floor")
    if design is not None:
        targets.append(
            _target(
                "in-process answer p50 / (encode + one reader pass)",
                f"<= {TARGET_DESIGN_RATIO}",
                design["answer_p50_ratio"],
                design["answer_p50_ratio"] <= TARGET_DESIGN_RATIO,
            )
        )
    if "http" in results:
        targets += _http_targets(results["http"])
    if "skipped" not in results.get("http_workers", {"skipped": ""}):
        workers = results["http_workers"]
        targets += _http_targets(workers, f"{workers['workers']} workers: ")
    if "cold_start" in results:
        targets += _cold_targets(results["cold_start"])
    if "indexing" in results:
        from docqa.bench.indexing import indexing_targets

        targets += indexing_targets(results["indexing"])
    if "ann" in results:
        ann = results["ann"]
        row = chosen_ef(ann)
        targets.append(
            _target(
                f"HNSW at {ann['vectors']:,}: p50 ms / recall@10 (efSearch {row['ef_search']})",
                f"<= {TARGET_ANN_P50_MS} / >= {TARGET_ANN_RECALL}",
                f"{row['p50_ms']} / {row['recall_at_10']}",
                row["p50_ms"] <= TARGET_ANN_P50_MS and row["recall_at_10"] >= TARGET_ANN_RECALL,
            )
        )
    return targets


def _http_targets(http: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    extra = http["latency"]["p50_minus_floor_ms"]
    at8 = next(level for level in http["levels"] if level["concurrency"] == 8)
    share = at8["share_of_encoder"]
    return [
        _target(
            f"{prefix}HTTP /chat p50 - floor (ms)",
            f"<= {TARGET_HTTP_EXTRA_MS}",
            extra,
            extra <= TARGET_HTTP_EXTRA_MS,
        ),
        _target(
            f"{prefix}throughput at concurrency 8 / encoder on 2 cores",
            f">= {TARGET_THROUGHPUT_SHARE}, 0 errors",
            f"{share} ({at8['errors']} errors)",
            share is not None and share >= TARGET_THROUGHPUT_SHARE and at8["errors"] == 0,
        ),
    ]


def _cold_targets(cold: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _target(
            "cold `docqa ask` to first answer (s)",
            f"<= {TARGET_COLD_ASK_S}",
            cold["ask"]["seconds"],
            cold["ask"]["seconds"] <= TARGET_COLD_ASK_S,
        ),
        _target(
            "`docqa ask` imports torch/transformers",
            "none",
            ", ".join(cold["ask_heavy_imports"]) or "none",
            not cold["ask_heavy_imports"],
        ),
    ]


def _target(name: str, target: str, measured: Any, met: bool) -> dict[str, Any]:
    return {"name": name, "target": target, "measured": measured, "met": bool(met)}
