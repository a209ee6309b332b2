"""Answer selection, citations and abstention, on hand-built sentences and scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from docqa.answering import (
    CONFIDENCE_FEATURES,
    NOT_COVERED,
    AnswerModel,
    AnswerModelError,
    compose_answer,
    confidence_of,
    default_model,
    load_model,
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


def model(confidence_weights: tuple[float, ...], bias: float = 0.0) -> AnswerModel:
    return AnswerModel(1, confidence_weights, bias)


def test_confidence_is_the_logistic_of_the_weighted_features() -> None:
    weights = (1.0,) + (0.0,) * (len(CONFIDENCE_FEATURES) - 1)
    features = (2.0,) + (5.0,) * (len(CONFIDENCE_FEATURES) - 1)
    # z = -1 + 1 * 2 = 1 -> 1 / (1 + e^-1)
    assert confidence_of(features, model(weights, -1.0)) == pytest.approx(0.7310586)


def test_the_shipped_model_matches_the_features_of_this_version() -> None:
    shipped = default_model()
    assert len(shipped.confidence_weights) == len(CONFIDENCE_FEATURES)


def test_a_model_fitted_on_other_features_is_refused() -> None:
    record = {"confidence": {"features": ["span"], "weights": [1.0], "bias": 0.0}}
    with pytest.raises(AnswerModelError, match="fit_answer_model"):
        AnswerModel.from_json(record)


def test_the_shipped_confidence_falls_for_a_name_the_corpus_never_mentions() -> None:
    shipped = default_model()
    named = CONFIDENCE_FEATURES.index("unknown_name")
    assert shipped.confidence_weights[named] < 0


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
    composed = answer_for([0, 1, 0, 0], "When did EUPOL operate?")
    text, answered, confidence, citations = (
        composed.text,
        composed.answered,
        composed.confidence,
        composed.citations,
    )
    assert answered and confidence > 0.5
    # a date of the answer sentence, not the sentence itself
    assert composed.short_answer in ("June 2007", "December 2016", "June 2007 to December 2016")
    assert text == "EUPOL supported the rule of law. It operated from June 2007 to December 2016."
    assert [TEXT[c.start : c.end] for c in citations] == [
        "EUPOL supported the rule of law.",
        "It operated from June 2007 to December 2016.",
    ]


def test_weak_evidence_gives_the_not_covered_answer_without_citations() -> None:
    composed = answer_for([0, 0, 1, 0], "What is the capital of Peru?")
    assert (composed.text, composed.answered, composed.citations) == (NOT_COVERED, False, [])
    assert composed.short_answer is None
    assert composed.confidence < 0.5


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_the_abstention_threshold_is_a_setting(threshold: float) -> None:
    composed = answer_for([0, 1, 0, 0], "When did EUPOL operate?", abstain_below=threshold)
    assert composed.answered is (threshold == 0.0)


def test_an_unreadable_model_file_is_named_with_the_way_to_fix_it(tmp_path: Path) -> None:
    path = tmp_path / "answer_model.json"
    path.write_text('{"span": ', encoding="utf-8")
    with pytest.raises(AnswerModelError, match=r"cannot read the answer model .*fit_answer_model"):
        load_model(path)


def test_a_model_with_a_weight_missing_is_refused() -> None:
    record = {
        "confidence": {
            "features": list(CONFIDENCE_FEATURES),
            "weights": [0.0] * (len(CONFIDENCE_FEATURES) - 1),
            "bias": 0.0,
        },
    }
    with pytest.raises(AnswerModelError, match="one weight per feature"):
        AnswerModel.from_json(record)
