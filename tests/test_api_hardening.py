"""The HTTP API against hostile or broken input, faults, and the security settings.

In process, over a tiny index built with the fake embedder (fakes.py). Requests whose body
must arrive in pieces, stall or carry a path that httpx would normalise go straight to the
ASGI app (`exchange`); the rest use TestClient. Cases already in test_api.py are not
repeated here.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

import docqa.service.middleware
from docqa.config import Settings
from docqa.engine import Engine
from docqa.indexing.build import build_index
from docqa.service import create_app
from docqa.service.middleware import RateLimit
from fakes import segment_of, tiny_settings, use_fake_embedder

CORPUS = """BRIDGES

The Forth bridge carries the railway across the Firth of Forth and opened in 1890.

The Tower bridge crosses the River Thames in the city of London and opened in 1894.
"""
QUESTION = "Tell me about the Forth bridge"
KEY = "hardening-test-key-7f3a"
JSON_TYPE = {"Content-Type": "application/json"}
STALL = b"<stall>"
"""A body chunk that never comes: `exchange` waits forever for it."""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    settings = tiny_settings(tmp_path_factory.mktemp("tiny"), {"bridges.txt": CORPUS})
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_fake_embedder(monkeypatch)
        return Engine.load(settings)


@dataclass
class Exchange:
    """What the app answered to one request sent by `exchange`."""

    status: int
    headers: dict[str, str]
    body: bytes
    chunks_read: int

    def detail(self) -> str:
        detail: str = json.loads(self.body)["detail"]
        return detail


def exchange(
    app: Any,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    chunks: Iterable[bytes] = (),
) -> Exchange:
    """Send one request straight to the ASGI app, its body in `chunks` as a server would
    stream it (STALL: a chunk that never arrives), and count the chunks the app read."""
    pending = iter(chunks)
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        chunk = next(pending, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        if chunk is STALL:
            await asyncio.Event().wait()
        read += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (k.lower().encode(), v.encode())
            for k, v in {"Host": "testserver", **(headers or {})}.items()
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    response_headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return Exchange(start["status"], response_headers, body, read)


def chat(client: TestClient, message: str = QUESTION, **fields: Any) -> Any:
    return client.post("/chat", json={"message": message, **fields})


# ---------------------------------------------------------------------------- bodies


def test_endless_streamed_body_is_cut_off_with_413_after_the_limit(engine: Engine) -> None:
    app = create_app(engine.settings, engine)

    response = exchange(app, "POST", "/chat", JSON_TYPE, itertools.repeat(b" " * 8192))

    assert response.status == 413
    assert response.detail() == ("the request body is over 64000 bytes: send a shorter question")
    assert response.chunks_read == 64000 // 8192 + 1
    assert response.headers["connection"] == "close"


def test_declared_huge_body_is_refused_before_any_of_it_is_read(engine: Engine) -> None:
    app = create_app(engine.settings, engine)
    headers = {**JSON_TYPE, "Content-Length": str(10**12)}

    response = exchange(app, "POST", "/chat", headers, itertools.repeat(b" " * 8192))

    assert response.status == 413
    assert response.chunks_read == 0
    assert response.headers["connection"] == "close"


def test_stalled_body_gets_408_after_the_client_timeout(engine: Engine) -> None:
    app = create_app(engine.settings.model_copy(update={"client_timeout_s": 0.5}), engine)
    started = time.monotonic()

    response = exchange(app, "POST", "/chat", JSON_TYPE, [b'{"message": "Tell', STALL])

    assert 0.4 < time.monotonic() - started < 3.0
    assert response.status == 408
    assert response.detail() == "the request body did not arrive within 0.5 s: send it again"
    assert response.headers["connection"] == "close"


def test_body_arriving_in_pieces_within_the_timeout_is_answered(engine: Engine) -> None:
    app = create_app(engine.settings, engine)
    body = json.dumps({"message": QUESTION}).encode()

    response = exchange(app, "POST", "/chat", JSON_TYPE, [body[:10], body[10:20], body[20:]])

    assert response.status == 200
    assert "1890" in json.loads(response.body)["answer"]


NESTED_100K = 100_000


@pytest.mark.parametrize(
    "body",
    [
        b"[" * NESTED_100K + b"]" * NESTED_100K,
        b'{"message": ' + b"[" * NESTED_100K + b"]" * NESTED_100K + b"}",
        b'{"a":' * NESTED_100K + b"1" + b"}" * NESTED_100K,
    ],
    ids=["arrays", "arrays-in-message", "objects"],
)
def test_deeply_nested_json_is_a_400_with_a_message(
    make_client: Callable[..., TestClient], body: bytes
) -> None:
    client = make_client(max_body_bytes=2_000_000)

    response = client.post("/chat", content=body, headers=JSON_TYPE)

    assert response.status_code == 400
    assert response.json()["detail"].startswith("the request body is JSON nested too deeply")


def test_deeply_nested_json_over_the_body_limit_is_413(client: TestClient) -> None:
    body = b"[" * NESTED_100K + b"]" * NESTED_100K

    response = client.post("/chat", content=body, headers=JSON_TYPE)

    assert response.status_code == 413


def test_body_that_is_not_utf8_is_a_400_with_a_message(client: TestClient) -> None:
    response = client.post("/chat", content=b'{"message": "\xff\xfe"}', headers=JSON_TYPE)

    assert response.status_code == 400
    assert response.json()["detail"].startswith("the request body is not UTF-8 text")


def test_body_without_a_content_type_is_415(client: TestClient) -> None:
    response = client.post("/chat", content=json.dumps({"message": QUESTION}).encode())

    assert response.status_code == 415
    assert response.json()["detail"].startswith("send the body as JSON")


# ---------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("k", "detail"),
    [
        ("-1", r"^k: Input should be greater than or equal to 1"),
        ("1000000000", r"^k: Input should be less than or equal to 50"),
        ("1e400", r"^k: Input should be a valid integer"),
        ("1e300", r"^k: Input should be less than or equal to 50"),
        ("2.5", r"^k: Input should be a valid integer"),
        ('"5"', r"^k: Input should be a valid integer"),
        ("true", r"^k: Input should be a valid integer"),
        ("null", r"^k: Input should be a valid integer"),
    ],
)
def test_chat_k_out_of_range_or_not_an_integer_is_422(
    client: TestClient, k: str, detail: str
) -> None:
    body = f'{{"message": "{QUESTION}", "k": {k}}}'.encode()

    response = client.post("/chat", content=body, headers=JSON_TYPE)

    assert response.status_code == 422
    assert re.search(detail, response.json()["detail"])


def test_chat_k_written_as_an_integral_float_is_accepted(client: TestClient) -> None:
    response = client.post("/chat", content=b'{"message": "bridge", "k": 1.0}', headers=JSON_TYPE)

    assert response.status_code == 200
    assert len(response.json()["sources"]) == 1


@pytest.mark.parametrize("k", ["-1", "1000000000", "1e400", "2.5", "0x10", ""])
def test_search_k_out_of_range_or_not_an_integer_is_422(client: TestClient, k: str) -> None:
    response = client.get("/search", params={"q": "bridge", "k": k})

    assert response.status_code == 422
    assert response.json()["detail"].startswith("query.k: Input should be")


def test_null_bytes_in_the_message_are_answered(client: TestClient) -> None:
    response = chat(client, "Tell me about\x00 the Forth\x00bridge")

    assert response.status_code == 200
    assert response.json()["answered"] in (True, False)


def test_null_bytes_in_a_search_are_answered(client: TestClient) -> None:
    response = client.get("/search", params={"q": "Forth\x00bridge"})

    assert response.status_code == 200
    assert response.json()["query"] == "Forth\x00bridge"


def test_message_at_the_length_limit_is_answered(client: TestClient) -> None:
    response = chat(client, ("bridge " * 400)[:2000])

    assert response.status_code == 200


def test_unknown_fields_alongside_valid_ones_are_422(client: TestClient) -> None:
    response = chat(client, k=2, debug=True, __proto__={"admin": True})

    assert response.status_code == 422
    assert {e["loc"][-1] for e in response.json()["errors"]} == {"debug", "__proto__"}


# ---------------------------------------------------------------------------- conversation ids


def test_conversation_id_of_10kb_is_422_with_a_message(client: TestClient) -> None:
    response = chat(client, conversation_id="a" * 10_000)

    assert response.status_code == 422
    assert response.json()["detail"] == (
        "conversation_id: String should have at most 128 characters"
    )


@pytest.mark.parametrize(
    "conversation_id",
    ["../../etc/passwd", "..%2f..%2fpyproject.toml", "/", "a/../b", "\x00", "%00", " ", "null"],
)
def test_unknown_conversation_id_with_path_characters_is_404(
    client: TestClient, conversation_id: str
) -> None:
    response = chat(client, conversation_id=conversation_id)

    assert response.status_code == 404
    assert response.json()["detail"] == (
        f"conversation {conversation_id!r} is unknown or has expired: send the message "
        "without a conversation_id to start a new one"
    )
    assert len(client.app.state.service.conversations) == 0  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- static files

TRAVERSALS = [
    "/static/../../etc/passwd",
    "/static/../../../../../../etc/passwd",
    "/static/../api.py",
    "/static/../../../pyproject.toml",
    "/static//etc/passwd",
    "/static/..",
    "/static/chat.js/../../api.py",
    "/static/chat.js\x00.txt",
    "/static/\x00",
    "/static/..\\api.py",
]
# Text that only the files outside static/ hold.
OUTSIDE_MARKERS = (b"root:", b"def create_app", b"[build-system]")


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_under_static_is_404(engine: Engine, path: str) -> None:
    response = exchange(create_app(engine.settings, engine), "GET", path)

    assert response.status == 404
    assert response.detail() == "Not Found"
    assert not any(marker in response.body for marker in OUTSIDE_MARKERS)


# ---------------------------------------------------------------------------- faults


@pytest.fixture
def own_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., TestClient]:
    """A client over an index of its own corpus (in tmp_path), which the test may change."""
    use_fake_embedder(monkeypatch)

    def make(**overrides: Any) -> TestClient:
        settings = tiny_settings(tmp_path, {"bridges.txt": CORPUS}, **overrides)
        return TestClient(create_app(settings, Engine.load(settings)))

    return make


def test_changed_corpus_file_makes_health_stale_while_answers_continue(
    own_corpus: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = own_corpus(stale_check_s=0)
    before = chat(client).json()
    fresh = client.get("/health").json()

    (tmp_path / "corpus" / "bridges.txt").write_text(CORPUS + "\nA new paragraph.\n")
    stale = client.get("/health")
    after = chat(client).json()

    assert fresh["stale"] is False
    assert stale.status_code == 200
    assert stale.json()["stale"] is True
    assert stale.json()["stale_reasons"] == ["bridges.txt has changed"]
    assert after["answer"] == before["answer"]


def test_added_and_removed_corpus_files_are_stale_reasons(
    own_corpus: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = own_corpus(stale_check_s=0)

    (tmp_path / "corpus" / "bridges.txt").rename(tmp_path / "corpus" / "moved.txt")
    body = client.get("/health").json()

    assert body["stale_reasons"] == [
        "bridges.txt was removed from the corpus",
        "moved.txt was added to the corpus",
    ]


def test_deleted_corpus_folder_is_a_stale_reason(
    own_corpus: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = own_corpus(stale_check_s=0)

    shutil.rmtree(tmp_path / "corpus")
    health = client.get("/health")

    assert health.status_code == 200
    assert health.json()["stale"] is True
    assert health.json()["stale_reasons"][0].startswith("corpus folder")
    assert chat(client).status_code == 200


def test_staleness_is_rechecked_at_most_every_stale_check_s(
    own_corpus: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = own_corpus(stale_check_s=3600)
    client.get("/health")

    (tmp_path / "corpus" / "bridges.txt").write_text(CORPUS + "\nA new paragraph.\n")

    assert client.get("/health").json()["stale"] is False


def corrupt_index(settings: Settings) -> None:
    """Build the index, then overwrite its chunk file with garbage."""
    build = build_index(settings)
    (segment_of(build) / "chunks.jsonl").write_bytes(b"\x00not json\n")


def start(settings: Settings) -> tuple[TestClient, Any]:
    app = create_app(settings)
    client = TestClient(app).__enter__()  # runs the lifespan: the engine loads
    assert app.state.service.loaded.wait(30)
    return client, app


def test_corrupt_index_without_auto_rebuild_is_503_with_how_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake_embedder(monkeypatch)
    settings = tiny_settings(tmp_path, {"bridges.txt": CORPUS}, auto_rebuild=False)
    corrupt_index(settings)

    client, _ = start(settings)
    health = client.get("/health")
    answer = chat(client)
    client.__exit__(None, None, None)

    assert health.status_code == 503
    assert health.json()["status"] == "error"
    assert re.search(r"is damaged .*Run `docqa index --force` to rebuild it", health.text)
    assert answer.status_code == 503


def test_corrupt_index_with_auto_rebuild_is_rebuilt_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake_embedder(monkeypatch)
    settings = tiny_settings(tmp_path, {"bridges.txt": CORPUS})
    corrupt_index(settings)

    client, _ = start(settings)
    health = client.get("/health")
    answer = chat(client)
    client.__exit__(None, None, None)

    assert health.status_code == 200
    assert "1890" in answer.json()["answer"]


def test_missing_index_without_auto_rebuild_is_503_with_how_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake_embedder(monkeypatch)
    settings = tiny_settings(tmp_path, {"bridges.txt": CORPUS}, auto_rebuild=False)

    client, _ = start(settings)
    health = client.get("/health")
    client.__exit__(None, None, None)

    assert health.status_code == 503
    assert health.json() == {
        "status": "error",
        "detail": f"no index in {settings.index_dir} yet (run `docqa index`)",
    }


# ---------------------------------------------------------------------------- API key

OPEN_ROUTES = {"/", "/health", "/static"}
"""Answer without a key: the page must load to ask for one, and probes must see /health."""


def route_requests(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route of the app, so that a new route cannot be forgotten."""
    requests = []
    for route in app.routes:
        if isinstance(route, Mount):
            requests.append(("GET", f"{route.path}/chat.js"))
        elif isinstance(route, APIRoute | Route):
            path = re.sub(r"\{[^}]+\}", "x", route.path)
            requests += [
                (method, path) for method in sorted(route.methods or ()) if method != "HEAD"
            ]
    return requests


def test_every_route_but_the_page_health_and_static_needs_the_api_key(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(api_key=KEY)
    requests = route_requests(client.app)

    answered = {
        (method, path): client.request(method, path).status_code for method, path in requests
    }

    assert {path for _, path in requests} >= {"/chat", "/search", "/documents", "/openapi.json"}
    assert {path for _, path in requests} >= {"/docs", "/redoc", "/docs/oauth2-redirect"}
    refused = {request for request, status in answered.items() if status == 401}
    open_ = {(m, p) for m, p in requests if p in OPEN_ROUTES or p.startswith("/static/")}
    assert refused == set(requests) - open_, answered
    assert all(answered[request] == 200 for request in open_), answered


def test_api_key_is_compared_in_constant_time(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    compare_digest = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr(docqa.service.middleware.hmac, "compare_digest", spy)
    client = make_client(api_key=KEY)

    client.get("/documents", headers={"Authorization": "Bearer wrong"})
    client.get("/documents", headers={"Authorization": f"Bearer {KEY}"})

    assert compared == [(b"wrong", KEY.encode()), (KEY.encode(), KEY.encode())]


@pytest.mark.parametrize("authorization", [f"Bearer  {KEY}", f"Bearer \t{KEY}"])
def test_api_key_padded_after_bearer_is_refused(
    make_client: Callable[..., TestClient], authorization: str
) -> None:
    client = make_client(api_key=KEY)

    response = client.get("/documents", headers={"Authorization": authorization})

    assert response.status_code == 401
    assert response.json()["detail"] == "the API key is not valid"


# ---------------------------------------------------------------------------- rate limit


def test_client_over_the_rate_limit_gets_429_with_retry_after(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(rate_limit_per_minute=3)

    statuses = [client.get("/documents").status_code for _ in range(3)]
    refused = client.get("/documents")

    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "20"  # one request per 60/3 s
    assert refused.json()["detail"] == (
        "too many requests: the limit is 3 a minute per client; retry in 20 s"
    )


def test_rate_limit_is_per_client_ip(engine: Engine) -> None:
    app = create_app(engine.settings.model_copy(update={"rate_limit_per_minute": 1}), engine)
    first = TestClient(app, client=("10.0.0.1", 1000))
    second = TestClient(app, client=("10.0.0.2", 1000))

    statuses = [c.get("/documents").status_code for c in (first, first, second, second)]

    assert statuses == [200, 429, 200, 429]


def test_health_is_never_rate_limited(make_client: Callable[..., TestClient]) -> None:
    client = make_client(rate_limit_per_minute=1)

    statuses = {client.get("/health").status_code for _ in range(20)}

    assert statuses == {200}


def test_no_rate_limit_by_default(client: TestClient) -> None:
    statuses = {client.get("/documents").status_code for _ in range(100)}

    assert statuses == {200}


def test_rate_limiter_forgets_the_least_recently_seen_client_beyond_its_capacity() -> None:
    limiter = RateLimit(app=None, per_minute=10, max_clients=100)  # type: ignore[arg-type]

    for n in range(1000):
        limiter.take(f"10.0.{n // 256}.{n % 256}", now=0.0)

    assert len(limiter.buckets) == 100
    assert next(iter(limiter.buckets)) == "10.0.3.132"  # client 900: the oldest kept


def test_rate_limit_tokens_come_back_one_per_interval() -> None:
    limiter = RateLimit(app=None, per_minute=2, max_clients=10)  # type: ignore[arg-type]

    waits = [limiter.take("c", now) for now in (0.0, 0.0, 0.0, 10.0, 30.0, 30.0)]

    assert waits == pytest.approx([0.0, 0.0, 30.0, 20.0, 0.0, 30.0])


# ---------------------------------------------------------------------------- CORS


def test_cross_origin_requests_get_no_cors_headers_by_default(client: TestClient) -> None:
    origin = {"Origin": "https://elsewhere.example"}

    simple = client.get("/documents", headers=origin)
    preflight = client.options("/chat", headers={**origin, "Access-Control-Request-Method": "POST"})

    assert "access-control-allow-origin" not in simple.headers
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code == 405


def test_cors_origins_from_the_environment_are_allowed_and_no_others(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCQA_CORS_ORIGINS", "https://a.example, https://b.example")
    settings = Settings(corpus_dir=engine.settings.corpus_dir, index_dir=engine.settings.index_dir)
    client = TestClient(create_app(settings, engine))

    allowed = client.get("/documents", headers={"Origin": "https://b.example"})
    other = client.get("/documents", headers={"Origin": "https://elsewhere.example"})
    preflight = client.options(
        "/chat",
        headers={
            "Origin": "https://a.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )

    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert allowed.headers["access-control-allow-origin"] == "https://b.example"
    assert "access-control-allow-origin" not in other.headers
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://a.example"
    assert "POST" in preflight.headers["access-control-allow-methods"]


# ---------------------------------------------------------------------------- cross-site

EVIL = "https://evil.example"
FROM_ANOTHER_SITE = [
    {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
    {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"},
    {"Origin": EVIL},  # a browser without Sec-Fetch-Site
    {"Origin": "null"},  # a sandboxed frame or a local file
    {"Sec-Fetch-Site": "cross-site"},
]
CHANGES = [("POST", "/reindex"), ("DELETE", "/documents/bridges-txt-0"), ("POST", "/chat")]


def upload(client: TestClient, headers: dict[str, str]) -> Any:
    return client.post(
        "/documents",
        files={"files": ("planted.txt", b"PLANTED\n\nA planted page.\n")},
        headers=headers,
    )


@pytest.mark.parametrize("headers", FROM_ANOTHER_SITE)
def test_upload_from_a_page_of_another_site_is_refused_with_403(
    own_corpus: Callable[..., TestClient], tmp_path: Path, headers: dict[str, str]
) -> None:
    client = own_corpus()

    response = upload(client, headers)

    assert response.status_code == 403
    assert response.json()["detail"].startswith("cross-site request refused: a page of ")
    assert "DOCQA_CORS_ORIGINS" in response.json()["detail"]
    assert sorted(p.name for p in (tmp_path / "corpus").iterdir()) == ["bridges.txt"]


@pytest.mark.parametrize(("method", "path"), CHANGES)
def test_other_changes_from_a_page_of_another_site_are_refused_with_403(
    client: TestClient, method: str, path: str
) -> None:
    headers = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site", **JSON_TYPE}

    response = client.request(method, path, json={"message": QUESTION}, headers=headers)

    assert response.status_code == 403
    assert response.json() == {
        "detail": f"cross-site request refused: a page of {EVIL} may not {method} {path} "
        "here; to let it, add its origin to DOCQA_CORS_ORIGINS"
    }


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, scripts, the CLI
        {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},  # the page itself
        {"Origin": "http://testserver"},  # the page, in a browser without Sec-Fetch-Site
        {"Sec-Fetch-Site": "none"},  # typed by the user
    ],
)
def test_changes_from_the_page_itself_or_from_clients_without_a_browser_pass(
    own_corpus: Callable[..., TestClient], tmp_path: Path, headers: dict[str, str]
) -> None:
    client = own_corpus()

    uploaded = upload(client, headers)
    deleted = client.delete("/documents/unknown", headers=headers)
    answered = client.post("/chat", json={"message": QUESTION}, headers=headers)

    assert uploaded.status_code == 202, uploaded.text
    assert (tmp_path / "corpus" / "planted.txt").exists()
    assert deleted.status_code == 404  # past the check: the document is unknown
    assert answered.status_code == 200
    assert client.app.state.service.library.wait_until_idle(30)  # type: ignore[attr-defined]


def test_reads_from_a_page_of_another_site_are_not_refused(client: TestClient) -> None:
    headers = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}

    response = client.get("/documents", headers=headers)

    assert response.status_code == 200  # sent, but the browser will not show it to the page
    assert "access-control-allow-origin" not in response.headers


def test_page_of_a_cors_origin_may_post(make_client: Callable[..., TestClient]) -> None:
    client = make_client(cors_origins=["https://a.example"])
    allowed = {"Origin": "https://a.example", "Sec-Fetch-Site": "cross-site"}

    answered = client.post("/chat", json={"message": QUESTION}, headers=allowed)
    other = client.post("/chat", json={"message": QUESTION}, headers={"Origin": EVIL})

    assert answered.status_code == 200
    assert answered.headers["access-control-allow-origin"] == "https://a.example"
    assert other.status_code == 403


# ---------------------------------------------------------------------------- read-only


@pytest.mark.parametrize(("method", "path"), CHANGES[:2])
def test_read_only_refuses_deletes_and_reindex_with_403(
    make_client: Callable[..., TestClient], method: str, path: str
) -> None:
    client = make_client(read_only=True)

    response = client.request(method, path)

    assert response.status_code == 403
    assert response.json()["detail"].startswith("this service is read-only: documents cannot")


def test_read_only_refuses_uploads_with_403_and_stores_nothing(
    own_corpus: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = own_corpus(read_only=True)

    response = upload(client, {})

    assert response.status_code == 403
    assert "DOCQA_READ_ONLY" in response.json()["detail"]
    assert sorted(p.name for p in (tmp_path / "corpus").iterdir()) == ["bridges.txt"]


def test_read_only_still_answers_searches_and_lists_documents(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(read_only=True)

    statuses = [
        chat(client).status_code,
        client.get("/search", params={"q": "bridge"}).status_code,
        client.get("/documents").status_code,
        client.get("/health").status_code,
    ]

    assert statuses == [200, 200, 200, 200]


def test_read_only_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCQA_READ_ONLY", "true")

    assert Settings().read_only is True


# ---------------------------------------------------------------------------- page


def test_page_csp_allows_no_inline_code_and_no_other_origin(client: TestClient) -> None:
    policy = client.get("/").headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))

    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert "unsafe" not in policy
    assert not re.search(r"https?:|\*|//", policy)


class PageScan(HTMLParser):
    """Collects inline script bodies, on* handlers and javascript: URLs of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.in_script = False
        self.problems: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}>")
            if value and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}={value}>")
        if tag == "script":
            self.scripts += 1
            self.in_script = True
            if not dict(attrs).get("src", "").startswith("/static/"):  # type: ignore[union-attr]
                self.problems.append("<script> without a /static/ src")

    def handle_endtag(self, tag: str) -> None:
        self.in_script = self.in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self.in_script and data.strip():
            self.problems.append(f"inline script: {data.strip()[:40]}")


def test_page_has_no_inline_script_or_event_handler(client: TestClient) -> None:
    scan = PageScan()
    scan.feed(client.get("/").text)

    assert scan.scripts >= 1
    assert scan.problems == []


# ---------------------------------------------------------------------------- logs


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    """The docqa.access records, parsed from key=value pairs (JSON-quoted values decoded)."""
    lines = []
    for record in caplog.records:
        if record.name == "docqa.access":
            pairs = re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', record.getMessage())
            lines.append({k: json.loads(v) if v.startswith('"') else v for k, v in pairs})
    return lines


def test_each_request_is_logged_once_with_method_path_status_and_duration(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="docqa"):
        client.get("/health")
        client.get("/search", params={"q": "bridge"})
        client.post("/chat", json={"message": ""})
        client.get("/nothing-here")

    lines = access_lines(caplog)

    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("GET", "/health", "200"),
        ("GET", "/search", "200"),
        ("POST", "/chat", "422"),
        ("GET", "/nothing-here", "404"),
    ]
    assert all(float(line["duration_ms"]) >= 0 for line in lines)
    assert all("\n" not in r.getMessage() for r in caplog.records if r.name == "docqa.access")


def test_chat_log_line_has_the_answer_and_stage_timings(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(log_message_text=True)
    with caplog.at_level(logging.INFO, logger="docqa"):
        body = chat(client).json()

    (line,) = access_lines(caplog)

    assert line["conversation"] == body["conversation_id"][:6]
    assert line["answered"] == str(body["answered"]).lower()
    assert {f"{stage}_ms" for stage in body["timings_ms"]} <= set(line)
    assert "total_ms" in line
    assert line["question"] == QUESTION


SECRET_QUESTION = "Is the zebra-crossing-7731 near the Forth bridge"


def test_message_text_is_logged_nowhere_by_default(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        assert chat(client, SECRET_QUESTION).status_code == 200
        assert client.get("/search", params={"q": SECRET_QUESTION}).status_code == 200
        assert chat(client, SECRET_QUESTION, k=0).status_code == 422
        assert chat(client, SECRET_QUESTION, conversation_id="gone").status_code == 404

    server_log = [r.getMessage() for r in caplog.records if not r.name.startswith("httpx")]
    assert len(access_lines(caplog)) == 4
    assert not [line for line in server_log if "zebra" in line]


def test_message_text_is_logged_when_log_message_text_is_on(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(log_message_text=True)
    with caplog.at_level(logging.DEBUG):
        chat(client, SECRET_QUESTION)

    assert "zebra-crossing-7731" in caplog.text


def test_a_message_cannot_break_or_forge_a_log_line(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(log_message_text=True)
    message = 'Forth bridge\nstatus=500 path="/admin" \x1b[31m'
    with caplog.at_level(logging.INFO, logger="docqa"):
        chat(client, message)

    (line,) = access_lines(caplog)

    assert (line["path"], line["status"], line["question"]) == ("/chat", "200", message)
    assert all("\n" not in r.getMessage() for r in caplog.records if r.name == "docqa.access")


def test_unexpected_error_is_logged_with_status_500(
    client: TestClient,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_ask(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(engine, "ask", broken_ask)
    with caplog.at_level(logging.INFO, logger="docqa"):
        chat(client)

    assert [line["status"] for line in access_lines(caplog)] == ["500"]
