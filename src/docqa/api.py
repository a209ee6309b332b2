"""The HTTP service: create_app(settings) -> FastAPI. Request/response models, error mapping.

Status codes: 200 answers; 400 a body that is not JSON (or not UTF-8, or nested too deeply
to parse); 401 a missing or wrong API key; 404 an unknown or expired conversation; 408 a body
that did not arrive within `client_timeout_s`; 413 a body over `max_body_bytes`, declared or
streamed; 415 a body sent with a content type other than application/json; 422 a request that
is JSON but not acceptable (empty or whitespace-only message, message over
`max_question_chars`, k outside 1..50, wrong types, unknown fields, a body that is not a JSON
object); 429 a client over `rate_limit_per_minute`, with Retry-After; 503 while the index
loads or when it failed to load; 500 only for a bug, with a generic message (the traceback
goes to the log). Every error body is `{"detail": "<one human sentence>"}`, plus `errors`
(field, message, type) for 422.

Each request is logged once, as key=value pairs (logger `docqa.access`).

The module deliberately avoids `from __future__ import annotations`: FastAPI reads the
route signatures at runtime and the chat request model is made per app (its length limit
comes from the settings).
"""

import asyncio
import copy
import hmac
import json
import logging
import math
import signal
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docqa.config import Settings
from docqa.conversation import ConversationNotFoundError, ConversationStore, Turn
from docqa.corpus import CorpusError, hash_corpus
from docqa.engine import Engine, QuestionError, answer_json, source_json
from docqa.index import IndexError_, stale_reasons
from docqa.models import Answer, Chunk, DocqaError, Hit

log = logging.getLogger("docqa.api")
access_log = logging.getLogger("docqa.access")

STATIC_DIR = Path(__file__).parent / "static"
OPEN_PATHS = frozenset({"/health", "/"})
"""Paths (besides /static/*) that answer without an API key: the page must load to ask for one."""

PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
# FastAPI's /docs (Swagger UI) and /redoc pages load their code from cdn.jsdelivr.net and run
# an inline script; they work only online and only under this looser policy.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; script-src 'self' 'unsafe-inline' "
    "https://cdn.jsdelivr.net; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
EXAMPLE_BODY = 'e.g. {"message": "your question", "conversation_id": null}'
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}
RATE_LIMIT_CLIENTS = 10_000
"""Clients the rate limiter remembers (~100 bytes each); the least recently seen go first."""
GRACEFUL_SHUTDOWN_S = 30
"""On SIGTERM, how long in-flight requests may take to finish before they are cancelled."""
CLOSE = {"Connection": "close"}
LOG_FIELDS = "docqa_log_fields"
"""Key of the request state where a route leaves fields for the request's log line."""


class NotReadyError(DocqaError):
    """The engine is still loading, or failed to load."""


ERROR_STATUS: dict[type[DocqaError], int] = {
    NotReadyError: 503,
    QuestionError: 422,
    ConversationNotFoundError: 404,
    IndexError_: 503,
    CorpusError: 503,
}


# ---------------------------------------------------------------------------- HTTP bodies


class ChatRequestBase(BaseModel):
    """A question, optionally continuing a conversation."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, description="The question, in plain text.")
    conversation_id: str | None = Field(
        None,
        max_length=128,
        description="The id returned by an earlier /chat answer, to ask a follow-up; "
        "null (or absent) starts a new conversation.",
    )
    k: int = Field(5, ge=1, le=50, strict=True, description="How many passages to return.")

    @field_validator("message")
    @classmethod
    def _not_blank(cls, message: str) -> str:
        if not message.strip():
            raise PydanticCustomError(
                "blank_message", "the message is only whitespace: type a question"
            )
        return message

    @field_validator("k", mode="before")
    @classmethod
    def _integral_number(cls, k: object) -> object:
        # JSON has one number type: to JSON Schema, and so to the published OpenAPI schema,
        # 5.0 is the integer 5. A string or a boolean still fails the strict check.
        return int(k) if isinstance(k, float) and k.is_integer() else k


class Source(BaseModel):
    """A retrieved passage of the document."""

    rank: int = Field(description="Position in the ranking, 1 for the best passage.")
    chunk_id: str = Field(description="Stable id of the passage in the index.")
    document: str = Field(description="Corpus file the passage comes from.")
    section: str = Field(description="Heading of the section that holds the passage.")
    text: str = Field(description="The passage text (cleaned of PDF line breaks).")
    score: float = Field(
        description="Retrieval score from 0 to 1 (best sentence match); higher is better."
    )
    start: int = Field(description="Offset of the passage's first character in the document.")
    end: int = Field(description="Offset just after the passage's last character in the document.")


class Citation(BaseModel):
    """A sentence of a source that the answer quotes."""

    rank: int = Field(description="Rank of the source the sentence comes from.")
    chunk_id: str = Field(description="Id of that source.")
    text: str = Field(description="The quoted sentence.")
    start: int = Field(description="Offset of the sentence inside the source's `text`.")
    end: int = Field(description="Offset just after the sentence inside the source's `text`.")


class ChatResponse(BaseModel):
    """The answer to one message and the passages it rests on."""

    conversation_id: str = Field(description="Send it back with the next message to follow up.")
    answer: str = Field(
        description="Sentences quoted from the document, or a notice that it does not say."
    )
    answered: bool = Field(description="False when the document does not cover the question.")
    confidence: float = Field(ge=0.0, le=1.0, description="How sure the answer is, 0 to 1.")
    sources: list[Source] = Field(description="The passages retrieved, best first.")
    citations: list[Citation] = Field(
        description="The source sentences that make up the answer; empty when not answered."
    )
    timings_ms: dict[str, float] = Field(
        description="Milliseconds per stage (encode, dense, lexical, fusion, answer, total)."
    )


class SearchResponse(BaseModel):
    """The passages ranked for a query, without an answer."""

    query: str = Field(description="The query as searched.")
    sources: list[Source] = Field(description="The passages retrieved, best first.")
    timings_ms: dict[str, float] = Field(description="Milliseconds per retrieval stage.")


class Section(BaseModel):
    """A section of a document."""

    title: str = Field(description="The section heading ('Introduction' before the first one).")
    chunks: int = Field(description="Number of indexed passages in the section.")


class DocumentOutline(BaseModel):
    """An indexed document and its sections, in document order."""

    name: str = Field(description="Path of the file inside the corpus folder.")
    chunks: int = Field(description="Number of indexed passages in the document.")
    sections: list[Section] = Field(description="Sections in the order they appear.")


class Health(BaseModel):
    """The service is ready."""

    status: Literal["ok"] = Field(description="Always 'ok' with status code 200.")
    documents: int = Field(description="Number of indexed documents.")
    chunks: int = Field(description="Number of indexed passages.")
    model: str = Field(description="Embedding model the index was built with.")
    index_built_at: str = Field(description="When the index was built (UTC, ISO 8601).")
    stale: bool = Field(
        description="True when the corpus on disk no longer matches the loaded index: the "
        "service keeps answering from the index it loaded until it is restarted."
    )
    stale_reasons: list[str] = Field(
        description="What differs, e.g. 'brief.txt has changed'; empty when not stale."
    )


class HealthProblem(BaseModel):
    """The service cannot answer yet (503)."""

    status: Literal["loading", "error"] = Field(
        description="'loading' while the index loads, 'error' if loading failed."
    )
    detail: str = Field(description="What is happening, for a person.")


class FieldProblem(BaseModel):
    """One invalid field of a request."""

    loc: list[str | int] = Field(description="Where the problem is, e.g. ['body', 'k'].")
    msg: str = Field(description="What is wrong.")
    type: str = Field(description="Machine-readable kind of problem.")


class ErrorBody(BaseModel):
    """Every error response."""

    detail: str = Field(description="What went wrong and, when it helps, how to fix it.")
    errors: list[FieldProblem] | None = Field(
        None, description="For 422: each invalid field of the request."
    )


# ---------------------------------------------------------------------------- conversions


def sources_json(hits: Sequence[Hit]) -> list[dict[str, Any]]:
    """Hits as the source objects of `docqa ask --json`."""
    return [source_json(hit) for hit in hits]


def chat_json(answer: Answer, conversation_id: str) -> dict[str, Any]:
    """The /chat body: `docqa ask --json` without the question, plus the conversation and
    the citations."""
    body = answer_json(answer)
    del body["question"]
    citations = [
        {"rank": c.rank, "chunk_id": c.chunk_id, "text": c.text, "start": c.start, "end": c.end}
        for c in answer.citations
    ]
    return {"conversation_id": conversation_id, **body, "citations": citations}


def outline_documents(chunks: Sequence[Chunk]) -> list[dict[str, Any]]:
    """Documents in index order, each with its sections in order and their chunk counts."""
    sections: dict[str, Counter[str]] = {}
    for chunk in chunks:
        sections.setdefault(chunk.document, Counter())[chunk.section] += 1
    return [
        {
            "name": name,
            "chunks": sum(counts.values()),
            "sections": [{"title": title, "chunks": n} for title, n in counts.items()],
        }
        for name, counts in sections.items()
    ]


def health_json(engine: Engine, changes: list[str]) -> dict[str, Any]:
    """The /health body of a ready service, from the index manifest and the corpus changes."""
    manifest = engine.index.manifest
    return {
        "status": "ok",
        "documents": len(manifest["documents"]),
        "chunks": manifest.get("chunks", len(engine.index.chunks)),
        "model": manifest["model"],
        "index_built_at": manifest["built_at"],
        "stale": bool(changes),
        "stale_reasons": changes,
    }


def corpus_changes(engine: Engine) -> list[str]:
    """How the corpus on disk differs from the one the loaded index was built from."""
    try:
        corpus = hash_corpus(engine.settings.corpus_dir)
    except CorpusError as error:
        return [str(error)]
    except OSError as error:  # a file removed or made unreadable while it was listed
        return [f"the corpus cannot be read: {error}"]
    return stale_reasons(engine.index.manifest, engine.settings, corpus)


def log_line(fields: dict[str, Any]) -> str:
    """key=value pairs on one line; a value with spaces, quotes or control characters is
    JSON-quoted, so a message cannot break the line or forge a field."""
    parts = []
    for key, value in fields.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if not text or any(c.isspace() or c in '"=\\' or not c.isprintable() for c in text):
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def validation_message(errors: Sequence[Any]) -> str:
    """One line naming each invalid field and its problem."""
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error["loc"] if part != "body")
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts)


# ---------------------------------------------------------------------------- service state


@dataclass
class StalenessCheck:
    """The corpus changes since the index was loaded, recomputed at most every `every_s`
    seconds however often /health is asked (the corpus is hashed, which reads every file)."""

    every_s: float
    changes: list[str] = field(default_factory=list)
    checked_at: float = -math.inf
    lock: threading.Lock = field(default_factory=threading.Lock)

    def current(self, engine: Engine) -> list[str]:
        """The changes, from the cache when it is recent enough."""
        with self.lock:
            now = time.monotonic()
            if now - self.checked_at >= self.every_s:
                changes = corpus_changes(engine)
                if changes and changes != self.changes:
                    log.warning(
                        "the index is stale (still answering from it): %s", "; ".join(changes)
                    )
                self.changes, self.checked_at = changes, now
            return self.changes


@dataclass
class Service:
    """What the routes share: the engine once loaded (or why it failed) and the conversations."""

    settings: Settings
    conversations: ConversationStore
    engine: Engine | None = None
    error: str | None = None
    loaded: threading.Event = field(default_factory=threading.Event)
    staleness: StalenessCheck = field(init=False)

    def __post_init__(self) -> None:
        self.staleness = StalenessCheck(self.settings.stale_check_s)

    def load(self) -> None:
        """Load the engine (building the index if needed); record the error if it fails."""
        started = time.perf_counter()
        log.info("loading the index from %s", self.settings.index_dir)
        try:
            self.engine = Engine.load(
                self.settings, notify=lambda message: log.warning("%s", message)
            )
        except DocqaError as error:
            self.error = str(error)
            log.error("cannot load the index: %s", error)
        except Exception as error:  # a model or library failure must still reach /health
            self.error = f"the index could not be loaded: {error}"
            log.exception("cannot load the index")
        else:
            log.info(
                "ready: %d chunks, model %s, loaded in %.1f s",
                len(self.engine.index.chunks),
                self.engine.index.manifest.get("model"),
                time.perf_counter() - started,
            )
        finally:
            self.loaded.set()


# The two dependencies are `async` because they never block: FastAPI runs a plain `def`
# dependency in the thread pool, and each hop there costs ~0.2 ms per request (`docqa bench`).
async def get_service(request: Request) -> Service:
    """The app's shared state."""
    service: Service = request.app.state.service
    return service


async def ready_engine(service: Annotated[Service, Depends(get_service)]) -> Engine:
    """The loaded engine; 503 while loading or after a failed load."""
    if service.engine is not None:
        return service.engine
    if service.error is not None:
        raise NotReadyError(f"the service could not load its index: {service.error}")
    raise NotReadyError("the index is still loading: retry in a few seconds")


# ---------------------------------------------------------------------------- middleware


class SecurityHeaders:
    """Adds the content security policy and hardening headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_CSP if scope["path"] in DOCS_PATHS else PAGE_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["content-security-policy"] = policy
                headers.update(SECURITY_HEADERS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ApiKeyGuard:
    """With an API key set, refuses (401) every path but /health, / and /static/*
    unless the request carries `Authorization: Bearer <key>`."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.api_key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in OPEN_PATHS or path.startswith("/static/"):
            await self.app(scope, receive, send)
            return
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key):
            await self.app(scope, receive, send)
            return
        detail = (
            "the API key is not valid"
            if token
            else "this server needs an API key: send it as `Authorization: Bearer <key>`"
        )
        response = JSONResponse(
            {"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
        await response(scope, receive, send)


class BodyLimit:
    """Refuses a request body over `max_bytes` (413) before it is read into memory, whether
    its length is declared or it is streamed (chunked), and one that has not fully arrived
    `timeout_s` seconds after the request started (408). Both answers close the connection,
    so the rest of the body is never read."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.too_large = f"the request body is over {max_bytes} bytes: send a shorter question"
        self.too_slow = f"the request body did not arrive within {timeout_s:g} s: send it again"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse({"detail": self.too_large}, 413, headers=CLOSE)
            await response(scope, receive, send)
            return
        deadline = time.monotonic() + self.timeout_s
        received = 0
        complete = False

        # FastAPI re-raises an HTTPException raised while it reads the body (other errors
        # become a vague 400), and its handler answers with the status and detail.
        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:  # after the body, receive() only waits for a disconnect
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except TimeoutError:
                raise HTTPException(408, self.too_slow, headers=CLOSE) from None
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self.too_large, headers=CLOSE)
            complete = message["type"] != "http.request" or not message.get("more_body")
            return message

        await self.app(scope, limited_receive, send)


class RateLimit:
    """Refuses (429, with Retry-After) a client IP over `per_minute` requests a minute, with a
    token bucket per client: a burst of `per_minute`, then one request per 60/per_minute s.
    At most `max_clients` buckets are kept (the least recently seen client is forgotten
    first). /health is never limited, so probes always get through."""

    def __init__(self, app: ASGIApp, per_minute: int, max_clients: int) -> None:
        self.app = app
        self.per_minute = per_minute
        self.max_clients = max_clients
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        """client -> (tokens left, when they were counted)"""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/health":
            await self.app(scope, receive, send)
            return
        client = scope["client"][0] if scope.get("client") else "unknown"
        wait_s = self.take(client, time.monotonic())
        if wait_s == 0.0:
            await self.app(scope, receive, send)
            return
        retry = max(1, math.ceil(wait_s))
        detail = (
            f"too many requests: the limit is {self.per_minute} a minute per client; "
            f"retry in {retry} s"
        )
        response = JSONResponse({"detail": detail}, 429, headers={"Retry-After": str(retry)})
        await response(scope, receive, send)

    def take(self, client: str, now: float) -> float:
        """Spend one of the client's tokens: 0.0 if it had one, else seconds until it will."""
        rate_per_s = self.per_minute / 60.0
        tokens, counted_at = self.buckets.pop(client, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - counted_at) * rate_per_s)
        wait_s = 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate_per_s
        self.buckets[client] = (tokens - 1.0 if wait_s == 0.0 else tokens, now)
        if len(self.buckets) > self.max_clients:
            self.buckets.popitem(last=False)
        return wait_s


class AccessLog:
    """Logs one line per request: client, method, path (never the query string), status,
    duration, then what the route left in the request state (for /chat the answer's
    metrics and stage timings)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped every handler
        state = scope.setdefault("state", {})

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            fields = {
                "client": scope["client"][0] if scope.get("client") else "-",
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000.0, 1),
                **state.get(LOG_FIELDS, {}),
            }
            access_log.info("%s", log_line(fields))


class LastResort:
    """Turns an unexpected exception into a JSON 500 with a generic message; logs the traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unexpected error in %s %s", scope.get("method"), scope.get("path"))
            if started or scope["type"] != "http":
                raise
            body = {"detail": "internal error: the server logged the details"}
            await JSONResponse(body, status_code=500)(scope, receive, send)


# ---------------------------------------------------------------------------- error handlers


async def on_docqa_error(request: Request, error: Exception) -> JSONResponse:
    """A domain error: its message, with the status code of its kind."""
    status = next((s for kind, s in ERROR_STATUS.items() if isinstance(error, kind)), 500)
    headers = {"Retry-After": "2"} if isinstance(error, NotReadyError) else None
    return JSONResponse({"detail": str(error)}, status, headers=headers)


async def on_http_error(request: Request, error: Exception) -> Response:
    """FastAPI's HTTP errors; a body it could not parse gets a message that says why."""
    if isinstance(error.__cause__, RecursionError):
        detail = f"the request body is JSON nested too deeply to read: {EXAMPLE_BODY}"
        return JSONResponse({"detail": detail}, 400)
    if isinstance(error.__cause__, UnicodeDecodeError):
        return JSONResponse({"detail": f"the request body is not UTF-8 text: {EXAMPLE_BODY}"}, 400)
    return await http_exception_handler(request, error)  # type: ignore[arg-type]


async def on_invalid_request(request: Request, error: Exception) -> JSONResponse:
    """400 for a body that is not JSON, 415 for one not sent as JSON, 422 for invalid fields."""
    problems = [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in getattr(error, "errors", list)()
    ]
    if any(p["type"] == "json_invalid" for p in problems):
        return JSONResponse({"detail": f"the request body is not valid JSON: {EXAMPLE_BODY}"}, 400)
    whole_body = any(p["loc"] == ["body"] for p in problems)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if whole_body and media_type != "application/json":
        detail = f"send the body as JSON with `Content-Type: application/json`, {EXAMPLE_BODY}"
        return JSONResponse({"detail": detail}, 415)
    if whole_body:
        return JSONResponse(
            {"detail": f"the request body must be a JSON object: {EXAMPLE_BODY}"}, 422
        )
    return JSONResponse({"detail": validation_message(problems), "errors": problems}, 422)


# ---------------------------------------------------------------------------- the app


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """The docqa service; loads the engine in the background unless one is given."""
    service = Service(
        settings,
        ConversationStore(
            settings.max_conversations, settings.conversation_ttl_s, settings.max_turns
        ),
        engine,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service.engine is None:
            threading.Thread(target=service.load, name="docqa-load", daemon=True).start()
        yield

    app = FastAPI(
        title="docqa",
        summary="Ask the document questions; get short answers quoted from it, with sources.",
        version="0.1.0",
        lifespan=lifespan,
        responses={
            401: {"model": ErrorBody, "description": "Missing or wrong API key"},
            429: {"model": ErrorBody, "description": "Over the rate limit, when one is set"},
            503: {"model": ErrorBody, "description": "The index is loading or failed to load"},
        },
    )
    app.state.service = service
    app.add_exception_handler(DocqaError, on_docqa_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)
    app.add_exception_handler(HTTPException, on_http_error)
    # Each add_middleware wraps the ones before: a request meets them from the last up.
    app.add_middleware(LastResort)
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, timeout_s=settings.client_timeout_s
    )
    if settings.api_key:
        app.add_middleware(ApiKeyGuard, api_key=settings.api_key)
    if settings.rate_limit_per_minute:  # outside the key check: it also slows key guessing
        app.add_middleware(
            RateLimit, per_minute=settings.rate_limit_per_minute, max_clients=RATE_LIMIT_CLIENTS
        )
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AccessLog)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    add_routes(app, settings)
    return app


def add_routes(app: FastAPI, settings: Settings) -> None:
    """The endpoints: page, health, chat, search, documents."""

    class ChatRequest(ChatRequestBase):
        message: str = Field(
            min_length=1,
            max_length=settings.max_question_chars,
            description="The question, in plain text; not only whitespace.",
        )

    ServiceDep = Annotated[Service, Depends(get_service)]
    EngineDep = Annotated[Engine, Depends(ready_engine)]
    problems: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorBody} for code in (400, 404, 408, 413, 415, 422)
    }

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get(
        "/health",
        response_model=Health,
        responses={503: {"model": HealthProblem, "description": "Loading, or failed to load"}},
    )
    def health(service: ServiceDep) -> Any:
        """Whether the service can answer: 200 once the index is loaded, 503 before."""
        if service.engine is not None:
            return health_json(service.engine, service.staleness.current(service.engine))
        if service.error is not None:
            return JSONResponse({"status": "error", "detail": service.error}, 503)
        body = {"status": "loading", "detail": "the index is loading"}
        return JSONResponse(body, 503, headers={"Retry-After": "2"})

    @app.post("/chat", response_model=ChatResponse, responses=problems)
    def chat(body: ChatRequest, engine: EngineDep, service: ServiceDep, request: Request) -> Any:
        """Answer a message; with a conversation_id, as a follow-up of that conversation."""
        store = service.conversations
        conversation = store.get(body.conversation_id) if body.conversation_id else None
        history = list(conversation.turns) if conversation else []
        answer = engine.ask(body.message, body.k, history)
        conversation = conversation or store.start()
        store.add_turn(conversation, Turn.from_answer(answer))
        note_chat(request, settings, conversation.id, answer)
        return chat_json(answer, conversation.id)

    @app.get("/search", response_model=SearchResponse, responses=problems)
    def search(
        engine: EngineDep,
        q: Annotated[
            str,
            Query(min_length=1, max_length=settings.max_question_chars, description="The query."),
        ],
        k: Annotated[int, Query(ge=1, le=50, description="How many passages to return.")] = 5,
    ) -> Any:
        """The passages ranked for a query, without composing an answer."""
        retrieval = engine.search(q, k)
        timings = {name: round(ms, 3) for name, ms in retrieval.timings_ms.items()}
        return {"query": q.strip(), "sources": sources_json(retrieval.hits), "timings_ms": timings}

    @app.get("/documents", response_model=list[DocumentOutline])
    def documents(engine: EngineDep) -> Any:
        """The indexed documents with their sections and passage counts."""
        return outline_documents(engine.index.chunks)


def note_chat(request: Request, settings: Settings, conversation_id: str, answer: Answer) -> None:
    """Leave the answer's metrics and stage timings for the request's log line; the question
    only when settings.log_message_text (the conversation id is cut: it grants access)."""
    fields: dict[str, Any] = {
        "conversation": conversation_id[:6],
        "answered": answer.answered,
        "confidence": answer.confidence,
        "sources": len(answer.hits),
    }
    fields.update({f"{stage}_ms": round(ms, 1) for stage, ms in answer.timings_ms.items()})
    if settings.log_message_text:
        fields["question"] = answer.question[:200]
    request.scope.setdefault("state", {})[LOG_FIELDS] = fields


# ---------------------------------------------------------------------------- serving


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the service under uvicorn (one worker) until SIGINT or SIGTERM."""
    import uvicorn

    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["docqa"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again so the default
    # action would end the process with -15; a stop that was asked for is a clean exit (0).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        workers=1,
        http=header_timeout_protocol(settings.client_timeout_s),
        timeout_keep_alive=5,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        log_level="info",
        log_config=log_config,
        access_log=False,  # AccessLog writes the one line per request, without query strings
    )


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def header_timeout_protocol(timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools when installed, else h11), closing a connection
    that has not completed a request's headers `timeout_s` seconds after it opened or after
    its last response. uvicorn times out only idle keep-alive connections: a client that
    sends nothing, or its headers a byte at a time, would otherwise hold its socket forever.
    Both protocols make a new `cycle` when a request's headers are complete."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    base: Any = AutoHTTPProtocol

    class WithHeaderTimeout(base):
        header_timer: asyncio.TimerHandle | None = None
        armed_cycle: object = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self.arm_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self.arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self.disarm_header_timer()
            super().connection_lost(exc)

        def arm_header_timer(self) -> None:
            self.disarm_header_timer()
            self.armed_cycle = self.cycle
            self.header_timer = self.loop.call_later(timeout_s, self.close_if_no_request)

        def disarm_header_timer(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def close_if_no_request(self) -> None:
            self.header_timer = None
            no_new_request = self.cycle is self.armed_cycle
            none_running = self.cycle is None or self.cycle.response_complete
            if no_new_request and none_running and not self.transport.is_closing():
                self.transport.close()

    return WithHeaderTimeout
