"""Where conversations live between requests: in this process's memory (the default) or in
Redis, which several worker processes and machines share. Both stores keep the same bounds:
at most `capacity` conversations, each dropped `ttl_s` seconds after its last use, holding
its last `max_turns` turns and at most `max_bytes` of them as JSON (the oldest turns go
first; the newest always stays)."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from docqa.answer.conversation import Turn
from docqa.models import DocqaError

log = logging.getLogger("docqa.service")


class ConversationNotFoundError(DocqaError):
    """The conversation id is unknown or has expired."""


class ConversationStorageError(DocqaError):
    """The shared conversation storage (Redis) cannot be reached."""


@dataclass
class Conversation:
    """The last turns of one conversation, and what else it carries from turn to turn."""

    id: str
    turns: deque[Turn]
    last_used: float = field(default_factory=time.monotonic)
    documents: tuple[str, ...] | None = None
    """Ids of the documents the conversation is limited to; None for all of them."""


CARRIED_FIELDS = tuple(
    f.name for f in dataclasses.fields(Conversation) if f.name not in ("id", "turns", "last_used")
)
"""What a conversation carries from turn to turn besides its turns (e.g. its documents)."""


class ConversationStore(Protocol):
    """What the service needs from a store of conversations."""

    def start(self, **fields: Any) -> Conversation:
        """A new, empty conversation (`fields`: its other Conversation fields)."""
        ...

    def get(self, conversation_id: str) -> Conversation:
        """The conversation with this id; raises ConversationNotFoundError if gone."""
        ...

    def add_turn(self, conversation: Conversation, turn: Turn) -> None:
        """Record a turn (the oldest turns drop off beyond the count and byte bounds)."""
        ...

    def count(self) -> int:
        """How many conversations are stored now."""
        ...


def not_found(conversation_id: str) -> ConversationNotFoundError:
    """The error for an id that is unknown or has expired, with the fix."""
    return ConversationNotFoundError(
        f"conversation {conversation_id[:64]!r} is unknown or has expired: "
        "send the message without a conversation_id to start a new one"
    )


def turn_bytes(turn: Turn) -> int:
    """The size of a turn as stored: its JSON in UTF-8."""
    return len(json.dumps(dataclasses.asdict(turn), ensure_ascii=False).encode())


def trim_turns(turns: deque[Turn], max_bytes: int) -> None:
    """Drop the oldest turns until the rest fit in max_bytes; the newest always stays."""
    if len(turns) < 2:
        return
    sizes = [turn_bytes(turn) for turn in turns]
    total = sum(sizes)
    for size in sizes[:-1]:
        if total <= max_bytes:
            return
        turns.popleft()
        total -= size


def conversation_json(conversation: Conversation) -> str:
    """The whole conversation as JSON: every field, turns as objects (last_used is local)."""
    body: dict[str, Any] = {
        f.name: getattr(conversation, f.name)
        for f in dataclasses.fields(conversation)
        if f.name not in ("turns", "last_used")
    }
    body["turns"] = [dataclasses.asdict(turn) for turn in conversation.turns]
    return json.dumps(body, ensure_ascii=False)


def conversation_from_json(text: str | bytes, max_turns: int) -> Conversation:
    """The conversation conversation_json wrote; lists come back as tuples (fields are
    immutable), unknown fields are ignored (a newer or older version wrote them)."""
    body = json.loads(text)
    turn_fields = {f.name for f in dataclasses.fields(Turn)}
    turns = deque(
        (
            Turn(**{k: _frozen(v) for k, v in turn.items() if k in turn_fields})
            for turn in body.pop("turns")
        ),
        maxlen=max_turns,
    )
    known = {f.name for f in dataclasses.fields(Conversation)} - {"turns", "last_used"}
    return Conversation(turns=turns, **{k: _frozen(v) for k, v in body.items() if k in known})


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class MemoryConversationStore:
    """Conversations in this process's memory, least recently used dropped first."""

    def __init__(self, capacity: int, ttl_s: float, max_turns: int, max_bytes: int) -> None:
        self.capacity = capacity
        self.ttl_s = ttl_s
        self.max_turns = max_turns
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Conversation] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def count(self) -> int:
        """How many conversations are stored now."""
        return len(self._items)

    def start(self, **fields: Any) -> Conversation:
        """A new, empty conversation."""
        turns: deque[Turn] = deque(maxlen=self.max_turns)
        conversation = Conversation(secrets.token_urlsafe(16), turns, **fields)
        with self._lock:
            self._expire()
            self._items[conversation.id] = conversation
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return conversation

    def get(self, conversation_id: str) -> Conversation:
        """The conversation with this id; raises ConversationNotFoundError if gone."""
        with self._lock:
            self._expire()
            conversation = self._items.get(conversation_id)
            if conversation is None:
                raise not_found(conversation_id)
            conversation.last_used = time.monotonic()
            self._items.move_to_end(conversation_id)
            return conversation

    def add_turn(self, conversation: Conversation, turn: Turn) -> None:
        """Record a turn (the oldest turns drop off beyond max_turns and max_bytes)."""
        with self._lock:
            conversation.turns.append(turn)
            trim_turns(conversation.turns, self.max_bytes)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._items:
            oldest = next(iter(self._items.values()))
            if now - oldest.last_used <= self.ttl_s:
                break
            self._items.popitem(last=False)


class RedisConversationStore:
    """Conversations in Redis, shared by every worker: one key per conversation holding the
    whole conversation as JSON, with a time-to-live renewed on each use, and a sorted set of
    ids by last use that bounds their number (the least recently used are deleted first).
    A Redis that cannot be reached raises ConversationStorageError."""

    def __init__(
        self,
        client: Any,
        capacity: int,
        ttl_s: float,
        max_turns: int,
        max_bytes: int,
        prefix: str = "docqa:",
    ) -> None:
        self.client = client
        self.capacity = capacity
        self.ttl_ms = max(1, round(ttl_s * 1000))
        self.ttl_s = ttl_s
        self.max_turns = max_turns
        self.max_bytes = max_bytes
        self.prefix = prefix
        self.index_key = f"{prefix}conversations"

    def key(self, conversation_id: str) -> str:
        """The Redis key of one conversation."""
        return f"{self.prefix}conversation:{conversation_id}"

    def count(self) -> int:
        """How many conversations are stored now."""
        with storage_errors():
            pipe = self.client.pipeline()
            pipe.zremrangebyscore(self.index_key, "-inf", time.time() - self.ttl_s)
            pipe.zcard(self.index_key)
            return int(pipe.execute()[1])

    def start(self, **fields: Any) -> Conversation:
        """A new, empty conversation; stored with its first turn (add_turn)."""
        return Conversation(
            secrets.token_urlsafe(16), deque(maxlen=self.max_turns), time.monotonic(), **fields
        )

    def get(self, conversation_id: str) -> Conversation:
        """The conversation with this id (its time-to-live renewed); raises
        ConversationNotFoundError if gone."""
        key = self.key(conversation_id)
        with storage_errors():
            pipe = self.client.pipeline()
            pipe.get(key)
            pipe.pexpire(key, self.ttl_ms)
            pipe.zadd(self.index_key, {conversation_id: time.time()}, xx=True)
            text = pipe.execute()[0]
            if text is None:  # expired: its id may linger in the index, which would count it
                self.client.zrem(self.index_key, conversation_id)
                raise not_found(conversation_id)
        return conversation_from_json(text, self.max_turns)

    def add_turn(self, conversation: Conversation, turn: Turn) -> None:
        """Record a turn. A new conversation is written in one round trip; a stored one gets
        the turn appended in a transaction (another worker may add to it at the same moment),
        trimmed, and written back with a fresh time-to-live."""
        new = not conversation.turns
        conversation.turns.append(turn)
        trim_turns(conversation.turns, self.max_bytes)
        with storage_errors():
            if new:
                self.store_new(conversation)
            else:
                self.client.transaction(
                    functools.partial(self.append, conversation, turn), self.key(conversation.id)
                )

    def store_new(self, conversation: Conversation) -> None:
        """Write a new conversation; forget expired ids and delete the least recently used
        beyond capacity, all in one transaction."""
        now = time.time()
        pipe = self.client.pipeline()
        pipe.set(self.key(conversation.id), conversation_json(conversation), px=self.ttl_ms)
        pipe.zadd(self.index_key, {conversation.id: now})
        pipe.zremrangebyscore(self.index_key, "-inf", now - self.ttl_s)
        # Ranks 0 .. -capacity-1 are all but the `capacity` most recently used.
        pipe.zrange(self.index_key, 0, -self.capacity - 1)
        pipe.zremrangebyrank(self.index_key, 0, -self.capacity - 1)
        evicted = pipe.execute()[3]
        if evicted:
            self.client.delete(*(self.key(conversation_id) for conversation_id in evicted))

    def append(self, conversation: Conversation, turn: Turn, pipe: Any) -> None:
        """The body of add_turn's transaction on a stored conversation (run again by redis-py
        if the conversation changed meanwhile): the stored turns plus this one, and the other
        fields as this turn left them (it may have chosen other documents)."""
        key = self.key(conversation.id)
        text = pipe.get(key)
        if text is None:
            raise not_found(conversation.id)
        stored = conversation_from_json(text, self.max_turns)
        stored.turns.append(turn)
        trim_turns(stored.turns, self.max_bytes)
        for name in CARRIED_FIELDS:
            setattr(stored, name, getattr(conversation, name))
        pipe.multi()
        pipe.set(key, conversation_json(stored), px=self.ttl_ms)
        pipe.zadd(self.index_key, {conversation.id: time.time()})


@contextmanager
def storage_errors() -> Iterator[None]:
    """Turn a Redis that cannot be reached into ConversationStorageError (a 503)."""
    import redis

    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        log.warning("conversation storage is unavailable: %s", error)
        raise ConversationStorageError(
            "conversation storage is unavailable: retry in a few seconds, or send the "
            "message without a conversation_id to ask it on its own"
        ) from error
