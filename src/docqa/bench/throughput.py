"""HTTP: /chat latency and throughput against a running `docqa serve`."""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docqa.bench.encoder import time_encodes
from docqa.bench.plan import CONCURRENCIES, BenchmarkError, Plan
from docqa.bench.processes import Child, docqa_command
from docqa.bench.stats import ms_since, percentile, summarize


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
    pid: int = 0
    """The process the server runs under (its workers are its descendants)."""

    def cpu_s(self) -> float:
        """CPU seconds used so far by the server and every process under it (Linux)."""
        return tree_cpu_s(self.pid)


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants; 0 without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(tree_cpu_s(int(child)) for child in children)


@contextmanager
def running_server(
    env: dict[str, str],
    work: Path,
    name: str,
    timeout: float = 120.0,
    serve_args: tuple[str, ...] = (),
) -> Iterator[Server]:
    """Start `docqa serve [serve_args]` on a free port, wait until /health answers 200, stop
    it after."""
    import httpx

    port = free_port()
    server = Server(f"http://127.0.0.1:{port}")
    log = work / f"{name}.log"
    with open(log, "wb") as output:
        child = Child.start(
            docqa_command("serve", "--host", "127.0.0.1", "--port", str(port), *serve_args),
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
        server.pid = child.process.pid
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
            timings.append(ms_since(start))
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
                (errors.append(problem) if problem else latencies.append(ms_since(start)))

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
            latencies.append(ms_since(start))
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
    serve_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """/chat latency at concurrency 1 and throughput at 1, 4, 8 and 16 against `docqa serve`.

    `capacity` (bare encodes per second on this machine) turns throughput into a share."""
    name = "-".join(("serve", *serve_args)).replace("--", "")
    with running_server(env, work, name, serve_args=serve_args) as server:
        run_level(server.url, questions[:10], 1, 10, 30.0)  # warm-up
        health_ms = health_round_trip(server.url, 50)
        latency = paired_latency(server.url, embedder, questions[: plan.http_requests])
        levels = []
        for offset, concurrency in enumerate(CONCURRENCIES):
            messages = questions[offset * 17 :] + questions[: offset * 17]
            cpu_before = server.cpu_s()
            level = run_level(
                server.url, messages, concurrency, plan.http_requests, plan.http_seconds
            )
            # CPU per answer does not depend on what else the shared machine runs, as
            # answers per second do: it says what the cores could give if they were ours.
            cpu_ms = 1000.0 * (server.cpu_s() - cpu_before) / max(1, level["requests"])
            level["server_cpu_ms_per_answer"] = round(cpu_ms, 3)
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
