"""Follow-up questions (is_follow_up, resolve_query) and the turns they are read from."""

from __future__ import annotations

import pytest

from docqa.answer.conversation import (
    Query,
    Turn,
    is_follow_up,
    resolve_query,
)
from docqa.models import Answer, Citation

EUPOL = Turn("Tell me about EUPOL", "Tell me about EUPOL", True, ("chunk-a", "chunk-b"))


# --- follow-ups -------------------------------------------------------------------------------


def test_question_with_a_pronoun_after_another_is_a_follow_up() -> None:
    assert is_follow_up("When did it operate?", [EUPOL])


def test_follow_up_query_carries_the_subject_and_cited_chunks_of_the_last_turn() -> None:
    assert resolve_query("When did it operate?", [EUPOL]) == Query(
        "When did it operate? EUPOL", False, frozenset({"chunk-a", "chunk-b"})
    )


def test_question_naming_its_own_subject_is_not_a_follow_up() -> None:
    assert not is_follow_up("What is TADIC?", [EUPOL])
    # searched as typed; the last answer's passages stay a prior for the new question
    assert resolve_query("What is TADIC?", [EUPOL]) == Query(
        "What is TADIC?", True, frozenset({"chunk-a", "chunk-b"})
    )


def test_the_first_question_carries_no_passages() -> None:
    assert resolve_query("What is TADIC?", []) == Query("What is TADIC?", True)


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


ELLIPTIC = ["and?", "What else?", "why?", "Anything else?", "Tell me more"]


@pytest.mark.parametrize("question", ELLIPTIC)
def test_an_elliptic_turn_continues_from_the_last_subject(question: str) -> None:
    assert is_follow_up(question, [EUPOL])
    assert resolve_query(question, [EUPOL]).text == f"{question} EUPOL"
