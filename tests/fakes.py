"""Test doubles: a deterministic embedder, and a tiny index built with it instead of the model."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from docqa.config import Settings
from docqa.indexing.chunking import split_sentences
from docqa.indexing.index import Index, Segment
from docqa.indexing.lexical import TermCounts
from docqa.models import Chunk

_WORD = re.compile(r"\w+")


class HashedBagOfWords:
    """Embeds a text as its hashed word counts, L2-normalised: texts that share words are close."""

    def __init__(self, dimension: int = 64, name: str = "fake-bag-of-words") -> None:
        self.name = name
        self.dimension = dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit float32 row per text (a text without words maps to bucket 0)."""
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()) or [""]:
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                vectors[row, int.from_bytes(digest, "little") % self.dimension] += 1.0
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def use_fake_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make index builds (and Engine.load) use HashedBagOfWords instead of the ONNX model."""
    import docqa.indexing.embedding

    def export_onnx(model_path: Path, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        return out_dir

    def onnx_embedder(onnx_dir: Path, *args: Any, **kwargs: Any) -> HashedBagOfWords:
        return HashedBagOfWords()

    monkeypatch.setattr(docqa.indexing.embedding, "resolve_model_path", lambda model: Path(model))
    monkeypatch.setattr(docqa.indexing.embedding, "export_onnx", export_onnx)
    monkeypatch.setattr(docqa.indexing.embedding, "export_onnx", export_onnx)
    monkeypatch.setattr(docqa.indexing.embedding, "quantize_onnx", export_onnx)
    monkeypatch.setattr(docqa.indexing.embedding, "OnnxEmbedder", onnx_embedder)
    # The patches hold in this process only: the service builds here, not in a child.
    monkeypatch.setenv("DOCQA_BUILD_IN_CHILD", "false")


def tiny_settings(folder: Path, corpus: dict[str, str], **overrides: Any) -> Settings:
    """Settings over a corpus written into `folder`, chunked per paragraph."""
    corpus_dir = folder / "corpus"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    for name, text in corpus.items():
        (corpus_dir / name).write_text(text, encoding="utf-8")
    values: dict[str, Any] = {
        "corpus_dir": corpus_dir,
        "index_dir": folder / "index",
        "chunk_target_chars": 50,
        "chunk_max_chars": 400,
        "chunk_min_chars": 0,
        **overrides,
    }
    return Settings(**values)


def unit(*values: float) -> np.ndarray:
    """A unit float32 vector from its coordinates."""
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


class TableEmbedder:
    """Returns the vector the test assigned to each exact text."""

    name = "table"
    dimension = 4

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.table[text] for text in texts]).astype(np.float32)


def segment_of(build: Path) -> Path:
    """The folder of a build's only segment (a small corpus is one segment)."""
    (segment,) = (build / "segments").iterdir()
    return segment


def make_index(
    passages: list[tuple[str, list[np.ndarray]]], chunk_vectors: list[np.ndarray]
) -> Index:
    """An in-memory index: each passage's sentences get the given vectors, in order."""
    chunks = []
    for row, (text, _) in enumerate(passages):
        spans = tuple(split_sentences(text, 800))
        chunks.append(
            Chunk(f"c{row}", "doc.txt", "SECTION", row, 0, len(text), text, spans, ((0, 0),))
        )
    for chunk, (_, vectors) in zip(chunks, passages, strict=True):
        assert len(chunk.sentences) == len(vectors), "one vector per sentence"
    dense = faiss.IndexFlatIP(4)
    dense.add(np.stack(chunk_vectors).astype(np.float32))
    terms = TermCounts.of([c.text for c in chunks])
    sentence_vectors = np.stack([v for _, vectors in passages for v in vectors]).astype(np.float32)
    starts = np.cumsum([0] + [len(c.sentences) for c in chunks]).astype(np.int64)
    segment = Segment("segment", chunks, dense, terms, sentence_vectors, starts)
    return Index([segment], {}, Path("."))
