"""The conversation stores: in memory and in a real Redis, the same bounds (count, time to
live, turns, bytes), and a Redis that goes away."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import tracemalloc
from collections import deque
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest

import docqa.service.conversations
from docqa.answer.conversation import Turn
from docqa.config import Settings
from docqa.service.conversations import (
    Conversation,
    ConversationNotFoundError,
    ConversationStorageError,
    MemoryConversationStore,
    RedisConversationStore,
    conversation_from_json,
    conversation_json,
    turn_bytes,
)
from docqa.service.shared import redis_client
from redis_server import REDIS_SERVER, redis_server


class Clock:
    """A monotonic clock the test moves by hand, starting at the real one (new conversations
    take their first `last_used` from the real clock)."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(
        docqa.service.conversations, "time", SimpleNamespace(monotonic=clock, time=time.time)
    )
    return clock


def turn(question: str) -> Turn:
    return Turn(question, question, True)


# --- in memory --------------------------------------------------------------------------------


def test_store_holds_at_most_capacity_dropping_the_least_recently_started() -> None:
    store = MemoryConversationStore(capacity=2, ttl_s=3600, max_turns=5, max_bytes=100_000)
    first, second, third = store.start(), store.start(), store.start()
    assert len(store) == 2
    with pytest.raises(ConversationNotFoundError, match="unknown or has expired"):
        store.get(first.id)
    assert store.get(second.id) is second
    assert store.get(third.id) is third


def test_getting_a_conversation_keeps_it_over_an_older_unused_one() -> None:
    store = MemoryConversationStore(capacity=2, ttl_s=3600, max_turns=5, max_bytes=100_000)
    first, second = store.start(), store.start()
    store.get(first.id)
    third = store.start()
    with pytest.raises(ConversationNotFoundError):
        store.get(second.id)
    assert store.get(first.id) is first
    assert store.get(third.id) is third


def test_unknown_id_is_reported_with_the_fix() -> None:
    store = MemoryConversationStore(capacity=2, ttl_s=3600, max_turns=5, max_bytes=100_000)
    with pytest.raises(
        ConversationNotFoundError,
        match=r"conversation 'nope' is unknown or has expired: send the message without a "
        r"conversation_id to start a new one",
    ):
        store.get("nope")


def test_conversation_unused_for_longer_than_the_ttl_expires(clock: Clock) -> None:
    store = MemoryConversationStore(capacity=10, ttl_s=0.5, max_turns=5, max_bytes=100_000)
    conversation = store.start()
    clock.now += 0.6
    with pytest.raises(ConversationNotFoundError, match="unknown or has expired"):
        store.get(conversation.id)
    assert len(store) == 0


def test_conversation_used_within_the_ttl_stays(clock: Clock) -> None:
    store = MemoryConversationStore(capacity=10, ttl_s=0.5, max_turns=5, max_bytes=100_000)
    conversation = store.start()
    clock.now += 0.4
    store.get(conversation.id)
    clock.now += 0.4  # 0.8 s after the start, but only 0.4 s after the last use
    assert store.get(conversation.id) is conversation


def test_starting_a_conversation_drops_the_expired_ones(clock: Clock) -> None:
    store = MemoryConversationStore(capacity=10, ttl_s=0.5, max_turns=5, max_bytes=100_000)
    store.start()
    store.start()
    clock.now += 0.6
    store.start()
    assert len(store) == 1


def test_turns_beyond_max_turns_drop_the_oldest() -> None:
    store = MemoryConversationStore(capacity=2, ttl_s=3600, max_turns=2, max_bytes=100_000)
    conversation = store.start()
    for question in ["one?", "two?", "three?"]:
        store.add_turn(conversation, turn(question))
    assert [t.question for t in store.get(conversation.id).turns] == ["two?", "three?"]


def test_concurrent_starts_and_gets_keep_the_store_bounded() -> None:
    store = MemoryConversationStore(capacity=20, ttl_s=3600, max_turns=3, max_bytes=100_000)
    ids: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        try:
            for _ in range(300):
                conversation = store.start()
                ids.append(conversation.id)
                store.add_turn(conversation, turn("q?"))
                for conversation_id in (conversation.id, ids[len(ids) // 2]):
                    # Another thread's start may have dropped it: allowed.
                    with contextlib.suppress(ConversationNotFoundError):
                        store.get(conversation_id)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(ids) == len(set(ids)) == 2400
    assert len(store) == 20


# --- bytes (both stores) ----------------------------------------------------------------------

BIG = "Which of the missions named in the brief " + "x" * 1958  # 2,000 characters


def big_turn(number: int) -> Turn:
    """A turn as large as the settings allow: a 2,000-character question, a longer query."""
    question = f"{number:04d} {BIG}"[:2000]
    return Turn(question, f"{question} {BIG}", False, tuple(f"chunk-{i}" for i in range(50)))


def test_a_conversation_keeps_only_the_newest_turns_that_fit_in_max_bytes() -> None:
    store = MemoryConversationStore(capacity=2, ttl_s=3600, max_turns=20, max_bytes=20_000)
    conversation = store.start()
    for number in range(20):
        store.add_turn(conversation, big_turn(number))
    kept = list(store.get(conversation.id).turns)
    assert sum(turn_bytes(t) for t in kept) <= 20_000
    assert kept[-1] == big_turn(19)
    assert [t.question[:4] for t in kept] == [f"{n:04d}" for n in range(20 - len(kept), 20)]


def test_a_turn_larger_than_max_bytes_is_still_kept_alone() -> None:
    store = MemoryConversationStore(capacity=2, ttl_s=3600, max_turns=20, max_bytes=1000)
    conversation = store.start()
    store.add_turn(conversation, turn("short?"))
    store.add_turn(conversation, big_turn(1))
    assert list(store.get(conversation.id).turns) == [big_turn(1)]


def test_the_default_store_stays_within_its_byte_bound_when_filled_with_largest_turns() -> None:
    """Defaults once allowed ~620 MB (1,000 conversations x 20 turns of 2,000 characters).
    100 conversations keep the test short; memory grows linearly with their number."""
    settings = Settings(max_conversations=100)
    store = MemoryConversationStore(
        settings.max_conversations,
        settings.conversation_ttl_s,
        settings.max_turns,
        settings.max_conversation_bytes,
    )
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(settings.max_conversations + 10):
        conversation = store.start()
        for number in range(settings.max_turns):
            store.add_turn(conversation, big_turn(number))
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    json_bytes = sum(turn_bytes(t) for c in store._items.values() for t in c.turns)
    count = settings.max_conversations
    print(f"{count} conversations: {json_bytes / 1e6:.2f} MB as JSON, {held / 1e6:.2f} MB held")
    assert json_bytes <= settings.max_conversations * settings.max_conversation_bytes
    assert held <= 2 * settings.max_conversations * settings.max_conversation_bytes


# --- in Redis ----------------------------------------------------------------------------------


def redis_store(url: str, **bounds: Any) -> RedisConversationStore:
    values: dict[str, Any] = {"capacity": 10, "ttl_s": 3600, "max_turns": 5, "max_bytes": 20_000}
    values.update(bounds)
    return RedisConversationStore(redis_client(url), **values)


def test_a_conversation_stored_by_one_client_is_read_whole_by_another(redis_url: str) -> None:
    first, second = redis_store(redis_url), redis_store(redis_url)
    conversation = first.start()
    cited = Turn("Tell me about EUPOL", "Tell me about EUPOL", True, ("chunk-a", "chunk-b"))
    first.add_turn(conversation, cited)
    first.add_turn(conversation, turn("When did it operate?"))
    read = second.get(conversation.id)
    assert read.id == conversation.id
    assert list(read.turns) == [cited, turn("When did it operate?")]
    assert second.count() == 1


def test_a_conversations_choice_of_documents_travels_through_redis(redis_url: str) -> None:
    first, second = redis_store(redis_url), redis_store(redis_url)
    conversation = first.start(documents=("brief-txt-1234abcd",))
    first.add_turn(conversation, turn("one?"))
    read = second.get(conversation.id)
    read.documents = ("other-md-5678abcd",)  # a follow-up that chooses other documents
    second.add_turn(read, turn("two?"))

    assert first.get(conversation.id).documents == ("other-md-5678abcd",)


def test_every_field_of_a_conversation_travels_through_redis() -> None:
    conversation = Conversation("abc", deque([turn("one?")], maxlen=5))
    assert conversation_from_json(conversation_json(conversation), 5) == dataclasses.replace(
        conversation, last_used=mock.ANY
    )


def test_redis_keys_have_a_time_to_live_renewed_on_use(redis_url: str) -> None:
    store = redis_store(redis_url, ttl_s=100)
    conversation = store.start()
    store.add_turn(conversation, turn("one?"))
    key = store.key(conversation.id)
    store.client.pexpire(key, 5_000)
    store.get(conversation.id)
    assert 90_000 < store.client.pttl(key) <= 100_000


def test_a_conversation_past_its_ttl_is_gone_from_redis(redis_url: str) -> None:
    store = redis_store(redis_url, ttl_s=0.2)
    conversation = store.start()
    store.add_turn(conversation, turn("one?"))
    time.sleep(0.3)
    with pytest.raises(ConversationNotFoundError, match="unknown or has expired"):
        store.get(conversation.id)
    assert store.count() == 0


def test_redis_holds_at_most_capacity_conversations(redis_url: str) -> None:
    store = redis_store(redis_url, capacity=2)
    ids = []
    for question in ["one?", "two?", "three?"]:
        conversation = store.start()
        store.add_turn(conversation, turn(question))
        ids.append(conversation.id)
    assert store.count() == 2
    assert store.client.exists(store.key(ids[0])) == 0
    with pytest.raises(ConversationNotFoundError):
        store.get(ids[0])
    assert [t.question for t in store.get(ids[2]).turns] == ["three?"]


def test_redis_keeps_the_last_max_turns_within_max_bytes(redis_url: str) -> None:
    store = redis_store(redis_url, max_turns=3, max_bytes=20_000)
    conversation = store.start()
    for question in ["one?", "two?", "three?", "four?"]:
        store.add_turn(
            store.get(conversation.id) if store.count() else conversation, turn(question)
        )
    assert [t.question for t in store.get(conversation.id).turns] == ["two?", "three?", "four?"]
    for number in range(5):
        store.add_turn(store.get(conversation.id), big_turn(number))
    stored = list(store.get(conversation.id).turns)
    assert sum(turn_bytes(t) for t in stored) <= 20_000
    assert stored[-1] == big_turn(4)
    assert len(store.client.get(store.key(conversation.id))) <= 20_000 + 200


def test_turns_added_by_two_workers_at_once_are_all_kept(redis_url: str) -> None:
    first, second = redis_store(redis_url, max_turns=50), redis_store(redis_url, max_turns=50)
    conversation = first.start()
    first.add_turn(conversation, turn("start?"))
    barrier = threading.Barrier(2)

    def add(store: RedisConversationStore, prefix: str) -> None:
        barrier.wait()
        for number in range(10):
            store.add_turn(store.get(conversation.id), turn(f"{prefix}{number}?"))

    threads = [threading.Thread(target=add, args=(s, p)) for s, p in ((first, "a"), (second, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(first.get(conversation.id).turns) == 21


def test_a_redis_that_is_down_gives_a_storage_error_then_recovers(tmp_path: Path) -> None:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (scripts/install.sh installs it)")
    with redis_server(tmp_path) as server:
        store = redis_store(server.url)
        conversation = store.start()
        store.add_turn(conversation, turn("one?"))
        server.stop()
        with pytest.raises(ConversationStorageError, match="conversation storage is unavailable"):
            store.get(conversation.id)
        with pytest.raises(ConversationStorageError):
            store.add_turn(store.start(), turn("two?"))
        server.start()  # without persistence: the data is gone, the connection comes back
        with pytest.raises(ConversationNotFoundError):
            store.get(conversation.id)
        again = store.start()
        store.add_turn(again, turn("three?"))
        assert [t.question for t in store.get(again.id).turns] == ["three?"]
