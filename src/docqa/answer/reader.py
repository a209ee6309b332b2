"""The extractive reader: the span of the top passages that answers the question, and how
much more likely that span is than no answer at all.

It is the shipped all-MiniLM-L6-v2 with a start/end head, fine-tuned on ~27,000 SQuAD
questions (answerable, written unanswerable and hard negatives) by scripts/train_reader.py,
and shipped as int8 ONNX in docqa/answer/reader_model/ with its recipe, data hash and
held-out figures (reader.json). Neither the articles of `docqa eval` nor the brief's set
train it.
It needs onnxruntime and tokenizers only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from docqa.models import DocqaError

READER_DIR = Path(__file__).with_name("reader_model")
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
RECORD_FILE = "reader.json"
MAX_TOKENS = 256
"""Question and passage together in one window; a longer passage is read in several windows
(STRIDE word pieces shared between consecutive ones)."""
STRIDE = 96
MAX_QUESTION_TOKENS = 64
"""A longer question is cut to this many word pieces (as SQuAD readers do), so that the
evidence always keeps the rest of MAX_TOKENS."""
MAX_SPAN_TOKENS = 30
"""The longest short answer, in word pieces (SQuAD's gold answers: 99 % are shorter)."""


class ReaderError(DocqaError):
    """The reader's files are missing or unreadable."""


@dataclass(frozen=True)
class Reading:
    """The reader's answer in one context: character span, its text, and its score."""

    text: str
    start: int
    end: int
    score: float
    """Best span's start + end logit minus the no-answer ([CLS]) one: > 0 when the reader
    prefers the span to no answer."""
    passage: int = 0
    """Which of the passages read holds the span."""


def best_span(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    sequence_ids: list[int | None],
    offsets: list[tuple[int, int]],
    context: str,
) -> Reading:
    """The highest-scoring span of context word pieces (start <= end, at most
    MAX_SPAN_TOKENS long) against the no-answer score at position 0."""
    positions = np.array([i for i, s in enumerate(sequence_ids) if s == 1])
    if not len(positions):
        return Reading("", 0, 0, -float("inf"))
    starts = start_logits[positions][:, None]
    ends = end_logits[positions][None, :]
    gap = positions[None, :] - positions[:, None]
    scores = np.where((gap >= 0) & (gap < MAX_SPAN_TOKENS), starts + ends, -np.inf)
    first, last = np.unravel_index(int(np.argmax(scores)), scores.shape)
    begin, end = offsets[positions[first]][0], offsets[positions[last]][1]
    null = float(start_logits[0] + end_logits[0])
    return Reading(context[begin:end], begin, end, float(scores[first, last]) - null)


class Reader:
    """The ONNX reader in a folder (model.onnx, tokenizer.json, reader.json)."""

    def __init__(self, folder: Path = READER_DIR, threads: int = 0) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        missing = [
            n for n in (MODEL_FILE, TOKENIZER_FILE, RECORD_FILE) if not (folder / n).is_file()
        ]
        if missing:
            raise ReaderError(
                f"the reader folder {folder} lacks {', '.join(missing)}: reinstall docqa, or "
                "remake it with scripts/train_reader.py"
            )
        try:
            self.record = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
            self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
            self.question_tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            self.session = onnxruntime.InferenceSession(
                str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime and tokenizers raise their own kinds
            raise ReaderError(f"cannot load the reader in {folder}: {error}") from error
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS, strategy="only_second", stride=STRIDE)
        self.question_tokenizer.no_padding()
        self.question_tokenizer.no_truncation()
        self.input_names = {i.name for i in self.session.get_inputs()}

    def read_passages(self, question: str, passages: list[str]) -> Reading:
        """The best span over every window of the passages, read in one batch."""
        question = self.shortened(question)
        windows = []
        for number, passage in enumerate(passages):
            encoding = self.tokenizer.encode(question, passage)
            windows += [(number, e) for e in (encoding, *encoding.overflowing)]
        if not windows:
            return Reading("", 0, 0, -float("inf"))
        width = max(len(e.ids) for _, e in windows)
        feeds = {
            name: np.zeros((len(windows), width), dtype=np.int64)
            for name in ("input_ids", "attention_mask", "token_type_ids")
        }
        for row, (_, e) in enumerate(windows):
            feeds["input_ids"][row, : len(e.ids)] = e.ids
            feeds["attention_mask"][row, : len(e.ids)] = e.attention_mask
            feeds["token_type_ids"][row, : len(e.ids)] = e.type_ids
        inputs = {name: array for name, array in feeds.items() if name in self.input_names}
        start_logits, end_logits = self.session.run(None, inputs)
        readings = [
            replace(
                best_span(
                    start_logits[row][: len(e.ids)],
                    end_logits[row][: len(e.ids)],
                    e.sequence_ids,
                    e.offsets,
                    passages[number],
                ),
                passage=number,
            )
            for row, (number, e) in enumerate(windows)
        ]
        return max(readings, key=lambda r: r.score)

    def shortened(self, question: str) -> str:
        """The question, cut after its first MAX_QUESTION_TOKENS word pieces."""
        pieces = self.question_tokenizer.encode(question, add_special_tokens=False)
        if len(pieces.ids) <= MAX_QUESTION_TOKENS:
            return question
        return question[: pieces.offsets[MAX_QUESTION_TOKENS - 1][1]]


@lru_cache(maxsize=2)
def default_reader(threads: int = 0) -> Reader:
    """The reader shipped in docqa/reader_model/ (loaded once per thread count)."""
    return Reader(READER_DIR, threads)
