"""Candidate spans for the short answer and their features."""

from __future__ import annotations

from docqa import spans
from docqa.kinds import expectation_of

SENTENCE = "Indeed, EUFOR Althea took over from NATO's Stabilization Force (SFOR) in 2004."


def texts(question: str, sentence: str = SENTENCE) -> list[str]:
    found = spans.candidates(sentence, spans.question_stems(question), expectation_of(question))
    return [sentence[c.start : c.end] for c in found]


def test_candidates_neither_start_nor_end_with_a_stop_word_or_punctuation() -> None:
    found = texts("When did EUFOR Althea take over from SFOR?")
    assert "2004" in found and "EUFOR Althea" in found
    assert all(t.split()[0].lower() not in {"in", "the", "from"} for t in found)
    assert all(t[-1].isalnum() for t in found)


def test_a_possessive_is_not_part_of_a_name() -> None:
    assert "NATO" in texts("Whose force was replaced?")


def test_a_candidate_of_the_kind_asked_for_is_marked() -> None:
    question = "When did EUFOR Althea take over from SFOR?"
    found = spans.candidates(SENTENCE, spans.question_stems(question), expectation_of(question))
    by_text = {SENTENCE[c.start : c.end]: c for c in found}
    match = spans.FEATURES.index("kind_match")
    assert by_text["2004"].features[match] == 1.0
    assert by_text["EUFOR Althea"].features[match] == 0.0


def test_a_span_that_repeats_the_question_is_marked_as_such() -> None:
    question = "When did EUFOR Althea take over?"
    found = spans.candidates(SENTENCE, spans.question_stems(question), expectation_of(question))
    by_text = {SENTENCE[c.start : c.end]: c for c in found}
    repeats = spans.FEATURES.index("repeats_question")
    assert by_text["EUFOR Althea"].features[repeats] == 1.0
    assert by_text["2004"].features[repeats] == 0.0


def test_no_candidate_is_longer_than_the_limit() -> None:
    long_sentence = " ".join(f"word{i}" for i in range(40)) + "."
    assert all(len(t.split()) <= spans.MAX_SPAN_TOKENS for t in texts("What?", long_sentence))
