"""The evaluation sets: the brief's own questions and the public SQuAD 2.0 / QuAC sets, each
with the corpus it is asked about and where its gold answers stand in that corpus."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docqa.indexing.corpus import read_corpus
from docqa.models import Answer, DocqaError, Document

BRIEF_SET = Path("eval/questions.jsonl")
PUBLIC_DIR = Path("eval/public")
SET_NAMES = ("brief", "squad2", "quac")
"""The sets `docqa eval` runs by default, in this order."""


class EvaluationError(DocqaError):
    """The evaluation set or the baseline is missing or malformed."""


@dataclass(frozen=True)
class Question:
    """One item of an evaluation set."""

    id: str
    kind: str
    question: str
    answer: str | None
    """The expected answer phrase (the first gold answer); None when the document does not say."""
    evidence: str | None
    section: str | None
    follow_up_of: str | None
    alternatives: tuple[str, ...] = ()
    """Further gold answers (SQuAD and QuAC have several annotators)."""
    document: str = ""
    """The document the question is about, when the set says (the fold for cross-validation)."""

    @property
    def answerable(self) -> bool:
        return self.answer is not None

    @property
    def golds(self) -> tuple[str, ...]:
        """Every gold answer."""
        return () if self.answer is None else (self.answer, *self.alternatives)


@dataclass(frozen=True)
class Target:
    """Where a question's expected answer stands in the original text of a document."""

    document: str
    start: int
    end: int


@dataclass(frozen=True)
class EvaluationSet:
    """Questions with the corpus they are asked about and the spans of their gold answers."""

    name: str
    path: Path
    corpus_dir: Path
    questions: list[Question]
    targets: dict[str, list[Target]] = field(default_factory=dict)


def load_questions(path: Path) -> list[Question]:
    """Read a JSON-lines evaluation set; a bad line is reported with its number."""
    if not path.is_file():
        raise EvaluationError(f"evaluation set {path} does not exist (see --set)")
    questions: list[Question] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        question = _parse_question(line, f"{path}:{number}")
        if question.id in seen:
            raise EvaluationError(f"{path}:{number}: id {question.id} is used twice")
        if question.follow_up_of is not None and question.follow_up_of not in seen:
            raise EvaluationError(
                f"{path}:{number}: {question.id} follows up {question.follow_up_of}, "
                "which is not an earlier question of the set"
            )
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise EvaluationError(f"evaluation set {path} holds no questions")
    return questions


def _parse_question(line: str, where: str) -> Question:
    try:
        record = json.loads(line)
    except ValueError as error:
        raise EvaluationError(f"{where}: not valid JSON ({error})") from error
    if not isinstance(record, dict):
        raise EvaluationError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for name in ("id", "kind", "question"):
        if not isinstance(record.get(name), str) or not record[name].strip():
            raise EvaluationError(f"{where}: '{name}' is missing or not a text")
    if record.get("answer") is not None and not record.get("evidence"):
        raise EvaluationError(f"{where}: {record['id']} has an answer but no evidence")
    return Question(
        record["id"],
        record["kind"],
        record["question"],
        record.get("answer"),
        record.get("evidence"),
        record.get("section"),
        record.get("follow_up_of"),
    )


def normalise(text: str) -> str:
    """Lowercase with whitespace runs collapsed, for phrase matching."""
    return re.sub(r"\s+", " ", text).strip().lower()


def locate(evidence: str, answer: str, documents: list[Document]) -> Target | None:
    """The document and original-text span where the expected answer is stated.

    The evidence sentence is matched with whitespace collapsed (the source is wrapped PDF
    text); the answer is the part of it the span covers, or the whole evidence if absent.
    """
    evidence = " ".join(evidence.split())
    answer = " ".join(answer.split())
    inner = evidence.find(answer)
    offset, length = (inner, len(answer)) if inner >= 0 else (0, len(evidence))
    for document in documents:
        collapsed, positions = _collapse(document.text)
        at = collapsed.find(evidence)
        if at >= 0:
            first, last = at + offset, at + offset + length - 1
            return Target(document.name, positions[first], positions[last] + 1)
    return None


def _collapse(text: str) -> tuple[str, list[int]]:
    """Text with whitespace runs as one space, and each character's original position."""
    parts: list[str] = []
    positions: list[int] = []
    for match in re.finditer(r"\S+", text):
        if parts:
            parts.append(" ")
            positions.append(match.start() - 1)
        parts.append(match.group())
        positions.extend(range(match.start(), match.end()))
    return "".join(parts), positions


def relevant_rank(answer: Answer, targets: list[Target]) -> int | None:
    """The rank of the first hit whose span holds a whole expected answer."""
    for hit in answer.hits:
        chunk = hit.chunk
        for target in targets:
            inside = chunk.start <= target.start and target.end <= chunk.end
            if chunk.document == target.document and inside:
                return hit.rank
    return None


def find_targets(questions: list[Question], documents: list[Document]) -> dict[str, list[Target]]:
    """The answer span of every answerable question; raises if an evidence is not found."""
    targets: dict[str, list[Target]] = {}
    for question in questions:
        if question.answer is None or question.evidence is None:
            targets[question.id] = []
            continue
        target = locate(question.evidence, question.answer, documents)
        if target is None:
            raise EvaluationError(f"{question.id}: its evidence is not in any corpus document")
        targets[question.id] = [target]
    return targets


def load_brief_set(path: Path = BRIEF_SET, corpus_dir: Path = Path("corpus")) -> EvaluationSet:
    """The brief's own set, with its expected answers located in the corpus."""
    questions = load_questions(path)
    targets = find_targets(questions, read_corpus(corpus_dir))
    return EvaluationSet("brief", path, corpus_dir, questions, targets)


def paragraph_starts(text: str) -> list[int]:
    """Offsets of the paragraphs of a public-set file (a `# Title` line, then paragraphs
    separated by one blank line, as eval/public/README.md describes)."""
    starts, at = [], 0
    for part in text.split("\n\n"):
        starts.append(at)
        at += len(part) + 2
    return starts[1:]


def load_squad_set(folder: Path = PUBLIC_DIR / "squad2") -> EvaluationSet:
    """The public SQuAD 2.0 articles: every gold answer located in its paragraph."""
    path = folder / "questions.jsonl"
    corpus_dir = folder / "corpus"
    texts = {d.name: d.text for d in read_corpus(corpus_dir)}
    starts = {name: paragraph_starts(text) for name, text in texts.items()}
    questions, targets = [], {}
    for number, record in enumerate(_records(path), start=1):
        try:
            golds = tuple(dict.fromkeys(record["answers"]))
            name, paragraph = record["document"], int(record["paragraph_index"])
            offset = starts[name][paragraph]
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise EvaluationError(f"{path}:{number}: malformed record ({error!r})") from error
        kind = "squad" if golds else "squad-impossible"
        questions.append(
            Question(
                record["id"],
                kind,
                record["question"].strip(),
                golds[0] if golds else None,
                None,
                None,
                None,
                golds[1:],
                name,
            )
        )
        targets[record["id"]] = _spans(texts[name], offset, golds, name)
    return EvaluationSet("squad2", path, corpus_dir, questions, targets)


def load_dialogue_set(folder: Path = PUBLIC_DIR / "conversations") -> EvaluationSet:
    """The public QuAC dialogues: every turn after the first follows up the one before."""
    path = folder / "dialogues.jsonl"
    corpus_dir = folder / "corpus"
    texts = {d.name: d.text for d in read_corpus(corpus_dir)}
    questions, targets = [], {}
    for number, record in enumerate(_records(path), start=1):
        previous = None
        try:
            for turn in record["turns"]:
                golds = tuple(dict.fromkeys(turn["answers"])) if turn["answerable"] else ()
                kind = "dialogue-first" if previous is None else "followup"
                questions.append(
                    Question(
                        turn["id"],
                        kind,
                        turn["question"].strip(),
                        golds[0] if golds else None,
                        None,
                        None,
                        previous,
                        golds[1:],
                        record["document"],
                    )
                )
                targets[turn["id"]] = _spans(
                    texts[record["document"]], 0, golds, record["document"]
                )
                previous = turn["id"]
        except (KeyError, TypeError) as error:
            raise EvaluationError(f"{path}:{number}: malformed dialogue ({error!r})") from error
    return EvaluationSet("quac", path, corpus_dir, questions, targets)


def load_set(name: str, corpus_dir: Path = Path("corpus")) -> EvaluationSet:
    """One of SET_NAMES, or a set in the brief's format at a path (asked of `corpus_dir`)."""
    if name == "squad2":
        return load_squad_set()
    if name == "quac":
        return load_dialogue_set()
    return load_brief_set(BRIEF_SET if name == "brief" else Path(name), corpus_dir)


def _spans(text: str, offset: int, golds: tuple[str, ...], document: str) -> list[Target]:
    spans = []
    for gold in golds:
        at = text.find(gold, offset)
        if at >= 0:
            spans.append(Target(document, at, at + len(gold)))
    return spans


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise EvaluationError(f"{path} does not exist: the public sets live in {PUBLIC_DIR}")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError as error:
                raise EvaluationError(f"{path}:{number}: not valid JSON ({error})") from error
    return records
