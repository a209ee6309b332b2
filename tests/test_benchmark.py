"""`docqa bench`: the report's shape and arithmetic, the generated workloads, and that answering
a question never imports torch. No timing is asserted: the machine is shared."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from docqa.bench.ann import recall_at
from docqa.bench.corpora import write_scaled_corpus
from docqa.bench.indexing import write_book
from docqa.bench.plan import HEAVY_MODULES, STAGES, BenchmarkError, Plan
from docqa.bench.questions import question_variants
from docqa.bench.report import write_reports
from docqa.bench.run import run_benchmark
from docqa.bench.stats import summarize
from docqa.bench.vectors import VectorSource
from docqa.config import Settings
from docqa.indexing.build import chunk_corpus
from docqa.indexing.corpus import read_corpus

ROOT = Path(__file__).resolve().parents[1]


def repository_settings() -> Settings:
    """The repository's corpus and index, whatever DOCQA_ variables the shell has."""
    return Settings(corpus_dir=ROOT / "corpus", index_dir=ROOT / "index")


def clean_env() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("DOCQA_")}
    env.update(DOCQA_CORPUS_DIR=str(ROOT / "corpus"), DOCQA_INDEX_DIR=str(ROOT / "index"))
    return env


# --- pure parts ---------------------------------------------------------------------------


def test_question_variants_are_all_different_strings() -> None:
    questions = ["When did it start?", "Who leads it?", "Where is it based?"]
    variants = question_variants(questions, 18)
    assert len(variants) == 18
    assert len(set(variants)) == 18


def test_question_variants_refuse_more_than_can_be_made() -> None:
    with pytest.raises(BenchmarkError, match="only 7 different questions can be made, 50 asked"):
        question_variants(["When did it start?"], 50)


def test_summary_ratios_are_latency_over_floor() -> None:
    summary = summarize([10.0, 20.0, 30.0, 40.0, 50.0], floor_ms=10.0)
    assert summary["p50_ms"] == 30.0
    assert summary["p50_ratio"] == 3.0
    assert summary["p99_ratio"] == pytest.approx(summary["p99_ms"] / 10.0, abs=1e-3)


def test_recall_counts_the_shared_share_of_the_exact_top_k() -> None:
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 2, 1], [5, 6, 0, 9]])
    assert recall_at(found, exact) == pytest.approx(0.75)


def test_synthetic_vectors_are_unit_length() -> None:
    vectors = VectorSource(dimension=64).sample(500, np.random.default_rng(0))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_synthetic_queries_have_nearer_neighbours_than_uniform_random_vectors() -> None:
    source = VectorSource(dimension=64, topics=16)
    queries = source.sample(20, np.random.default_rng(1))
    structured = source.sample(2000, np.random.default_rng(0))
    uniform = np.random.default_rng(0).standard_normal((2000, 64)).astype(np.float32)
    uniform /= np.linalg.norm(uniform, axis=1, keepdims=True)
    nearest_structured = (queries @ structured.T).max(axis=1).mean()
    nearest_uniform = (queries @ uniform.T).max(axis=1).mean()
    assert nearest_structured > nearest_uniform + 0.15


def test_scaled_corpus_has_one_reworded_document_per_copy(tmp_path: Path) -> None:
    corpus = write_scaled_corpus(ROOT / "corpus", tmp_path / "corpus", 3)
    texts = [path.read_text(encoding="utf-8") for path in sorted(corpus.glob("*.txt"))]
    assert len(texts) == 3
    assert len(set(texts)) == 3
    assert all("NATO" in text for text in texts)


def test_the_benchmark_book_repeats_almost_no_sentence(tmp_path: Path) -> None:
    # A book of repeated sentences would time an encoder cache, not the build.
    book = write_book(ROOT / "corpus", tmp_path / "book" / "book.txt", 200_000)
    assert book.stat().st_size >= 200_000
    settings = Settings(corpus_dir=book.parent)
    chunks = chunk_corpus(read_corpus(book.parent), settings)
    sentences = [c.text[s:e] for c in chunks for s, e in c.sentences]
    assert len(set(sentences)) >= 0.9 * len(sentences)


# --- the CLI's import weight ---------------------------------------------------------------

IMPORTED_HEAVY = """
import json, sys
{code}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})))
"""


def heavy_imports(code: str) -> list[str]:
    """The heavy modules a fresh interpreter holds after running `code`."""
    script = IMPORTED_HEAVY.format(code=code, heavy=HEAVY_MODULES)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    modules: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return modules


def test_importing_the_cli_imports_no_torch() -> None:
    assert heavy_imports("import docqa.cli") == []


# --- with the real model -------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_index() -> Settings:
    """The repository's index, built first if it is missing or stale."""
    from docqa.engine import Engine

    settings = repository_settings()
    Engine.load(settings)
    return settings


@pytest.mark.model
def test_loading_the_engine_and_answering_imports_no_torch(built_index: Settings) -> None:
    code = (
        "import docqa.cli\n"
        "from docqa.config import Settings\n"
        "from docqa.engine import Engine\n"
        "Engine.load(Settings(auto_rebuild=False)).ask('When did EU-NATO cooperation begin?')"
    )
    assert heavy_imports(code) == []


@pytest.fixture(scope="module")
def quick_report(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bench.json and bench.md of an in-process-only run over a few questions."""
    plan = dataclasses.replace(Plan.for_mode(quick=True), questions=12, parts=("in_process",))
    results = run_benchmark(built_index, plan, notify=lambda message: None)
    out = tmp_path_factory.mktemp("bench")
    write_reports(results, out)
    return out


def read_results(folder: Path) -> dict[str, Any]:
    results: dict[str, Any] = json.loads((folder / "bench.json").read_text(encoding="utf-8"))
    return results


@pytest.mark.model
def test_quick_report_has_every_stage_with_positive_latencies(quick_report: Path) -> None:
    results = read_results(quick_report)
    assert results["floor_ms"] > 0
    stages = results["in_process"]["stages"]
    assert set(stages) == set(STAGES)
    for stage, summary in stages.items():
        assert summary["n"] == 12, stage
        assert 0 < summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"], stage


@pytest.mark.model
def test_quick_report_ratios_are_latency_over_the_floor(quick_report: Path) -> None:
    results = read_results(quick_report)
    floor = results["floor_ms"]
    for stage, summary in results["in_process"]["stages"].items():
        for q in (50, 95, 99):
            expected = summary[f"p{q}_ms"] / floor
            assert math.isclose(summary[f"p{q}_ratio"], expected, abs_tol=2e-3), (stage, q)


@pytest.mark.model
def test_quick_report_checks_the_in_process_target(quick_report: Path) -> None:
    target = read_results(quick_report)["targets"][0]
    assert target["name"] == "in-process answer p50 / floor"
    assert (
        target["measured"]
        == read_results(quick_report)["in_process"]["stages"]["total"]["p50_ratio"]
    )


@pytest.mark.model
def test_quick_report_markdown_has_the_floor_and_the_stage_table(quick_report: Path) -> None:
    markdown = (quick_report / "bench.md").read_text(encoding="utf-8")
    assert "## Floor: encoding one query" in markdown
    assert "| stage | p50 ms | p95 ms | p99 ms | p50 / floor |" in markdown
    for stage in STAGES:
        assert f"| {stage} |" in markdown


@pytest.mark.model
@pytest.mark.server
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_the_workers_part_measures_two_workers_and_checks_their_targets(
    built_index: Settings, tmp_path: Path
) -> None:
    plan = dataclasses.replace(
        Plan.for_mode(quick=True),
        questions=40,
        http_requests=40,
        http_seconds=1.0,
        parts=("in_process", "workers"),
    )
    results = run_benchmark(built_index, plan, notify=lambda message: None)
    workers = results["http_workers"]
    assert workers["workers"] == 2
    assert [level["concurrency"] for level in workers["levels"]] == [1, 4, 8, 16]
    assert all(level["errors"] == 0 for level in workers["levels"])
    assert all(level["server_cpu_ms_per_answer"] > 0 for level in workers["levels"])
    names = [target["name"] for target in results["targets"]]
    assert "2 workers: HTTP /chat p50 - floor (ms)" in names
    assert "2 workers: throughput at concurrency 8 / encoder on 2 cores" in names
    write_reports(results, tmp_path)
    markdown = (tmp_path / "bench.md").read_text(encoding="utf-8")
    assert "## HTTP /chat against `docqa serve --workers 2` (Redis)" in markdown
