"""Latency, throughput, cold start and scaling: `docqa bench` writes bench.md and bench.json.

The machine is small and shared, so absolute milliseconds drift from run to run. Every
latency is therefore also given as a ratio to the floor: the bare cost of encoding one
query with the engine's own ONNX encoder, measured in the same run, interleaved with the
measurement it is compared to.

Heavy work that would leave memory or threads behind (the torch reference, the synthetic
index builds, the million-vector search) runs in child processes, and so do the `docqa`
commands whose start-up and peak memory are measured.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from docqa.config import Settings
from docqa.models import DocqaError

STAGES = ("encode", "dense", "lexical", "fusion", "answer", "total")
PARTS = ("in_process", "encoder", "http", "cold_start", "scaling", "ann")
"""What a run can measure; the in-process part always runs, as it measures the floor."""
CONCURRENCIES = (1, 4, 8, 16)
HEAVY_MODULES = ("torch", "transformers", "sentence_transformers")
QUESTIONS_FILE = Path("eval/questions.jsonl")
COLD_QUESTION = "When did EU-NATO coordination slow down?"

# The targets this benchmark reports against (see the README's performance section).
TARGET_ANSWER_RATIO = 1.3
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


# ---------------------------------------------------------------- statistics


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


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


# ---------------------------------------------------------------- questions


def load_questions(path: Path = QUESTIONS_FILE) -> list[str]:
    """The questions of the evaluation set, in file order."""
    if not path.is_file():
        raise BenchmarkError(f"{path} not found: run `docqa bench` from the project folder")
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)["question"] for line in handle if line.strip()]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


REPHRASINGS: tuple[Callable[[str, str], str], ...] = (
    lambda q, other: q,
    lambda q, other: f"According to the brief, {_lower_first(q)}",
    lambda q, other: f"Can you tell me {_lower_first(q.rstrip('?'))}?",
    lambda q, other: f"{q.rstrip('?')}, according to the document?",
    lambda q, other: f"{q} And also: {_lower_first(other)}",
    lambda q, other: f"Briefly: {_lower_first(q)}",
    lambda q, other: q.lower().rstrip("?"),
)
"""Ways to say a question differently; `other` is a second question to combine with."""


def question_variants(questions: list[str], n: int, seed: int = 0) -> list[str]:
    """n different question strings: the set's questions, rephrased and combined, shuffled."""
    variants: dict[str, None] = {}
    for rephrase in REPHRASINGS:
        for i, question in enumerate(questions):
            variants[rephrase(question, questions[(i + 7) % len(questions)])] = None
    ordered = list(variants)
    if n > len(ordered):
        raise BenchmarkError(f"only {len(ordered)} different questions can be made, {n} asked")
    random.Random(seed).shuffle(ordered)
    return ordered[:n]


# ---------------------------------------------------------------- the encoder floor


def time_encodes(embedder: Any, texts: Sequence[str]) -> list[float]:
    """Milliseconds to encode each text alone."""
    timings = []
    for text in texts:
        start = time.perf_counter()
        embedder.embed([text])
        timings.append(_ms(start))
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
    from docqa.embedding import OnnxEmbedder

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
    from docqa.embedding import export_onnx, resolve_model_path

    return export_onnx(resolve_model_path(model), out_dir)


def reference_encode(model: str, texts: list[str], threads: int) -> dict[str, Any]:
    """Median ms to encode one query with sentence-transformers (torch); run in a child."""
    try:
        import torch

        from docqa.embedding import EmbeddingError, SentenceTransformerEmbedder
    except ImportError as error:
        return {"skipped": f"sentence-transformers is not importable ({error})"}
    torch.set_num_threads(threads or os.cpu_count() or 1)
    try:
        embedder = SentenceTransformerEmbedder(model)
    except EmbeddingError as error:
        return {"skipped": str(error)}
    time_encodes(embedder, texts[:5])
    return {"median_ms": round(percentile(time_encodes(embedder, texts), 50), 3)}


def in_child(function: Callable[..., Any], *args: Any) -> Any:
    """Run function(*args) in a fresh process, so its imports and memory go with it."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def peak_rss_mb() -> float:
    """This process's peak resident memory since its program started, in MB."""
    # VmHWM, not ru_maxrss: a spawned child's ru_maxrss includes its parent's size at fork.
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ---------------------------------------------------------------- in-process latency


def measure_in_process(engine: Any, questions: list[str]) -> dict[str, Any]:
    """Engine.ask latency by stage, each question paired with a bare encode of it (the floor)."""
    for question in questions[:10]:
        engine.ask(question)
    floor: list[float] = []
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for i, question in enumerate(questions):
        # Alternate which goes first, so neither always finds the caches warm.
        if i % 2:
            floor.extend(time_encodes(engine.embedder, [question]))
        answer = engine.ask(question)
        if not i % 2:
            floor.extend(time_encodes(engine.embedder, [question]))
        for stage in STAGES:
            stages[stage].append(answer.timings_ms[stage])
    floor_ms = percentile(floor, 50)
    return {
        "floor": {
            "median_ms": round(floor_ms, 3),
            "p95_ms": round(percentile(floor, 95), 3),
            "n": len(floor),
        },
        "stages": {stage: summarize(values, floor_ms) for stage, values in stages.items()},
    }


# ---------------------------------------------------------------- child processes


def docqa_command(*args: str) -> list[str]:
    """The `docqa` console script of this environment (or `python -m docqa.cli`)."""
    script = Path(sys.executable).with_name("docqa")
    if script.is_file():
        return [str(script), *args]
    return [sys.executable, "-m", "docqa.cli", *args]


def settings_env(settings: Settings, **overrides: Any) -> dict[str, str]:
    """The environment that gives a child process these settings."""
    env = dict(os.environ)
    values = {
        "corpus_dir": settings.corpus_dir.resolve(),
        "index_dir": settings.index_dir.resolve(),
        "model": settings.model,
        "encoder_threads": settings.encoder_threads,
        "chunk_target_chars": settings.chunk_target_chars,
        "chunk_max_chars": settings.chunk_max_chars,
        "chunk_min_chars": settings.chunk_min_chars,
        **overrides,
    }
    env.update({f"DOCQA_{name.upper()}": str(value) for name, value in values.items()})
    return env


# Peak memory of a child comes from a small stand-in parent: a process forked from this
# (large) one would report this one's size as its own peak (Linux folds the pre-exec
# memory into ru_maxrss), so the stand-in spawns the command, forwards SIGINT and SIGTERM
# to it, and writes its ru_maxrss and the moment it was spawned to a file.
SPAWN_PROBE = """
import os, signal, sys, time
child = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
spawned = time.monotonic()
def forward(number, frame):
    os.kill(child, number)
signal.signal(signal.SIGINT, forward)
signal.signal(signal.SIGTERM, forward)
_, status, usage = os.wait4(child, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_maxrss} {spawned}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass
class Child:
    """A command running under the spawn probe."""

    process: subprocess.Popen[bytes]
    report: Path
    command: list[str]

    @classmethod
    def start(cls, command: list[str], env: dict[str, str], report: Path, **popen: Any) -> Child:
        """Start `command` under the probe (in its own session, so it can be killed whole)."""
        probe = [sys.executable, "-S", "-c", SPAWN_PROBE, str(report), *command]
        return cls(
            subprocess.Popen(probe, env=env, start_new_session=True, **popen), report, command
        )

    def finish(self, timeout: float) -> tuple[int, float, float]:
        """Wait for the command: its exit code, peak RSS (MB) and when it was spawned."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise BenchmarkError(f"`{self.name}` did not finish within {timeout:.0f} s") from None
        maxrss_kb, spawned = self.report.read_text().split()
        return code, round(int(maxrss_kb) / 1024, 1), float(spawned)

    def stop(self, timeout: float = 15.0) -> tuple[int, float, float]:
        """Ask the command to stop (SIGINT, as Ctrl-C would) and wait for it."""
        self.process.send_signal(signal.SIGINT)
        return self.finish(timeout)

    @property
    def name(self) -> str:
        return " ".join(Path(self.command[0]).name.split() + self.command[1:2])


def run_timed(command: list[str], env: dict[str, str], work: Path, name: str) -> dict[str, float]:
    """Run a command to completion: wall seconds and peak memory; raises if it fails."""
    log = work / f"{name}.log"
    with open(log, "wb") as output:
        child = Child.start(command, env, work / f"{name}.rss", stdout=output, stderr=output)
        code, rss, spawned = child.finish(timeout=3600)
    seconds = time.monotonic() - spawned
    if code != 0:
        tail = log.read_text(errors="replace")[-800:]
        raise BenchmarkError(f"`{child.name}` failed with exit code {code}: {tail}")
    return {"seconds": round(seconds, 3), "peak_rss_mb": rss}


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


# ---------------------------------------------------------------- HTTP


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    """A running `docqa serve`; startup and peak memory are known once it has stopped."""

    url: str
    startup_s: float = 0.0
    peak_rss_mb: float = 0.0


@contextmanager
def running_server(
    env: dict[str, str], work: Path, name: str, timeout: float = 120.0
) -> Iterator[Server]:
    """Start `docqa serve` on a free port, wait until /health answers 200, stop it after."""
    import httpx

    port = free_port()
    server = Server(f"http://127.0.0.1:{port}")
    log = work / f"{name}.log"
    with open(log, "wb") as output:
        child = Child.start(
            docqa_command("serve", "--host", "127.0.0.1", "--port", str(port)),
            env,
            work / f"{name}.rss",
            stdout=output,
            stderr=output,
        )
    deadline = time.monotonic() + timeout
    try:
        while True:
            if child.process.poll() is not None:
                tail = log.read_text(errors="replace")[-800:]
                raise BenchmarkError(f"`docqa serve` exited early: {tail}")
            try:
                if httpx.get(f"{server.url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BenchmarkError(f"`docqa serve` was not healthy after {timeout:.0f} s")
            time.sleep(0.01)
        ready = time.monotonic()
        yield server
    finally:
        if child.process.poll() is None:
            _, server.peak_rss_mb, spawned = child.stop()
            server.startup_s = round(ready - spawned, 3)


def health_round_trip(url: str, n: int) -> float:
    """Median ms of GET /health from one client: the HTTP stack without the engine."""
    import httpx

    timings = []
    with httpx.Client(base_url=url, timeout=10.0) as client:
        for _ in range(n):
            start = time.perf_counter()
            client.get("/health")
            timings.append(_ms(start))
    return round(percentile(timings, 50), 3)


def chat_body(message: str) -> dict[str, Any]:
    """A POST /chat body that starts a new conversation."""
    return {"message": message, "conversation_id": None, "k": 5}


def run_level(
    url: str, messages: list[str], concurrency: int, max_requests: int, max_seconds: float
) -> dict[str, Any]:
    """POST /chat from `concurrency` clients until max_requests or max_seconds.

    Every client connects (one GET /health) before the clock starts."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    issued = itertools.count()
    ready = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def client_loop() -> None:
        with httpx.Client(base_url=url, timeout=60.0) as client:
            client.get("/health")
            ready.wait()
            while time.perf_counter() < deadline[0] and (i := next(issued)) < max_requests:
                start = time.perf_counter()
                try:
                    status = client.post("/chat", json=chat_body(messages[i % len(messages)]))
                    problem = "" if status.status_code == 200 else f"HTTP {status.status_code}"
                except httpx.HTTPError as error:
                    problem = type(error).__name__
                (errors.append(problem) if problem else latencies.append(_ms(start)))

    clients = [threading.Thread(target=client_loop) for _ in range(concurrency)]
    for client in clients:
        client.start()
    deadline[0] = time.perf_counter() + max_seconds
    ready.wait()
    started, cpu = time.perf_counter(), time.process_time()
    for client in clients:
        client.join()
    seconds = time.perf_counter() - started
    if not latencies:
        raise BenchmarkError(f"no /chat request succeeded at concurrency {concurrency}: {errors}")
    return {
        "concurrency": concurrency,
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "seconds": round(seconds, 3),
        "throughput_per_s": round(len(latencies) / seconds, 2),
        "p50_ms": round(percentile(latencies, 50), 3),
        "client_cpu_share": round((time.process_time() - cpu) / seconds, 3),
    }


def paired_latency(url: str, embedder: Any, questions: list[str]) -> dict[str, Any]:
    """/chat latency from one client, each request paired with a bare encode of its question."""
    import httpx

    floor, latencies = [], []
    with httpx.Client(base_url=url, timeout=60.0) as client:
        for question in questions:
            floor.extend(time_encodes(embedder, [question]))
            start = time.perf_counter()
            response = client.post("/chat", json=chat_body(question))
            latencies.append(_ms(start))
            if response.status_code != 200:
                raise BenchmarkError(f"/chat answered {response.status_code}: {response.text}")
    floor_ms = percentile(floor, 50)
    latency = summarize(latencies, floor_ms)
    latency["floor_ms"] = round(floor_ms, 3)
    latency["p50_minus_floor_ms"] = round(latency["p50_ms"] - floor_ms, 3)
    return latency


def measure_http(
    env: dict[str, str],
    embedder: Any,
    questions: list[str],
    capacity: float | None,
    plan: Plan,
    work: Path,
) -> dict[str, Any]:
    """/chat latency at concurrency 1 and throughput at 1, 4, 8 and 16 against `docqa serve`.

    `capacity` (bare encodes per second on this machine) turns throughput into a share."""
    with running_server(env, work, "serve") as server:
        run_level(server.url, questions[:10], 1, 10, 30.0)  # warm-up
        health_ms = health_round_trip(server.url, 50)
        latency = paired_latency(server.url, embedder, questions[: plan.http_requests])
        levels = []
        for offset, concurrency in enumerate(CONCURRENCIES):
            messages = questions[offset * 17 :] + questions[: offset * 17]
            level = run_level(
                server.url, messages, concurrency, plan.http_requests, plan.http_seconds
            )
            share = level["throughput_per_s"] / capacity if capacity else None
            level["share_of_encoder"] = None if share is None else round(share, 3)
            levels.append(level)
    return {
        "latency": latency,
        "health_round_trip_ms": health_ms,
        "levels": levels,
        "server_startup_s": server.startup_s,
        "server_peak_rss_mb": server.peak_rss_mb,
    }


# ---------------------------------------------------------------- generated corpora


# Word swaps applied to the brief's sentences; each generated document draws its own subset.
REWRITES = (
    ("cooperation", "collaboration"),
    ("organisations", "institutions"),
    ("organizations", "bodies"),
    ("Alliance", "coalition"),
    ("strengthen", "reinforce"),
    ("security", "safety"),
    ("defence", "defense"),
    ("members", "participants"),
    ("important", "significant"),
    ("however", "nevertheless"),
    ("However", "Nevertheless"),
    ("countries", "states"),
    ("both", "the two"),
    ("recently", "lately"),
    ("joint", "common"),
    ("partnership", "relationship"),
    ("threats", "dangers"),
    ("capabilities", "means"),
    ("increase", "growth"),
    ("mission", "operation"),
    ("support", "assistance"),
    ("European", "continental"),
)


def rewrite_sentence(text: str, swaps: dict[str, str]) -> str:
    """The sentence with every swapped word replaced."""
    return " ".join(swaps.get(word, word) for word in text.split(" "))


def generate_document(sections: list[tuple[str, list[Any]]], rng: random.Random) -> str:
    """A new document from the brief: each section's paragraphs shuffled and reworded."""
    swaps = dict(pair for pair in REWRITES if rng.random() < 0.5)
    parts = []
    for title, blocks in sections:
        if title != sections[0][0]:
            parts.append(title.upper())
        paragraphs = [rewrite_sentence(block.text, swaps) for block in blocks]
        rng.shuffle(paragraphs)
        parts.extend(paragraphs)
    return "\n\n".join(parts) + "\n"


def write_scaled_corpus(corpus_dir: Path, out_dir: Path, factor: int, seed: int = 0) -> Path:
    """A corpus of `factor` documents rewritten from those in corpus_dir."""
    from docqa.chunking import split_sections
    from docqa.cleaning import split_blocks
    from docqa.corpus import read_corpus

    sources = [split_sections(split_blocks(d.text)) for d in read_corpus(corpus_dir)]
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    for number in range(factor):
        text = generate_document(sources[number % len(sources)], rng)
        (out_dir / f"generated-{number:05d}.txt").write_text(text, encoding="utf-8")
    return out_dir


# ---------------------------------------------------------------- synthetic vectors


class VectorSource:
    """Unit vectors shaped like sentence embeddings: topic centres in an anisotropic space.

    Uniform random unit vectors have no neighbourhoods (in 384 dimensions every cosine is
    0 +- 0.05), so an approximate index's recall on them says nothing about text. Here the
    variance of direction i falls as 1/i, as in embedding spectra, and `spread` is set so
    that a query's nearest vector has cosine ~0.6, as the brief's questions have with their
    best passage.
    """

    def __init__(
        self, dimension: int = 384, topics: int = 4096, spread: float = 1.2, seed: int = 0
    ):
        rng = np.random.default_rng(seed)
        self.dimension = dimension
        self.scale = (np.arange(1, dimension + 1) ** -0.5).astype(np.float32)
        rotation, _ = np.linalg.qr(rng.standard_normal((dimension, dimension)))
        self.rotation = rotation.astype(np.float32)
        self.centres = rng.standard_normal((topics, dimension), dtype=np.float32) * self.scale
        self.spread = spread

    def sample(self, n: int, rng: np.random.Generator, block: int = 65_536) -> np.ndarray:
        """n unit vectors (float32), generated in blocks to bound the memory."""
        out = np.empty((n, self.dimension), dtype=np.float32)
        for start in range(0, n, block):
            size = min(block, n - start)
            centres = self.centres[rng.integers(0, len(self.centres), size)]
            noise = rng.standard_normal((size, self.dimension), dtype=np.float32)
            vectors = (centres + noise * self.scale * self.spread) @ self.rotation
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            out[start : start + size] = vectors
        return out


class SyntheticEmbedder:
    """An Embedder that ignores the text and draws vectors from a VectorSource."""

    def __init__(self, name: str, source: VectorSource, seed: int = 1) -> None:
        self.name = name
        self.dimension = source.dimension
        self.source = source
        self.rng = np.random.default_rng(seed)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One synthetic unit vector per text."""
        return self.source.sample(len(texts), self.rng)


def build_synthetic_index(settings: Settings, encoder_dir: Path) -> dict[str, Any]:
    """Run index.build_index with synthetic vectors in place of the encoder; run in a child.

    Everything else (cleaning, chunking, BM25, FAISS, writing) is the real build. The real
    query encoder is linked in, so `docqa ask` can load the result.
    """
    import docqa.embedding
    import docqa.index

    def link_encoder(model_path: Path, out_dir: Path) -> Path:
        out_dir.symlink_to(encoder_dir.resolve(), target_is_directory=True)
        return out_dir

    def synthetic(onnx_dir: Path, **_: Any) -> SyntheticEmbedder:
        return SyntheticEmbedder(docqa.embedding.model_name(Path(settings.model)), VectorSource())

    replacements = {
        "export_onnx": link_encoder,
        "quantize_onnx": lambda src, dst: dst,  # the linked encoder is the one queries use
        "OnnxEmbedder": synthetic,
    }
    for module in (docqa.embedding, docqa.index):
        for name, replacement in replacements.items():
            if hasattr(module, name):
                setattr(module, name, replacement)
    started = time.perf_counter()
    docqa.index.build_index(settings, progress=False)
    return {"seconds": round(time.perf_counter() - started, 3), "peak_rss_mb": peak_rss_mb()}


# ---------------------------------------------------------------- scaling


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
    from docqa.index import current_build, read_manifest

    folder = current_build(index_dir)
    if folder is None:
        raise BenchmarkError(f"no index was built in {index_dir}")
    manifest = read_manifest(folder)
    starts = np.load(folder / "sentence_starts.npy")
    return {
        "chunks": manifest["chunks"],
        "sentences": int(starts[-1]),
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
    from docqa.index import current_build

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


# ---------------------------------------------------------------- approximate search


def time_searches(index: Any, queries: np.ndarray, k: int = 10) -> tuple[list[float], np.ndarray]:
    """Milliseconds of each single-query search, and the rows found."""
    timings, found = [], []
    for query in queries:
        start = time.perf_counter()
        _, rows = index.search(query.reshape(1, -1), k)
        timings.append(_ms(start))
        found.append(rows[0])
    return timings, np.vstack(found)


def recall_at(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of the exact top-k that the approximate search also returned."""
    k = exact.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact, strict=True)]))


def measure_ann(
    n: int, queries: int, flat_queries: int, ef_values: tuple[int, ...]
) -> dict[str, Any]:
    """Flat against HNSW (index.py's parameters) at n vectors; run in a child process."""
    import faiss

    from docqa import index as index_module

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
    """The sweep row of the efSearch that index.py uses."""
    rows = ann["hnsw"]["sweep"]
    return next(r for r in rows if r["ef_search"] == ann["hnsw"]["ef_search"])


# ---------------------------------------------------------------- the whole run


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
        del engine
        gc.collect()
        if "cold_start" in plan.parts:
            notify("cold start: docqa ask and docqa serve in fresh processes")
            results["cold_start"] = measure_cold_start(serve_env, plan, work)
        if "scaling" in plan.parts:
            results.update(measure_scaling(settings, base, plan, work, notify))
    if "ann" in plan.parts:
        notify(f"approximate search: flat against HNSW at {plan.ann_vectors:,} vectors")
        results["ann"] = in_child(
            measure_ann, plan.ann_vectors, plan.ann_queries, plan.flat_queries, plan.ef_search
        )
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    results["targets"] = check_targets(results)
    return results


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
    if "http" in results:
        targets += _http_targets(results["http"])
    if "cold_start" in results:
        targets += _cold_targets(results["cold_start"])
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


def _http_targets(http: dict[str, Any]) -> list[dict[str, Any]]:
    extra = http["latency"]["p50_minus_floor_ms"]
    at8 = next(level for level in http["levels"] if level["concurrency"] == 8)
    share = at8["share_of_encoder"]
    return [
        _target(
            "HTTP /chat p50 - floor (ms)",
            f"<= {TARGET_HTTP_EXTRA_MS}",
            extra,
            extra <= TARGET_HTTP_EXTRA_MS,
        ),
        _target(
            "throughput at concurrency 8 / encoder on 2 cores",
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


# ---------------------------------------------------------------- the report


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


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
    ]
    out += _render_in_process(results)
    sections = (
        ("encoders", _render_encoder),
        ("http", _render_http),
        ("cold_start", _render_cold),
        ("scaling", _render_scaling),
        ("ann", _render_ann),
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


def _render_http(results: dict[str, Any]) -> list[str]:
    http = results["http"]
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
            ],
            rows,
        ),
        "",
        f"Each level stops at {results['plan']['http_requests']} requests or after "
        f"{results['plan']['http_seconds']} s, whichever comes first; "
        f"`of encoder capacity` divides by "
        f"{results.get('encoder_capacity', {}).get('best_per_s')} encodes/s; "
        "`client CPU` is the load generator's own share of one core (it runs on the same 2 "
        f"cores). Server: healthy after {http['server_startup_s']} s, peak RSS over the run "
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
        f"{hnsw['build_s']} s; peak memory {ann['peak_rss_mb']} MB. index.py uses flat up to "
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


def run_command(options: argparse.Namespace, settings: Settings) -> int:
    """`docqa bench [--quick] [--out DIR]`: measure, then write bench.md and bench.json."""

    def notify(message: str) -> None:
        print(f"docqa bench: {message}", file=sys.stderr, flush=True)

    results = run_benchmark(settings, Plan.for_mode(options.quick), notify)
    json_path, md_path = write_reports(results, Path(options.out))
    for target in results["targets"]:
        mark = "ok  " if target["met"] else "MISS"
        print(f"{mark} {target['name']}: {target['measured']} (target {target['target']})")
    print(f"wrote {md_path} and {json_path}")
    return 0
