"""The kind of answer a question asks for (a date, a quantity, a place, a person...), and
whether a piece of text can hold one.

The patterns cover any period and any English document: years of one to four digits
written as dates ("in 880", "AD 43", "the 880s"), centuries, months, weekdays and times of
day; places and people as capitalised names (no "in/at/near" needed); quantities written
in digits or words, with or without a unit. A kind never vetoes: retrieval lowers the
score of a sentence that cannot hold the kind asked for, and the confidence model weighs
it with the other evidence.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from docqa.indexing.lexical import tokenize

_MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|December|"
    "Jan\\.|Feb\\.|Mar\\.|Apr\\.|Aug\\.|Sept?\\.|Oct\\.|Nov\\.|Dec\\."
)
_ORDINAL_WORDS = (
    "first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|"
    "thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|"
    "twenty-first"
)
_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    "fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|"
    "eighty|ninety|hundred|hundreds|thousand|thousands|million|millions|billion|billions|"
    "trillion|dozen|dozens|half|quarter|percent|per cent"
)
DATE = re.compile(
    r"\b\d{1,2}(st|nd|rd|th)[- ]century\b|\b(" + _ORDINAL_WORDS + r")[- ]century\b"
    r"|\b(the )?\d{1,4}0s\b|\b\d{1,4}\s*(AD|BC|BCE|CE)\b|\b(AD|A\.D\.)\s*\d{1,4}\b"
    r"|\b(in|since|until|by|from|of|after|before|around|circa|c\.) (the year )?\d{3,4}\b"
    r"|\b(1[0-9]|20)\d\d\b(?![,.]\d)"
    r"|\b(" + _MONTHS + r")(?!\w)"
    r"|\b(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)s?\b"
    r"|\b\d{1,2}(:\d\d)?\s*(a\.?m\.?|p\.?m\.?)(?!\w)|\b\d{1,2}:\d\d\b"
    r"|\b(noon|midnight|morning|afternoon|evening|dawn|dusk|overnight)\b"
    r"|\b(decade|century|centuries|millennium)\b",
    re.IGNORECASE,
)
"""A date or time of any period (years, centuries, decades, months, weekdays, hours)."""
QUANTITY = re.compile(
    r"\b(?!(1[0-9]|20)\d\d\b)\d[\d,.]*\b|\b(" + _NUMBER_WORDS + r")\b|%", re.IGNORECASE
)
MONEY = re.compile(
    r"[€$£¥]|\b(euros?|dollars?|pounds?|yen|francs?|USD|EUR|GBP|cents?|million|billion)\b",
    re.I,
)
AGE = re.compile(r"\b\d+[- ]years?\b|\baged? \d+|\b\d+ years old\b", re.I)
# A capitalised word that does not start the text: a name of a person, place or thing.
NAME = re.compile(r"(?<=[\s\"“(,;:'-])[A-Z][\w'’.-]*")

_ASKS_DATE = re.compile(
    r"(^|[,;:]\s*)(and |so |but )?when\b|\bwhen (did|was|were|is|will|does|do|had|has)\b|"
    r"\b(what|which|in what|in which) (year|date|month|decade|century|era|period|day|time|"
    r"hour|season|age)\b|\bsince when\b|\bhow long ago\b|\bat what time\b",
    re.I,
)
_ASKS_QUANTITY = re.compile(
    r"\b(how many|how much|what number of|what percentage|what percent|what proportion|"
    r"what share|what fraction|what amount|how (long|far|big|tall|high|wide|deep|large|heavy|"
    r"fast|often|large|small|old))\b",
    re.I,
)
_ASKS_COUNT_OF = re.compile(
    r"\bhow many ((?:(?!(?:of|did|does|do|were|are|was|is|have|has|had|will|can|could|would)\b)"
    r"[a-z-]+\s*){1,3})",
    re.I,
)
_ASKS_MONEY = re.compile(
    r"\bhow much (money|funding|does .* cost|did .* cost)\b|\b(cost|budget|funding|price)\b", re.I
)
_ASKS_AGE = re.compile(r"\bhow old\b|\bwhat age\b|\bat what age\b", re.I)
_ASKS_PLACE = re.compile(
    r"(^|[,;:]\s*)(and |so |but )?where\b|\b(what|which|in what|in which) (city|country|"
    r"countries|place|region|state|continent|county|province|town|village|island|river|"
    r"location|area|nation|capital)\b",
    re.I,
)
_ASKS_PERSON = re.compile(
    r"(^|[,;:]\s*)(and |so |but )?(who|whom|whose)\b|\bwhat (person|"
    r"man|woman|composer|author|actor|director)\b",
    re.I,
)
_ASKS_DEFINITION = re.compile(
    r"\b(stand for|stands for|acronym|abbreviation)\b|"
    r"^\s*(what|wat|who)\s*('s|s|\s+is|\s+are|\s+was|\s+were)\s+(the\s+|an?\s+)?[\w-]+(\s+[\w-]+)?\s*\??\s*$|"
    r"^\s*(tell me about|explain|describe)\b",
    re.I,
)
_PARENTHESIS = re.compile(r"\(([^()]{2,80})\)")
KINDS = ("age", "date", "money", "quantity", "place", "person", "definition")


@dataclass(frozen=True)
class Expectation:
    """The kind of answer a question asks for, read from its wording once per query."""

    kind: str = ""
    """One of KINDS, or "" when anything may answer."""
    counted: frozenset[str] = frozenset()
    """For 'how many X': the stems of the (up to three) words after 'how many', one of
    which is the thing counted ("how many joint measures accompanied...")."""
    named: frozenset[str] = frozenset()
    """The lowercase words of the question: an answer brings something else."""


def expectation_of(question: str) -> Expectation:
    """Read the expected kind of answer from the question's wording."""
    named = frozenset(w.lower() for w in re.findall(r"[\w-]+", question))
    if _ASKS_AGE.search(question):
        return Expectation("age", named=named)
    if _ASKS_DATE.search(question):
        return Expectation("date", named=named)
    if _ASKS_MONEY.search(question):
        return Expectation("money", named=named)
    if _ASKS_QUANTITY.search(question):
        asked = _ASKS_COUNT_OF.search(question)
        counted = frozenset(tokenize([asked.group(1)])[0]) if asked else frozenset()
        return Expectation("quantity", counted, named)
    if _ASKS_PLACE.search(question):
        return Expectation("place", named=named)
    if _ASKS_PERSON.search(question) and not _ASKS_DEFINITION.search(question):
        return Expectation("person", named=named)
    if _ASKS_DEFINITION.search(question):
        return Expectation("definition", named=named)
    return Expectation(named=named)


def fits_answer_type(expectation: Expectation, sentence: str) -> bool:
    """Whether a sentence can hold the kind of answer asked for: a date for 'when', a
    quantity for 'how many' (next to the thing counted, when the sentence names it), an
    amount for 'how much money', a name not in the question for 'where' and 'who'."""
    kind = expectation.kind
    if kind in ("", "definition"):
        return True
    if kind in ("place", "person"):
        return names_new_thing(expectation.named, sentence)
    if not mentions(kind, sentence):
        return False
    return kind != "quantity" or counts_thing(expectation.counted, sentence)


def names_new_thing(named: frozenset[str], text: str) -> bool:
    """Whether the text has a capitalised name that the question does not use."""
    return any(
        not set(re.findall(r"[\w-]+", m.group().lower())) <= named for m in NAME.finditer(text)
    )


@functools.lru_cache(maxsize=1 << 16)
def mentions(kind: str, text: str) -> bool:
    """Whether a text holds a date, an amount of money, an age or a quantity (cached: the
    same sentences come back query after query)."""
    pattern = {"date": DATE, "money": MONEY, "age": AGE, "quantity": QUANTITY}.get(kind)
    return pattern is None or bool(pattern.search(text))


def spells_out(expectation: Expectation, sentence: str) -> bool:
    """Whether the sentence defines a term of the question: "Long Name (TERM)" or
    "TERM (Long Name)"."""
    for match in _PARENTHESIS.finditer(sentence):
        inside = set(re.findall(r"[\w-]+", match.group(1).lower()))
        before = re.findall(r"[\w-]+", sentence[max(0, match.start() - 24) : match.start()].lower())
        if (inside | set(before[-2:])) & expectation.named:
            return True
    return False


def counts_thing(counted: frozenset[str], sentence: str) -> bool:
    """A quantity right before the counted noun, if the sentence names that noun."""
    if not counted:
        return True
    words = re.findall(r"[\w,.]+", sentence)
    stems = [stem[0] if stem else "" for stem in tokenize(words)]
    places = [i for i, stem in enumerate(stems) if stem in counted]
    if not places:
        return True
    return any(QUANTITY.fullmatch(w) for i in places for w in words[max(0, i - 4) : i])


_OVERVIEW = re.compile(
    r"^\s*(please\s+)?(tell\s+me\s+(more\s+)?about|describe|explain|summari[sz]e|"
    r"give\s+(me\s+)?an?\s+(overview|summary)\s+of|what\s+do\s+(you|the\s+documents?)\s+"
    r"(know|say)\s+about|overview\s+of)\b",
    re.IGNORECASE,
)


def asks_for_overview(question: str) -> bool:
    """Whether the question asks about a subject as a whole ("Tell me about the cider
    press"), not for one fact: no single span answers it."""
    return bool(_OVERVIEW.match(question))
