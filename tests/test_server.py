"""`docqa serve` as a real process with the real model: health, a conversation, SIGTERM.

The server uses the repository's corpus/ and index/ (built on first start if missing, ~15 s).
`running_server` is shared with test_browser.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 120.0
EXIT_TIMEOUT_S = 10.0

pytestmark = pytest.mark.server


@dataclass
class Server:
    """A running `docqa serve` process and where it listens."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def docqa_command() -> list[str]:
    """The venv's `docqa` script (the one that runs these tests)."""
    script = Path(sys.executable).with_name("docqa")
    return [str(script)] if script.exists() else [sys.executable, "-m", "docqa.cli"]


def server_env(**extra: str) -> dict[str, str]:
    """The environment of a docqa process: the repository's corpus and index unless set."""
    env = dict(os.environ)
    env.setdefault("DOCQA_CORPUS_DIR", str(ROOT / "corpus"))
    env.setdefault("DOCQA_INDEX_DIR", str(ROOT / "index"))
    env.pop("DOCQA_API_KEY", None)
    env.pop("DOCQA_ALLOWED_HOSTS", None)  # the tests' own, for TestClient (conftest.py)
    env.update(extra)
    return env


def wait_until_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"docqa serve exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"docqa serve was not ready after {READY_TIMEOUT_S:.0f} s:\n{server.log()}")


@contextmanager
def spawned_server(log_path: Path, **env: str) -> Iterator[Server]:
    """Start `docqa serve` on a free port, logging to `log_path`; always kill it afterwards."""
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*docqa_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=server_env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Server(f"http://127.0.0.1:{port}", process, log_path)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@contextmanager
def running_server(**env: str) -> Iterator[Server]:
    """Start `docqa serve` on a free port, wait for /health 200, always kill it afterwards."""
    with (
        tempfile.TemporaryDirectory(prefix="docqa-serve-") as folder,
        spawned_server(Path(folder) / "server.log", **env) as server,
    ):
        wait_until_ready(server)
        yield server


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as server:
        yield server


def post_chat(server: Server, message: str, conversation_id: str | None = None) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/chat",
        json={"message": message, "conversation_id": conversation_id},
        timeout=30.0,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_health_describes_the_real_index(server: Server) -> None:
    body = httpx.get(f"{server.url}/health", timeout=5.0).json()

    assert body["status"] == "ok"
    assert body["documents"] == 1
    assert body["model"] == "all-MiniLM-L6-v2"
    assert body["chunks"] > 10


def test_follow_up_over_http_answers_from_the_earlier_topic(server: Server) -> None:
    first = post_chat(server, "Tell me about EUPOL")
    second = post_chat(server, "When did it operate?", first["conversation_id"])

    assert "EUPOL" in first["answer"]
    assert second["conversation_id"] == first["conversation_id"]
    assert "June 2007" in second["answer"], second["answer"]


def test_first_chat_answer_equals_ask_json(server: Server) -> None:
    question = "Tell me about EUPOL"
    ask = subprocess.run(
        [*docqa_command(), "ask", "--json", question],
        cwd=ROOT,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    expected = json.loads(ask.stdout)

    body = post_chat(server, question)

    assert body["answer"] == expected["answer"]
    assert body["answered"] == expected["answered"]
    assert body["confidence"] == expected["confidence"]
    assert [s["chunk_id"] for s in body["sources"]] == [s["chunk_id"] for s in expected["sources"]]


def test_sigterm_stops_the_server_cleanly() -> None:
    with running_server() as server:
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=EXIT_TIMEOUT_S)

        assert code == 0, server.log()
        assert "Finished server process" in server.log()
