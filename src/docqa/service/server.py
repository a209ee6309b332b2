"""Running the service: uvicorn with limits on request heads, graceful shutdown on SIGTERM,
in one process or in several worker processes sharing the port."""

import asyncio
import copy
import functools
import json
import logging
import os
import shutil
import signal
import tempfile
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI

from docqa.config import Settings
from docqa.models import DocqaError
from docqa.service.app import create_app
from docqa.service.metrics import MULTIPROCESS_ENV
from docqa.service.middleware import LOCAL_HOSTS, access_log, is_loopback, log_line

log = logging.getLogger("docqa.service")

GRACEFUL_SHUTDOWN_S = 30
"""On SIGTERM, how long in-flight requests may take to finish before they are cancelled."""
MAX_HEAD_LINE_BYTES = 32 * 1024
MAX_HEAD_BYTES = 64 * 1024
"""Limits of a request head (request line and headers). The longest valid line is a /search
request line: 2,000 characters of 4 UTF-8 bytes each, percent-encoded, is 24 KB; headers
of this service's own clients are under 1 KB (the longest is `Authorization`)."""
HEAD_TOO_LARGE = (
    f"the request headers are over {MAX_HEAD_BYTES} bytes, or one line is over "
    f"{MAX_HEAD_LINE_BYTES}: send fewer or shorter headers"
)


ALL_INTERFACES = ("0.0.0.0", "::", "")
ALL_INTERFACES_WARNING = (
    "listening on all interfaces, but without DOCQA_ALLOWED_HOSTS only requests addressed to "
    "localhost from this machine are answered: set DOCQA_ALLOWED_HOSTS to the names clients use"
)
OPEN_WARNING = (
    "no API key is set: anyone who can reach port {port} may upload and delete documents; "
    "set DOCQA_API_KEY to require a key, or DOCQA_READ_ONLY=true to refuse changes"
)


class WorkersNeedRedisError(DocqaError):
    """Several workers were asked for without shared storage for their state."""


def serve(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    """Run the service under uvicorn until SIGINT or SIGTERM: one process, or `workers`
    processes (each loads the index; conversations and rate limits are shared in Redis)."""
    if workers > 1 and not settings.redis_url:
        raise WorkersNeedRedisError(
            f"--workers {workers} needs Redis to share conversations and rate limits: "
            "set DOCQA_REDIS_URL (e.g. redis://127.0.0.1:6379/0) or use --workers 1"
        )
    if not settings.api_key and not settings.read_only:
        log.warning("%s", OPEN_WARNING.format(port=port))
    if not settings.allowed_hosts:
        if host in ALL_INTERFACES:
            log.warning("%s", ALL_INTERFACES_WARNING)
        # On the network, a client elsewhere could send `Host: 127.0.0.1` and be answered.
        local_only = settings.local_hosts_local_only or not is_loopback_bind(host)
        settings = settings.model_copy(
            update={"allowed_hosts": default_hosts(host), "local_hosts_local_only": local_only}
        )
    if workers == 1:
        run_uvicorn(create_app(settings), settings, host, port, workers=1)
        return
    # Workers are fresh interpreters: they read their settings from the environment, and
    # write their metrics into a folder of this run that /metrics adds up.
    os.environ.update(settings_environment(settings))
    metrics_dir = tempfile.mkdtemp(prefix="docqa-metrics-")
    os.environ[MULTIPROCESS_ENV] = metrics_dir
    try:
        run_uvicorn(
            "docqa.service.server:app_from_environment",
            settings,
            host,
            port,
            workers=workers,
            factory=True,
            http="docqa.service.server:protocol_from_environment",
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def run_uvicorn(app: Any, settings: Settings, host: str, port: int, **options: Any) -> None:
    """uvicorn with docqa's logging, timeouts and clean exit on SIGTERM."""
    import uvicorn

    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["docqa"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again so the default
    # action would end the process with -15; a stop that was asked for is a clean exit (0).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    options.setdefault("http", header_timeout_protocol(settings.client_timeout_s))
    uvicorn.run(
        app,
        host=host,
        port=port,
        # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: any local
        # client could then pick its address for the rate limit and the log.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or "",
        timeout_keep_alive=5,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        log_level="info",
        log_config=log_config,
        access_log=False,  # AccessLog writes the one line per request, without query strings
        **options,
    )


def default_hosts(bind_host: str) -> list[str]:
    """The Host names accepted when none are configured: localhost and the bind address."""
    hosts = list(LOCAL_HOSTS)
    if bind_host not in ALL_INTERFACES:  # not a name clients use
        hosts.append(f"[{bind_host}]" if ":" in bind_host else bind_host)
    return hosts


def is_loopback_bind(bind_host: str) -> bool:
    """Whether the service listens only on this machine's loopback interface."""
    return bind_host.lower() == "localhost" or is_loopback(bind_host)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def settings_environment(settings: Settings) -> dict[str, str]:
    """DOCQA_ variables that give a worker process these settings."""
    env = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            text = value if isinstance(value, str) else json.dumps(value)
            env[f"DOCQA_{name.upper()}"] = text
    return env


def app_from_environment() -> FastAPI:
    """The app of one worker process, with the settings its environment gives (uvicorn
    starts workers from an import string, so they cannot be handed a Settings object)."""
    return create_app(Settings(), load_before_serving=True)


@functools.cache
def _environment_protocol() -> type[asyncio.Protocol]:
    return header_timeout_protocol(Settings().client_timeout_s)


def protocol_from_environment(*args: Any, **kwargs: Any) -> asyncio.Protocol:
    """A connection of a worker process: uvicorn names its protocol by import string too."""
    return _environment_protocol()(*args, **kwargs)


def header_timeout_protocol(timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools HTTP protocol (httptools is a dependency) with limits on the
    request head, which uvicorn leaves unbounded:

    - a connection that has not completed a request's headers `timeout_s` seconds after it
      opened or after its last response is closed (uvicorn times out only idle keep-alive
      connections: a client sending its headers a byte at a time would hold its socket);
    - a head over MAX_HEAD_BYTES, or with a line over MAX_HEAD_LINE_BYTES, gets a 431 and
      the connection is closed (httptools buffers a header of any size, re-copying it on
      every read: one endless header stalls the event loop, endless lines fill the memory);
    - uvicorn's reply to a request that is not HTTP is JSON, like every other error.

    The protocol makes a new `cycle` when a request's headers are complete."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    base: Any = HttpToolsProtocol

    class GuardedHTTPProtocol(base):
        header_timer: asyncio.TimerHandle | None = None
        armed_cycle: object = None
        reading_head = True
        """From the end of a request (or the connection's start) to the end of the next
        head; not while a body arrives, even after an early answer (a 401 before an upload)."""
        head_bytes = 0
        line_bytes = 0
        head_tail = b""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self.arm_header_timer()

        def data_received(self, data: bytes) -> None:
            if self.transport.is_closing():
                return
            if self.reading_head and not self.head_fits(data):
                self.refuse(431, HEAD_TOO_LARGE)
                return
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self.reading_head = False
            self.head_bytes = self.line_bytes = 0
            self.head_tail = b""
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self.reading_head = True

        def head_fits(self, data: bytes) -> bool:
            """Count the bytes of `data` up to the end of the head; False once over a limit."""
            window = self.head_tail + data
            end = window.find(b"\r\n\r\n")
            part = data if end < 0 else data[: max(0, end + 4 - len(self.head_tail))]
            self.head_tail = window[-3:]
            self.head_bytes += len(part)
            first, *rest = part.split(b"\n")
            longest = self.line_bytes + len(first)
            if rest:
                longest = max(longest, *(len(line) for line in rest))
                self.line_bytes = len(rest[-1])
            else:
                self.line_bytes = longest
            return self.head_bytes <= MAX_HEAD_BYTES and longest <= MAX_HEAD_LINE_BYTES

        def send_400_response(self, msg: str) -> None:
            self.refuse(400, f"the request is not valid HTTP/1.1: {msg.rstrip('.').lower()}")

        def refuse(self, status: int, detail: str) -> None:
            """Answer `status` with a JSON detail and close the connection."""
            self.transport.write(json_reply(status, detail))
            self.transport.close()
            client = self.client[0] if self.client else "-"
            access_log.info("%s", log_line({"client": client, "status": status}))

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

    return GuardedHTTPProtocol


def json_reply(status: int, detail: str) -> bytes:
    """A whole HTTP/1.1 response with a JSON `{"detail": ...}` body that closes the connection."""
    body = json.dumps({"detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body
