"""create_app(settings) -> FastAPI: the docqa HTTP service and its routes.

Status codes: 200 answers; 400 a body that is not JSON (or not UTF-8, or nested too deeply
to parse); 401 a missing or wrong API key; 404 an unknown or expired conversation; 408 a body
that did not arrive within `client_timeout_s`; 413 a body over `max_body_bytes`, declared or
streamed; 415 a body sent with a content type other than application/json; 422 a request that
is JSON but not acceptable (empty or whitespace-only message, message over
`max_question_chars`, k outside 1..50, wrong types, unknown fields, a body that is not a JSON
object); 429 a client over `rate_limit_per_minute`, with Retry-After; 503 while the index
loads or when it failed to load, and for a follow-up while the conversation storage
(Redis) cannot be reached; 500 only for a bug, with a generic message (the traceback goes to
the log). Every error body is `{"detail": "<one human sentence>"}`, plus `errors`
(field, message, type) for 422.

Each request is logged once, as key=value pairs (logger `docqa.access`).

The module deliberately avoids `from __future__ import annotations`: FastAPI reads the
route signatures at runtime and the chat request model is made per app (its length limit
comes from the settings).
"""

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import Field
from starlette.exceptions import HTTPException

from docqa.config import Settings
from docqa.conversation import Turn
from docqa.engine import Engine
from docqa.models import Answer, DocqaError
from docqa.service.conversations import ConversationStorageError
from docqa.service.errors import on_docqa_error, on_http_error, on_invalid_request
from docqa.service.metrics import CONTENT_TYPE, RequestMetrics, observe_answer, render_metrics
from docqa.service.middleware import (
    LOG_FIELDS,
    RATE_LIMIT_CLIENTS,
    AccessLog,
    ApiKeyGuard,
    BodyLimit,
    LastResort,
    RateLimit,
    SecurityHeaders,
)
from docqa.service.schemas import (
    ChatRequestBase,
    ChatResponse,
    DocumentOutline,
    ErrorBody,
    Health,
    HealthProblem,
    SearchResponse,
)
from docqa.service.shared import SharedRateLimit, conversation_store
from docqa.service.state import (
    Service,
    chat_json,
    get_service,
    health_json,
    outline_documents,
    ready_engine,
    sources_json,
)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def create_app(
    settings: Settings, engine: Engine | None = None, load_before_serving: bool = False
) -> FastAPI:
    """The docqa service; loads the engine in the background unless one is given. A worker
    among several loads it before serving instead: until then the others take its requests,
    where a lone process answers /health "loading" meanwhile."""
    service = Service(settings, conversation_store(settings), engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service.engine is None and load_before_serving:
            await asyncio.to_thread(service.load)
        elif service.engine is None:
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
    if settings.rate_limit_per_minute and settings.redis_url:  # outside the key check:
        app.add_middleware(  # it also slows key guessing
            SharedRateLimit, per_minute=settings.rate_limit_per_minute, redis_url=settings.redis_url
        )
    elif settings.rate_limit_per_minute:
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
    app.add_middleware(RequestMetrics)
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
        if conversation is None:
            conversation = store.start()
            # A first question is answered even when the storage is down; only its
            # follow-ups need the stored turns (they get a 503 until it is back).
            with contextlib.suppress(ConversationStorageError):
                store.add_turn(conversation, Turn.from_answer(answer))
        else:
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

    @app.get("/metrics", include_in_schema=False)
    def metrics(service: ServiceDep) -> Response:
        """Prometheus metrics of every worker (behind the API key when one is set)."""
        version = service.engine.index.path.name if service.engine is not None else None
        return Response(render_metrics(version, service.conversations), media_type=CONTENT_TYPE)

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
    observe_answer(answer)
