"""Consistency checks for the evaluation question set eval/questions.jsonl.

The set is checked against the document it is about (corpus/eu-nato-cooperation.txt).
Answers and evidence are matched after collapsing every run of whitespace to one space.
Uses only the standard library.
"""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "eval" / "questions.jsonl"
DOCUMENT = ROOT / "corpus" / "eu-nato-cooperation.txt"

KEYS = {"id", "kind", "question", "answer", "evidence", "section", "follow_up_of"}
KINDS = {"factual", "paraphrase", "number", "casual", "followup", "unanswerable", "near"}
NO_ANSWER_KINDS = {"unanswerable", "near"}
SECTIONS = [
    "Introduction",
    "BACKROUND",
    "TYPES OF TECHNICAL COOPERATION",
    "REGIONAL COOPERATION",
    "TIMELINE",
    "ADDITIONAL RESOURCES AND INFORMATION",
]

MIN_TOTAL = 90
MIN_PER_KIND = {
    "paraphrase": 15,
    "number": 15,
    "casual": 10,
    "followup": 10,
    "unanswerable": 6,
    "near": 6,
}
MIN_NO_ANSWER = 14
MIN_PER_SECTION = 3
MIN_TIMELINE = 15


def collapse(text):
    return re.sub(r"\s+", " ", text).strip()


def load_raw_lines():
    return [line for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_items():
    """Parsed items; lines that are not JSON objects are left to the format test,
    and missing keys read as None, so every other check still reports its own ids."""
    items = []
    for number, line in enumerate(load_raw_lines(), 1):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            obj.setdefault("id", f"line {number}")
            for key in KEYS:
                obj.setdefault(key, None)
            items.append(obj)
    return items


@pytest.fixture(scope="module")
def items():
    return load_items()


@pytest.fixture(scope="module")
def document():
    return collapse(DOCUMENT.read_text(encoding="utf-8"))


def answerable(items):
    return [it for it in items if it["kind"] not in NO_ANSWER_KINDS]


def test_every_line_is_a_json_object_with_exactly_the_expected_keys():
    bad = []
    for number, line in enumerate(load_raw_lines(), 1):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append(f"line {number}: invalid JSON ({exc})")
            continue
        if not isinstance(obj, dict) or set(obj) != KEYS:
            ident = obj.get("id", f"line {number}") if isinstance(obj, dict) else f"line {number}"
            bad.append(f"{ident}: keys {sorted(obj) if isinstance(obj, dict) else type(obj)}")
    assert not bad, "malformed lines: " + "; ".join(bad)


def test_ids_are_unique(items):
    counts = Counter(it["id"] for it in items)
    dupes = sorted(i for i, c in counts.items() if c > 1)
    assert not dupes, f"duplicate ids: {dupes}"


def test_kinds_are_known(items):
    bad = [it["id"] for it in items if it["kind"] not in KINDS]
    assert not bad, f"unknown kind in: {bad}"


def test_questions_are_non_empty_strings(items):
    bad = [
        it["id"]
        for it in items
        if not isinstance(it["question"], str) or not it["question"].strip()
    ]
    assert not bad, f"empty or non-string question in: {bad}"


def test_unanswerable_and_near_items_have_null_answer_evidence_and_section(items):
    bad = [
        it["id"]
        for it in items
        if it["kind"] in NO_ANSWER_KINDS
        and (it["answer"] is not None or it["evidence"] is not None or it["section"] is not None)
    ]
    assert not bad, f"unanswerable/near items with non-null answer, evidence or section: {bad}"


def test_answerable_items_have_answer_evidence_and_section(items):
    bad = [
        it["id"]
        for it in answerable(items)
        if not all(
            isinstance(it[k], str) and it[k].strip() for k in ("answer", "evidence", "section")
        )
    ]
    assert not bad, f"answerable items missing answer, evidence or section: {bad}"


def test_every_answer_occurs_in_the_document(items, document):
    bad = [
        it["id"]
        for it in answerable(items)
        if not isinstance(it["answer"], str) or collapse(it["answer"]) not in document
    ]
    assert not bad, f"answer not found in the document: {bad}"


def test_every_evidence_occurs_exactly_once_in_the_document(items, document):
    bad = [
        f"{it['id']} ({document.count(collapse(it['evidence']))}x)"
        for it in answerable(items)
        if not isinstance(it["evidence"], str) or document.count(collapse(it["evidence"])) != 1
    ]
    assert not bad, f"evidence not found exactly once in the document: {bad}"


def test_every_evidence_contains_its_answer(items):
    bad = [
        it["id"]
        for it in answerable(items)
        if not isinstance(it["answer"], str)
        or not isinstance(it["evidence"], str)
        or collapse(it["answer"]) not in collapse(it["evidence"])
    ]
    assert not bad, f"evidence does not contain the answer: {bad}"


def test_sections_are_known_headings(items):
    bad = [it["id"] for it in answerable(items) if it["section"] not in SECTIONS]
    assert not bad, f"unknown section in: {bad}"


def test_evidence_lies_in_the_stated_section(items, document):
    # Position of each heading in the collapsed document; the introduction starts at 0.
    starts = {"Introduction": 0}
    for heading in SECTIONS[1:]:
        match = re.search(r"(?:^| )" + re.escape(heading) + r"(?: |$)", document)
        assert match, f"heading {heading!r} not found in the document"
        starts[heading] = match.start()
    bounds = sorted(starts.items(), key=lambda kv: kv[1])

    def section_at(pos):
        current = bounds[0][0]
        for name, start in bounds:
            if pos >= start:
                current = name
        return current

    bad = []
    for it in answerable(items):
        if not isinstance(it["evidence"], str):
            continue
        pos = document.find(collapse(it["evidence"]))
        if pos >= 0 and section_at(pos) != it["section"]:
            bad.append(f"{it['id']} (is in {section_at(pos)})")
    assert not bad, f"evidence not in the stated section: {bad}"


def test_follow_up_of_is_set_only_on_followups(items):
    bad = [it["id"] for it in items if it["kind"] != "followup" and it["follow_up_of"] is not None]
    assert not bad, f"non-followup items with follow_up_of set: {bad}"


def test_every_followup_names_an_earlier_item(items):
    seen = set()
    bad = []
    for it in items:
        if it["kind"] == "followup" and it["follow_up_of"] not in seen:
            bad.append(it["id"])
        seen.add(it["id"])
    assert not bad, f"followups whose follow_up_of is not an earlier item: {bad}"


def test_every_followup_directly_follows_a_non_followup_first_turn(items):
    bad = []
    for prev, it in zip([None, *items[:-1]], items, strict=False):
        if it["kind"] != "followup":
            continue
        if (
            prev is None
            or it["follow_up_of"] != prev["id"]
            or prev["kind"] in {"followup"} | NO_ANSWER_KINDS
        ):
            bad.append(it["id"])
    assert not bad, f"followups not placed right after an answerable first turn: {bad}"


def test_total_count_meets_minimum(items):
    assert len(items) >= MIN_TOTAL, (
        f"only {len(items)} items (need {MIN_TOTAL}); ids: {[it['id'] for it in items]}"
    )


def test_per_kind_counts_meet_minimums(items):
    counts = Counter(it["kind"] for it in items)
    short = {k: counts[k] for k, n in MIN_PER_KIND.items() if counts[k] < n}
    no_answer = [it["id"] for it in items if it["kind"] in NO_ANSWER_KINDS]
    problems = []
    if short:
        problems.append(f"kinds below minimum {short} (need {MIN_PER_KIND})")
    if len(no_answer) < MIN_NO_ANSWER:
        problems.append(
            f"only {len(no_answer)} unanswerable/near items (need {MIN_NO_ANSWER}): {no_answer}"
        )
    assert not problems, "; ".join(problems)


def test_per_section_counts_meet_minimums(items):
    by_section = {s: [it["id"] for it in items if it["section"] == s] for s in SECTIONS}
    problems = [f"{s}: {ids}" for s, ids in by_section.items() if len(ids) < MIN_PER_SECTION]
    if len(by_section["TIMELINE"]) < MIN_TIMELINE:
        problems.append(
            f"TIMELINE has {len(by_section['TIMELINE'])} items (need {MIN_TIMELINE}): "
            f"{by_section['TIMELINE']}"
        )
    assert not problems, "sections below minimum: " + "; ".join(problems)
