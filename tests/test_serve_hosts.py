"""`docqa serve`: on all interfaces it warns that only localhost names are answered by
default, and answers them only to this machine; without an API key it warns that anyone may
change the library."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import docqa.service.server
from docqa.config import Settings
from docqa.service.server import serve


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """The settings each (faked) uvicorn run was started with."""
    runs: list[Settings] = []

    def run_uvicorn(app: Any, settings: Settings, *args: Any, **kwargs: Any) -> None:
        runs.append(settings)

    monkeypatch.setattr(docqa.service.server, "run_uvicorn", run_uvicorn)
    monkeypatch.setattr(docqa.service.server, "create_app", lambda settings: None)
    return runs


def test_all_interfaces_without_allowed_hosts_warns(
    started: list[Settings], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="docqa.service"):
        serve(Settings(allowed_hosts=[]), "0.0.0.0", 8000)

    assert "DOCQA_ALLOWED_HOSTS" in caplog.text
    assert "localhost" in started[0].allowed_hosts


@pytest.mark.parametrize(("host", "hosts"), [("127.0.0.1", []), ("0.0.0.0", ["docs.example.org"])])
def test_no_warning_on_loopback_or_with_allowed_hosts(
    started: list[Settings], caplog: pytest.LogCaptureFixture, host: str, hosts: list[str]
) -> None:
    with caplog.at_level(logging.WARNING, logger="docqa.service"):
        serve(Settings(allowed_hosts=hosts), host, 8000)

    assert "DOCQA_ALLOWED_HOSTS" not in caplog.text


@pytest.mark.parametrize(
    ("host", "local_only"),
    [
        ("0.0.0.0", True),
        ("192.168.1.20", True),
        ("::", True),
        ("127.0.0.1", False),
        ("localhost", False),
        ("::1", False),
    ],
)
def test_network_bind_answers_localhost_names_only_to_this_machine(
    started: list[Settings], host: str, local_only: bool
) -> None:
    serve(Settings(allowed_hosts=[]), host, 8000)

    assert started[0].local_hosts_local_only is local_only


def test_all_interfaces_refuse_host_127_0_0_1_from_another_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    apps: list[Any] = []
    monkeypatch.setattr(docqa.service.server, "run_uvicorn", lambda app, *a, **k: apps.append(app))
    serve(
        Settings(allowed_hosts=[], corpus_dir=tmp_path, index_dir=tmp_path / "index"),
        "0.0.0.0",
        8000,
    )
    host = {"Host": "127.0.0.1:8000"}

    remote = TestClient(apps[0], client=("192.168.1.9", 40000)).get("/", headers=host)
    local = TestClient(apps[0], client=("127.0.0.1", 40000)).get("/", headers=host)

    assert remote.status_code == 400
    assert local.status_code == 200


def test_serve_without_an_api_key_warns_that_anyone_may_change_the_library(
    started: list[Settings], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="docqa.service"):
        serve(Settings(api_key=None, read_only=False), "127.0.0.1", 8000)

    assert caplog.messages == [
        "no API key is set: anyone who can reach port 8000 may upload and delete documents; "
        "set DOCQA_API_KEY to require a key, or DOCQA_READ_ONLY=true to refuse changes"
    ]


@pytest.mark.parametrize("settings", [{"api_key": "k"}, {"read_only": True}])
def test_no_open_warning_with_an_api_key_or_read_only(
    started: list[Settings], caplog: pytest.LogCaptureFixture, settings: dict[str, Any]
) -> None:
    with caplog.at_level(logging.WARNING, logger="docqa.service"):
        serve(Settings(**settings), "127.0.0.1", 8000)

    assert caplog.messages == []
