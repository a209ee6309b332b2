"""The HTTP API's edges: which hosts it answers, what the open /health tells a stranger,
HEAD requests, and error bodies that agree with the published schema.

In process, over a tiny index built with the fake embedder (fakes.py).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from docqa.engine import Engine
from docqa.service import create_app
from docqa.service.schemas import NOT_BLANK
from docqa.service.server import default_hosts
from fakes import tiny_settings, use_fake_embedder

CORPUS = """BRIDGES

The Forth bridge carries the railway across the Firth of Forth and opened in 1890.
"""
KEY = "edges-test-key-91c2"
JSON_TYPE = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    folder = tmp_path_factory.mktemp("edges")
    settings = tiny_settings(folder, {"bridges.txt": CORPUS})
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_fake_embedder(monkeypatch)
        return Engine.load(settings)


def as_host(client: TestClient, host: str, path: str = "/health") -> Any:
    return client.get(path, headers={"Host": host})


# ---------------------------------------------------------------------------- Host check


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000"])
def test_localhost_names_are_answered_by_default(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.delenv("DOCQA_ALLOWED_HOSTS")
    settings = engine.settings.model_copy(update={"allowed_hosts": []})
    client = TestClient(create_app(settings, engine))

    assert as_host(client, host).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "192.168.1.9", ""])
def test_other_hosts_get_a_json_400_by_default(engine: Engine, host: str) -> None:
    settings = engine.settings.model_copy(update={"allowed_hosts": []})
    client = TestClient(create_app(settings, engine))

    response = as_host(client, host, "/documents")

    assert response.status_code == 400
    assert response.json()["detail"].startswith("this server does not answer to the host")
    assert "DOCQA_ALLOWED_HOSTS" in response.json()["detail"]


def test_allowed_hosts_from_the_environment_replace_the_default(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCQA_ALLOWED_HOSTS", "docs.example.org, *.intranet.example")
    settings = type(engine.settings)(
        corpus_dir=engine.settings.corpus_dir, index_dir=engine.settings.index_dir
    )
    client = TestClient(create_app(settings, engine))

    assert settings.allowed_hosts == ["docs.example.org", "*.intranet.example"]
    assert as_host(client, "docs.example.org").status_code == 200
    assert as_host(client, "qa.intranet.example:443").status_code == 200
    assert as_host(client, "localhost").status_code == 400


def network_bind_client(engine: Engine, client: str) -> TestClient:
    """A client at `client` of the app `docqa serve --host 0.0.0.0` makes by default."""
    update = {"allowed_hosts": default_hosts("0.0.0.0"), "local_hosts_local_only": True}
    return TestClient(
        create_app(engine.settings.model_copy(update=update), engine), client=(client, 40000)
    )


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST"])
def test_localhost_names_from_another_machine_get_a_json_400_on_a_network_bind(
    engine: Engine, host: str
) -> None:
    client = network_bind_client(engine, "192.168.1.9")

    response = as_host(client, host, "/documents")

    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"this server answers to the host {host!r} only from this machine: for other "
        "machines (or a container's published port), add the name they use to "
        "DOCQA_ALLOWED_HOSTS"
    )


@pytest.mark.parametrize("client", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_localhost_names_from_this_machine_are_answered_on_a_network_bind(
    engine: Engine, client: str
) -> None:
    response = as_host(network_bind_client(engine, client), "127.0.0.1:8000", "/documents")

    assert response.status_code == 200


def test_localhost_names_from_another_machine_are_answered_when_allowed_hosts_name_them(
    engine: Engine,
) -> None:
    settings = engine.settings.model_copy(update={"allowed_hosts": ["localhost"]})
    client = TestClient(create_app(settings, engine), client=("192.168.1.9", 40000))

    assert as_host(client, "localhost:8000", "/documents").status_code == 200


def test_server_default_hosts_add_the_bind_address_but_not_all_interfaces() -> None:
    assert default_hosts("127.0.0.1") == ["localhost", "127.0.0.1", "[::1]", "127.0.0.1"]
    assert default_hosts("192.168.1.20")[-1] == "192.168.1.20"
    assert default_hosts("fe80::1")[-1] == "[fe80::1]"
    assert default_hosts("0.0.0.0") == ["localhost", "127.0.0.1", "[::1]"]


# ---------------------------------------------------------------------------- open /health


def test_health_without_the_key_says_only_the_status(make_client: Callable[..., Any]) -> None:
    client = make_client(api_key=KEY)

    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_health_with_the_key_gives_the_details(make_client: Callable[..., Any]) -> None:
    client = make_client(api_key=KEY)

    body = client.get("/health", headers={"Authorization": f"Bearer {KEY}"}).json()

    assert body["status"] == "ok"
    assert body["chunks"] >= 1 and "stale_reasons" in body and "index_version" in body


def test_health_of_a_failed_load_without_the_key_names_no_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake_embedder(monkeypatch)
    settings = tiny_settings(tmp_path, {"bridges.txt": CORPUS}, auto_rebuild=False, api_key=KEY)
    app = create_app(settings)
    with TestClient(app) as client:
        assert app.state.service.loaded.wait(30)
        stranger = client.get("/health")
        keeper = client.get("/health", headers={"Authorization": f"Bearer {KEY}"})

    assert stranger.status_code == keeper.status_code == 503
    assert stranger.json() == {
        "status": "error",
        "detail": "the index could not be loaded (see the log)",
    }
    assert str(tmp_path) in keeper.json()["detail"]


def test_health_without_a_key_configured_gives_the_details(client: TestClient) -> None:
    assert "chunks" in client.get("/health").json()


# ---------------------------------------------------------------------------- HEAD


@pytest.mark.parametrize("path", ["/", "/health"])
def test_head_is_answered_like_get_without_a_body(client: TestClient, path: str) -> None:
    response = client.head(path)

    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-type"] == client.get(path).headers["content-type"]


# ---------------------------------------------------------------------------- schema agreement


def test_not_blank_pattern_refuses_exactly_what_python_strips() -> None:
    pattern = re.compile(NOT_BLANK)

    disagree = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if bool(pattern.search(chr(code))) == chr(code).isspace()
    ]

    assert disagree == []


def test_published_schema_says_message_and_query_are_not_blank(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    chat = schema["components"]["schemas"]["ChatRequest"]["properties"]["message"]
    search = next(p for p in schema["paths"]["/search"]["get"]["parameters"] if p["name"] == "q")

    assert chat["pattern"] == NOT_BLANK
    assert search["schema"]["pattern"] == NOT_BLANK


@pytest.mark.parametrize("text", ["\x1f", "\x1c\x1d", "\u3000", "\x85", "\u2028 "])
def test_whitespace_the_schema_refuses_is_422_with_errors(client: TestClient, text: str) -> None:
    chat = client.post("/chat", json={"message": text})
    search = client.get("/search", params={"q": text})

    assert (chat.status_code, search.status_code) == (422, 422)
    assert chat.json()["errors"][0]["type"] == search.json()["errors"][0]["type"] == "blank"
    assert search.json()["detail"] == "query.q: the query is only whitespace: type a question"


@pytest.mark.parametrize("text", ["\u200b", "\ufeff", "\x00"])
def test_characters_the_schema_allows_are_answered(client: TestClient, text: str) -> None:
    assert re.search(NOT_BLANK, text)
    assert client.post("/chat", json={"message": text}).status_code == 200
    assert client.get("/search", params={"q": text}).status_code == 200


def test_blank_search_has_the_errors_list_like_other_422s(client: TestClient) -> None:
    response = client.get("/search", params={"q": "  "})

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "loc": ["query", "q"],
            "msg": "the query is only whitespace: type a question",
            "type": "blank",
        }
    ]


def test_integer_over_python_digit_limit_is_422_saying_so(client: TestClient) -> None:
    digits = sys.get_int_max_str_digits() + 1
    body = b'{"message": "bridge", "k": ' + b"9" * digits + b"}"

    response = client.post("/chat", content=body, headers=JSON_TYPE)

    assert response.status_code == 422
    assert response.json()["detail"] == (
        f"a number in the request body has over {digits - 1} digits: k is 1 to 50"
    )
    assert response.json()["errors"][0]["type"] == "too_long"


def test_empty_conversation_id_is_422_not_a_new_conversation(client: TestClient) -> None:
    response = client.post("/chat", json={"message": "bridge", "conversation_id": ""})

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "conversation_id"]
    assert len(client.app.state.service.conversations) == 0  # type: ignore[attr-defined]


def test_refused_cors_preflight_is_json(make_client: Callable[..., Any]) -> None:
    client = make_client(cors_origins=["https://a.example"])

    response = client.options(
        "/chat",
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json()["detail"] == (
        "cross-origin request refused: disallowed cors origin; see DOCQA_CORS_ORIGINS"
    )
