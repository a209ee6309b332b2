"""Answer kinds: what a question asks for and whether a text can hold it."""

from __future__ import annotations

import pytest

from docqa.answer.kinds import asks_for_overview, expectation_of, fits_answer_type


@pytest.mark.parametrize(
    "sentence",
    [
        "The abbey was founded in 880 by monks.",
        "Raids grew in the 880s.",
        "It was built in the 10th century.",
        "The town dates from the twelfth century.",
        "The Romans arrived in AD 43.",
        "The shift starts at 7 a.m. each day.",
        "The market opens at 10:30.",
        "Meetings are held on Tuesdays.",
        "It happened in 1632.",
    ],
)
def test_a_date_of_any_period_answers_when(sentence: str) -> None:
    assert fits_answer_type(expectation_of("When did it happen?"), sentence)


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("What time does the morning shift start?", "date"),
        ("In what century was the abbey built?", "date"),
        ("In what country is the Rhine's source?", "place"),
        ("Who directed Spectre?", "person"),
        ("How long is the Rhine?", "quantity"),
        ("Why does cooperation matter?", ""),
    ],
)
def test_the_kind_asked_for_is_read_from_the_wording(question: str, kind: str) -> None:
    assert expectation_of(question).kind == kind


def test_a_place_needs_no_preposition_only_a_name_the_question_does_not_use() -> None:
    question = expectation_of("Where does the Rhine begin?")
    assert fits_answer_type(question, "The Rhine begins in the Swiss canton of Graubünden.")
    assert fits_answer_type(question, "Its source is Lake Toma, high in the Alps.")
    assert not fits_answer_type(question, "The Rhine begins as two small streams.")


def test_a_quantity_with_a_unit_answers_how_long() -> None:
    question = expectation_of("How long is the Rhine?")
    assert fits_answer_type(question, "It is about 1,230 km long.")
    assert not fits_answer_type(question, "It is a long river.")


@pytest.mark.parametrize(
    "question",
    [
        "Tell me about the cider press",
        "tell me more about EUPOL",
        "Describe the harbour bridge.",
        "Please explain the Berlin Plus arrangements",
        "What do the documents say about tariffs?",
        "Give me an overview of the timeline",
    ],
)
def test_questions_about_a_subject_as_a_whole_ask_for_an_overview(question: str) -> None:
    assert asks_for_overview(question)


@pytest.mark.parametrize(
    "question",
    [
        "When did the cider press open?",
        "Who described the bridge?",
        "What does the report tell us about 2016 spending?",
    ],
)
def test_questions_for_one_fact_do_not_ask_for_an_overview(question: str) -> None:
    assert not asks_for_overview(question)
