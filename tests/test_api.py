"""The HTTP API over a real Engine and a tiny index built with the fake embedder (fakes.py)."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import docqa.service.state
from docqa.answer.confidence import AnswerModelError
from docqa.config import Settings
from docqa.engine import Engine, answer_json
from docqa.indexing.store import IndexMissingError
from docqa.service import create_app
from fakes import tiny_settings, use_fake_embedder

# One sentence per paragraph, each over the 50-character chunk target: one chunk each.
CORPUS = """LIGHTHOUSES

The Fastnet lighthouse on a rock off the south coast of Ireland opened in 1904.

The Bell Rock lighthouse in the North Sea off the coast of Scotland opened in 1810.

BRIDGES

The Forth bridge carries the railway across the Firth of Forth and opened in 1890.

The Tower bridge crosses the River Thames in the city of London and opened in 1894.
"""
SOURCE_KEYS = {
    "rank",
    "chunk_id",
    "document",
    "document_id",
    "section",
    "text",
    "score",
    "start",
    "end",
    "page",
    "weak",
}
CITATION_KEYS = {"rank", "chunk_id", "text", "start", "end", "document_start", "document_end"}
KEY = "s3cret-key-for-tests"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """An engine over the tiny corpus (index built once per module with the fake embedder)."""
    settings = tiny_settings(tmp_path_factory.mktemp("tiny"), {"structures.txt": CORPUS})
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_fake_embedder(monkeypatch)
        return Engine.load(settings)


def chat(client: TestClient, message: str, conversation_id: str | None = None) -> dict[str, Any]:
    response = client.post("/chat", json={"message": message, "conversation_id": conversation_id})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# ---------------------------------------------------------------------------- health


def test_health_reports_the_loaded_index(client: TestClient, engine: Engine) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "status",
        "documents",
        "chunks",
        "model",
        "index_built_at",
        "index_version",
        "stale",
        "stale_reasons",
    }
    assert body["status"] == "ok"
    assert body["index_version"] == engine.index.path.name
    assert body["stale"] is False
    assert body["stale_reasons"] == []
    assert body["documents"] == 1
    assert body["chunks"] == 4
    assert body["model"] == "all-MiniLM-L6-v2"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["index_built_at"])


def test_health_is_503_loading_until_the_engine_is_ready(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def slow_load(settings: Settings, notify: Any = None, builder: Any = None) -> Engine:
        release.wait(10)
        return engine

    monkeypatch.setattr(docqa.service.state.Engine, "load", slow_load)
    app = create_app(engine.settings)
    with TestClient(app) as client:
        loading = client.get("/health")
        chat_while_loading = client.post("/chat", json={"message": "When did it open?"})
        release.set()
        assert app.state.service.loaded.wait(10)
        ready = client.get("/health")

    assert loading.status_code == 503
    assert loading.json()["status"] == "loading"
    assert chat_while_loading.status_code == 503
    assert (
        chat_while_loading.json()["detail"] == "the index is still loading: retry in a few seconds"
    )
    assert ready.status_code == 200


def test_failed_load_is_503_with_the_error_on_every_endpoint(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_load(settings: Settings, notify: Any = None, builder: Any = None) -> Engine:
        raise IndexMissingError("no index in /nowhere yet (run `docqa index`)")

    monkeypatch.setattr(docqa.service.state.Engine, "load", failing_load)
    app = create_app(engine.settings)
    with TestClient(app) as client:
        assert app.state.service.loaded.wait(10)
        health = client.get("/health")
        documents = client.get("/documents")

    assert health.status_code == 503
    assert health.json() == {
        "status": "error",
        "detail": "no index in /nowhere yet (run `docqa index`)",
    }
    assert documents.status_code == 503
    assert "no index in /nowhere yet" in documents.json()["detail"]


def test_missing_index_is_built_at_start_up_with_a_log_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    use_fake_embedder(monkeypatch)
    settings = tiny_settings(tmp_path, {"structures.txt": CORPUS})
    app = create_app(settings)
    with caplog.at_level(logging.INFO, logger="docqa"), TestClient(app) as client:
        assert app.state.service.loaded.wait(30)
        health = client.get("/health")

    assert health.status_code == 200
    assert any("building it now" in record.getMessage() for record in caplog.records)


# ---------------------------------------------------------------------------- chat


def test_chat_without_conversation_id_starts_a_conversation(client: TestClient) -> None:
    body = chat(client, "Tell me about the Forth bridge")

    assert set(body) == {
        "conversation_id",
        "short_answer",
        "answer",
        "answered",
        "confidence",
        "sources",
        "citations",
        "timings_ms",
    }
    assert isinstance(body["conversation_id"], str) and len(body["conversation_id"]) >= 16
    assert len(body["sources"]) == 4  # k defaults to 5; the corpus has 4 chunks
    assert all(set(source) == SOURCE_KEYS for source in body["sources"])
    assert [source["rank"] for source in body["sources"]] == [1, 2, 3, 4]
    assert body["citations"] and all(set(c) == CITATION_KEYS for c in body["citations"])


def test_chat_answer_is_the_same_as_ask_json(client: TestClient, engine: Engine) -> None:
    body = chat(client, "Tell me about the Forth bridge")
    expected = answer_json(engine.ask("Tell me about the Forth bridge", 5))

    for key in ("answer", "answered", "confidence", "sources"):
        assert body[key] == expected[key]
    assert set(body["timings_ms"]) == set(expected["timings_ms"])


def test_citations_are_spans_of_their_source_text(client: TestClient) -> None:
    body = chat(client, "Tell me about the Tower bridge")

    by_rank = {source["rank"]: source for source in body["sources"]}
    for citation in body["citations"]:
        source = by_rank[citation["rank"]]
        assert source["chunk_id"] == citation["chunk_id"]
        assert source["text"][citation["start"] : citation["end"]] == citation["text"]
    assert "1894" in body["answer"]


def test_follow_up_is_answered_from_the_conversation_topic(client: TestClient) -> None:
    forth = chat(client, "Tell me about the Forth bridge")
    tower = chat(client, "Tell me about the Tower bridge")

    forth_follow_up = chat(client, "When did it open?", forth["conversation_id"])
    tower_follow_up = chat(client, "When did it open?", tower["conversation_id"])

    assert forth_follow_up["conversation_id"] == forth["conversation_id"]
    assert "1890" in forth_follow_up["answer"]
    assert "1894" in tower_follow_up["answer"]
    assert forth_follow_up["citations"][0]["chunk_id"] == forth["citations"][0]["chunk_id"]


def test_unknown_conversation_is_404_with_a_message(client: TestClient) -> None:
    response = client.post("/chat", json={"message": "And then?", "conversation_id": "nope"})

    assert response.status_code == 404
    assert re.match(r"conversation 'nope' is unknown or has expired", response.json()["detail"])


def test_conversation_store_keeps_only_max_conversations(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(max_conversations=2)
    first, _, third = (chat(client, "Tell me about the Forth bridge") for _ in range(3))

    dropped = client.post(
        "/chat", json={"message": "When did it open?", "conversation_id": first["conversation_id"]}
    )
    kept = client.post(
        "/chat", json={"message": "When did it open?", "conversation_id": third["conversation_id"]}
    )

    assert dropped.status_code == 404
    assert kept.status_code == 200


JSON_TYPE = {"Content-Type": "application/json"}
BAD_CHAT_REQUESTS = [
    ("empty", {"json": {"message": ""}}, 422, r"^message: String should have at least 1"),
    (
        "whitespace",
        {"json": {"message": " \n\t "}},
        422,
        r"^message: the message is only whitespace",
    ),
    ("2001-chars", {"json": {"message": "a" * 2001}}, 422, r"^message: .* at most 2000 characters"),
    ("k=0", {"json": {"message": "hi", "k": 0}}, 422, r"^k: .* greater than or equal to 1"),
    ("k=51", {"json": {"message": "hi", "k": 51}}, 422, r"^k: .* less than or equal to 50"),
    ("k=x", {"json": {"message": "hi", "k": "x"}}, 422, r"^k: Input should be a valid integer"),
    ("message=42", {"json": {"message": 42}}, 422, r"^message: Input should be a valid string"),
    ("no-message", {"json": {"k": 5}}, 422, r"^message: Field required"),
    (
        "unknown-field",
        {"json": {"message": "hi", "to": 1}},
        422,
        r"^to: Extra inputs are not permitted",
    ),
    ("json-list", {"json": ["hi"]}, 422, r"^the request body must be a JSON object"),
    (
        "invalid-json",
        {"content": b'{"message": "hi"', "headers": JSON_TYPE},
        400,
        r"^the request body is not valid JSON",
    ),
    (
        "text-plain",
        {"content": b'{"message": "hi"}', "headers": {"Content-Type": "text/plain"}},
        415,
        r"^send the body as JSON with `Content-Type: application/json`",
    ),
    ("form-encoded", {"data": {"message": "hi"}}, 415, r"^send the body as JSON"),
    (
        "huge-body",
        {"content": b"{}" + b" " * 70_000, "headers": JSON_TYPE},
        413,
        r"^the request body is over 64000 bytes",
    ),
]


@pytest.mark.parametrize(
    ("request_kwargs", "status", "detail"),
    [case[1:] for case in BAD_CHAT_REQUESTS],
    ids=[case[0] for case in BAD_CHAT_REQUESTS],
)
def test_bad_chat_request_is_refused_with_a_message(
    client: TestClient, request_kwargs: dict[str, Any], status: int, detail: str
) -> None:
    response = client.post("/chat", **request_kwargs)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert re.search(detail, response.json()["detail"])


def test_refused_chat_request_starts_no_conversation(client: TestClient) -> None:
    client.post("/chat", json={"message": "   "})

    assert len(client.app.state.service.conversations) == 0  # type: ignore[attr-defined]


def test_unexpected_error_is_a_json_500_without_details(
    client: TestClient,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_ask(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("internal detail /secret/path")

    monkeypatch.setattr(engine, "ask", broken_ask)
    with caplog.at_level(logging.ERROR, logger="docqa"):
        response = client.post("/chat", json={"message": "Tell me about the Forth bridge"})

    assert response.status_code == 500
    assert response.json() == {"detail": "internal error: the server logged the details"}
    assert any(record.exc_info for record in caplog.records)


# ---------------------------------------------------------------------------- search, documents


def test_search_returns_ranked_sources(client: TestClient) -> None:
    response = client.get("/search", params={"q": "Forth bridge railway", "k": 2})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"query", "sources", "timings_ms"}
    assert body["query"] == "Forth bridge railway"
    assert [source["rank"] for source in body["sources"]] == [1, 2]
    assert all(set(source) == SOURCE_KEYS for source in body["sources"])
    assert body["sources"][0]["text"].startswith("The Forth bridge carries the railway")


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"q": ""}, r"^q: String should have at least 1 character"),
        ({"q": "   "}, r"^q: the query is only whitespace"),
        ({"q": "bridge", "k": 0}, r"^k: Input should be greater than or equal to 1"),
        ({"q": "bridge", "k": 51}, r"^k: Input should be less than or equal to 50"),
        ({"q": "bridge", "k": "x"}, r"^k: Input should be a valid integer"),
    ],
)
def test_bad_search_is_422_with_a_message(
    client: TestClient, params: dict[str, Any], detail: str
) -> None:
    response = client.get("/search", params=params)

    assert response.status_code == 422
    assert re.search(detail, response.json()["detail"].replace("query.", ""))


def test_documents_lists_sections_in_order_with_chunk_counts(client: TestClient) -> None:
    response = client.get("/documents")

    assert response.status_code == 200
    [document] = response.json()
    assert {k: document[k] for k in ("name", "type", "chunks", "sections", "status")} == {
        "name": "structures.txt",
        "type": "text",
        "chunks": 4,
        "sections": [
            {"title": "LIGHTHOUSES", "chunks": 2},
            {"title": "BRIDGES", "chunks": 2},
        ],
        "status": "indexed",
    }
    assert re.fullmatch(r"structures-txt-[0-9a-f]{8}", document["id"])
    assert document["status_url"] == f"/documents/{document['id']}"


def test_openapi_describes_every_field(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]

    for name in ("ChatRequest", "ChatResponse", "Source", "Citation", "SearchResponse", "Health"):
        fields = schemas[name]["properties"]
        undescribed = [field for field, schema in fields.items() if not schema.get("description")]
        assert undescribed == [], f"{name} fields without a description: {undescribed}"


# ---------------------------------------------------------------------------- API key

PROTECTED = [
    ("POST", "/chat", {"json": {"message": "Tell me about the Forth bridge"}}),
    ("GET", "/search?q=bridge", {}),
    ("GET", "/documents", {}),
    ("GET", "/openapi.json", {}),
    ("GET", "/docs", {}),
    ("GET", "/redoc", {}),
]
OPEN = ["/health", "/", "/static/chat.js", "/static/chat.css"]


@pytest.mark.parametrize(("method", "path", "kwargs"), PROTECTED, ids=[p[1] for p in PROTECTED])
def test_api_key_is_required_when_set(
    make_client: Callable[..., TestClient], method: str, path: str, kwargs: dict[str, Any]
) -> None:
    client = make_client(api_key=KEY)

    missing = client.request(method, path, **kwargs)
    wrong = client.request(method, path, headers={"Authorization": "Bearer nope"}, **kwargs)
    right = client.request(method, path, headers={"Authorization": f"Bearer {KEY}"}, **kwargs)

    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["detail"].startswith("this server needs an API key")
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "the API key is not valid"
    assert right.status_code == 200


@pytest.mark.parametrize("path", OPEN)
def test_page_health_and_static_files_need_no_api_key(
    make_client: Callable[..., TestClient], path: str
) -> None:
    response = make_client(api_key=KEY).get(path)

    assert response.status_code == 200


def test_api_key_is_never_logged(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(api_key=KEY)
    with caplog.at_level(logging.DEBUG):
        client.post(
            "/chat",
            json={"message": "Tell me about the Forth bridge"},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        client.get("/documents", headers={"Authorization": f"Bearer {KEY}x"})

    assert KEY not in caplog.text


def test_no_api_key_needed_when_none_is_set(client: TestClient) -> None:
    assert client.get("/documents").status_code == 200


# ---------------------------------------------------------------------------- page, headers


def test_page_is_served_with_security_headers(client: TestClient) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert '<script src="/static/chat.js" defer></script>' in response.text
    assert response.headers["content-security-policy"] == (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("path", ["/static/chat.js", "/health", "/nothing-here", "/openapi.json"])
def test_every_response_has_security_headers(client: TestClient, path: str) -> None:
    response = client.get(path)

    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_sources_under_half_the_best_score_are_marked_weak(client: TestClient) -> None:
    body = chat(client, "When did the Forth bridge open?")
    scores = [source["score"] for source in body["sources"]]

    assert [source["weak"] for source in body["sources"]] == [s < 0.5 * max(scores) for s in scores]
    assert body["sources"][0]["weak"] is False
    assert any(source["weak"] for source in body["sources"])


def test_a_damaged_answer_model_is_a_503_naming_it_not_a_500(
    client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def damaged(*args: Any, **kwargs: Any) -> Any:
        raise AnswerModelError("answer_model.json is damaged: run scripts/fit_answer_model.py")

    monkeypatch.setattr(engine, "ask", damaged)
    response = client.post("/chat", json={"message": "When did the Forth bridge open?"})

    assert response.status_code == 503
    assert "answer_model.json" in response.json()["detail"]
