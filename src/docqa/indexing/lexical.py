"""The words BM25 sees: lowercased, British and American spellings made one, stemmed, without
stopwords; the same for passages at build time and for questions at run time."""

from __future__ import annotations

import functools
import re
from typing import Any

_TOKEN = re.compile(r"\w+")

# Common English function words: they carry no evidence for BM25 and inflate its scores.
STOPWORDS = frozenset(
    "a about above after again against all am an and any are as at be because been before "
    "being below between both but by can could did do does doing down during each few for "
    "from further had has have having he her here hers him his how i if in into is it its "
    "itself just me more most my no nor not now of off on once only or other our out over "
    "own same she should so some such than that the their theirs them then there these they "
    "this those through to too under until up very was we were what when where which while "
    "who whom why will with would you your tell me please".split()
)


@functools.cache
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


# British and American spellings meet in one form, so "organisation" finds "organization"
# and "defense" finds "defence" (the stemmer alone keeps them apart).
_SPELLINGS = (
    (re.compile(r"(?<=\w{3})is(e|ed|es|ing|ation|ations)$"), r"iz\1"),
    (re.compile(r"(?<=\w{3})our(s|ed|ing|able|ite|ites|hood|hoods)?$"), r"or\1"),
    (re.compile(r"(?<=\w{3})tre(s)?$"), r"ter\1"),
    (re.compile(r"^(def|off|lic|pret)ence(s)?$"), r"\1ense\2"),
    (re.compile(r"^programme(s)?$"), r"program\1"),
)


@functools.lru_cache(maxsize=65536)
def normalise_spelling(word: str) -> str:
    """One spelling for British and American variants of a lowercase word."""
    for pattern, replacement in _SPELLINGS:
        word = pattern.sub(replacement, word)
    return word


LONGEST_WORD = 40
"""Tokens longer than this (ids, hashes, noise; no English word) are kept as they are. The
spelling and stemmer caches hold only words up to this long: a question's 2,000-character
"words" once stayed in them (~200 MB for 65,536 of them)."""


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lowercased, spelling-normalised, stemmed word tokens without stopwords, for BM25."""
    return [
        _stem([t for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS]) for text in texts
    ]


def _stem(tokens: list[str]) -> list[str]:
    words = [normalise_spelling(t) for t in tokens if len(t) <= LONGEST_WORD]
    if len(words) == len(tokens):
        stems: list[str] = _stemmer().stemWords(words)
        return stems
    stemmed = iter(_stemmer().stemWords(words))
    return [next(stemmed) if len(t) <= LONGEST_WORD else t for t in tokens]
