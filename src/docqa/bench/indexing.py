"""Indexing speed and memory: a 2 KB file added to an indexed corpus, and a ~400 KB book,
each against the build as it was before incremental indexing (query encoder exported and
quantized again by every build, every file embedded again, texts embedded in document
order), run on the same machine in the same run. Each build runs in a fresh child process,
so its peak memory is its own."""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from docqa.bench.plan import Notify, Plan
from docqa.bench.processes import in_child, peak_rss_mb
from docqa.config import Settings

TARGET_ADD_S = 3.0
TARGET_ADD_SHARE = 0.10
TARGET_BOOK_SHARE = 0.50
TARGET_BOOK_RSS_MB = 1200.0
NOTE_BYTES = 2_000
LEGACY_BATCH = 256
"""Texts per embedding call in the build before incremental indexing."""


def write_book(source_dir: Path, path: Path, target_bytes: int, seed: int = 0) -> Path:
    """A book of chapters, each the brief's sections shuffled and reworded, to the size
    (prose like the brief's: ~2.6 sentences and ~350 characters per chunk)."""
    from docqa.bench.corpora import generate_document
    from docqa.chunking import split_sections
    from docqa.cleaning import split_blocks
    from docqa.corpus import read_corpus

    sources = [split_sections(split_blocks(d.text)) for d in read_corpus(source_dir)]
    rng = random.Random(seed)
    chapters: list[str] = []
    size = 0
    while size < target_bytes:
        text = f"CHAPTER {len(chapters) + 1}\n\n" + generate_document(sources[0], rng)
        chapters.append(text)
        size += len(text.encode("utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(chapters), encoding="utf-8")
    return path


def write_note(path: Path, seed: int = 1) -> Path:
    """A ~2 KB note with a heading and paragraphs of generated sentences."""
    rng = random.Random(seed)
    words = "members club meeting budget telescope night sky library council report".split()
    paragraphs: list[str] = []
    while sum(len(p) for p in paragraphs) < NOTE_BYTES - 100:
        sentence = " ".join(rng.choice(words) for _ in range(12)).capitalize() + "."
        paragraphs.append(" ".join([sentence] * 3))
    path.write_text("CLUB NOTES\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return path


def legacy_embed_all(embedder: Any, texts: list[str], progress: Any, stage: str) -> Any:
    """Embedding as the build before did it: calls of 256 texts in document order."""
    import numpy as np

    parts = [
        embedder.embed(texts[i : i + LEGACY_BATCH]) for i in range(0, len(texts), LEGACY_BATCH)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, embedder.dimension), np.float32)


def legacy_embedder(encoder: Path) -> Any:
    """The embedder as the build before made it: batches of 32, onnxruntime's own threads."""
    from docqa.embedding import OnnxEmbedder

    return OnnxEmbedder(encoder)


def legacy_passage_vectors(embedder: Any, chunks: list[Any], sentences: Any, progress: Any) -> Any:
    """Passage vectors as the build before made them: each passage's text embedded again."""
    import docqa.indexing
    from docqa.index import embedding_text

    texts = [embedding_text(chunk) for chunk in chunks]
    return docqa.indexing.embed_all(embedder, texts, progress, "embedding passages")


def timed_build(corpus_dir: str, index_dir: str, mode: str) -> dict[str, float]:
    """One index update in this (fresh) process: "before" (as the build was before
    incremental indexing), "full" (every file again, encoder cached) or "update"."""
    import docqa.encoders
    import docqa.indexing

    settings = Settings(corpus_dir=Path(corpus_dir), index_dir=Path(index_dir))
    if mode == "before":
        cached = docqa.encoders.cached_encoders

        def exported_every_time(
            model: str, precision: str, index: Path, passages: str = "fp32", progress: Any = None
        ) -> tuple[Path, Path]:
            shutil.rmtree(index / docqa.encoders.CACHE_FOLDER, ignore_errors=True)
            return cached(model, precision, index, "fp32")  # passages were embedded in fp32

        docqa.encoders.cached_encoders = exported_every_time  # type: ignore[assignment]
        docqa.indexing.embed_all = legacy_embed_all
        docqa.indexing.passage_embedder = legacy_embedder
        docqa.indexing.passage_vectors = legacy_passage_vectors  # type: ignore[assignment]
    started, cpu = time.perf_counter(), time.process_time()
    report = docqa.indexing.update_index(settings, force=mode != "update")
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(time.process_time() - cpu, 2),
        "peak_rss_mb": peak_rss_mb(),
        "chunks": report.chunks,
    }


def _build(corpus: Path, index: Path, mode: str) -> dict[str, float]:
    result: dict[str, float] = in_child(timed_build, str(corpus), str(index), mode)
    return result


def measure_add(settings: Settings, work: Path, notify: Notify) -> dict[str, Any]:
    """Adding a 2 KB note to an indexed copy of the corpus, against a full build before."""
    corpus, index = work / "add-corpus", work / "add-index"
    shutil.copytree(settings.corpus_dir, corpus)
    notify("indexing: the corpus and a 2 KB note as built before (a change rebuilt all)")
    write_note(corpus / "note.txt")
    before = _build(corpus, work / "add-before", "before")
    notify("indexing: the corpus indexed now, then the 2 KB note added to it")
    (corpus / "note.txt").unlink()
    _build(corpus, index, "update")
    write_note(corpus / "note.txt")
    added = _build(corpus, index, "update")
    return {"before_full_build": before, "add_note": added, "note_bytes": NOTE_BYTES}


def measure_book(settings: Settings, work: Path, book_bytes: int, notify: Notify) -> dict[str, Any]:
    """A generated book indexed as before, and now with a fresh and with a warm index folder."""
    corpus = work / "book-corpus"
    book = write_book(settings.corpus_dir, corpus / "book.txt", book_bytes)
    size = book.stat().st_size
    notify(f"indexing: a {size / 1000:.0f} KB book as built before")
    before = _build(corpus, work / "book-before", "before")
    notify("indexing: the book now, in a fresh index folder (encoder exported once)")
    fresh = _build(corpus, work / "book-now", "update")
    notify("indexing: the book again, every chunk embedded again (encoder cached)")
    warm = _build(corpus, work / "book-now", "full")
    return {"book_bytes": size, "before": before, "fresh_folder": fresh, "cached_encoder": warm}


def measure_indexing(settings: Settings, plan: Plan, work: Path, notify: Notify) -> dict[str, Any]:
    """The indexing figures: adding a small file, and a book (smaller in the quick plan)."""
    book_bytes = 40_000 if plan.quick else 400_000
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        folder = Path(scratch)
        return {
            **measure_add(settings, folder, notify),
            **measure_book(settings, folder, book_bytes, notify),
        }


def _row(label: str, run: dict[str, float], base: dict[str, float]) -> list[Any]:
    return [
        label,
        run["seconds"],
        f"{run['seconds'] / base['seconds']:.2f}",
        run.get("cpu_seconds", ""),
        f"{run['cpu_seconds'] / base['cpu_seconds']:.2f}" if "cpu_seconds" in run else "",
        run["peak_rss_mb"],
    ]


def render_indexing(results: dict[str, Any]) -> list[str]:
    """bench.md's indexing section."""
    from docqa.bench.report import table

    figures = results["indexing"]
    before, book = figures["before_full_build"], figures["before"]
    kb = f"{figures['book_bytes'] / 1000:.0f} KB book"
    rows = [
        _row("corpus + 2 KB note, full build as before", before, before),
        _row("2 KB note added to the indexed corpus now", figures["add_note"], before),
        _row(f"{kb}, as before", book, book),
        _row(f"{kb} now, fresh index folder", figures["fresh_folder"], book),
        _row(f"{kb} now, encoder cached", figures["cached_encoder"], book),
    ]
    headers = ["build", "seconds", "/ before", "CPU s", "/ before", "peak RSS MB"]
    return [
        "## Indexing",
        "",
        "Each build in a fresh child process; *as before* = the query encoder exported and "
        "quantized by every build, every file embedded again, texts embedded in calls of 256 "
        "in document order (the build before incremental indexing), run in this same run. "
        "CPU seconds are less disturbed than wall time by other work on a shared machine.",
        "",
        table(headers, rows),
        "",
    ]


def indexing_targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's indexing targets with the figures measured against them."""
    before, added = figures["before_full_build"], figures["add_note"]
    add_share = added["seconds"] / before["seconds"]
    book = figures["before"]
    fresh = figures["fresh_folder"]
    book_share = fresh["seconds"] / book["seconds"]
    peak = max(fresh["peak_rss_mb"], figures["cached_encoder"]["peak_rss_mb"])
    return [
        {
            "name": "add a 2 KB file: seconds / share of a full build before",
            "target": f"<= {TARGET_ADD_S} / <= {TARGET_ADD_SHARE}",
            "measured": f"{added['seconds']} / {add_share:.3f}",
            "met": added["seconds"] <= TARGET_ADD_S and add_share <= TARGET_ADD_SHARE,
        },
        {
            "name": f"{figures['book_bytes'] / 1000:.0f} KB book: share of the time before / "
            "peak MB",
            "target": f"<= {TARGET_BOOK_SHARE} / <= {TARGET_BOOK_RSS_MB:.0f}",
            "measured": f"{book_share:.3f} / {peak}",
            "met": book_share <= TARGET_BOOK_SHARE and peak <= TARGET_BOOK_RSS_MB,
        },
    ]
