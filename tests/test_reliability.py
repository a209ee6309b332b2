"""`docqa serve` as a real process with the real model, under faults, abuse and load.

SIGTERM with requests in flight, slow and stalled clients, an endless chunked body, path
traversal as raw HTTP (so nothing normalises the path first), a corpus that changes under
a running server, a missing or damaged index at start-up, and a bounded load test
(scripts/loadtest.py) that also watches the server's memory. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import json
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from docqa.indexing.build import build_lock
from docqa.indexing.store import current_build
from fakes import segment_of
from test_server import (
    ROOT,
    Server,
    running_server,
    spawned_server,
)

pytestmark = pytest.mark.server

QUESTIONS = [
    "When was the Joint Declaration of Warsaw signed?",
    "Tell me about EUPOL",
    "How do the EU and NATO work together against hybrid threats?",
    "What is the Berlin Plus agreement?",
    "How many joint measures do the EU and NATO share?",
]
LOAD_CLIENTS = 50
LOAD_WARMUP = 700
LOAD_REQUESTS = 800
LOAD_MAX_CONVERSATIONS = 200
RSS_GROWTH_LIMIT_MB = 30.0


# ---------------------------------------------------------------------------- raw HTTP


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def connect(server: Server, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port_of(server)), timeout=timeout)


def read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and whatever body bytes came with the head of a response."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full response head: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, rest


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """A whole response with a Content-Length body."""
    status, headers, body = read_head(sock)
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def get_raw(server: Server, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET a path exactly as written (no client-side normalisation or re-encoding)."""
    with connect(server) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
        )
        return read_response(sock)


def chat_head(body: bytes, extra: str = "") -> bytes:
    return (
        "POST /chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode()


def is_closed(sock: socket.socket) -> bool:
    """True once the server has closed the connection (reading any answer it sent first)."""
    try:
        while select.select([sock], [], [], 0)[0]:
            if not sock.recv(65536):
                return True
    except OSError:
        return True
    return False


# ---------------------------------------------------------------------------- servers


@contextmanager
def started_server(log_path: Path, **env: str) -> Iterator[Server]:
    """Start `docqa serve` and wait until /health says it is ready or failed to load."""
    with spawned_server(log_path, **env) as server:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.process.poll() is None:
            try:
                if httpx.get(f"{server.url}/health", timeout=2.0).json()["status"] != "loading":
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield server


def copy_index(destination: Path) -> Path:
    """Copy the repository's current index build, under the build lock so that a concurrent
    `docqa index` cannot hand over half a build."""
    with build_lock(ROOT / "index"):
        build = current_build(ROOT / "index")
        assert build is not None, "the repository's index/ has no build: run `docqa index`"
        target = destination / build.name
        shutil.copytree(build, target)
    (destination / "CURRENT").write_text(build.name + "\n")
    return target


@pytest.fixture(scope="module")
def strict_server() -> Iterator[Server]:
    """A server that gives clients 1 s to send their headers, and then their body."""
    with running_server(DOCQA_CLIENT_TIMEOUT_S="1") as server:
        yield server


# ---------------------------------------------------------------------------- SIGTERM


def test_sigterm_lets_in_flight_requests_finish_then_exits_0() -> None:
    with running_server() as server:
        bodies = [json.dumps({"message": q}).encode() for q in QUESTIONS]
        sockets = [connect(server) for _ in bodies]
        for sock, body in zip(sockets, bodies, strict=True):
            sock.sendall(chat_head(body, "Expect: 100-continue\r\n"))
        # "100 Continue" comes when /chat starts reading the body: the request is in flight.
        continues = [read_head(sock)[0] for sock in sockets]

        server.process.send_signal(signal.SIGTERM)
        refused_new = False
        for _ in range(50):  # the server stops accepting, but keeps the open requests
            try:
                connect(server, timeout=1.0).close()
                time.sleep(0.1)
            except OSError:
                refused_new = True
                break
        alive_while_draining = server.process.poll() is None
        for sock, body in zip(sockets, bodies, strict=True):
            sock.sendall(body)
        responses = [read_response(sock) for sock in sockets]
        code = server.process.wait(timeout=15)
        log = server.log()

    assert continues == [100] * len(bodies)
    assert refused_new
    assert alive_while_draining
    assert [status for status, _, _ in responses] == [200] * len(bodies), responses
    assert all(json.loads(body)["answer"] for _, _, body in responses)
    assert code == 0, log
    assert "Finished server process" in log


# ---------------------------------------------------------------------------- slow clients


def test_slow_clients_are_closed_by_the_timeout_and_others_are_served(
    strict_server: Server,
) -> None:
    silent = [connect(strict_server) for _ in range(100)]
    partial_head = [connect(strict_server) for _ in range(10)]
    for sock in partial_head:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
    dribbling = [connect(strict_server) for _ in range(5)]
    for sock in dribbling:
        sock.sendall(b"GET /health HTTP/1.1\r\nX-Slow: ")
    stalled_body = [connect(strict_server) for _ in range(5)]
    for sock in stalled_body:
        sock.sendall(chat_head(b"x" * 100) + b'{"message": "Tell')
    started = time.monotonic()

    health = httpx.get(f"{strict_server.url}/health", timeout=5.0)
    health_s = time.monotonic() - started
    answer = httpx.post(f"{strict_server.url}/chat", json={"message": QUESTIONS[0]}, timeout=10)

    slow = silent + partial_head + dribbling + stalled_body
    closed_after: dict[int, float] = {}
    while len(closed_after) < len(slow) and time.monotonic() - started < 8.0:
        for n, sock in enumerate(slow):
            if n in closed_after:
                continue
            if sock in dribbling:
                try:
                    sock.sendall(b"a")  # a byte every 0.1 s keeps the headers "in progress"
                except OSError:
                    closed_after[n] = time.monotonic() - started
                    continue
            if is_closed(sock):
                closed_after[n] = time.monotonic() - started
        time.sleep(0.1)
    for sock in slow:
        sock.close()

    assert health.status_code == 200 and health_s < 1.0, health_s
    assert answer.status_code == 200
    assert len(closed_after) == len(slow), f"{len(slow) - len(closed_after)} still open"
    assert max(closed_after.values()) < 4.0, sorted(closed_after.values())[-5:]
    assert min(closed_after.values()) > 0.5


def test_stalled_body_gets_408_and_the_connection_is_closed(strict_server: Server) -> None:
    with connect(strict_server) as sock:
        sock.sendall(chat_head(b"x" * 100) + b'{"message": "Tell')
        started = time.monotonic()
        status, headers, body = read_response(sock)
        waited_s = time.monotonic() - started
        closed = sock.recv(1) == b""

    assert status == 408
    assert json.loads(body)["detail"] == "the request body did not arrive within 1 s: send it again"
    assert headers["connection"] == "close" and closed
    assert 0.8 < waited_s < 3.0


def test_endless_chunked_body_is_cut_off_with_413(strict_server: Server) -> None:
    chunk = b" " * 16384
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    with connect(strict_server) as sock:
        sock.sendall(
            b"POST /chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        while sent < 16_000_000 and not select.select([sock], [], [], 0.05)[0]:
            sock.sendall(frame)
            sent += len(chunk)
        status, headers, body = read_response(sock)
        closed = sock.recv(1) == b""

    assert status == 413
    assert json.loads(body)["detail"].startswith("the request body is over 64000 bytes")
    assert headers["connection"] == "close" and closed
    assert sent <= 64000 + 4 * len(chunk), f"the server read {sent} bytes before refusing"


TRAVERSALS = [
    "/static/../../etc/passwd",
    "/static/%2e%2e/%2e%2e/pyproject.toml",
    "/static/..%2fapi.py",
    "/static/..%2f..%2f..%2fpyproject.toml",
    "/static/%2e%2e%2f%2e%2e%2fapi.py",
    "/static/.%2e/api.py",
    "/static/%2fetc%2fpasswd",
    "/static//etc/passwd",
    "/static/chat.js%00",
    "/static/..%5c..%5capi.py",
    "/static/%252e%252e/api.py",
    "/static/chat.js/../../api.py",
    "/../../etc/passwd",
]


def test_path_traversal_over_http_is_404_and_leaks_nothing(strict_server: Server) -> None:
    answers = {path: get_raw(strict_server, path) for path in TRAVERSALS}

    statuses = {path: status for path, (status, _, _) in answers.items()}
    assert set(statuses.values()) == {404}, statuses
    for path, (_, _, body) in answers.items():
        assert json.loads(body) == {"detail": "Not Found"}, path
    assert get_raw(strict_server, "/static/chat.js")[0] == 200


# ---------------------------------------------------------------------------- faults


def test_running_server_keeps_answering_when_the_corpus_changes(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "corpus", corpus)
    copy_index(tmp_path / "index")
    env = {
        "DOCQA_CORPUS_DIR": str(corpus),
        "DOCQA_INDEX_DIR": str(tmp_path / "index"),
        "DOCQA_STALE_CHECK_S": "0",
    }
    with running_server(**env) as server:
        before = httpx.post(f"{server.url}/chat", json={"message": QUESTIONS[1]}, timeout=10)
        fresh = httpx.get(f"{server.url}/health", timeout=5).json()
        document = next(corpus.iterdir())
        document.chmod(0o644)
        document.write_text(document.read_text() + "\nA paragraph added while serving.\n")
        stale = httpx.get(f"{server.url}/health", timeout=5)
        after = httpx.post(f"{server.url}/chat", json={"message": QUESTIONS[1]}, timeout=10)
        log = server.log()

    assert fresh["stale"] is False
    assert stale.status_code == 200
    assert stale.json()["stale"] is True
    assert stale.json()["stale_reasons"] == [f"{document.name} has changed"]
    assert after.status_code == 200
    assert after.json()["answer"] == before.json()["answer"]
    assert "the index is stale (still answering from it)" in log


@pytest.mark.parametrize("fault", ["missing", "damaged"])
def test_missing_or_damaged_index_at_start_up_is_503_and_the_server_stays_up(
    tmp_path: Path, fault: str
) -> None:
    index = tmp_path / "index"
    index.mkdir()
    if fault == "damaged":
        build = copy_index(index)
        (segment_of(build) / "dense.faiss").write_bytes(b"not a faiss index")
    env = {"DOCQA_INDEX_DIR": str(index), "DOCQA_AUTO_REBUILD": "false"}
    with started_server(tmp_path / "server.log", **env) as server:
        health = httpx.get(f"{server.url}/health", timeout=5)
        answer = httpx.post(f"{server.url}/chat", json={"message": QUESTIONS[0]}, timeout=5)
        time.sleep(1.0)
        still_up = server.process.poll() is None
        health_again = httpx.get(f"{server.url}/health", timeout=5)

    expected = {
        "missing": f"no index in {index} yet (run `docqa index`)",
        "damaged": "is damaged (",
    }[fault]
    assert health.status_code == 503
    assert health.json()["status"] == "error"
    assert expected in health.json()["detail"]
    assert fault == "missing" or health.json()["detail"].endswith(
        "Run `docqa index --force` to rebuild it"
    )
    assert answer.status_code == 503
    assert still_up and health_again.status_code == 503


# ---------------------------------------------------------------------------- load


def test_load_of_50_clients_has_no_errors_and_flat_memory(tmp_path: Path) -> None:
    report = tmp_path / "loadtest.json"
    with running_server(DOCQA_MAX_CONVERSATIONS=str(LOAD_MAX_CONVERSATIONS)) as server:
        run = subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "loadtest.py"),
                f"--url={server.url}",
                f"--clients={LOAD_CLIENTS}",
                f"--warmup={LOAD_WARMUP}",
                f"--requests={LOAD_REQUESTS}",
                f"--pid={server.process.pid}",
                f"--json={report}",
            ],
            capture_output=True,
            text=True,
            timeout=150,
        )
    print(run.stdout, run.stderr)
    summary: dict[str, Any] = json.loads(report.read_text())
    warmup, measured, rss = summary["warmup"], summary["measured"], summary["server_rss"]

    assert summary["errors"] == 0, warmup["first_errors"] + measured["first_errors"]
    assert warmup["requests"] + measured["requests"] == LOAD_WARMUP + LOAD_REQUESTS
    assert warmup["conversations_started"] > LOAD_MAX_CONVERSATIONS  # the store was full
    assert measured["longest_chain"] >= 10
    assert rss["growth_after_warmup_mb"] < RSS_GROWTH_LIMIT_MB, rss
    assert measured["latency"]["p99_ms"] < 5000, measured["latency"]
    assert run.returncode == 0
