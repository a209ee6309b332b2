"""State that worker processes share through Redis (`DOCQA_REDIS_URL`): the client, the
conversation store built on it, and rate-limit counters kept by the `limits` library."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from starlette.types import ASGIApp

from docqa.config import Settings
from docqa.service.conversations import (
    ConversationStore,
    MemoryConversationStore,
    RedisConversationStore,
)
from docqa.service.middleware import RateLimit

log = logging.getLogger("docqa.service")

REDIS_TIMEOUT_S = 1.0
"""How long a Redis command may take before the request is answered without it: a Redis
that hangs must not hold the worker (a down one is refused at once on the same machine)."""


def redis_client(url: str) -> Any:
    """A redis-py client for `url` that gives up quickly and reconnects by itself."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        # One quick retry covers a restarted Redis (stale pooled connections); more would
        # only delay the 503 while it is down.
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
        health_check_interval=30,
    )


def conversation_store(settings: Settings) -> ConversationStore:
    """Redis when settings.redis_url is set, else this process's memory."""
    bounds = (
        settings.max_conversations,
        settings.conversation_ttl_s,
        settings.max_turns,
        settings.max_conversation_bytes,
    )
    if settings.redis_url:
        return RedisConversationStore(redis_client(settings.redis_url), *bounds)
    return MemoryConversationStore(*bounds)


class SharedRateLimit(RateLimit):
    """RateLimit with its counters in Redis, so every worker counts the same requests: a
    moving window of `per_minute` requests per client over the last 60 s (`limits`).
    While Redis cannot be reached, requests pass: the limit slows abuse, it guards nothing."""

    def __init__(self, app: ASGIApp, per_minute: int, redis_url: str) -> None:
        from limits import RateLimitItemPerMinute
        from limits.storage import RedisStorage
        from limits.strategies import MovingWindowRateLimiter

        super().__init__(app, per_minute, max_clients=0)
        self.item = RateLimitItemPerMinute(per_minute)
        storage = RedisStorage(
            redis_url,
            key_prefix="docqa:limits",
            wrap_exceptions=True,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
        self.limiter = MovingWindowRateLimiter(storage)

    def take(self, client: str, now: float) -> float:
        """Count one request: 0.0 if within the limit, else seconds until one will be."""
        from limits.errors import StorageError

        try:
            if self.limiter.hit(self.item, client):
                return 0.0
            reset_at = self.limiter.get_window_stats(self.item, client).reset_time
        except StorageError as error:
            log.warning("rate limit storage is unavailable, not limiting: %s", error)
            return 0.0
        return max(math.ulp(1.0), reset_at - time.time())
