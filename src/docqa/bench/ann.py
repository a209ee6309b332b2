"""Approximate search: flat against HNSW at a million synthetic vectors."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from docqa.bench.processes import peak_rss_mb
from docqa.bench.stats import ms_since, percentile
from docqa.bench.vectors import VectorSource


def time_searches(index: Any, queries: np.ndarray, k: int = 10) -> tuple[list[float], np.ndarray]:
    """Milliseconds of each single-query search, and the rows found."""
    timings, found = [], []
    for query in queries:
        start = time.perf_counter()
        _, rows = index.search(query.reshape(1, -1), k)
        timings.append(ms_since(start))
        found.append(rows[0])
    return timings, np.vstack(found)


def recall_at(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of the exact top-k that the approximate search also returned."""
    k = exact.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact, strict=True)]))


def measure_ann(
    n: int, queries: int, flat_queries: int, ef_values: tuple[int, ...]
) -> dict[str, Any]:
    """Flat against HNSW (indexing/store.py's parameters) at n vectors; run in a child process."""
    import faiss

    from docqa.indexing import store as index_module

    source = VectorSource()
    started = time.perf_counter()
    vectors = source.sample(n, np.random.default_rng(1))
    probe = source.sample(queries, np.random.default_rng(2))
    generate_s = time.perf_counter() - started
    flat = faiss.IndexFlatIP(source.dimension)
    flat.add(vectors)
    flat_ms, _ = time_searches(flat, probe[:flat_queries])
    faiss_threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    flat_one_ms, _ = time_searches(flat, probe[:flat_queries])
    faiss.omp_set_num_threads(faiss_threads)
    nearest, exact = flat.search(probe, 10)
    del flat
    started = time.perf_counter()
    hnsw = index_module.make_hnsw_index(vectors)
    build_s = time.perf_counter() - started
    sweep = []
    for ef in sorted({*ef_values, index_module.HNSW_EF_SEARCH}):
        hnsw.hnsw.efSearch = ef
        timings, found = time_searches(hnsw, probe)
        sweep.append(
            {
                "ef_search": ef,
                "p50_ms": round(percentile(timings, 50), 3),
                "p95_ms": round(percentile(timings, 95), 3),
                "recall_at_10": round(recall_at(found, exact), 4),
            }
        )
    return {
        "vectors": n,
        "dimension": source.dimension,
        "queries": queries,
        "generate_s": round(generate_s, 1),
        "query_top1_cosine": round(float(nearest[:, 0].mean()), 3),
        "query_top10_cosine": round(float(nearest[:, 9].mean()), 3),
        "flat": {
            "p50_ms": round(percentile(flat_ms, 50), 3),
            "p50_ms_one_thread": round(percentile(flat_one_ms, 50), 3),
            "faiss_threads": faiss_threads,
            "queries": flat_queries,
        },
        "hnsw": {
            "m": index_module.HNSW_M,
            "ef_construction": index_module.HNSW_EF_CONSTRUCTION,
            "ef_search": index_module.HNSW_EF_SEARCH,
            "build_s": round(build_s, 1),
            "sweep": sweep,
        },
        "hnsw_from": index_module.HNSW_FROM,
        "peak_rss_mb": peak_rss_mb(),
    }


def chosen_ef(ann: dict[str, Any]) -> dict[str, Any]:
    """The sweep row of the efSearch that indexing/store.py uses."""
    rows = ann["hnsw"]["sweep"]
    return next(r for r in rows if r["ef_search"] == ann["hnsw"]["ef_search"])
