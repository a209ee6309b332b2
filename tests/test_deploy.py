"""compose.yaml cannot be run here (no Docker): check that every command and setting in it is
one docqa and redis-server accept, so the file cannot drift from the code unnoticed."""

from __future__ import annotations

import shlex
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from docqa.cli import build_parser
from docqa.config import Settings
from redis_server import REDIS_SERVER, free_port

ROOT = Path(__file__).resolve().parent.parent


def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def docqa_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in services().items()
        if command_of(service)[:1] == ["docqa"]
    }


def test_compose_has_redis_an_index_job_two_replicas_and_a_balancer() -> None:
    commands = {name: command_of(service)[:2] for name, service in services().items()}
    assert commands["redis"] == ["redis-server", "--appendonly"]
    assert commands["index"] == ["docqa", "index"]
    assert [name for name, c in commands.items() if c == ["docqa", "serve"]] == [
        "docqa-a",
        "docqa-b",
    ]
    assert "docqa-a:8000" in " ".join(command_of(services()["balancer"]))


@pytest.mark.parametrize("name", sorted(docqa_services()))
def test_each_docqa_command_of_compose_parses(name: str) -> None:
    options = build_parser().parse_args(command_of(docqa_services()[name])[1:])
    if options.command == "serve" and options.workers > 1:
        assert docqa_services()[name]["environment"]["DOCQA_REDIS_URL"].startswith("redis://")


@pytest.mark.parametrize("name", sorted(docqa_services()))
def test_each_setting_of_compose_is_a_valid_docqa_setting(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = docqa_services()[name]["environment"]
    fields = {f"DOCQA_{field.upper()}" for field in Settings.model_fields}
    assert set(environment) <= fields, set(environment) - fields
    for variable, value in environment.items():
        monkeypatch.setenv(variable, str(value))
    Settings()  # raises on a value the settings refuse


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
def test_the_redis_command_of_compose_starts_a_redis(tmp_path: Path) -> None:
    assert REDIS_SERVER is not None
    port = free_port()
    arguments = command_of(services()["redis"])[1:]
    command = [REDIS_SERVER, *arguments, "--port", str(port), "--bind", "127.0.0.1"]
    process = subprocess.Popen([*command, "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"CONFIG GET maxmemory-policy\r\n")
                    reply = sock.recv(100)
                    break
            except OSError:
                assert process.poll() is None, "redis-server refused the compose arguments"
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert b"volatile-lru" in reply
    finally:
        process.terminate()
        process.wait(10)
