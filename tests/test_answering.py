"""Composing the answer: the reader's span, the sentences it stands in, the confidence and
abstention, on hand-built passages, a stand-in reader and hand-set models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from docqa.answer.compose import NOT_COVERED, compose_answer, span_sentences
from docqa.answer.confidence import (
    FEATURES,
    VERSION,
    AnswerModel,
    AnswerModelError,
    Logistic,
    default_model,
    load_model,
    names_unknown_thing,
)
from docqa.answer.reader import Reading
from docqa.answer.retrieval import Retrieval, ScoredSentence, search
from docqa.config import Settings
from fakes import TableEmbedder, make_index, unit

TEXT = "EUPOL supported the rule of law. It operated from June 2007 to December 2016. Other news."
OTHER = "The weather was mild. Nobody noticed."


class StandInReader:
    """Answers with a fixed span of the passage it is told, and records what it read."""

    def __init__(self, phrase: str, score: float = 5.0, passage: int = 0) -> None:
        self.phrase, self.score, self.passage = phrase, score, passage
        self.read: list[list[str]] = []

    def read_passages(self, question: str, passages: list[str]) -> Reading:
        self.read.append(passages)
        text = passages[self.passage]
        start = text.index(self.phrase)
        return Reading(self.phrase, start, start + len(self.phrase), self.score, self.passage)


class RefusingReader:
    def read_passages(self, question: str, passages: list[str]) -> Reading:
        raise AssertionError("the reader was run")


def model(
    reader_weight: float = 1.0,
    abstain_below: float = 0.5,
    skip_below: float = 0.0,
    read_passages: int = 2,
) -> AnswerModel:
    """A confidence of the reader's margin alone (logistic of margin - 1)."""
    return AnswerModel(
        Logistic(("reader",), (reader_weight,), -1.0),
        Logistic(("similarity",), (0.0,), 0.0),
        abstain_below,
        skip_below,
        read_passages,
    )


def compose(reader: object, answer_model: AnswerModel, **settings: object):  # type: ignore[no-untyped-def]
    question = "When did EUPOL operate?"
    index = make_index(
        [
            (TEXT, [unit(1, 0, 0, 0), unit(0, 1, 0, 0), unit(0, 0, 0, 1)]),
            (OTHER, [unit(0, 0, 1, 0), unit(0, 0, 1, 0)]),
        ],
        [unit(1, 1, 0, 0), unit(0, 0, 1, 0)],
    )
    retrieval = search(
        index, TableEmbedder({question: unit(0, 1, 0, 0)}), question, 2, Settings(**settings)
    )
    return compose_answer(
        index,
        retrieval,
        question,
        Settings(**settings),
        answer_model,
        reader,  # type: ignore[arg-type]
    )


def test_the_answer_is_the_sentence_holding_the_readers_span_with_its_neighbour_cited() -> None:
    composed = compose(StandInReader("June 2007 to December 2016"), model())
    assert composed.answered
    assert composed.short_answer == "June 2007 to December 2016"
    # the neighbour that shares the question's "EUPOL", not the unrelated "Other news."
    assert composed.text == TEXT[: TEXT.index(" Other news.")]
    assert [TEXT[c.start : c.end] for c in composed.citations] == [
        "EUPOL supported the rule of law.",
        "It operated from June 2007 to December 2016.",
    ]


def test_the_confidence_is_the_fitted_logistic_of_the_readers_margin() -> None:
    # z = -1 + 1 * 5 = 4 -> 1 / (1 + e^-4)
    composed = compose(StandInReader("June 2007", score=5.0), model())
    assert composed.confidence == pytest.approx(0.9820138, abs=1e-6)


def test_a_span_across_two_sentences_cites_both() -> None:
    composed = compose(StandInReader("law. It operated"), model())
    assert composed.text == TEXT[: TEXT.index("Other")].strip()
    assert len(composed.citations) == 2


def test_the_reader_reads_as_many_top_passages_as_the_model_says() -> None:
    reader = StandInReader("June 2007")
    compose(reader, model(read_passages=1))
    compose(reader, model(read_passages=2))
    assert [len(passages) for passages in reader.read] == [1, 2]


def test_a_low_margin_abstains_without_citations_or_short_answer() -> None:
    composed = compose(StandInReader("June 2007", score=-3.0), model())
    assert (composed.text, composed.answered, composed.citations) == (NOT_COVERED, False, [])
    assert composed.short_answer is None
    assert composed.confidence < 0.5


def test_the_reader_is_not_run_when_retrieval_alone_abstains() -> None:
    composed = compose(RefusingReader(), model(skip_below=0.6))
    assert not composed.answered
    assert composed.confidence == pytest.approx(0.5)  # the retrieval model's logistic of 0


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_the_abstention_setting_overrides_the_fitted_cut(threshold: float) -> None:
    composed = compose(StandInReader("June 2007", score=0.0), model(), abstain_below=threshold)
    assert composed.answered is (threshold == 0.0)


def test_an_empty_span_falls_back_to_the_best_sentence_of_its_passage() -> None:
    best = ScoredSentence(0, 33, 77, 0.9, 0.5, True, 0.9)
    other = ScoredSentence(0, 0, 32, 0.2, 0.0, True, 0.2)

    retrieval = Retrieval([], [best, other], np.zeros(4), [], {})
    assert span_sentences(retrieval, 0, Reading("", 0, 0, -1.0)) == [best]


def record(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "version": VERSION,
        "confidence": {"features": ["reader"], "weights": [1.0], "bias": 0.0},
        "retrieval": {"features": ["similarity"], "weights": [1.0], "bias": 0.0},
        "abstain_below": 0.5,
        "skip_below": 0.1,
        "read_passages": 3,
    }
    return {**base, **changes}


def test_a_model_record_reads_into_its_parts() -> None:
    loaded = AnswerModel.from_json(record())
    assert (loaded.abstain_below, loaded.skip_below, loaded.read_passages) == (0.5, 0.1, 3)
    assert loaded.confidence.probability({"reader": 0.0}) == pytest.approx(0.5)


def test_a_model_of_another_version_is_refused_with_the_fix() -> None:
    with pytest.raises(AnswerModelError, match=r"version 2.*fit_answer_model"):
        AnswerModel.from_json(record(version=2))


def test_a_model_naming_a_feature_docqa_does_not_compute_is_refused() -> None:
    bad = {"features": ["span_length"], "weights": [1.0], "bias": 0.0}
    with pytest.raises(AnswerModelError, match="span_length"):
        AnswerModel.from_json(record(confidence=bad))


def test_a_model_with_a_weight_missing_is_refused() -> None:
    bad = {"features": ["reader", "similarity"], "weights": [1.0], "bias": 0.0}
    with pytest.raises(AnswerModelError, match="one weight per feature"):
        AnswerModel.from_json(record(confidence=bad))


def test_an_unreadable_model_file_is_named_with_the_way_to_fix_it(tmp_path: Path) -> None:
    path = tmp_path / "answer_model.json"
    path.write_text('{"span": ', encoding="utf-8")
    with pytest.raises(AnswerModelError, match=r"cannot read the answer model .*fit_answer_model"):
        load_model(path)


def test_the_shipped_model_uses_the_reader_and_known_features_only() -> None:
    shipped = default_model()
    assert "reader" in shipped.confidence.features
    assert set(shipped.confidence.features) <= set(FEATURES)
    assert not any(f.startswith("reader") for f in shipped.retrieval.features)
    assert 0.0 < shipped.abstain_below < 1.0 and shipped.read_passages >= 1


def test_the_shipped_model_says_what_it_was_fitted_on(tmp_path: Path) -> None:
    from docqa.answer.confidence import MODEL_PATH

    stored = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    assert stored["fitted_on"]["questions"] > 1000
    assert "by_passages_read" in stored and "held_out_by_article" in stored


def test_names_and_numbers_are_checked_against_the_corpus_vocabulary() -> None:
    index = make_index([("NATO met in Lisbon in 2010.", [unit(1, 0, 0, 0)])], [unit(1, 0, 0, 0)])
    assert not names_unknown_thing(index, "When did NATO meet in Lisbon?")
    assert names_unknown_thing(index, "When did Sweden join NATO?")
    assert names_unknown_thing(index, "What did the 2022 summit decide?")
    assert not names_unknown_thing(index, "what did nato decide in 2010?")


def test_a_question_about_a_subject_as_a_whole_gets_its_best_sentences_without_the_reader() -> None:
    question = "Tell me about EUPOL"
    index = make_index(
        [(TEXT, [unit(1, 0, 0, 0), unit(0, 1, 0, 0), unit(0, 0, 0, 1)])],
        [unit(1, 1, 0, 0)],
    )
    retrieval = search(index, TableEmbedder({question: unit(1, 0, 0, 0)}), question, 1, Settings())
    composed = compose_answer(
        index,
        retrieval,
        question,
        Settings(),
        model(abstain_below=0.4),
        RefusingReader(),  # type: ignore[arg-type]
    )
    assert composed.answered and composed.short_answer is None
    assert composed.text.startswith("EUPOL supported the rule of law.")
