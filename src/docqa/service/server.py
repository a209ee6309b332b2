"""Running the service: uvicorn with a header timeout, graceful shutdown on SIGTERM."""

import asyncio
import copy
import signal
from typing import Any

from docqa.config import Settings
from docqa.service.app import create_app

GRACEFUL_SHUTDOWN_S = 30
"""On SIGTERM, how long in-flight requests may take to finish before they are cancelled."""


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
