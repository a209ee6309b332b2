"""Fixtures shared by the API tests: each test module defines its own `engine` fixture."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from docqa.engine import Engine
from docqa.service import create_app
from redis_server import REDIS_SERVER, RedisServer, redis_server


@pytest.fixture(scope="session", autouse=True)
def testclient_host() -> Iterator[None]:
    """Let apps answer TestClient, which sends `Host: testserver` (the service answers only
    the hosts DOCQA_ALLOWED_HOSTS names; tests of that setting give their own value)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("DOCQA_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
        yield


@pytest.fixture
def make_client(engine: Engine) -> Iterator[Callable[..., TestClient]]:
    """Clients of an app over the module's engine, with settings overridden as asked."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        client = TestClient(create_app(engine.settings.model_copy(update=overrides), engine))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """A client of an app over the module's engine with its own settings."""
    return make_client()


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session's tests that only read and write keys."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (scripts/install.sh installs it)")
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(shared_redis: RedisServer) -> str:
    """The URL of the session's redis-server, emptied for this test."""
    shared_redis.flush()
    return shared_redis.url
