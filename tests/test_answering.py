"""Answer selection, citations and abstention, on hand-built sentences and scores."""

from __future__ import annotations

import pytest

from docqa.answering import (
    NOT_COVERED,
    compose_answer,
    confidence_of,
    names_unknown_thing,
    select_sentences,
)
from docqa.config import Settings
from docqa.retrieval import ScoredSentence, search
from fakes import TableEmbedder, make_index, unit


def sentence(row: int, start: int, end: int, score: float) -> ScoredSentence:
    return ScoredSentence(row, start, end, score, 0.0, True, score)


def test_the_best_sentence_comes_with_its_better_neighbour() -> None:
    best, before, after = (
        sentence(0, 20, 40, 0.9),
        sentence(0, 0, 19, 0.2),
        sentence(0, 41, 60, 0.5),
    )
    chosen = select_sentences([best, after, before], {0}, 300)
    assert chosen == [best, after]


def test_a_neighbour_that_would_pass_the_length_limit_is_replaced_by_the_other() -> None:
    best, before, after = (
        sentence(0, 100, 200, 0.9),
        sentence(0, 0, 99, 0.2),
        sentence(0, 201, 400, 0.5),
    )
    assert select_sentences([best, after, before], {0}, 250) == [before, best]


def test_a_sentence_of_another_passage_is_never_paired() -> None:
    best, elsewhere = sentence(0, 0, 20, 0.9), sentence(1, 21, 40, 0.8)
    assert select_sentences([best, elsewhere], {0, 1}, 300) == [best]


def test_sentences_outside_the_answering_hits_are_ignored() -> None:
    outside, inside = sentence(5, 0, 20, 0.9), sentence(0, 0, 20, 0.3)
    assert select_sentences([outside, inside], {0}, 300) == [inside]


def test_confidence_rises_with_similarity_and_falls_with_unknown_terms() -> None:
    low = ScoredSentence(0, 0, 1, 0.6, 0.5, True, 1.1)
    high = ScoredSentence(0, 0, 1, 0.8, 0.5, True, 1.3)
    assert confidence_of(low, 0.0, False) < confidence_of(high, 0.0, False)
    assert confidence_of(high, 1.0, False) < confidence_of(high, 0.0, False)
    assert 0.0 < confidence_of(low, 1.0, False) < confidence_of(high, 0.0, False) < 1.0


def test_a_name_the_corpus_never_mentions_lowers_confidence() -> None:
    best = ScoredSentence(0, 0, 1, 0.7, 0.5, True, 1.2)
    assert confidence_of(best, 0.0, True) < confidence_of(best, 0.0, False)


def test_a_sentence_of_the_wrong_kind_lowers_confidence() -> None:
    fits = ScoredSentence(0, 0, 1, 0.6, 0.6, True, 1.2)
    misfit = ScoredSentence(0, 0, 1, 0.6, 0.6, False, 1.1)
    assert confidence_of(misfit, 0.0, False) < confidence_of(fits, 0.0, False)


def test_names_and_numbers_are_checked_against_the_corpus_vocabulary() -> None:
    index = make_index([("NATO met in Lisbon in 2010.", [unit(1, 0, 0, 0)])], [unit(1, 0, 0, 0)])
    assert not names_unknown_thing(index, "When did NATO meet in Lisbon?")
    assert names_unknown_thing(index, "When did Sweden join NATO?")
    assert names_unknown_thing(index, "What did the 2022 summit decide?")
    assert not names_unknown_thing(index, "what did nato decide in 2010?")


TEXT = "EUPOL supported the rule of law. It operated from June 2007 to December 2016. Other news."


def answer_for(query_vector: list[float], question: str, **settings: object):  # type: ignore[no-untyped-def]
    index = make_index(
        [(TEXT, [unit(1, 0, 0, 0), unit(0, 1, 0, 0), unit(0, 0, 0, 1)])],
        [unit(1, 1, 0, 0)],
    )
    retrieval = search(
        index, TableEmbedder({question: unit(*query_vector)}), question, 1, Settings(**settings)
    )
    return compose_answer(index, retrieval, question, Settings(**settings))


def test_an_answer_cites_its_sentences_with_offsets_in_the_passage() -> None:
    text, answered, confidence, citations = answer_for([0, 1, 0, 0], "When did EUPOL operate?")
    assert answered and confidence > 0.5
    assert text == "EUPOL supported the rule of law. It operated from June 2007 to December 2016."
    assert [TEXT[c.start : c.end] for c in citations] == [
        "EUPOL supported the rule of law.",
        "It operated from June 2007 to December 2016.",
    ]


def test_weak_evidence_gives_the_not_covered_answer_without_citations() -> None:
    text, answered, confidence, citations = answer_for([0, 0, 1, 0], "What is the capital of Peru?")
    assert (text, answered, citations) == (NOT_COVERED, False, [])
    assert confidence < 0.5


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_the_abstention_threshold_is_a_setting(threshold: float) -> None:
    _, answered, _, _ = answer_for([0, 1, 0, 0], "When did EUPOL operate?", abstain_below=threshold)
    assert answered is (threshold == 0.0)
