"""Build, save, load and check the index: FAISS vectors, BM25, chunks and the manifest.

Layout of the index folder:

    index/CURRENT            name of the build folder in use (replaced atomically)
    index/build-<stamp>/     manifest.json, chunks.jsonl, dense.faiss, sentences.npy,
                             lexical/ (bm25s), encoder/ (ONNX query encoder)
    index/.tmp-*/            a build in progress; never read, removed by the next build
    index/.lock              held while a build runs, so two builds never interleave
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from docqa.chunking import ChunkSettings
from docqa.config import Settings
from docqa.corpus import CorpusError, Stamp, hash_corpus, judge_again, skipped_for_limit
from docqa.models import Chunk, DocqaError, DocumentRecord

FORMAT_VERSION = 4
"""3: chunks carry their page; the manifest carries the per-file report (`records`).
4: passage vectors are made from their sentences' vectors (indexing.passage_vectors)."""
HNSW_FROM = 20_000
"""Up to this many chunks exact (flat) search is used; above it HNSW. Flat search costs
~0.09 ms per 1,000 vectors (88 ms at 1M on one core, `docqa bench`), so from ~20k chunks
on it is slower than HNSW at HNSW_EF_SEARCH (~2 ms even at 1M)."""
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 256
"""HNSW graph degree and search depths, by measurement (`docqa bench`, 1M vectors): efSearch
256 finds 0.97 of the exact top 10 in 2.1 ms (128: 0.94; 512: 0.98 in 4.0 ms); at 100k,
efConstruction 40 gave a better recall than 80 (0.958 against 0.943 at efSearch 128)."""
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

Notify = Callable[[str], None]


class IndexError_(DocqaError):
    """Base of the index errors (named with a trailing underscore: IndexError is builtin)."""


class IndexMissingError(IndexError_):
    """No index has been built yet."""


class IndexStaleError(IndexError_):
    """The index does not match the corpus or the settings."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class IndexCorruptError(IndexError_):
    """An index file is missing, truncated or unreadable."""


@dataclass
class Index:
    """Everything retrieval needs, loaded in memory."""

    chunks: list[Chunk]
    dense: Any  # faiss.Index over normalised chunk vectors (inner product = cosine)
    lexical: Any  # bm25s.BM25 over the chunks' stemmed tokens
    sentence_vectors: np.ndarray
    sentence_starts: np.ndarray  # chunk i owns rows sentence_starts[i]:sentence_starts[i + 1]
    manifest: dict[str, Any]
    path: Path
    row_of: dict[str, int] = field(init=False, repr=False)
    document_frequencies: np.ndarray = field(init=False, repr=False)
    """How many chunks hold each BM25 term (by the term's column in the BM25 vocabulary)."""
    _sentence_terms: dict[int, list[frozenset[str]]] = field(init=False, repr=False)
    document_rows: dict[str, list[int]] = field(init=False, repr=False)
    """The chunk rows of each document, in index order."""

    def __post_init__(self) -> None:
        self.row_of = {chunk.id: row for row, chunk in enumerate(self.chunks)}
        self.document_rows = {}
        for row, chunk in enumerate(self.chunks):
            self.document_rows.setdefault(chunk.document, []).append(row)
        self.document_frequencies = np.diff(self.lexical.scores["indptr"])
        self._sentence_terms = {}

    def rows_of(self, documents: frozenset[str]) -> np.ndarray:
        """The chunk rows of the named documents, sorted (for restricting a search)."""
        rows = [row for name in documents for row in self.document_rows.get(name, ())]
        return np.array(sorted(rows), dtype=np.int64)

    def sentence_terms(self, row: int) -> list[frozenset[str]]:
        """The BM25 terms of each sentence of a chunk and of its section title (tokenised
        once, then kept): "the resources list" finds a sentence under that heading."""
        terms = self._sentence_terms.get(row)
        if terms is None:
            chunk = self.chunks[row]
            title = set(tokenize([chunk.section])[0])
            sentences = tokenize([chunk.text[s:e] for s, e in chunk.sentences])
            terms = [frozenset(title.union(t)) for t in sentences]
            self._sentence_terms[row] = terms
        return terms


def chunk_settings(settings: Settings) -> ChunkSettings:
    """The chunker settings from the global settings."""
    return ChunkSettings(
        settings.chunk_target_chars, settings.chunk_max_chars, settings.chunk_min_chars
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


def chunker_description(settings: Settings) -> dict[str, Any]:
    """How the corpus is cut into chunks, as recorded in (and checked against) the manifest."""
    if settings.chunker == "windows":
        return {
            "kind": "windows",
            "window_chars": settings.window_chars,
            "window_overlap": settings.window_overlap,
        }
    return chunk_settings(settings).describe()


def embedding_text(chunk: Chunk) -> str:
    """What is embedded for a chunk: its section title (if any) gives the passage context."""
    return f"{chunk.section.title()}: {chunk.text}" if chunk.section else chunk.text


def make_dense_index(vectors: np.ndarray) -> Any:
    """Exact inner-product search for small corpora, HNSW for large ones."""
    import faiss

    if len(vectors) > HNSW_FROM:
        return make_hnsw_index(vectors)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


def make_hnsw_index(vectors: np.ndarray) -> Any:
    """An HNSW graph over the vectors for inner-product search."""
    import faiss

    index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = HNSW_EF_SEARCH
    index.add(vectors)
    return index


def manifest_for(
    settings: Settings, corpus: dict[str, str], dimension: int, kind: str
) -> dict[str, Any]:
    """The manifest recorded with a build: what it was built from and how."""
    return {
        "format_version": FORMAT_VERSION,
        "model": settings.model,
        "dimension": dimension,
        "chunker": chunker_description(settings),
        "documents": corpus,
        "dense_index": kind,
        "encoder_precision": settings.encoder_precision,
        "passage_precision": settings.passage_precision,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def stale_reasons(
    manifest: dict[str, Any], settings: Settings, corpus: dict[str, str]
) -> list[str]:
    """Why an index no longer fits the corpus and settings; empty when it fits."""
    reasons = []
    if manifest.get("format_version") != FORMAT_VERSION:
        reasons.append(
            f"it has format {manifest.get('format_version')}, this docqa reads {FORMAT_VERSION}"
        )
    if manifest.get("model") != settings.model:
        reasons.append(
            f"it was built with model {manifest.get('model')}, settings ask for {settings.model}"
        )
    if manifest.get("chunker") != chunker_description(settings):
        reasons.append("it was built with another chunker or other chunk sizes")
    passages = manifest.get("passage_precision", "fp32")
    if passages != settings.passage_precision:
        reasons.append(
            f"its passages were embedded in {passages}, settings ask for "
            f"{settings.passage_precision}"
        )
    precision = manifest.get("encoder_precision", "fp32")
    if precision != settings.encoder_precision:
        reasons.append(
            f"it has a {precision} query encoder, settings ask for {settings.encoder_precision}"
        )
    built = manifest.get("documents", {})
    records = {record.name: record for record in records_of(manifest)}
    for name in sorted(set(built) | set(corpus)):
        if name not in corpus:
            reasons.append(f"{name} was removed from the corpus")
        elif name not in built:
            reasons.append(f"{name} was added to the corpus")
        elif built[name] != corpus[name]:
            reasons.append(f"{name} has changed")
        elif name in records and _fits_now(records[name], settings):
            reasons.append(
                f"{name} was skipped for its size and may fit the limits now "
                f"(DOCQA_MAX_FILE_BYTES {settings.max_file_bytes:,}, "
                f"DOCQA_MAX_DOCUMENT_CHARS {settings.max_document_chars:,})"
            )
    return reasons


def _fits_now(record: DocumentRecord, settings: Settings) -> bool:
    limits = settings.max_file_bytes, settings.max_document_chars
    return skipped_for_limit(record) and judge_again(record, *limits) is None


def records_of(manifest: dict[str, Any]) -> tuple[DocumentRecord, ...]:
    """The per-file report stored in a build's manifest."""
    fields = set(DocumentRecord.__dataclass_fields__)
    return tuple(
        DocumentRecord(**{k: v for k, v in r.items() if k in fields})
        for r in manifest.get("records", [])
        if isinstance(r, dict)
    )


def recorded_files(manifest: dict[str, Any]) -> dict[str, tuple[Stamp, str]]:
    """The (size, modification time) and hash of each file as a build read it; files whose
    record has no modification time are left out (they are hashed)."""
    hashes = manifest.get("documents", {})
    return {
        record.name: ((record.size, record.modified_ns), hashes[record.name])
        for record in records_of(manifest)
        if record.modified_ns and isinstance(hashes.get(record.name), str)
    }


def compare_corpus(manifest: dict[str, Any], settings: Settings) -> list[str]:
    """Why the index of `manifest` no longer fits the corpus folder and the settings (empty
    when it fits). A file of the size and modification time recorded is not read."""
    corpus = hash_corpus(settings.corpus_dir, recorded_files(manifest))
    return stale_reasons(manifest, settings, corpus)


def chunk_record(chunk: Chunk) -> dict[str, Any]:
    return {
        "id": chunk.id,
        "document": chunk.document,
        "section": chunk.section,
        "ordinal": chunk.ordinal,
        "start": chunk.start,
        "end": chunk.end,
        "text": chunk.text,
        "sentences": chunk.sentences,
        "offsets": chunk.offsets,
        "page": chunk.page,
    }


def _chunk_from(record: dict[str, Any]) -> Chunk:
    return Chunk(
        record["id"],
        record["document"],
        record["section"],
        record["ordinal"],
        record["start"],
        record["end"],
        record["text"],
        tuple((int(s), int(e)) for s, e in record["sentences"]),
        tuple((int(c), int(o)) for c, o in record["offsets"]),
        record.get("page"),
    )


def current_build(index_dir: Path) -> Path | None:
    """The build folder in use, or None when no index was ever built."""
    pointer = index_dir / "CURRENT"
    try:
        if not pointer.is_file():
            return None
    except OSError as error:
        raise IndexCorruptError(f"{pointer} is unreadable: {error.strerror}") from error
    try:
        folder = index_dir / pointer.read_text(encoding="utf-8").strip()
    except (OSError, ValueError) as error:
        raise IndexCorruptError(f"{pointer} is unreadable: {error}") from error
    if not folder.name.startswith("build-") or not folder.is_dir():
        raise IndexCorruptError(f"{pointer} names a build folder that is missing")
    return folder


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a build folder."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise IndexCorruptError(f"{folder / 'manifest.json'} is unreadable: {error}") from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("documents", {}), dict):
        raise IndexCorruptError(f"{folder / 'manifest.json'} is not a manifest")
    return manifest


def check_index(settings: Settings) -> Path:
    """The current build folder if it fits the corpus and settings; raises otherwise."""
    folder = current_build(settings.index_dir)
    if folder is None:
        raise IndexMissingError(f"no index in {settings.index_dir} yet (run `docqa index`)")
    reasons = compare_corpus(read_manifest(folder), settings)
    if reasons:
        reason = f"the index in {settings.index_dir} is stale: {'; '.join(reasons)}"
        raise IndexStaleError(f"{reason}. Run `docqa index --force` to rebuild it", reason)
    return folder


def load_build(folder: Path) -> Index:
    """Load a build folder into memory; raises IndexCorruptError on damaged files."""
    import bm25s
    import faiss

    manifest = read_manifest(folder)
    try:
        with open(folder / "chunks.jsonl", encoding="utf-8") as handle:
            chunks = [_chunk_from(json.loads(line)) for line in handle]
        dense = faiss.read_index(str(folder / "dense.faiss"))
        lexical = bm25s.BM25.load(str(folder / "lexical"))
        sentence_vectors = np.load(folder / "sentences.npy")
        starts = np.load(folder / "sentence_starts.npy")
    # bm25s raises AttributeError on a parameter file of the wrong shape.
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        RuntimeError,
        EOFError,
    ) as error:
        raise IndexCorruptError(f"the index in {folder} is damaged ({error})") from error
    if starts.ndim != 1 or starts.dtype.kind not in "iu" or sentence_vectors.ndim != 2:
        raise IndexCorruptError(
            f"the index in {folder} is damaged: its sentence arrays have the wrong shape"
        )
    # A list, not a set: a damaged manifest may hold unhashable counts.
    counts: list[Any] = [len(chunks), dense.ntotal, len(starts) - 1]
    counts += [manifest.get("chunks"), lexical.scores.get("num_docs")]
    if any(count != counts[0] for count in counts):
        raise IndexCorruptError(
            f"the index in {folder} is damaged: its parts disagree on the chunk count"
        )
    dimensions = [dense.d, sentence_vectors.shape[1]]
    if starts[-1] != len(sentence_vectors) or dimensions != [manifest.get("dimension")] * 2:
        raise IndexCorruptError(
            f"the index in {folder} is damaged: its vectors do not match its chunks"
        )
    return Index(chunks, dense, lexical, sentence_vectors, starts, manifest, folder)


def open_index(settings: Settings, notify: Notify | None = None, progress: Any = None) -> Index:
    """Load the index, bringing it up to date first when it is missing, stale or damaged.

    With `settings.auto_rebuild` off, a missing, stale or damaged index is refused with a
    message that says how to rebuild it. When the update cannot be made (an unreadable
    corpus, a read-only index folder, a full disk) but the previous index is intact, that
    index is used and `notify` is told why.
    """
    from docqa.indexing import IndexBuildError, update_index

    if settings.index_dir.exists() and not settings.index_dir.is_dir():
        raise IndexBuildError(f"index folder {settings.index_dir} is a file, not a folder")
    try:
        return load_build(check_index(settings))
    except (IndexError_, CorpusError) as problem:
        if not settings.auto_rebuild:
            if isinstance(problem, IndexCorruptError):
                raise IndexCorruptError(
                    f"{problem}. Run `docqa index --force` to rebuild it"
                ) from problem
            raise
        if notify and not isinstance(problem, CorpusError):
            reason = problem.reason if isinstance(problem, IndexStaleError) else problem
            notify(f"{reason}: building it now")
        try:
            return load_build(update_index(settings, progress).folder)
        except (IndexBuildError, IndexStaleError, CorpusError) as failure:
            previous = _intact_previous(settings)
            if previous is None:
                raise failure from None
            if notify:
                notify(
                    f"warning: {failure}; answering from the previous index "
                    f"(built {previous.manifest.get('built_at', 'earlier')})"
                )
            return previous


def _intact_previous(settings: Settings) -> Index | None:
    """The index in use, if it loads, whatever the corpus now holds."""
    try:
        folder = current_build(settings.index_dir)
        return load_build(folder) if folder is not None else None
    except (IndexError_, OSError):
        return None


def __getattr__(name: str) -> Any:
    """Building moved to docqa.indexing; its names stay importable from here."""
    if name in {"build_index", "build_lock", "update_index"}:
        import docqa.indexing

        return getattr(docqa.indexing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
