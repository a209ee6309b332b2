"""Error mapping: domain errors and invalid requests to status codes and JSON bodies."""

import sys
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

from docqa.answer.confidence import AnswerModelError
from docqa.answer.reader import ReaderError
from docqa.engine import QuestionError
from docqa.indexing.corpus import CorpusError
from docqa.indexing.store import IndexError_
from docqa.library import (
    DiskFullError,
    DocumentNotFoundError,
    StorageError,
    TooLongError,
    UnsupportedTypeError,
    UploadError,
)
from docqa.models import DocqaError
from docqa.pages import ViewerError
from docqa.service.conversations import ConversationNotFoundError, ConversationStorageError
from docqa.service.state import EmptyLibraryError, NotReadyError

EXAMPLE_BODY = 'e.g. {"message": "your question", "conversation_id": null}'


ERROR_STATUS: dict[type[DocqaError], int] = {
    NotReadyError: 503,
    EmptyLibraryError: 409,
    DocumentNotFoundError: 404,
    UnsupportedTypeError: 415,  # before UploadError, its base
    TooLongError: 413,  # likewise
    UploadError: 422,
    DiskFullError: 507,  # before StorageError, its base
    StorageError: 503,
    QuestionError: 422,
    ConversationNotFoundError: 404,
    ConversationStorageError: 503,
    IndexError_: 503,
    CorpusError: 503,
    AnswerModelError: 503,
    ReaderError: 503,
    ViewerError: 422,
}


def validation_message(errors: Sequence[Any]) -> str:
    """One line naming each invalid field and its problem."""
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error["loc"] if part != "body")
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts)


async def on_docqa_error(request: Request, error: Exception) -> JSONResponse:
    """A domain error: its message, with the status code of its kind."""
    status = next((s for kind, s in ERROR_STATUS.items() if isinstance(error, kind)), 500)
    retry = isinstance(error, NotReadyError | ConversationStorageError)
    headers = {"Retry-After": "2"} if retry else None
    return JSONResponse({"detail": str(error)}, status, headers=headers)


async def on_http_error(request: Request, error: Exception) -> Response:
    """FastAPI's HTTP errors; a body it could not parse gets a message that says why."""
    if isinstance(error.__cause__, RecursionError):
        detail = f"the request body is JSON nested too deeply to read: {EXAMPLE_BODY}"
        return JSONResponse({"detail": detail}, 400)
    if isinstance(error.__cause__, UnicodeDecodeError):
        return JSONResponse({"detail": f"the request body is not UTF-8 text: {EXAMPLE_BODY}"}, 400)
    if isinstance(error, HTTPException) and error.status_code == 405:
        # Starlette names only the methods of the first route of the path (GET /documents
        # and POST /documents are two routes): Allow lists those of every route.
        allowed = allowed_methods(request)
        return JSONResponse(
            {"detail": f"method {request.method} is not allowed here: use {', '.join(allowed)}"},
            405,
            headers={"Allow": ", ".join(allowed)},
        )
    if isinstance(error.__cause__, ValueError) and "integer string" in str(error.__cause__):
        # Valid JSON, but Python refuses to read integers over 4,300 digits (CVE-2020-10735).
        limit = sys.get_int_max_str_digits()
        problem = {"loc": ["body"], "msg": f"a number has over {limit} digits", "type": "too_long"}
        detail = f"a number in the request body has over {limit} digits: k is 1 to 50"
        return JSONResponse({"detail": detail, "errors": [problem]}, 422)
    return await http_exception_handler(request, error)  # type: ignore[arg-type]


def allowed_methods(request: Request) -> list[str]:
    """The methods of every route of the app that matches the request's path."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        route_methods = getattr(route, "methods", None)
        # PARTIAL: the path matches, the method does not.
        if route_methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= set(route_methods)
    return sorted(methods)


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
