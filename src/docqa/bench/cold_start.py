"""Cold start: a fresh `docqa ask` to its first answer, `docqa serve` to a healthy /health."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from docqa.bench.plan import COLD_QUESTION, HEAVY_MODULES, BenchmarkError, Plan
from docqa.bench.processes import Child, docqa_command
from docqa.bench.stats import percentile
from docqa.bench.throughput import running_server


def cold_ask(env: dict[str, str], work: Path, question: str = COLD_QUESTION) -> dict[str, float]:
    """A fresh `docqa ask`: seconds to the first line of its answer, and its peak memory."""
    child = Child.start(
        docqa_command("ask", question),
        env,
        work / "ask.rss",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = child.process.stdout, child.process.stderr
    assert stdout is not None and stderr is not None
    first = stdout.readline()
    answered = time.monotonic()
    stdout.read()
    errors = stderr.read().decode(errors="replace")
    code, rss, spawned = child.finish(timeout=300)
    if code != 0 or not first.strip():
        raise BenchmarkError(f"`docqa ask` failed with exit code {code}: {errors[-800:]}")
    return {"seconds": round(answered - spawned, 3), "peak_rss_mb": rss}


IMPORT_PROBE = """
import json, sys
from docqa.cli import main
main(["ask", {question!r}])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})))
"""


def ask_imports(env: dict[str, str]) -> list[str]:
    """The heavy modules (torch, transformers, ...) that answering one question imports."""
    probe = IMPORT_PROBE.format(question=COLD_QUESTION, heavy=HEAVY_MODULES)
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise BenchmarkError(f"the import probe failed: {done.stderr[-800:]}")
    modules: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return modules


def measure_cold_start(env: dict[str, str], plan: Plan, work: Path) -> dict[str, Any]:
    """Fresh `docqa ask` to its first answer and `docqa serve` to a healthy /health."""
    asks = [cold_ask(env, work) for _ in range(plan.cold_runs)]
    serves = []
    for run in range(plan.cold_runs):
        with running_server(env, work, f"cold-serve-{run}") as server:
            pass
        serves.append({"seconds": server.startup_s, "peak_rss_mb": server.peak_rss_mb})
    return {
        "ask": median_run(asks),
        "ask_heavy_imports": ask_imports(env),
        "serve": median_run(serves),
    }


def median_run(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Median seconds and peak memory over repeated runs, with the runs themselves."""
    return {
        "seconds": round(percentile([r["seconds"] for r in runs], 50), 3),
        "peak_rss_mb": round(percentile([r["peak_rss_mb"] for r in runs], 50), 1),
        "runs": runs,
    }
