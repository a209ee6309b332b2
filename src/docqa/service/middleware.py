"""The ASGI middleware of the service: security headers, Host check, cross-site check, API
key, body limit, rate limit, CORS with JSON errors, access log and the last-resort 500."""

import asyncio
import hmac
import ipaddress
import json
import logging
import math
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware, parse_host_header
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("docqa.service")
access_log = logging.getLogger("docqa.access")

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
CLOSE = {"Connection": "close"}
UPLOAD_PATH = "/documents"
"""Where documents are uploaded: its bodies may be up to `max_upload_bytes`."""
LOG_FIELDS = "docqa_log_fields"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
"""Host names always meaning this machine: accepted when DOCQA_ALLOWED_HOSTS is not set."""
HOST_ALLOWED = "docqa_host_allowed"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OTHER_SITES = frozenset({"cross-site", "same-site"})
"""Sec-Fetch-Site values of a request a page of another origin made: same-site covers
another port of the same host (a page on localhost:3000 calling localhost:8000)."""


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


class HostCheck:
    """Refuses (400, JSON) a request whose Host header is not one of `allowed_hosts`, so that
    a page of another site cannot read the service through DNS rebinding. Starlette's
    TrustedHostMiddleware decides (ports ignored, `*.example.com` patterns allowed); this
    class only answers in JSON like every other error. With `local_hosts_local_only`, a
    localhost name is answered only to a client on this machine: listening on all
    interfaces, the service would otherwise answer any client that sends `Host: 127.0.0.1`."""

    def __init__(
        self, app: ASGIApp, allowed_hosts: list[str], local_hosts_local_only: bool = False
    ) -> None:
        self.app = app
        self.trusted = TrustedHostMiddleware(mark_host_allowed, allowed_hosts, www_redirect=False)
        self.names = ", ".join(allowed_hosts)
        self.local_hosts_local_only = local_hosts_local_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.trusted(scope, receive, discard)
        allowed = scope.pop(HOST_ALLOWED, False)
        host = Headers(scope=scope).get("host", "")
        if allowed and not (self.local_hosts_local_only and local_name_from_afar(scope, host)):
            await self.app(scope, receive, send)
            return
        if allowed:
            detail = (
                f"this server answers to the host {host!r} only from this machine: for "
                "other machines (or a container's published port), add the name they use "
                "to DOCQA_ALLOWED_HOSTS"
            )
        else:
            detail = (
                f"this server does not answer to the host {host!r} (it answers to "
                f"{self.names}): add the name to DOCQA_ALLOWED_HOSTS"
            )
        await JSONResponse({"detail": detail}, 400)(scope, receive, send)


def is_loopback(address: str) -> bool:
    """Whether an IP address (IPv4-mapped IPv6 included) is one of this machine's loopback
    addresses; False for anything that is not an IP address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return (mapped or ip).is_loopback


def local_name_from_afar(scope: Scope, host: str) -> bool:
    """Whether the Host header names this machine's loopback (localhost, 127.0.0.1, [::1])
    while the client is not on this machine."""
    parsed = parse_host_header(host)
    local_name = parsed is not None and parsed.host.lower() in LOCAL_HOSTS
    client = scope.get("client")
    return local_name and not (client and is_loopback(client[0]))


async def mark_host_allowed(scope: Scope, receive: Receive, send: Send) -> None:
    """The 'app' behind TrustedHostMiddleware: reached only when the host is allowed."""
    scope[HOST_ALLOWED] = True


async def discard(message: Message) -> None:
    """Drops TrustedHostMiddleware's plain-text refusal: HostCheck answers in JSON."""


class JsonCORS(CORSMiddleware):
    """Starlette's CORS middleware, refusing a preflight with a JSON body like other errors."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        reason = bytes(response.body).decode().lower()
        headers = {k: v for k, v in response.headers.items() if k.startswith("access-control-")}
        detail = f"cross-origin request refused: {reason}; see DOCQA_CORS_ORIGINS"
        return JSONResponse({"detail": detail}, response.status_code, headers=headers)


def has_api_key(scope: Scope, api_key: str) -> bool:
    """Whether the request carries exactly `Authorization: Bearer <api_key>` (one space, no
    other padding; constant-time compare)."""
    scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), api_key.encode())


class CrossSiteGuard:
    """Refuses (403) a POST, PUT, PATCH or DELETE sent by a browser from a page of another
    origin, unless `allowed_origins` (DOCQA_CORS_ORIGINS) names it. Without an API key, a
    page on any web site could otherwise make its visitor's browser upload, delete or
    reindex: a form POST needs no CORS preflight, and it carries the service's own Host.
    Browsers say where a request comes from: Sec-Fetch-Site (cross-site and same-site are
    refused) and Origin (refused when it names another host than the Host header). Clients
    that send neither, such as curl, scripts and the CLI, are not browsers and pass."""

    def __init__(self, app: ASGIApp, allowed_origins: list[str]) -> None:
        self.app = app
        self.allowed_origins = frozenset(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if not self.from_other_origin(headers) or self.allows(origin):
            await self.app(scope, receive, send)
            return
        page = f"a page of {origin}" if origin else "a page of another site"
        detail = (
            f"cross-site request refused: {page} may not {scope['method']} {scope['path']} "
            "here; to let it, add its origin to DOCQA_CORS_ORIGINS"
        )
        await JSONResponse({"detail": detail}, 403)(scope, receive, send)

    def allows(self, origin: str | None) -> bool:
        """Whether DOCQA_CORS_ORIGINS lets pages of this origin call the service."""
        return origin is not None and (
            origin in self.allowed_origins or "*" in self.allowed_origins
        )

    @staticmethod
    def from_other_origin(headers: Headers) -> bool:
        """Whether the browser says that the request comes from a page of another origin
        (Origin `null`, sent by sandboxed pages and local files, is another origin)."""
        if headers.get("sec-fetch-site", "").lower() in OTHER_SITES:
            return True
        origin = headers.get("origin")
        if origin is None:
            return False
        # The scheme is not compared: behind a TLS proxy the service sees http while the page
        # is https. Browsers write both from the same URL, default ports left out.
        return urlsplit(origin).netloc.lower() != headers.get("host", "").lower()


class ApiKeyGuard:
    """With an API key set, refuses (401) every path but /health, / and /static/*
    unless the request carries `Authorization: Bearer <key>`."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in OPEN_PATHS or path.startswith("/static/"):
            await self.app(scope, receive, send)
            return
        if has_api_key(scope, self.api_key):
            await self.app(scope, receive, send)
            return
        detail = (
            "the API key is not valid"
            if Headers(scope=scope).get("authorization")
            else "this server needs an API key: send it as `Authorization: Bearer <key>`"
        )
        response = JSONResponse(
            {"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
        await response(scope, receive, send)


class BodyLimit:
    """Refuses a request body over `max_bytes` (`upload_bytes` for an upload to /documents)
    with 413 before it is read into memory, whether its length is declared or it is streamed
    (chunked), and one that has not fully arrived `timeout_s` seconds (`upload_timeout_s`
    for an upload) after the request started (408). Both answers close the connection, so
    the rest of the body is never read."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        timeout_s: float,
        upload_bytes: int,
        upload_timeout_s: float,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_bytes = upload_bytes
        self.timeout_s = timeout_s
        self.upload_timeout_s = upload_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == UPLOAD_PATH and scope["method"] == "POST":
            max_bytes, timeout_s = self.upload_bytes, self.upload_timeout_s
            too_large = (
                f"the upload is over {max_bytes:,} bytes: send fewer or smaller files "
                "(the limit is DOCQA_MAX_UPLOAD_BYTES)"
            )
        else:
            max_bytes, timeout_s = self.max_bytes, self.timeout_s
            too_large = f"the request body is over {max_bytes} bytes: send a shorter question"
        too_slow = f"the request body did not arrive within {timeout_s:g} s: send it again"
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            response = JSONResponse({"detail": too_large}, 413, headers=CLOSE)
            await response(scope, receive, send)
            return
        deadline = time.monotonic() + timeout_s
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
                raise HTTPException(408, too_slow, headers=CLOSE) from None
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise HTTPException(413, too_large, headers=CLOSE)
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
