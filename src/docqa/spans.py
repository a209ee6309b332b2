"""The short answer: candidate spans of the evidence sentences, scored by a linear model of
generic features (the span's length and shape, whether it repeats the question, how close
it stands to the question's words, whether it is of the kind asked for).

The weights are fitted on the public SQuAD 2.0 articles (scripts/fit_answer_model.py,
cross-validated by article) and stored in answer_model.json.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from docqa.index import tokenize
from docqa.kinds import AGE, DATE, MONEY, QUANTITY, Expectation

# Numbers keep their separators ("1,050,000", "10:30"); a possessive "'s" is its own token.
_TOKEN = re.compile(r"\d[\d,.:]*\d%?|['’]s\b|\w+(?:-\w+)*%?|[^\w\s]")
MAX_SPAN_TOKENS = 10
"""Longest candidate: 97% of the SQuAD gold answers of the public set have at most 10 tokens."""
_STOP = frozenset(
    "a an the of and or but to in on at by for from with as is are was were be been being "
    "that which who whom whose this these those it its their his her they he she we our "
    "than then also not no into onto over under about after before during while when where "
    "how what why has have had do does did can could would should will may might must there "
    "such so if because although though".split()
)
_PREPOSITIONS = frozenset("in on at by from of to for as than since until during near".split())
_COPULAS = frozenset("is are was were called named known as became include includes".split())
_BOUNDARY = frozenset(",;:()\"“”'.")
BASE_FEATURES = (
    "length_1",
    "length_2",
    "length_3",
    "length_4_5",
    "length_6_up",
    "repeats_question",
    "any_question_word",
    "near_question",
    "question_words_around",
    "kind_match",
    "kind_mismatch",
    "capitalised",
    "has_digit",
    "opens_clause",
    "closes_clause",
    "after_preposition",
    "after_copula",
    "in_parentheses",
    "after_question_words",
    "before_question_words",
    "only_kind_match",
    "distance_1",
    "distance_2",
    "distance_3_5",
    "distance_6_10",
    "whole_run",
    "ends_like_verb",
    "after_stop_word",
)
SHAPES = (
    "capitalised",
    "has_digit",
    "length_1",
    "length_2",
    "length_3",
    "length_4_up",
    "whole_run",
)
"""Span shapes crossed with the question word: "who" wants a capitalised name, "how many" a
number, "why" a longer phrase. A linear model needs the product spelled out."""
QUESTION_WORDS = (
    "what",
    "which",
    "who",
    "when",
    "where",
    "why",
    "how many",
    "how much",
    "how",
    "other",
)
FEATURES = BASE_FEATURES + tuple(f"{wh}:{shape}" for wh in QUESTION_WORDS for shape in SHAPES)
_ASKED_BY = re.compile(
    r"\b(how many|how much|what|which|who|whom|whose|when|where|why|how)\b", re.I
)


@dataclass(frozen=True)
class Token:
    """A word, number or punctuation mark of a sentence with its span."""

    text: str
    start: int
    end: int
    stem: str


@dataclass(frozen=True)
class Candidate:
    """A span of the evidence (token positions first..last) and its features."""

    first: int
    last: int
    start: int
    end: int
    features: tuple[float, ...]


def tokens_of(text: str) -> list[Token]:
    """The tokens of a text, each with its stem for matching against the question."""
    matches = list(_TOKEN.finditer(text))
    stems = tokenize([m.group() for m in matches])
    return [
        Token(m.group(), m.start(), m.end(), stem[0] if stem else m.group().lower())
        for m, stem in zip(matches, stems, strict=True)
    ]


def question_word(question: str) -> str:
    """The question word that asks (one of QUESTION_WORDS)."""
    match = _ASKED_BY.search(question)
    if match is None:
        return "other"
    word = match.group(1).lower()
    return "who" if word in ("whom", "whose") else word


def candidates(
    text: str, question_stems: frozenset[str], expectation: Expectation, asked: str = "other"
) -> list[Candidate]:
    """Every span of up to MAX_SPAN_TOKENS words that neither starts nor ends with a stop
    word or punctuation, with its features."""
    tokens = tokens_of(text)
    words = [t.text.lower() for t in tokens]
    in_question = [t.stem in question_stems and words[i] not in _STOP for i, t in enumerate(tokens)]
    anchors = [i for i, hit in enumerate(in_question) if hit]
    depth, inside = 0, []
    for t in tokens:
        depth += t.text == "("
        depth -= t.text == ")" and depth > 0
        inside.append(depth > 0)
    result = []
    for first, token in enumerate(tokens):
        if not _opens(token.text, words[first]):
            continue
        for last in range(first, min(first + MAX_SPAN_TOKENS, len(tokens))):
            if tokens[last].text in ".;:()" or (tokens[last].text == "," and last == first):
                break
            if not _opens(tokens[last].text, words[last]):
                continue
            span = text[token.start : tokens[last].end]
            features = _features(
                tokens, words, in_question, anchors, inside, first, last, span, expectation
            )
            features += _crossed(asked, features)
            result.append(Candidate(first, last, token.start, tokens[last].end, features))
    return result


def _opens(text: str, word: str) -> bool:
    return word not in _STOP and (text[0].isalnum() or text[0] in "$€£")


def _features(
    tokens: list[Token],
    words: list[str],
    in_question: list[bool],
    anchors: list[int],
    inside: list[bool],
    first: int,
    last: int,
    span: str,
    expectation: Expectation,
) -> tuple[float, ...]:
    length = last - first + 1
    content = [
        i for i in range(first, last + 1) if words[i] not in _STOP and tokens[i].text.isalnum()
    ]
    repeated = sum(in_question[i] for i in content) / len(content) if content else 0.0
    outside = [a for a in anchors if a < first or a > last]
    distance = min((first - a if a < first else a - last for a in outside), default=99)
    around = {tokens[a].stem for a in outside if abs(a - first) <= 6 or abs(a - last) <= 6}
    all_anchors = {tokens[a].stem for a in anchors} or {""}
    match = _kind_match(expectation, span)
    following = last + 1 < len(tokens) and in_question[last + 1]
    before = words[first - 1] if first > 0 else ""
    after = tokens[last + 1].text if last + 1 < len(tokens) else "."
    capitals = sum(tokens[i].text[:1].isupper() for i in range(first, last + 1)) / length
    opens_run = first == 0 or words[first - 1] in _STOP or not tokens[first - 1].text[0].isalnum()
    closes_run = last + 1 >= len(tokens) or words[last + 1] in _STOP or not after[0].isalnum()
    return (
        float(length == 1),
        float(length == 2),
        float(length == 3),
        float(4 <= length <= 5),
        float(length >= 6),
        repeated,
        float(repeated > 0),
        1.0 / (1.0 + distance),
        len(around) / len(all_anchors),
        float(match is True),
        float(match is False),
        capitals,
        float(any(ch.isdigit() for ch in span)),
        float(first == 0 or tokens[first - 1].text in _BOUNDARY),
        float(after in _BOUNDARY),
        float(before in _PREPOSITIONS),
        float(before in _COPULAS),
        float(inside[first]),
        float(first > 0 and in_question[first - 1]),
        float(following),
        float(match is True and length <= 4),
        float(distance == 1),
        float(distance == 2),
        float(3 <= distance <= 5),
        float(6 <= distance <= 10),
        float(opens_run and closes_run),
        float(words[last].endswith(("ing", "ed", "ly"))),
        float(before in _STOP),
    )


_SHAPE_AT = {name: i for i, name in enumerate(BASE_FEATURES)}
_LONG = (_SHAPE_AT["length_4_5"], _SHAPE_AT["length_6_up"])


def _crossed(asked: str, base: tuple[float, ...]) -> tuple[float, ...]:
    """The SHAPES of a span in the slot of the question word that asked, zeros elsewhere."""
    shape = (
        base[_SHAPE_AT["capitalised"]],
        base[_SHAPE_AT["has_digit"]],
        base[_SHAPE_AT["length_1"]],
        base[_SHAPE_AT["length_2"]],
        base[_SHAPE_AT["length_3"]],
        base[_LONG[0]] + base[_LONG[1]],
        base[_SHAPE_AT["whole_run"]],
    )
    slot = QUESTION_WORDS.index(asked)
    blank = (0.0,) * len(SHAPES)
    return blank * slot + shape + blank * (len(QUESTION_WORDS) - slot - 1)


def _kind_match(expectation: Expectation, span: str) -> bool | None:
    """Whether the span is of the kind asked for; None when the question asks no kind."""
    kind = expectation.kind
    if kind == "date":
        return bool(DATE.search(span))
    if kind == "quantity":
        return bool(QUANTITY.search(span))
    if kind == "money":
        return bool(MONEY.search(span) or QUANTITY.search(span))
    if kind == "age":
        return bool(AGE.search(span) or QUANTITY.search(span))
    if kind in ("place", "person"):
        return span[:1].isupper()
    return None


def score(candidate: Candidate, weights: tuple[float, ...], bias: float) -> float:
    """The linear score (a logit) of a candidate."""
    return bias + sum(w * x for w, x in zip(weights, candidate.features, strict=True))


def question_stems(question: str) -> frozenset[str]:
    """The stems of a question's words, to find them again in the evidence."""
    return frozenset(t.stem for t in tokens_of(question) if t.text.lower() not in _STOP)
