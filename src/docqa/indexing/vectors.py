"""The vectors of an index build: sentences embedded in length-sorted batches on every core,
passages made from their sentences' vectors."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from docqa.indexing.lexical import TermCounts
from docqa.models import Chunk

Progress = Callable[[str, int, int], None]
"""Told (stage, done, total) as a build advances; stages: reading, embedding sentences
(passage vectors are made from the sentences')."""

EMBED_BATCH = 64
"""Texts embedded per call; progress is reported per batch."""

EMBED_THREADS = os.cpu_count() or 1
"""Batches embedded at once, each on one onnxruntime thread that sleeps when idle. Calls of
one thread each in parallel used both cores, where one call on onnxruntime's own thread
pool kept the wall time at the CPU time on the benchmark book (`docqa bench --parts indexing`)."""

ENCODER_BATCH = 8
"""Texts per onnxruntime run when indexing: on length-sorted texts of the 411 KB benchmark
book, batches of 8 took 15-20 % less CPU than 32 (sentences 2.2 against 2.7 s, passages
2.6 against 3.2 s; 1 and 128 were slower still): small batches stay in the CPU caches."""


@dataclass
class DocumentVectors:
    """The chunks of one document with their passage and sentence vectors."""

    chunks: list[Chunk]
    passages: np.ndarray
    sentences: list[np.ndarray]
    terms: TermCounts | None = None
    """The chunks' BM25 term counts when known (kept from a segment), else counted when the
    segment is written."""


def passage_embedder(encoder: Path) -> Any:
    """The embedder of an index build: one onnxruntime thread per call, so that `embed_all`
    can run a call on every core at once."""
    from docqa.indexing import embedding

    return embedding.OnnxEmbedder(
        encoder, batch_size=ENCODER_BATCH, intra_op_num_threads=1, spinning=False
    )


def embed_all(embedder: Any, texts: list[str], progress: Progress | None, stage: str) -> np.ndarray:
    """Embed texts in batches of similar length (longest first), `EMBED_THREADS` batches at
    once, telling `progress` after each batch: sorting the whole list means no batch pads
    short texts to a long one."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    batches = [order[start : start + EMBED_BATCH] for start in range(0, len(order), EMBED_BATCH)]
    vectors = np.zeros((len(texts), embedder.dimension), np.float32)
    done = 0
    # onnxruntime runs a session from several threads at once and releases the GIL meanwhile.
    with ThreadPoolExecutor(EMBED_THREADS) as pool:
        embedded = pool.map(lambda rows: embedder.embed([texts[i] for i in rows]), batches)
        for rows, batch_vectors in zip(batches, embedded, strict=True):
            vectors[rows] = batch_vectors
            done += len(rows)
            if progress:
                progress(stage, done, len(texts))
    return vectors


def passage_vectors(
    embedder: Any, chunks: list[Chunk], sentence_vectors: np.ndarray, progress: Progress | None
) -> np.ndarray:
    """A passage's vector: the sum of its sentences' vectors and its section title's,
    normalised, instead of embedding the passage text again.

    Passages only propose candidates; answers rank by their best sentence. Built this way,
    `docqa eval` gave the same figures on the three sets (brief hit@1 0.951, answer accuracy
    0.878; squad2 hit@1 0.832, hit@5 0.966, contains gold 0.692; quac hit@1 0.667) as with
    embedded passages (0.951, 0.878; 0.831, 0.964, 0.692; 0.667), and passages were the
    longer half of the texts an index build embeds.
    """
    titles = sorted({chunk.section.title() for chunk in chunks if chunk.section})
    title_vectors = dict(zip(titles, embed_all(embedder, titles, None, "titles"), strict=True))
    passages = np.zeros((len(chunks), embedder.dimension), np.float32)
    cursor = 0
    for row, chunk in enumerate(chunks):
        count = len(chunk.sentences)
        vector = sentence_vectors[cursor : cursor + count].sum(axis=0)
        if chunk.section:
            vector = vector + title_vectors[chunk.section.title()]
        passages[row] = vector / max(float(np.linalg.norm(vector)), 1e-12)
        cursor += count
    return passages


def embed_documents(
    chunked: list[list[Chunk]], encoder: Path, progress: Progress | None
) -> dict[str, DocumentVectors]:
    """Embed the chunks of newly read documents (sentences, then passages from them)."""
    chunks = [chunk for document in chunked for chunk in document]
    if not chunks:
        return {}
    embedder = passage_embedder(encoder)
    texts = [c.text[s:e] for c in chunks for s, e in c.sentences]
    if progress:  # at once: the first batches wait for the encoder to load
        progress("embedding sentences", 0, len(texts))
    sentence_vectors = embed_all(embedder, texts, progress, "embedding sentences")
    passages = passage_vectors(embedder, chunks, sentence_vectors, progress)
    result: dict[str, DocumentVectors] = {}
    cursor = 0
    for chunk in chunks:
        entry = result.setdefault(chunk.document, DocumentVectors([], np.zeros(0), []))
        entry.chunks.append(chunk)
        entry.sentences.append(sentence_vectors[cursor : cursor + len(chunk.sentences)])
        cursor += len(chunk.sentences)
        entry.passages = np.zeros(0)  # set below, once per document
    rows = {id(c): row for row, c in enumerate(chunks)}
    for entry in result.values():
        entry.passages = passages[[rows[id(c)] for c in entry.chunks]]
    return result
