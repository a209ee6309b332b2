"""Synthetic vectors shaped like sentence embeddings, and an index built from them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from docqa.bench.processes import peak_rss_mb
from docqa.config import Settings


class VectorSource:
    """Unit vectors shaped like sentence embeddings: topic centres in an anisotropic space.

    Uniform random unit vectors have no neighbourhoods (in 384 dimensions every cosine is
    0 +- 0.05), so an approximate index's recall on them says nothing about text. Here the
    variance of direction i falls as 1/i, as in embedding spectra, and `spread` is set so
    that a query's nearest vector has cosine ~0.6, as the brief's questions have with their
    best passage.
    """

    def __init__(
        self, dimension: int = 384, topics: int = 4096, spread: float = 1.2, seed: int = 0
    ):
        rng = np.random.default_rng(seed)
        self.dimension = dimension
        self.scale = (np.arange(1, dimension + 1) ** -0.5).astype(np.float32)
        rotation, _ = np.linalg.qr(rng.standard_normal((dimension, dimension)))
        self.rotation = rotation.astype(np.float32)
        self.centres = rng.standard_normal((topics, dimension), dtype=np.float32) * self.scale
        self.spread = spread

    def sample(self, n: int, rng: np.random.Generator, block: int = 65_536) -> np.ndarray:
        """n unit vectors (float32), generated in blocks to bound the memory."""
        out = np.empty((n, self.dimension), dtype=np.float32)
        for start in range(0, n, block):
            size = min(block, n - start)
            centres = self.centres[rng.integers(0, len(self.centres), size)]
            noise = rng.standard_normal((size, self.dimension), dtype=np.float32)
            vectors = (centres + noise * self.scale * self.spread) @ self.rotation
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            out[start : start + size] = vectors
        return out


class SyntheticEmbedder:
    """An Embedder that ignores the text and draws vectors from a VectorSource."""

    def __init__(self, name: str, source: VectorSource, seed: int = 1) -> None:
        self.name = name
        self.dimension = source.dimension
        self.source = source
        self.rng = np.random.default_rng(seed)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One synthetic unit vector per text."""
        return self.source.sample(len(texts), self.rng)


def build_synthetic_index(settings: Settings, encoder_dir: Path) -> dict[str, Any]:
    """Run indexing.build_index with synthetic vectors in place of the encoder; run in a child.

    Everything else (cleaning, chunking, BM25, FAISS, writing) is the real build. The real
    query encoder is linked in, so `docqa ask` can load the result.
    """
    import docqa.indexing.build
    import docqa.indexing.embedding
    import docqa.indexing.vectors

    def link_encoder(model_path: Path, out_dir: Path) -> Path:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        out_dir.symlink_to(encoder_dir.resolve(), target_is_directory=True)
        return out_dir

    def synthetic(onnx_dir: Path, **_: Any) -> SyntheticEmbedder:
        return SyntheticEmbedder(
            docqa.indexing.embedding.model_name(Path(settings.model)), VectorSource()
        )

    replacements = {
        "export_onnx": link_encoder,
        "quantize_onnx": link_encoder,  # the linked encoder is the one queries use
        "OnnxEmbedder": synthetic,
    }
    for module in (docqa.indexing.embedding,):
        for name, replacement in replacements.items():
            if hasattr(module, name):
                setattr(module, name, replacement)
    started = time.perf_counter()
    docqa.indexing.build.build_index(settings)
    return {"seconds": round(time.perf_counter() - started, 3), "peak_rss_mb": peak_rss_mb()}
