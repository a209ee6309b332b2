"""Percentiles and latency summaries, every latency also as a ratio to the floor."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between samples."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def summarize(values: Sequence[float], floor_ms: float) -> dict[str, float]:
    """p50/p95/p99 of latencies in ms, and each as a ratio to the floor."""
    summary = {f"p{q}_ms": round(percentile(values, q), 3) for q in (50, 95, 99)}
    for q in (50, 95, 99):
        summary[f"p{q}_ratio"] = round(summary[f"p{q}_ms"] / floor_ms, 3)
    summary["n"] = len(values)
    return summary


def ms_since(start: float) -> float:
    """Milliseconds since a time.perf_counter() reading."""
    return (time.perf_counter() - start) * 1000.0
