"""Follow-up questions (is_follow_up, resolve_query) and the bounded ConversationStore."""

from __future__ import annotations

import contextlib
import threading
import time
from types import SimpleNamespace

import pytest

import docqa.conversation
from docqa.conversation import (
    ConversationNotFoundError,
    ConversationStore,
    Query,
    Turn,
    is_follow_up,
    resolve_query,
)
from docqa.models import Answer, Citation

EUPOL = Turn("Tell me about EUPOL", "Tell me about EUPOL", True, ("chunk-a", "chunk-b"))


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
    monkeypatch.setattr(docqa.conversation, "time", SimpleNamespace(monotonic=clock))
    return clock


def turn(question: str) -> Turn:
    return Turn(question, question, True)


# --- follow-ups -------------------------------------------------------------------------------


def test_question_with_a_pronoun_after_another_is_a_follow_up() -> None:
    assert is_follow_up("When did it operate?", [EUPOL])


def test_follow_up_query_carries_the_subject_and_cited_chunks_of_the_last_turn() -> None:
    assert resolve_query("When did it operate?", [EUPOL]) == Query(
        "When did it operate? EUPOL", False, frozenset({"chunk-a", "chunk-b"})
    )


def test_question_naming_its_own_subject_is_not_a_follow_up() -> None:
    assert not is_follow_up("What is TADIC?", [EUPOL])
    assert resolve_query("What is TADIC?", [EUPOL]) == Query("What is TADIC?", True)


def test_question_with_several_subject_words_is_not_a_follow_up() -> None:
    assert not is_follow_up("Which countries joined NATO in 2020?", [EUPOL])


def test_first_question_of_a_conversation_is_never_a_follow_up() -> None:
    assert not is_follow_up("When did it operate?", [])
    assert resolve_query("When did it operate?", []) == Query("When did it operate?", True)


def test_question_naming_nothing_is_a_follow_up() -> None:
    assert is_follow_up("How many?", [EUPOL])


def test_what_about_opener_is_a_follow_up() -> None:
    assert is_follow_up("What about TADIC?", [EUPOL])


def test_second_follow_up_keeps_the_subject_of_the_last_self_contained_question() -> None:
    where = Turn("Where was it?", "Where was it? EUPOL", False, ("chunk-c",))
    assert resolve_query("When did it end?", [EUPOL, where]) == Query(
        "When did it end? EUPOL", False, frozenset({"chunk-c"})
    )


def test_turn_from_an_answer_keeps_each_cited_chunk_once_in_order() -> None:
    citations = tuple(
        Citation(rank, chunk_id, "a sentence.", 0, 11, 0, 11)
        for rank, chunk_id in [(2, "chunk-b"), (1, "chunk-a"), (2, "chunk-b")]
    )
    answer = Answer(
        " Tell me about EUPOL ", "x", True, 0.9, (), citations, {}, "Tell me about EUPOL"
    )
    assert Turn.from_answer(answer) == Turn(
        "Tell me about EUPOL", "Tell me about EUPOL", True, ("chunk-b", "chunk-a")
    )


def test_turn_from_a_follow_up_answer_is_not_standalone() -> None:
    answer = Answer(
        "When did it operate?", "x", True, 0.9, (), (), {}, "When did it operate? EUPOL"
    )
    assert Turn.from_answer(answer).standalone is False


# --- the store --------------------------------------------------------------------------------


def test_store_holds_at_most_capacity_dropping_the_least_recently_started() -> None:
    store = ConversationStore(capacity=2, ttl_s=3600, max_turns=5)
    first, second, third = store.start(), store.start(), store.start()
    assert len(store) == 2
    with pytest.raises(ConversationNotFoundError, match="unknown or has expired"):
        store.get(first.id)
    assert store.get(second.id) is second
    assert store.get(third.id) is third


def test_getting_a_conversation_keeps_it_over_an_older_unused_one() -> None:
    store = ConversationStore(capacity=2, ttl_s=3600, max_turns=5)
    first, second = store.start(), store.start()
    store.get(first.id)
    third = store.start()
    with pytest.raises(ConversationNotFoundError):
        store.get(second.id)
    assert store.get(first.id) is first
    assert store.get(third.id) is third


def test_unknown_id_is_reported_with_the_fix() -> None:
    store = ConversationStore(capacity=2, ttl_s=3600, max_turns=5)
    with pytest.raises(
        ConversationNotFoundError,
        match=r"conversation 'nope' is unknown or has expired: send the message without a "
        r"conversation_id to start a new one",
    ):
        store.get("nope")


def test_conversation_unused_for_longer_than_the_ttl_expires(clock: Clock) -> None:
    store = ConversationStore(capacity=10, ttl_s=0.5, max_turns=5)
    conversation = store.start()
    clock.now += 0.6
    with pytest.raises(ConversationNotFoundError, match="unknown or has expired"):
        store.get(conversation.id)
    assert len(store) == 0


def test_conversation_used_within_the_ttl_stays(clock: Clock) -> None:
    store = ConversationStore(capacity=10, ttl_s=0.5, max_turns=5)
    conversation = store.start()
    clock.now += 0.4
    store.get(conversation.id)
    clock.now += 0.4  # 0.8 s after the start, but only 0.4 s after the last use
    assert store.get(conversation.id) is conversation


def test_starting_a_conversation_drops_the_expired_ones(clock: Clock) -> None:
    store = ConversationStore(capacity=10, ttl_s=0.5, max_turns=5)
    store.start()
    store.start()
    clock.now += 0.6
    store.start()
    assert len(store) == 1


def test_turns_beyond_max_turns_drop_the_oldest() -> None:
    store = ConversationStore(capacity=2, ttl_s=3600, max_turns=2)
    conversation = store.start()
    for question in ["one?", "two?", "three?"]:
        store.add_turn(conversation, turn(question))
    assert [t.question for t in store.get(conversation.id).turns] == ["two?", "three?"]


def test_concurrent_starts_and_gets_keep_the_store_bounded() -> None:
    store = ConversationStore(capacity=20, ttl_s=3600, max_turns=3)
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
