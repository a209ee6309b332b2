"""The questions a run asks: the evaluation set's, rephrased and combined."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from docqa.bench.plan import QUESTIONS_FILE, BenchmarkError


def load_questions(path: Path = QUESTIONS_FILE) -> list[str]:
    """The questions of the evaluation set, in file order."""
    if not path.is_file():
        raise BenchmarkError(f"{path} not found: run `docqa bench` from the project folder")
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)["question"] for line in handle if line.strip()]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


REPHRASINGS: tuple[Callable[[str, str], str], ...] = (
    lambda q, other: q,
    lambda q, other: f"According to the brief, {_lower_first(q)}",
    lambda q, other: f"Can you tell me {_lower_first(q.rstrip('?'))}?",
    lambda q, other: f"{q.rstrip('?')}, according to the document?",
    lambda q, other: f"{q} And also: {_lower_first(other)}",
    lambda q, other: f"Briefly: {_lower_first(q)}",
    lambda q, other: q.lower().rstrip("?"),
)
"""Ways to say a question differently; `other` is a second question to combine with."""


def question_variants(questions: list[str], n: int, seed: int = 0) -> list[str]:
    """n different question strings: the set's questions, rephrased and combined, shuffled."""
    variants: dict[str, None] = {}
    for rephrase in REPHRASINGS:
        for i, question in enumerate(questions):
            variants[rephrase(question, questions[(i + 7) % len(questions)])] = None
    ordered = list(variants)
    if n > len(ordered):
        raise BenchmarkError(f"only {len(ordered)} different questions can be made, {n} asked")
    random.Random(seed).shuffle(ordered)
    return ordered[:n]
