"""Running the service: uvicorn with a header timeout, graceful shutdown on SIGTERM, in one
process or in several worker processes sharing the port."""

import asyncio
import copy
import functools
import json
import os
import shutil
import signal
import tempfile
from typing import Any

from fastapi import FastAPI

from docqa.config import Settings
from docqa.models import DocqaError
from docqa.service.app import create_app
from docqa.service.metrics import MULTIPROCESS_ENV

GRACEFUL_SHUTDOWN_S = 30
"""On SIGTERM, how long in-flight requests may take to finish before they are cancelled."""


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
        timeout_keep_alive=5,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        log_level="info",
        log_config=log_config,
        access_log=False,  # AccessLog writes the one line per request, without query strings
        **options,
    )


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
