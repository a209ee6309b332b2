"""create_app(settings) -> FastAPI: the docqa HTTP service and its routes.

Status codes: 200 answers; 400 a body that is not JSON (or not UTF-8, or nested too deeply
to parse); 401 a missing or wrong API key; 403 a POST, PUT, PATCH or DELETE from a page of
another site (unless DOCQA_CORS_ORIGINS names it), or a change to the library while
`read_only` is set; 404 an unknown or expired conversation; 408 a body that did not arrive
within `client_timeout_s`; 413 a body over `max_body_bytes`, declared or streamed; 415 a
body sent with a content type other than application/json; 422 a request that is JSON but
not acceptable (empty or whitespace-only message, message over `max_question_chars`, k
outside 1..50, wrong types, unknown fields, a body that is not a JSON object); 429 a client
over `rate_limit_per_minute`, with Retry-After; 503 while the index loads or when it failed
to load, and for a follow-up while the conversation storage (Redis) cannot be reached; 500
only for a bug, with a generic message (the traceback goes to the log). Every error body is
`{"detail": "<one human sentence>"}`, plus `errors` (field, message, type) for 422.

Each request is logged once, as key=value pairs (logger `docqa.access`).

The module deliberately avoids `from __future__ import annotations`: FastAPI reads the
route signatures at runtime and the chat request model is made per app (its length limit
comes from the settings).
"""

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator, Field
from starlette.exceptions import HTTPException

from docqa.answer.conversation import Turn
from docqa.config import Settings
from docqa.engine import Engine, sources_json
from docqa.library import DocumentNotFoundError
from docqa.models import Answer, DocqaError
from docqa.service.conversations import ConversationStorageError
from docqa.service.errors import on_docqa_error, on_http_error, on_invalid_request
from docqa.service.library import closed_on_signals
from docqa.service.metrics import CONTENT_TYPE, RequestMetrics, observe_answer, render_metrics
from docqa.service.middleware import (
    LOCAL_HOSTS,
    LOG_FIELDS,
    RATE_LIMIT_CLIENTS,
    AccessLog,
    ApiKeyGuard,
    BodyLimit,
    CrossSiteGuard,
    HostCheck,
    JsonCORS,
    LastResort,
    RateLimit,
    SecurityHeaders,
    has_api_key,
)
from docqa.service.schemas import (
    NOT_BLANK,
    ChatRequestBase,
    ChatResponse,
    Deleted,
    DocumentRecord,
    ErrorBody,
    Health,
    HealthBrief,
    HealthProblem,
    Reindexing,
    SearchResponse,
    UploadResponse,
    not_blank,
)
from docqa.service.shared import SharedRateLimit, conversation_store
from docqa.service.state import (
    NotReadyError,
    Service,
    chat_json,
    chosen_documents,
    empty_health_json,
    get_service,
    health_json,
    ready_engine,
)
from docqa.service.uploads import read_uploads, upload_body
from docqa.service.viewer import add_viewer_routes

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
        with closed_on_signals(service.library):  # a build stops at SIGTERM, not at exit
            yield
        service.library.close()

    app = FastAPI(
        title="docqa",
        summary="Ask the document questions; get short answers quoted from it, with sources.",
        version="0.1.0",
        lifespan=lifespan,
        responses={
            401: {"model": ErrorBody, "description": "Missing or wrong API key"},
            403: {"model": ErrorBody, "description": "A change from another site, or read-only"},
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
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        timeout_s=settings.client_timeout_s,
        upload_bytes=settings.max_upload_bytes,
        upload_timeout_s=settings.upload_timeout_s,
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
    app.add_middleware(CrossSiteGuard, allowed_origins=settings.cors_origins)
    if settings.cors_origins:
        app.add_middleware(
            JsonCORS,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(
        HostCheck,
        allowed_hosts=settings.allowed_hosts or list(LOCAL_HOSTS),
        local_hosts_local_only=settings.local_hosts_local_only,
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
            json_schema_extra={"pattern": NOT_BLANK},
        )

    ServiceDep = Annotated[Service, Depends(get_service)]
    EngineDep = Annotated[Engine, Depends(ready_engine)]
    problems: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorBody} for code in (400, 404, 408, 409, 413, 415, 422)
    }

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get(
        "/health",
        response_model=Health | HealthBrief,
        responses={503: {"model": HealthProblem, "description": "Loading, or failed to load"}},
    )
    def health(service: ServiceDep, request: Request) -> Any:
        """Whether the service can answer: 200 once the index is loaded (or the library is
        found empty, ready for uploads), 503 before. With an API key set, only a request that
        carries it sees the index details."""
        service.follow_current()
        full = not settings.api_key or has_api_key(request.scope, settings.api_key)
        if not full and (service.engine is not None or service.empty):
            return {"status": "ok"}
        if service.engine is not None:
            return health_json(service.engine, service.staleness.current(service.engine))
        if service.empty:
            return empty_health_json(settings)
        if service.error is not None:
            detail = service.error if full else "the index could not be loaded (see the log)"
            return JSONResponse({"status": "error", "detail": detail}, 503)
        body = {"status": "loading", "detail": "the index is loading"}
        return JSONResponse(body, 503, headers={"Retry-After": "2"})

    # Probes and link checkers ask HEAD; one operation per path keeps the schema's ids unique.
    app.add_api_route("/health", health, methods=["HEAD"], include_in_schema=False)

    @app.post("/chat", response_model=ChatResponse, responses=problems)
    def chat(body: ChatRequest, engine: EngineDep, service: ServiceDep, request: Request) -> Any:
        """Answer a message; with a conversation_id, as a follow-up of that conversation (and
        from the documents it was limited to, unless `documents` chooses again)."""
        store = service.conversations
        conversation = store.get(body.conversation_id) if body.conversation_id else None
        history = list(conversation.turns) if conversation else []
        if body.documents is not None:
            ids: Sequence[str] | None = body.documents
            only = chosen_documents(engine, service.library, ids)
        else:
            ids = conversation.documents if conversation else None
            only = chosen_documents(engine, service.library, ids, strict=False)
        answer = engine.ask(body.message, body.k, history, documents=only)
        documents = tuple(ids) if ids else None
        if conversation is None:
            conversation = store.start(documents=documents)
            # A first question is answered even when the storage is down; only its
            # follow-ups need the stored turns (they get a 503 until it is back).
            with contextlib.suppress(ConversationStorageError):
                store.add_turn(conversation, Turn.from_answer(answer))
        else:
            conversation.documents = documents  # stored with the turn: it travels with it
            store.add_turn(conversation, Turn.from_answer(answer))
        note_chat(request, settings, conversation.id, answer)
        return chat_json(answer, conversation.id)

    @app.get("/search", response_model=SearchResponse, responses=problems)
    def search(
        engine: EngineDep,
        service: ServiceDep,
        q: Annotated[
            str,
            Query(
                min_length=1,
                max_length=settings.max_question_chars,
                description="The query; not only whitespace.",
                json_schema_extra={"pattern": NOT_BLANK},
            ),
            AfterValidator(lambda q: not_blank(q, "query")),
        ],
        k: Annotated[int, Query(ge=1, le=50, description="How many passages to return.")] = 5,
        documents: Annotated[
            list[Annotated[str, Query(max_length=100)]] | None,
            Query(max_length=100, description="Ids of the documents to search (default all)."),
        ] = None,
    ) -> Any:
        """The passages ranked for a query, without composing an answer."""
        only = chosen_documents(engine, service.library, documents)
        retrieval = engine.search(q, k, documents=only)
        timings = {name: round(ms, 3) for name, ms in retrieval.timings_ms.items()}
        return {"query": q.strip(), "sources": sources_json(retrieval.hits), "timings_ms": timings}

    @app.get("/metrics", include_in_schema=False)
    def metrics(service: ServiceDep) -> Response:
        """Prometheus metrics of every worker (behind the API key when one is set)."""
        version = service.engine.index.path.name if service.engine is not None else None
        return Response(render_metrics(version, service.conversations), media_type=CONTENT_TYPE)

    add_library_routes(app, settings, problems)
    add_viewer_routes(app, settings, problems, library_engine)


def add_library_routes(
    app: FastAPI, settings: Settings, problems: dict[int | str, dict[str, Any]]
) -> None:
    """The document library: list, upload, status, delete, reindex."""
    ServiceDep = Annotated[Service, Depends(get_service)]

    def writable() -> None:
        """Refuse a change to the library while the service is read-only."""
        if settings.read_only:
            raise HTTPException(403, READ_ONLY)

    changes: list[Any] = [Depends(writable)]

    @app.get("/documents", response_model=list[DocumentRecord], responses=problems)
    def documents(service: ServiceDep) -> Any:
        """The documents of the library, indexed or on their way, with their sections."""
        return service.library.records(library_engine(service))

    @app.get("/documents/{doc_id}", response_model=DocumentRecord, responses=problems)
    def document(doc_id: str, service: ServiceDep) -> Any:
        """One document of the library: follow an upload's status here."""
        for record in service.library.records(library_engine(service)):
            if record["id"] == doc_id:
                return record
        raise DocumentNotFoundError(
            f"no document has id {doc_id[:80]!r}: GET /documents lists them"
        )

    @app.post(
        "/documents",
        status_code=202,
        response_model=UploadResponse,
        responses={
            **problems,
            200: {"model": UploadResponse, "description": "The library already held every file"},
        },
        openapi_extra=upload_body(settings),
        dependencies=changes,
    )
    async def upload(request: Request, response: Response, service: ServiceDep) -> Any:
        """Add documents (multipart/form-data, one `files` field per file). They are indexed
        in the background: each record's status turns from queued to indexed (or failed,
        with a reason) at its status_url. A file whose bytes the library already holds is
        not stored again: its record is that document's, "already in the library as NAME"
        (200 when that is so of every file)."""
        uploads = await read_uploads(request, settings)
        if service.library.closed:  # the body arrived after SIGTERM
            raise NotReadyError(
                "the service is shutting down: send the upload again once it is back"
            )
        engine = library_engine(service)
        added = await run_in_threadpool(service.library.add, uploads)
        records = {r["name"]: r for r in service.library.records(engine)}
        if not any(item.stored for item in added):
            response.status_code = 200
        return {
            "documents": [
                {**records[item.name], "stored": item.stored, "detail": item.detail}
                for item in added
                if item.name in records
            ]
        }

    @app.delete(
        "/documents/{doc_id}", response_model=Deleted, responses=problems, dependencies=changes
    )
    def delete(doc_id: str, service: ServiceDep) -> Any:
        """Remove a document: no answer cites it from now on; the index drops it shortly."""
        name = service.library.remove(doc_id, library_engine(service))
        detail = "deleted: no answer cites it any more; the index is being updated"
        return {"id": doc_id, "name": name, "detail": detail}

    @app.post(
        "/reindex",
        status_code=202,
        response_model=Reindexing,
        responses=problems,
        dependencies=changes,
    )
    def reindex(service: ServiceDep) -> Any:
        """Bring the index up to date with the corpus folder as it is on disk (files added,
        changed or removed there; only those are read again), in the background; the service
        switches to the new build when it is ready."""
        library_engine(service)
        service.library.reindex()
        return {"detail": "reindexing in the background: /health shows the new index_version"}


READ_ONLY = (
    "this service is read-only: documents cannot be uploaded, deleted or reindexed here "
    "(DOCQA_READ_ONLY is set); use `docqa add`, `docqa remove` or `docqa index` on the server"
)


def library_engine(service: Service) -> Engine | None:
    """The engine the library works with; None while the library is empty. 503 while the
    service loads (an upload then would race the first build) or after it failed to."""
    service.follow_current()
    if service.engine is None and not service.empty:
        if service.error is not None:
            raise NotReadyError(f"the service could not load its index: {service.error}")
        raise NotReadyError("the index is still loading: retry in a few seconds")
    return service.engine


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
