"""State shared through a real Redis by several apps (as by worker processes): conversations,
rate limits, a Redis that stops and comes back; and the /metrics page."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from docqa.engine import Engine
from docqa.service import create_app
from fakes import tiny_settings, use_fake_embedder
from redis_server import REDIS_SERVER, RedisServer, redis_server

CORPUS = """LIGHTHOUSES
The Fastnet lighthouse on a rock off the south coast of Ireland opened in 1904.
The Bell Rock lighthouse in the North Sea off the coast of Scotland opened in 1810.
BRIDGES
The Forth bridge carries the railway across the Firth of Forth and opened in 1890.
The Tower bridge crosses the River Thames in the city of London and opened in 1894.
"""
KEY = "s3cret-key-for-tests"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """An engine over the tiny corpus (index built once per module with the fake embedder)."""
    settings = tiny_settings(tmp_path_factory.mktemp("tiny"), {"structures.txt": CORPUS})
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_fake_embedder(monkeypatch)
        return Engine.load(settings)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone, which it may stop and start."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (scripts/install.sh installs it)")
    with redis_server(tmp_path) as server:
        yield server


def post(client: TestClient, message: str, conversation_id: str | None = None) -> Any:
    return client.post("/chat", json={"message": message, "conversation_id": conversation_id})


def test_a_conversation_started_in_one_app_continues_in_another(
    make_client: Callable[..., TestClient], redis_url: str
) -> None:
    first, second = make_client(redis_url=redis_url), make_client(redis_url=redis_url)
    forth = post(first, "When did the Forth bridge open?").json()
    tower = post(first, "When did the Tower bridge open?").json()
    forth_follow_up = post(second, "When did it open?", forth["conversation_id"])
    tower_follow_up = post(second, "When did it open?", tower["conversation_id"])
    assert forth_follow_up.status_code == tower_follow_up.status_code == 200
    assert "1890" in forth_follow_up.json()["answer"]  # the topic came from the first app
    assert "1894" in tower_follow_up.json()["answer"]
    third = post(first, "And where is it?", forth["conversation_id"])
    assert third.status_code == 200


def test_without_redis_a_conversation_stays_in_its_own_app(
    make_client: Callable[..., TestClient],
) -> None:
    first, second = make_client(), make_client()
    started = post(first, "When did the Fastnet lighthouse open?").json()
    assert post(second, "Where is it?", started["conversation_id"]).status_code == 404


def test_redis_down_answers_new_questions_and_refuses_follow_ups_with_503_then_recovers(
    make_client: Callable[..., TestClient], own_redis: RedisServer
) -> None:
    client = make_client(redis_url=own_redis.url)
    started = post(client, "When did the Fastnet lighthouse open?").json()
    own_redis.stop()

    alone = post(client, "When did the Forth bridge open?")
    assert alone.status_code == 200
    assert "1890" in alone.json()["answer"]
    follow_up = post(client, "Where is it?", started["conversation_id"])
    assert follow_up.status_code == 503
    assert follow_up.json() == {
        "detail": "conversation storage is unavailable: retry in a few seconds, or send the "
        "message without a conversation_id to ask it on its own"
    }
    assert follow_up.headers["retry-after"] == "2"
    assert client.get("/health").status_code == 200

    own_redis.start()  # no persistence in the test: the old conversation is gone, 404
    assert post(client, "Where is it?", started["conversation_id"]).status_code == 404
    again = post(client, "When did the Tower bridge open?").json()
    assert post(client, "Where is it?", again["conversation_id"]).status_code == 200


def test_the_rate_limit_is_counted_across_apps(
    make_client: Callable[..., TestClient], redis_url: str
) -> None:
    first = make_client(redis_url=redis_url, rate_limit_per_minute=4)
    second = make_client(redis_url=redis_url, rate_limit_per_minute=4)
    statuses = [c.get("/documents").status_code for c in (first, second, first, second)]
    assert statuses == [200] * 4
    over = second.get("/documents")
    assert over.status_code == 429
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert first.get("/documents").status_code == 429
    assert first.get("/health").status_code == 200  # probes are never limited


def test_the_rate_limit_lets_requests_through_while_redis_is_down(
    make_client: Callable[..., TestClient], own_redis: RedisServer
) -> None:
    client = make_client(redis_url=own_redis.url, rate_limit_per_minute=2)
    own_redis.stop()
    assert [client.get("/documents").status_code for _ in range(3)] == [200] * 3


def metric(page: str, name: str, **labels: str) -> float:
    """The value of one sample on a Prometheus text page."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in page.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match and match[1] == name:
            have = ",".join(sorted((match[2] or "").split(","))) if match[2] else ""
            if have == wanted:
                return float(match[3])
    raise AssertionError(f"{name}{{{wanted}}} not on the page")


def test_metrics_count_requests_by_route_and_status_and_time_the_stages(
    make_client: Callable[..., TestClient], engine: Engine
) -> None:
    client = make_client()
    before = client.get("/metrics").text
    post(client, "When did the Fastnet lighthouse open?")
    post(client, "")
    page = client.get("/metrics")
    assert page.headers["content-type"].startswith("text/plain")
    after = page.text
    for status, added in (("200", 1), ("422", 1)):
        labels = {"route": "/chat", "status": status}
        old = metric(before, "docqa_requests_total", **labels) if status in before else 0.0
        assert metric(after, "docqa_requests_total", **labels) >= old + added
    assert metric(after, "docqa_answer_stage_seconds_count", stage="encode") >= 1
    assert metric(after, "docqa_answer_stage_seconds_count", stage="total") >= 1
    version = engine.index.path.name
    assert metric(after, "docqa_index_version_info", version=version) == 1
    assert metric(after, "docqa_conversations_stored") == 1


def test_metrics_count_the_conversations_in_redis(
    make_client: Callable[..., TestClient], redis_url: str
) -> None:
    first, second = make_client(redis_url=redis_url), make_client(redis_url=redis_url)
    post(first, "When did the Fastnet lighthouse open?")
    post(second, "When did the Forth bridge open?")
    assert metric(first.get("/metrics").text, "docqa_conversations_stored") == 2


def test_metrics_need_the_api_key_when_one_is_set(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_key=KEY)
    assert client.get("/metrics").status_code == 401
    page = client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert page.status_code == 200
    assert "docqa_requests_total" in page.text


def test_an_unknown_path_is_counted_under_one_label(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    for path in ("/nope-1", "/nope-2"):
        assert client.get(path).status_code == 404
    page = client.get("/metrics").text
    assert "nope" not in page
    assert metric(page, "docqa_requests_total", route="unmatched", status="404") >= 2


def test_create_app_with_redis_needs_no_running_redis_to_start(engine: Engine) -> None:
    settings = engine.settings.model_copy(
        update={"redis_url": "redis://127.0.0.1:9/0", "rate_limit_per_minute": 5}
    )
    with TestClient(create_app(settings, engine)) as client:
        assert client.get("/health").status_code == 200
        assert post(client, "When did the Forth bridge open?").status_code == 200
        assert post(client, "Where is it?", "some-id").status_code == 503
