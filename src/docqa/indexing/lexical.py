"""The words BM25 sees: lowercased, British and American spellings made one, stemmed, without
stopwords; the same for passages at build time and for questions at run time."""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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


BM25_K1 = 1.5
BM25_B = 0.75
"""BM25's term-frequency saturation and length normalisation (Lucene's defaults, and
bm25s's, which docqa used before its index was cut into segments)."""


@dataclass
class TermCounts:
    """How often each term occurs in each chunk of one index segment (chunks x terms).

    Counts, not BM25 scores, are stored: IDF and the average chunk length belong to the whole
    index, so segments written at different times are scored with the statistics of all."""

    terms: list[str]
    counts: Any  # scipy.sparse.csr_matrix, int32, one row per chunk

    @classmethod
    def of(cls, texts: list[str]) -> TermCounts:
        """The term counts of each text, tokenised as BM25 sees it."""
        from scipy import sparse

        columns: dict[str, int] = {}
        indptr, indices, data = [0], list[int](), list[int]()
        for tokens in tokenize(texts):
            counted = Counter(columns.setdefault(t, len(columns)) for t in tokens)
            indices.extend(counted)
            data.extend(counted.values())
            indptr.append(len(indices))
        shape = (len(texts), len(columns))
        counts = sparse.csr_matrix((np.array(data, np.int32), indices, indptr), shape=shape)
        return cls(list(columns), counts)

    def rows(self, rows: list[int] | np.ndarray) -> TermCounts:
        """The counts of the given chunks only, over the terms they use."""
        counts = self.counts[np.asarray(rows, dtype=np.int64)]
        used = np.unique(counts.indices)
        columns = np.zeros(len(self.terms), dtype=np.int64)
        columns[used] = np.arange(len(used))
        terms = [self.terms[i] for i in used.tolist()]
        return TermCounts(terms, _recolumn(counts, columns, len(terms)))

    @classmethod
    def join(cls, parts: list[TermCounts]) -> TermCounts:
        """The counts of several parts' chunks, one after another, over one vocabulary."""
        columns: dict[str, int] = {}
        mapped = [[columns.setdefault(t, len(columns)) for t in part.terms] for part in parts]
        width = len(columns)
        remapped = [_recolumn(p.counts, m, width) for p, m in zip(parts, mapped, strict=True)]
        return cls(list(columns), _stack(remapped, width))

    def save(self, folder: Path) -> None:
        from scipy import sparse

        folder.mkdir(parents=True, exist_ok=True)
        sparse.save_npz(folder / "counts.npz", self.counts, compressed=False)
        (folder / "terms.json").write_text(json.dumps(self.terms), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> TermCounts:
        from scipy import sparse

        counts = sparse.load_npz(folder / "counts.npz").tocsr()
        terms = json.loads((folder / "terms.json").read_text(encoding="utf-8"))
        if not isinstance(terms, list) or counts.shape[1] != len(terms):
            raise ValueError("the term list does not match the counts")
        return cls(terms, counts)


def _recolumn(counts: Any, columns: list[int] | np.ndarray, width: int) -> Any:
    """The counts with column i moved to columns[i], `width` columns wide."""
    from scipy import sparse

    indices = np.asarray(columns, dtype=np.int64)[counts.indices]
    shape = (counts.shape[0], width)
    return sparse.csr_matrix((counts.data, indices, counts.indptr), shape=shape)


def _stack(parts: list[Any], width: int) -> Any:
    from scipy import sparse

    if not parts:
        return sparse.csr_matrix((0, width), dtype=np.int32)
    return sparse.vstack(parts, format="csr", dtype=np.int32)


class Bm25:
    """BM25 (Lucene's variant) over the chunks of every segment, with one vocabulary, one
    IDF and one average chunk length for all: the same scores as one index over all chunks."""

    def __init__(self, parts: list[TermCounts]) -> None:
        joined = TermCounts.join(parts)
        counts = joined.counts
        self.vocabulary = {term: column for column, term in enumerate(joined.terms)}
        self.chunk_count = counts.shape[0]
        lengths = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
        average = float(lengths.mean()) if len(lengths) else 1.0
        by_term = counts.tocsc()
        by_term.sort_indices()
        self.document_frequencies = np.diff(by_term.indptr)
        tf = by_term.data.astype(np.float64)
        norm = BM25_K1 * (1 - BM25_B + BM25_B * lengths[by_term.indices] / max(average, 1e-9))
        idf = np.log(
            1
            + (self.chunk_count - self.document_frequencies + 0.5)
            / (self.document_frequencies + 0.5)
        )
        weights = tf / (tf + norm) * np.repeat(idf, self.document_frequencies)
        self._indptr = by_term.indptr
        self._indices = by_term.indices
        self._weights = weights.astype(np.float32)

    def get_scores(self, tokens: list[str]) -> np.ndarray:
        """The BM25 score of every chunk for the query tokens (a repeated token counts again;
        tokens no chunk uses add nothing)."""
        scores = np.zeros(self.chunk_count, dtype=np.float32)
        for token in tokens:
            column = self.vocabulary.get(token)
            if column is None:
                continue
            start, end = self._indptr[column], self._indptr[column + 1]
            scores[self._indices[start:end]] += self._weights[start:end]
        return scores
