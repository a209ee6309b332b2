"""`docqa serve --workers 2` over a real Redis: conversations survive the workers that
started them (SIGKILL, also under load), the rate limit is counted once for all workers, and
a Redis that stops and comes back costs follow-ups a 503, never a 500. Everything listens on
127.0.0.1 and stops by itself."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from redis_server import REDIS_SERVER, RedisServer, free_port, redis_server
from test_server import ROOT, docqa_command, server_env

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed"),
]
READY_TIMEOUT_S = 120.0
FORTH = "When did EU-NATO coordination slow down?"


class Workers:
    """A running `docqa serve --workers 2` (its own session: killed whole afterwards)."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def pids(self) -> list[int]:
        """The worker processes (children of the supervisor that run the app)."""
        found = []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        for pid in map(int, children.read_text().split()):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in command:
                found.append(pid)
        return found

    def wait_for(self, count: int, not_in: set[int] = frozenset()) -> list[int]:  # type: ignore[assignment]
        """Wait until `count` workers, none of them in `not_in`, answer /health."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            pids = self.pids()
            if len(pids) == count and not set(pids) & not_in and self.healthy():
                return pids
            time.sleep(0.2)
        pytest.fail(f"workers not ready after {READY_TIMEOUT_S} s:\n{self.log.read_text()}")

    def healthy(self) -> bool:
        """/health answers 200 on several fresh connections (so likely from every worker)."""
        try:
            return all(
                httpx.get(f"{self.url}/health", timeout=2).status_code == 200 for _ in range(6)
            )
        except httpx.TransportError:
            return False


@contextmanager
def workers(folder: Path, **env: str) -> Iterator[Workers]:
    """`docqa serve --workers 2` on a free port with these DOCQA_ settings."""
    port = free_port()
    log = folder / f"serve-{port}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [*docqa_command(), "serve", "--port", str(port), "--workers", "2"],
            cwd=ROOT,
            env=server_env(DOCQA_AUTO_REBUILD="false", **env),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Workers(process, f"http://127.0.0.1:{port}", log)
    try:
        server.wait_for(2)
        yield server
    finally:
        # SIGTERM first, so the supervisor removes its metrics folder; SIGKILL if it hangs.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture(scope="module")
def index_built() -> None:
    """The repository's index, built once before workers load it read-only."""
    done = subprocess.run(
        [*docqa_command(), "index"], cwd=ROOT, env=server_env(), capture_output=True, timeout=600
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def served(
    index_built: None, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    with workers(tmp_path_factory.mktemp("serve"), DOCQA_REDIS_URL=redis.url) as server:
        yield server


def chat(url: str, message: str, conversation_id: str | None = None) -> httpx.Response:
    body = {"message": message, "conversation_id": conversation_id}
    return httpx.post(f"{url}/chat", json=body, timeout=30)


def test_more_than_one_worker_without_redis_is_refused_in_one_line() -> None:
    env = server_env()
    env.pop("DOCQA_REDIS_URL", None)
    done = subprocess.run(
        [*docqa_command(), "serve", "--port", str(free_port()), "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "--workers 2 needs Redis" in done.stderr
    assert "DOCQA_REDIS_URL" in done.stderr


def test_a_conversation_continues_after_every_worker_that_held_it_was_killed(
    served: Workers,
) -> None:
    first = chat(served.url, "What is EUPOL Afghanistan?")
    assert first.status_code == 200, first.text
    conversation = first.json()["conversation_id"]
    old = set(served.pids())
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    served.wait_for(2, not_in=old)  # uvicorn starts new workers: neither saw the conversation
    follow_up = chat(served.url, "When did it end?", conversation)
    assert follow_up.status_code == 200, follow_up.text
    assert follow_up.json()["conversation_id"] == conversation
    assert "EUPOL" in follow_up.json()["sources"][0]["text"]  # the topic of the first turn


def test_a_worker_killed_under_load_loses_no_conversation(served: Workers) -> None:
    served.wait_for(2)
    results: dict[int, list[Any]] = {}
    stop = threading.Event()

    def converse(slot: int) -> None:
        outcomes: list[Any] = []
        results[slot] = outcomes
        started = chat(served.url, FORTH)
        conversation = started.json()["conversation_id"]
        while not stop.is_set():
            try:
                outcomes.append(chat(served.url, "Why did it slow down?", conversation).status_code)
            except httpx.TransportError as error:  # a request in flight on the killed worker
                outcomes.append(type(error).__name__)

    clients = [threading.Thread(target=converse, args=(slot,)) for slot in range(4)]
    for client in clients:
        client.start()
    time.sleep(1.5)
    victim = served.pids()[0]
    os.kill(victim, signal.SIGKILL)
    time.sleep(3.0)
    stop.set()
    for client in clients:
        client.join(60)
    statuses = [o for outcomes in results.values() for o in outcomes]
    assert len(results) == 4
    assert statuses.count(200) >= 20
    assert {o for o in statuses if isinstance(o, int)} == {200}, statuses  # no 404, no 5xx
    assert sum(1 for o in statuses if isinstance(o, str)) <= 4  # at most one in flight each
    for outcomes in results.values():
        assert outcomes[-1] == 200  # every conversation went on after the kill


def test_redis_stopped_and_restarted_costs_follow_ups_a_503_never_a_500(
    served: Workers, redis: RedisServer
) -> None:
    conversation = chat(served.url, FORTH).json()["conversation_id"]
    redis.stop()
    try:
        alone = [chat(served.url, FORTH).status_code for _ in range(4)]
        follow_ups = [chat(served.url, "Why did it slow down?", conversation) for _ in range(4)]
    finally:
        redis.start()
    assert alone == [200] * 4
    assert {r.status_code for r in follow_ups} == {503}
    assert "conversation storage is unavailable" in follow_ups[0].json()["detail"]
    again = chat(served.url, FORTH).json()["conversation_id"]
    assert [chat(served.url, "Why?", again).status_code for _ in range(4)] == [200] * 4


def test_the_rate_limit_is_shared_by_the_workers(
    index_built: None, redis: RedisServer, tmp_path: Path
) -> None:
    redis.flush()
    with workers(tmp_path, DOCQA_REDIS_URL=redis.url, DOCQA_RATE_LIMIT_PER_MINUTE="6") as server:
        # A fresh connection each time: the kernel hands them to both workers in turn.
        statuses = [httpx.get(f"{server.url}/documents").status_code for _ in range(12)]
    assert statuses == [200] * 6 + [429] * 6


def test_every_worker_switches_to_a_new_build_when_current_changes(
    index_built: None, redis: RedisServer, tmp_path: Path
) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(ROOT / "index", index_dir, symlinks=True)
    old = (index_dir / "CURRENT").read_text().strip()
    env = {"DOCQA_REDIS_URL": redis.url, "DOCQA_INDEX_DIR": str(index_dir)}
    with workers(tmp_path, **env) as server:
        assert {version(server) for _ in range(10)} == {old}
        # A new build as `docqa index` leaves it: a new folder, then CURRENT replaced at once.
        new = "build-29991231T000000-000000000"
        shutil.copytree(index_dir / old, index_dir / new, symlinks=True)
        pointer = index_dir / ".CURRENT-test"
        pointer.write_text(new + "\n", encoding="utf-8")
        os.replace(pointer, index_dir / "CURRENT")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen = {version(server) for _ in range(10)}  # fresh connections reach both
            if seen == {new}:
                break
            time.sleep(0.2)
        assert seen == {new}
        assert chat(server.url, FORTH).status_code == 200


def version(server: Workers) -> str:
    """The index version one request on a fresh connection is answered from."""
    body: dict[str, Any] = httpx.get(f"{server.url}/health", timeout=5).json()
    return str(body["index_version"])


def test_metrics_add_up_every_worker(served: Workers) -> None:
    def chats_counted() -> float:
        page = httpx.get(f"{served.url}/metrics", timeout=10).text
        line = next(
            (
                line
                for line in page.splitlines()
                if line.startswith("docqa_requests_total{")
                and 'route="/chat"' in line
                and 'status="200"' in line
            ),
            "none 0",
        )
        return float(line.rsplit(" ", 1)[1])

    served.wait_for(2)
    before = chats_counted()
    for _ in range(10):  # fresh connections: both workers answer some
        assert chat(served.url, FORTH).status_code == 200
    assert [chats_counted() >= before + 10 for _ in range(4)] == [True] * 4
