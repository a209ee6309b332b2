"""`docqa serve` on all interfaces warns that only localhost names are answered by default."""

from __future__ import annotations

import logging
from typing import Any

import pytest

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
