"""Memory that clients can make the service hold is bounded: the spelling and stemmer caches
keep only word-sized words (a question's 2,000-character "word" is not cached)."""

from __future__ import annotations

import gc
import tracemalloc

from docqa.indexing.lexical import tokenize


def test_long_words_from_questions_do_not_stay_in_the_word_caches() -> None:
    # Distinct 2,000-character words, as a client without a key may send in questions.
    words = [f"{n:05d}" + "z" * 1995 for n in range(2000)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tokenize(words)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert held < 500_000, f"{held / 1e6:.1f} MB held after tokenizing 4 MB of long words"


def test_words_are_normalised_and_stemmed_and_longer_tokens_kept_whole() -> None:
    long_token = "x" * 100 + "isations"
    assert tokenize(["Organisations " + long_token + " cooperating"]) == [
        ["organiz", long_token, "cooper"]  # organisations -> organizations -> organiz
    ]
