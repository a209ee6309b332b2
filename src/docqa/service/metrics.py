"""GET /metrics in Prometheus' text format (prometheus-client): requests by route and status,
request and answering-stage latency histograms, the index version and the conversations
stored. With several workers, `docqa serve` points PROMETHEUS_MULTIPROC_DIR at a folder of
its own, every worker writes its figures there, and /metrics adds them up."""

from __future__ import annotations

import contextlib
import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docqa.models import Answer, DocqaError
from docqa.service.conversations import ConversationStore

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# From 0.5 ms (a cached lexical search) to 2 s (a cold request): /chat's stages and totals
# fall between 0.1 and 30 ms on the evaluation set (`docqa bench`).
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.5, 1, 2)

REQUESTS = Counter(
    "docqa_requests", "HTTP requests answered, by route and status.", ["route", "status"]
)
REQUEST_SECONDS = Histogram(
    "docqa_request_duration_seconds",
    "Time from a request's start to its response's end, by route.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
STAGE_SECONDS = Histogram(
    "docqa_answer_stage_seconds",
    "Time of each answering stage of /chat (encode, dense, lexical, fusion, answer, total).",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
INDEX_VERSION = Gauge(
    "docqa_index_version_info",
    "1 for the index build the service answers from (its folder name), 0 for earlier ones.",
    ["version"],
    multiprocess_mode="mostrecent",
)
CONVERSATIONS = Gauge(
    "docqa_conversations_stored",
    "Conversations the store holds (all workers' when they share Redis).",
    multiprocess_mode="mostrecent",
)


def route_of(scope: Scope) -> str:
    """The route template that matched (`/chat`), never the raw path: raw paths would make
    one time series per URL a client invents."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "/static" if scope.get("path", "").startswith("/static/") else "unmatched"


class RequestMetrics:
    """Counts every response by route and status and times it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            route = route_of(scope)
            REQUESTS.labels(route, str(status)).inc()
            REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)


def observe_answer(answer: Answer) -> None:
    """Record the answering stages of one /chat answer."""
    for stage, ms in answer.timings_ms.items():
        STAGE_SECONDS.labels(stage).observe(ms / 1000.0)


_versions_seen: set[str] = set()


def render_metrics(index_version: str | None, conversations: ConversationStore) -> bytes:
    """The metrics page: this process's figures, or every worker's in multi-process mode.
    `conversations` is the store (its count is read now; skipped while it is unreachable)."""
    if index_version is not None:
        for version in _versions_seen - {index_version}:
            INDEX_VERSION.labels(version).set(0)
        INDEX_VERSION.labels(index_version).set(1)
        _versions_seen.add(index_version)
    with contextlib.suppress(DocqaError):
        CONVERSATIONS.set(conversations.count())
    if os.environ.get(MULTIPROCESS_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
