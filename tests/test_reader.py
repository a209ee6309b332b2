"""The extractive reader: its span search on hand-built logits, its errors, the shipped
model on sentences whose answers are plain to read, and the training script's labels."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from docqa.answer import reader
from docqa.answer.reader import Reader, ReaderError, best_span, default_reader

CONTEXT = "It operated from 2007 to 2016."
# [CLS] question [SEP] It operated from 2007 to 2016 . [SEP]
SEQUENCE_IDS: list[int | None] = [None, 0, None, 1, 1, 1, 1, 1, 1, 1, None]
OFFSETS = [
    (0, 0),
    (0, 4),
    (0, 0),
    (0, 2),
    (3, 11),
    (12, 16),
    (17, 21),
    (22, 24),
    (25, 29),
    (29, 30),
    (0, 0),
]


def logits(high: dict[int, float], base: float = 0.0) -> np.ndarray:
    values = np.full(len(OFFSETS), base, dtype=np.float32)
    for position, value in high.items():
        values[position] = value
    return values


def test_the_best_span_is_cut_from_the_context_by_its_word_piece_offsets() -> None:
    reading = best_span(logits({6: 5.0}), logits({8: 4.0}), SEQUENCE_IDS, OFFSETS, CONTEXT)
    assert (reading.text, reading.start, reading.end) == ("2007 to 2016", 17, 29)
    assert reading.score == pytest.approx(9.0)  # against a no-answer score of 0 + 0


def test_the_score_is_the_span_against_no_answer() -> None:
    reading = best_span(
        logits({0: 4.0, 6: 3.0}), logits({0: 4.0, 6: 2.0}), SEQUENCE_IDS, OFFSETS, CONTEXT
    )
    assert reading.text == "2007"
    assert reading.score == pytest.approx(-3.0)


def test_a_span_never_ends_before_it_starts_nor_takes_the_question() -> None:
    # the question piece (1) and an end before the start (4 < 6) score high but are not spans
    starts = logits({1: 9.0, 6: 2.0}, base=-10.0)
    ends = logits({1: 9.0, 4: 9.0, 6: 1.0})
    reading = best_span(starts, ends, SEQUENCE_IDS, OFFSETS, CONTEXT)
    assert reading.text == "2007"


def test_a_span_is_at_most_max_span_tokens_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "MAX_SPAN_TOKENS", 2)
    reading = best_span(
        logits({3: 5.0, 4: 1.0}), logits({9: 5.0, 4: 1.0}), SEQUENCE_IDS, OFFSETS, CONTEXT
    )
    assert len(reading.text.split()) <= 2


def test_a_missing_reader_file_is_named_with_the_way_to_fix_it(tmp_path: Path) -> None:
    shutil.copytree(reader.READER_DIR, tmp_path / "reader", ignore=shutil.ignore_patterns("*.onnx"))
    with pytest.raises(ReaderError, match=r"lacks model.onnx: reinstall docqa.*train_reader"):
        Reader(tmp_path / "reader")


def test_a_damaged_reader_model_is_an_error_not_a_crash(tmp_path: Path) -> None:
    folder = tmp_path / "reader"
    shutil.copytree(reader.READER_DIR, folder, ignore=shutil.ignore_patterns("*.onnx"))
    (folder / reader.MODEL_FILE).write_bytes(b"not an onnx graph")
    with pytest.raises(ReaderError, match="cannot load the reader"):
        Reader(folder)


@pytest.mark.parametrize(
    ("question", "context", "answer"),
    [
        # sentences written here; the answers are read off them, not off the reader
        (
            "When did the Hanseatic office in Bergen close?",
            "The Hanseatic office in Bergen closed in 1754 after a long decline.",
            "1754",
        ),
        (
            "Who designed the harbour bridge?",
            "The harbour bridge was designed by Ralph Freeman and opened to traffic later.",
            "Ralph Freeman",
        ),
        (
            "How many people live in Tromsø?",
            "Tromsø, the largest town in northern Norway, has about 77,000 inhabitants.",
            "77,000",
        ),
    ],
)
def test_the_shipped_reader_singles_out_the_answer(
    question: str, context: str, answer: str
) -> None:
    reading = default_reader().read_passages(question, [context])
    assert answer in reading.text
    assert len(reading.text.split()) <= len(answer.split()) + 2
    assert context[reading.start : reading.end] == reading.text


def test_the_shipped_reader_prefers_no_answer_when_the_passage_is_about_something_else() -> None:
    question = "Who designed the harbour bridge?"
    unrelated = default_reader().read_passages(
        question, ["The museum is closed on Mondays in winter. Tickets cost ten euros."]
    )
    related = default_reader().read_passages(
        question,
        ["The harbour bridge was designed by Ralph Freeman and opened to traffic later."],
    )
    assert unrelated.score < 0 < related.score


def test_the_span_comes_from_the_passage_that_holds_the_answer() -> None:
    passages = [
        "The museum is closed on Mondays in winter.",
        "The harbour bridge was designed by Ralph Freeman and opened to traffic later.",
        "Trains cross the river twice an hour.",
    ]
    reading = default_reader().read_passages("Who designed the harbour bridge?", passages)
    assert reading.passage == 1
    assert passages[1][reading.start : reading.end] == reading.text == "Ralph Freeman"


def test_a_long_passage_is_read_in_windows_and_its_late_answer_found() -> None:
    filler = "It carries trains and cars across the wide river every day. " * 60
    passage = filler + "The bridge opened in 1932."
    reading = default_reader().read_passages("When did the bridge open?", [passage])
    assert reading.text == "1932"
    assert passage[reading.start : reading.end] == "1932"


def test_no_passages_read_no_span() -> None:
    reading = default_reader().read_passages("When did the bridge open?", [])
    assert reading.text == "" and reading.score == -float("inf")


def test_a_question_longer_than_the_reader_takes_is_cut_not_refused() -> None:
    question = "When did the bridge open " + "and who paid for it " * 60 + "?"
    reading = default_reader().read_passages(question, ["The bridge opened in 1932."])
    assert reading.text  # read, from the question's first MAX_QUESTION_TOKENS word pieces
    assert len(default_reader().shortened(question).split()) < len(question.split())


SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_reader.py"


@pytest.fixture
def train_script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    pytest.importorskip("transformers")  # the script's own dependency (the `build` extra)
    pytest.importorskip("sklearn")  # it imports the fit script (the `fit` extra)
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("train_reader", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_training_labels_the_word_pieces_of_the_gold_answer(train_script: ModuleType) -> None:
    span = train_script.gold_span(CONTEXT, ("2016", "from 2007 to 2016"))
    assert CONTEXT[span[0] : span[1]] == "2016"  # the first gold answer found
    assert train_script.token_positions(OFFSETS, SEQUENCE_IDS, span) == (8, 8)
    assert train_script.token_positions(OFFSETS, SEQUENCE_IDS, (12, 29)) == (5, 8)


def test_a_window_that_cuts_the_answer_is_not_used(train_script: ModuleType) -> None:
    cut_offsets, cut_ids = [*OFFSETS[:7], (0, 0)], [*SEQUENCE_IDS[:7], None]
    span = train_script.gold_span(CONTEXT, ("2016",))
    assert train_script.token_positions(cut_offsets, cut_ids, span) is None
    assert train_script.token_positions(OFFSETS, SEQUENCE_IDS, None) == (0, 0)


def test_a_question_without_its_answer_in_the_context_has_no_gold_span(
    train_script: ModuleType,
) -> None:
    assert train_script.gold_span(CONTEXT, ("1999",)) is None
    assert train_script.gold_span(CONTEXT, ()) is None


def test_the_hard_negative_shares_most_terms_and_holds_no_answer(train_script: ModuleType) -> None:
    paragraphs = [
        "The bridge opened in 1932 after six years of work.",
        "The bridge carries trains; the bridge was painted grey.",
        "The bridge opened to trains in 1932.",
        "Bakers sell bread.",
    ]
    question = "When did the bridge open to trains?"
    chosen = train_script.hard_negative(question, ("1932",), paragraphs, 0)
    assert chosen == paragraphs[1]  # paragraph 2 shares more terms but holds the answer


def test_held_out_articles_are_every_fourth_by_name(train_script: ModuleType) -> None:
    names = [f"{letter}.txt" for letter in "hgfedcba"]
    assert train_script.held_out_articles(names) == ["a.txt", "e.txt"]
