"""Several workers: /chat latency and throughput against `docqa serve --workers 2`, sharing
conversations through a redis-server that the run starts on a free loopback port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from docqa.bench.plan import BenchmarkError, Plan
from docqa.bench.throughput import free_port, measure_http

WORKERS = 2
"""One worker per core of the machine the targets were set on."""


@contextmanager
def running_redis(work: Path) -> Iterator[str]:
    """A redis-server on a free 127.0.0.1 port (no persistence); yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchmarkError("redis-server is not installed (scripts/install.sh installs it)")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(work)]
    with open(work / "redis.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise BenchmarkError("redis-server did not start") from None
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def measure_workers(
    env: dict[str, str],
    embedder: Any,
    questions: list[str],
    capacity: float | None,
    plan: Plan,
    work: Path,
) -> dict[str, Any]:
    """measure_http against `docqa serve --workers 2` with its state in Redis; skipped (with
    the reason) when redis-server is not installed."""
    if shutil.which("redis-server") is None:
        return {"skipped": "redis-server is not installed"}
    with running_redis(work) as url:
        result = measure_http(
            {**env, "DOCQA_REDIS_URL": url},
            embedder,
            questions,
            capacity,
            plan,
            work,
            serve_args=("--workers", str(WORKERS)),
        )
    return {"workers": WORKERS, **result}
