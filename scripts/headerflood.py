#!/usr/bin/env python
"""Header flood against a running `docqa serve`: connections that never finish their headers.

    docqa serve --port 8000 &
    python scripts/headerflood.py --url http://127.0.0.1:8000 --pid $! --seconds 10 \
        --json headerflood.json

Half of the attacking connections send an endless stream of short header lines, the other
half one header whose value never ends; each reconnects as soon as the server closes it.
Meanwhile /health is asked every 50 ms and, with --pid, the server's resident memory
(VmRSS) is read at each probe. The exit code is 1 when a probe failed.
"""

from __future__ import annotations

import argparse
import json
import math
import select
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

CHUNK_BYTES = 16 * 1024
PROBE_EVERY_S = 0.05
PROBE_TIMEOUT_S = 5.0
LINES = b"X-Flood: 0123456789abcdef0123456789abcdef\r\n" * (CHUNK_BYTES // 42)
VALUE = b"a" * CHUNK_BYTES


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100.0 * len(ordered)) - 1)] if ordered else math.nan


def read_rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise ValueError(f"no VmRSS for process {pid}")


def reply_status(sock: socket.socket) -> int | None:
    """The status of a reply the server sent, if one is waiting; 0 when it closed silently."""
    if not select.select([sock], [], [], 0)[0]:
        return None
    try:
        data = sock.recv(4096)
    except OSError:
        return 0
    if data.startswith(b"HTTP/1.1 "):
        return int(data.split()[1])
    return 0


class Tally:
    """Counts shared by the attacking threads."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counts[name] += n


def attack(host: str, port: int, payload: bytes, deadline: float, tally: Tally) -> None:
    """Send `payload` forever on one connection after another until the deadline."""
    while time.monotonic() < deadline:
        try:
            sock = socket.create_connection((host, port), timeout=1.0)
        except OSError:
            tally.add("connect errors")
            time.sleep(0.05)
            continue
        tally.add("connections")
        status = None
        with sock:
            try:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Flood: ")
                while time.monotonic() < deadline and status is None:
                    sock.sendall(payload)
                    tally.add("bytes written", len(payload))
                    status = reply_status(sock)
            except TimeoutError:  # the server stopped reading: wait for its answer
                status = reply_status(sock) if select.select([sock], [], [], 1.0)[0] else None
            except OSError:
                status = reply_status(sock) or 0
        if status is not None:
            tally.add(f"closed with {status or 'no reply'}")


def probe(url: str, pid: int | None, deadline: float) -> tuple[list[float], int, list[float]]:
    """/health latencies (ms), failed probes and RSS readings (MB) until the deadline."""
    latencies: list[float] = []
    failures = 0
    rss: list[float] = []
    with httpx.Client(timeout=PROBE_TIMEOUT_S) as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                ok = client.get(f"{url}/health", headers={"Connection": "close"}).status_code
            except httpx.HTTPError:
                ok = 0
            latencies.append((time.perf_counter() - started) * 1000.0)
            failures += ok != 200
            if pid:
                rss.append(read_rss_mb(pid))
            time.sleep(PROBE_EVERY_S)
    return latencies, failures, rss


def flood(options: argparse.Namespace) -> dict[str, Any]:
    """Run the attack and the probes; the summary."""
    address = urlsplit(options.url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    rss_start = read_rss_mb(options.pid) if options.pid else None
    baseline, _, _ = probe(options.url, None, time.monotonic() + 1.0)
    deadline = time.monotonic() + options.seconds
    tally = Tally()
    attackers = [
        threading.Thread(
            target=attack,
            args=(host, port, LINES if n % 2 == 0 else VALUE, deadline, tally),
            daemon=True,
        )
        for n in range(options.connections)
    ]
    for thread in attackers:
        thread.start()
    latencies, failures, rss = probe(options.url, options.pid, deadline)
    for thread in attackers:
        thread.join(timeout=5.0)
    time.sleep(0.5)
    summary: dict[str, Any] = {
        "seconds": options.seconds,
        "attacking_connections": options.connections,
        "attack": dict(tally.counts),
        "health": {
            "probes": len(latencies),
            "failures": failures,
            "baseline_p50_ms": round(percentile(baseline, 50), 2),
            "p50_ms": round(percentile(latencies, 50), 2),
            "p99_ms": round(percentile(latencies, 99), 2),
            "max_ms": round(max(latencies), 2),
        },
    }
    if options.pid:
        summary["server_rss"] = {
            "start_mb": round(rss_start or 0.0, 1),
            "peak_mb": round(max(rss), 1),
            "end_mb": round(read_rss_mb(options.pid), 1),
        }
    return summary


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--pid", type=int, help="server process id, to read its memory")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the attack")
    parser.add_argument("--connections", type=int, default=20, help="attacking connections")
    parser.add_argument("--json", type=Path, help="also write the summary to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_arguments(argv)
    summary = flood(options)
    print(json.dumps(summary, indent=2))
    if options.json:
        options.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if summary["health"]["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
