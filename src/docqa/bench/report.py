"""bench.md and bench.json: the results as tables."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from docqa.bench.plan import STAGES


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_indexing(results: dict[str, Any]) -> list[str]:
    """The indexing section (its figures are measured in bench/indexing.py)."""
    from docqa.bench.indexing import render_indexing as render

    return render(results)


def render_markdown(results: dict[str, Any]) -> str:
    """bench.md: the results as tables, every latency also as a ratio to the floor."""
    floor = results["floor_ms"]
    machine = results["machine"]
    out = [
        f"# docqa benchmark ({results['mode']})",
        "",
        f"{machine['cpus']} CPUs, Python {machine['python']}, onnxruntime "
        f"{machine['onnxruntime']}, faiss {machine['faiss']}; load average "
        f"{machine['load_average']} at the start, {machine.get('load_average_end')} at the end "
        f"(a shared machine: compare ratios, not milliseconds). Run took "
        f"{results['elapsed_s']} s. Encoder: {results['settings']['model']} ONNX "
        f"{results['settings']['encoder_precision']}, encoder_threads="
        f"{results['settings']['encoder_threads']}.",
        "",
        "## Targets",
        "",
        table(
            ["target", "goal", "measured", "met"],
            [
                [t["name"], t["target"], t["measured"], "yes" if t["met"] else "**no**"]
                for t in results["targets"]
            ],
        ),
        "",
        "## Floor: encoding one query",
        "",
        f"Median over {results['in_process']['floor']['n']} questions, same encoder and "
        f"thread settings as the engine: **{floor} ms** "
        f"(p95 {results['in_process']['floor']['p95_ms']} ms).",
        "",
        *_render_design_floor(results),
    ]
    out += _render_in_process(results)
    sections = (
        ("encoders", _render_encoder),
        ("http", _render_http),
        ("http_workers", _render_workers),
        ("cold_start", _render_cold),
        ("scaling", _render_scaling),
        ("ann", _render_ann),
        ("indexing", render_indexing),
    )
    for key, render in sections:
        if key in results:
            out += render(results)
    return "\n".join(out) + "\n"


def _render_encoder(results: dict[str, Any]) -> list[str]:
    rows = [
        [r["precision"], r["threads"], r["floor_ms"], r["one_worker_per_s"], r["two_workers_per_s"]]
        for r in results["encoders"]
    ]
    reference = results["reference_sentence_transformers"]
    capacity = results["encoder_capacity"]
    lines = [
        "## Encoder precision and threads",
        "",
        f"Each setting encodes the same {results['plan']['encoder_questions']} questions one at "
        "a time, the settings taking turns in three rounds (floor: the median), then back to "
        f"back from 1 and from 2 worker threads for {results['plan']['capacity_seconds']} s "
        "each.",
        "",
        table(
            [
                "precision",
                "onnxruntime threads",
                "floor ms (median)",
                "encodes/s, 1 worker",
                "encodes/s, 2 workers",
            ],
            rows,
        ),
        "",
        f"What the encoder allows on 2 cores: **{capacity['best_per_s']} encodes/s**, the best "
        f"two-worker figure of the engine's precision above or of the engine's own encoder "
        f"({capacity['engine_settings_two_workers_per_s']}/s).",
        "",
    ]
    if "median_ms" in reference:
        lines.append(
            f"Reference, sentence-transformers (torch fp32, same thread count) encoding one "
            f"query: {reference['median_ms']} ms, {reference['ratio']}x the engine's encoder "
            f"measured right after it ({reference['floor_ms']} ms)."
        )
    else:
        lines.append(f"Reference, sentence-transformers: skipped ({reference['skipped']}).")
    return [*lines, ""]


def _render_in_process(results: dict[str, Any]) -> list[str]:
    stages = results["in_process"]["stages"]
    rows = [
        [
            stage,
            s["p50_ms"],
            s["p95_ms"],
            s["p99_ms"],
            s["p50_ratio"],
            s["p95_ratio"],
            s["p99_ratio"],
        ]
        for stage, s in stages.items()
    ]
    return [
        f"## In-process latency (Engine.ask, {stages['total']['n']} different questions)",
        "",
        table(
            ["stage", "p50 ms", "p95 ms", "p99 ms", "p50 / floor", "p95 / floor", "p99 / floor"],
            rows,
        ),
        "",
    ]


def _render_workers(results: dict[str, Any]) -> list[str]:
    workers = results["http_workers"]
    if "skipped" in workers:
        return [f"## HTTP /chat against several workers: skipped ({workers['skipped']})", ""]
    lines = _render_http(results, "http_workers")
    lines[0] = f"## HTTP /chat against `docqa serve --workers {workers['workers']}` (Redis)"
    lines[-2] += (
        " Peak RSS is the largest worker's (each worker loads the index and encoder); Redis "
        "runs on the same 2 cores."
    )
    return lines


def _render_http(results: dict[str, Any], key: str = "http") -> list[str]:
    http = results[key]
    latency = http["latency"]
    rows = [
        [
            level["concurrency"],
            level["requests"],
            level["errors"],
            level["seconds"],
            level["throughput_per_s"],
            level["p50_ms"],
            round(level["p50_ms"] / results["floor_ms"], 2),
            "" if level["share_of_encoder"] is None else f"{100 * level['share_of_encoder']:.0f}%",
            f"{100 * level['client_cpu_share']:.0f}%",
            level.get("server_cpu_ms_per_answer", ""),
        ]
        for level in http["levels"]
    ]
    return [
        "## HTTP /chat against `docqa serve`",
        "",
        f"Concurrency 1, {latency['n']} requests, each paired with a bare encode of its question "
        f"in the benchmark process (paired floor {latency['floor_ms']} ms): p50 "
        f"{latency['p50_ms']} ms, p95 {latency['p95_ms']} ms, p99 {latency['p99_ms']} ms = "
        f"{latency['p50_ratio']}x / {latency['p95_ratio']}x / {latency['p99_ratio']}x the floor; "
        f"**p50 = floor + {latency['p50_minus_floor_ms']} ms**. GET /health round trip (HTTP "
        f"stack alone): {http['health_round_trip_ms']} ms.",
        "",
        table(
            [
                "concurrency",
                "requests",
                "errors",
                "seconds",
                "answers/s",
                "p50 ms",
                "p50 / floor",
                "of encoder capacity",
                "client CPU",
                "server CPU ms / answer",
            ],
            rows,
        ),
        "",
        f"Each level stops at {results['plan']['http_requests']} requests or after "
        f"{results['plan']['http_seconds']} s, whichever comes first; "
        f"`of encoder capacity` divides by "
        f"{results.get('encoder_capacity', {}).get('best_per_s')} encodes/s; "
        "`client CPU` is the load generator's own share of one core (it runs on the same 2 "
        "cores); `server CPU` is the CPU time of the server's processes per answer. "
        f"Server: healthy after {http['server_startup_s']} s, peak RSS over the run "
        f"{http['server_peak_rss_mb']} MB.",
        "",
    ]


def _render_cold(results: dict[str, Any]) -> list[str]:
    cold = results["cold_start"]
    rows = [
        [
            "`docqa ask` to first answer",
            cold["ask"]["seconds"],
            cold["ask"]["peak_rss_mb"],
            len(cold["ask"]["runs"]),
        ]
    ]
    if "serve" in cold:
        rows.append(
            [
                "`docqa serve` to /health 200",
                cold["serve"]["seconds"],
                cold["serve"]["peak_rss_mb"],
                len(cold["serve"]["runs"]),
            ]
        )
    return [
        "## Cold start",
        "",
        table(["process", "seconds (median)", "peak RSS MB", "runs"], rows),
        "",
        f"Heavy modules imported by `docqa ask`: {', '.join(cold['ask_heavy_imports']) or 'none'}.",
        "",
    ]


def _render_scaling(results: dict[str, Any]) -> list[str]:
    floor = results["floor_ms"]
    scaling = results["scaling"]
    builds = [
        [
            f"{r['factor']}x",
            r["documents"],
            r["chunks"],
            r["sentences"],
            r["vectors"],
            r["dense_index"],
            r["build_s"],
            r.get("projected_real_build_s", ""),
            r["build_peak_rss_mb"],
            r["index_mb"],
        ]
        for r in scaling
    ]
    queries = [
        [f"{r['factor']}x", r["total_p50_ms"], round(r["total_p50_ms"] / floor, 3)]
        + [r[f"{stage}_p50_ms"] for stage in STAGES[:-1]]
        + [r["cold_ask_s"], r["ask_peak_rss_mb"]]
        for r in scaling
    ]
    rate = results["embedding_rate"]
    return [
        "## Scaling with the corpus",
        "",
        "Generated corpora: the brief's paragraphs shuffled within sections and reworded, one "
        "document per copy. Real rows run `docqa index` (torch export, ONNX embedding, "
        "quantization); the synthetic row runs the same build in a child process with random "
        "unit vectors (`VectorSource`) in place of the encoder, and `projected` adds the "
        "embedding time at the rate the real builds showed"
        + (f" ({rate['texts_per_s']} texts/s between {rate['from_factors']}x)." if rate else ".")
        + f" Index size leaves out the query encoder ({scaling[0]['encoder_mb']} MB).",
        "",
        table(
            [
                "corpus",
                "docs",
                "chunks",
                "sentences",
                "vectors",
                "dense index",
                "build s",
                "projected s",
                "build peak RSS MB",
                "index MB",
            ],
            builds,
        ),
        "",
        f"Queries: Engine.ask p50 over {results['plan']['scale_questions']} questions of the "
        "set (ms, and as a ratio to the floor), by stage; then a fresh `docqa ask` on that "
        "index (seconds to its answer, peak RSS).",
        "",
        table(
            [
                "corpus",
                "ask p50 ms",
                "p50 / floor",
                *(f"{stage} p50" for stage in STAGES[:-1]),
                "cold ask s",
                "ask peak RSS MB",
            ],
            queries,
        ),
        "",
    ]


def _render_ann(results: dict[str, Any]) -> list[str]:
    ann = results["ann"]
    hnsw = ann["hnsw"]
    floor = results["floor_ms"]

    def row(name: str, ef: Any, p50: float, p95: Any, recall: float) -> list[Any]:
        return [name, ef, p50, round(p50 / floor, 3), p95, recall]

    rows = [
        row("flat", "", ann["flat"]["p50_ms"], "", 1.0),
        row("flat, 1 faiss thread", "", ann["flat"]["p50_ms_one_thread"], "", 1.0),
    ] + [
        row(f"HNSW M={hnsw['m']}", r["ef_search"], r["p50_ms"], r["p95_ms"], r["recall_at_10"])
        for r in hnsw["sweep"]
    ]
    return [
        f"## Dense search at {ann['vectors']:,} vectors (dimension {ann['dimension']})",
        "",
        f"Synthetic unit vectors with topic structure (see `VectorSource`): a query's nearest "
        f"vector has cosine {ann['query_top1_cosine']}, its 10th {ann['query_top10_cosine']}. "
        f"{ann['queries']} queries ({ann['flat']['queries']} for flat); recall@10 against exact "
        f"search. HNSW build (M {hnsw['m']}, efConstruction {hnsw['ef_construction']}): "
        f"{hnsw['build_s']} s; peak memory {ann['peak_rss_mb']} MB. indexing/store.py uses "
        "flat up to "
        f"HNSW_FROM = {ann['hnsw_from']:,} chunks and HNSW with efSearch {hnsw['ef_search']} "
        "above.",
        "",
        table(["index", "efSearch", "p50 ms", "p50 / floor", "p95 ms", "recall@10"], rows),
        "",
    ]


def write_reports(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write bench.json and bench.md into out_dir, each via a temporary file and a rename."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (
        ("bench.json", json.dumps(results, indent=2) + "\n"),
        ("bench.md", render_markdown(results)),
    ):
        target = out_dir / name
        temporary = out_dir / f".{name}.{os.getpid()}.tmp"
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)
        written.append(target)
    return written[0], written[1]


def _render_design_floor(results: dict[str, Any]) -> list[str]:
    design = results["in_process"].get("design_floor")
    if design is None:
        return []
    return [
        "## Floor of this design: one encode and one reader pass",
        "",
        f"Each question's encode plus one reader pass over the {design['reads_passages']} "
        f"passages its answer reads (one batch), median: **{design['median_ms']} ms** (p95 "
        f"{design['p95_ms']} ms); the answer's p50 is {design['answer_p50_ratio']}x that.",
        "",
    ]
