"""Indexing speed and memory: a 2 KB file added to an indexed corpus, against the build as
it was before incremental indexing (query encoder exported and quantized again by every
build, every file embedded again, texts embedded in document order); and a generated 20 MB
book: its whole build against the build's embedder alone, then a small file added beside it.
Each build runs in a fresh child process, so its peak memory is its own."""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from docqa.bench.plan import Notify, Plan
from docqa.bench.processes import in_child, peak_rss_mb
from docqa.config import Settings
from docqa.indexing.corpus import read_corpus
from docqa.indexing.encoders import CACHE_FOLDER

TARGET_ADD_S = 3.0
TARGET_ADD_SHARE = 0.10
TARGET_BOOK_S = 300.0
TARGET_BOOK_RSS_MB = 1000.0
TARGET_BUILD_SHARE = 0.70
TARGET_BOOK_ADD_S = 2.0
TARGET_BOOK_ADD_MB = 400.0
BOOK_BYTES = 20_000_000
EMBED_SAMPLE = 4_000
NOTE_BYTES = 2_000
LEGACY_BATCH = 256
BOOK_SWAP_SHARE = 0.25
"""Texts per embedding call in the build before incremental indexing."""


def write_book(source_dir: Path, path: Path, target_bytes: int, seed: int = 0) -> Path:
    """A book of chapters, each the brief's sections shuffled and reworded, to the size
    (prose like the brief's: ~2.6 sentences and ~350 characters per chunk), with a quarter
    of each paragraph's words swapped for other words of the brief, so that no two sentences
    repeat: a book of repeated sentences would measure an encoder cache, not the build."""
    from docqa.bench.corpora import generate_document
    from docqa.indexing.chunking import split_sections
    from docqa.indexing.corpus import read_corpus
    from docqa.ingest.cleaning import split_blocks

    sources = [split_sections(split_blocks(d.text)) for d in read_corpus(source_dir)]
    vocabulary = sorted({w for d in read_corpus(source_dir) for w in d.text.split() if w.isalpha()})
    rng = random.Random(seed)
    chapters: list[str] = []
    size = 0
    while size < target_bytes:
        paragraphs = generate_document(sources[0], rng).split("\n\n")
        text = f"CHAPTER {len(chapters) + 1}\n\n" + "\n\n".join(
            _reword(paragraph, vocabulary, rng) for paragraph in paragraphs
        )
        chapters.append(text)
        size += len(text.encode("utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(chapters), encoding="utf-8")
    return path


def _reword(paragraph: str, vocabulary: list[str], rng: random.Random) -> str:
    """The paragraph with about a quarter of its lower-case words swapped at random."""
    words = paragraph.split(" ")
    for at, word in enumerate(words):
        if word.isalpha() and word.islower() and rng.random() < BOOK_SWAP_SHARE:
            words[at] = rng.choice(vocabulary).lower()
    return " ".join(words)


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

    parts = [
        embedder.embed(texts[i : i + LEGACY_BATCH]) for i in range(0, len(texts), LEGACY_BATCH)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, embedder.dimension), np.float32)


def legacy_embedder(encoder: Path) -> Any:
    """The embedder as the build before made it: batches of 32, onnxruntime's own threads."""
    from docqa.indexing.embedding import OnnxEmbedder

    return OnnxEmbedder(encoder)


def legacy_passage_vectors(embedder: Any, chunks: list[Any], sentences: Any, progress: Any) -> Any:
    """Passage vectors as the build before made them: each passage's text embedded again."""
    import docqa.indexing.build
    import docqa.indexing.vectors
    from docqa.indexing.store import embedding_text

    texts = [embedding_text(chunk) for chunk in chunks]
    return docqa.indexing.vectors.embed_all(embedder, texts, progress, "embedding passages")


def timed_build(corpus_dir: str, index_dir: str, mode: str) -> dict[str, float]:
    """One index update in this (fresh) process: "before" (as the build was before
    incremental indexing), "full" (every file again, encoder cached) or "update"."""
    import docqa.indexing.build
    import docqa.indexing.encoders
    import docqa.indexing.vectors

    settings = Settings(corpus_dir=Path(corpus_dir), index_dir=Path(index_dir))
    if mode == "before":
        cached = docqa.indexing.encoders.cached_encoders

        def exported_every_time(
            model: str, precision: str, index: Path, passages: str = "fp32", progress: Any = None
        ) -> tuple[Path, Path]:
            shutil.rmtree(index / docqa.indexing.encoders.CACHE_FOLDER, ignore_errors=True)
            return cached(model, precision, index, "fp32")  # passages were embedded in fp32

        docqa.indexing.encoders.cached_encoders = exported_every_time  # type: ignore[assignment]
        docqa.indexing.vectors.embed_all = legacy_embed_all
        docqa.indexing.vectors.passage_embedder = legacy_embedder
        docqa.indexing.vectors.passage_vectors = legacy_passage_vectors  # type: ignore[assignment]
    started, cpu = time.perf_counter(), time.process_time()
    report = docqa.indexing.build.update_index(settings, force=mode != "update")
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(time.process_time() - cpu, 2),
        "peak_rss_mb": peak_rss_mb(),
        "chunks": report.chunks,
    }


def switch_after_add(corpus_dir: str, index_dir: str) -> dict[str, float]:
    """What a service does when a note is added beside what it answers from: the index
    loaded whole (as at start-up), the note added and indexed, then the new build loaded
    as the service switches to it, taking the segments it holds already from the old."""
    from docqa.indexing.build import update_index
    from docqa.indexing.store import current_build, load_build

    settings = Settings(corpus_dir=Path(corpus_dir), index_dir=Path(index_dir))
    started = time.perf_counter()
    answering = load_build(current_build(settings.index_dir))  # type: ignore[arg-type]
    whole = time.perf_counter() - started
    write_note(settings.corpus_dir / "note.txt")
    folder = update_index(settings).folder
    started = time.perf_counter()
    switched = load_build(folder, answering)
    switch = time.perf_counter() - started
    return {
        "load_s": round(whole, 2),
        "switch_s": round(switch, 2),
        "chunks": len(switched.chunks),
        "peak_rss_mb": peak_rss_mb(),
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


def embedding_alone(corpus_dir: str, encoder: str, sample: int) -> dict[str, float]:
    """Sentences per second of the build's embedder alone (its threads and batches), on every
    k-th sentence of the corpus up to `sample`: the limit a whole build can approach."""
    import docqa.indexing.build
    import docqa.indexing.vectors

    settings = Settings(corpus_dir=Path(corpus_dir))
    chunks = docqa.indexing.build.chunk_corpus(read_corpus(settings.corpus_dir), settings)
    texts = [c.text[s:e] for c in chunks for s, e in c.sentences]
    texts = texts[:: max(1, len(texts) // sample)][:sample]
    embedder = docqa.indexing.vectors.passage_embedder(Path(encoder))
    docqa.indexing.vectors.embed_all(embedder, texts[:64], None, "warm-up")
    started = time.perf_counter()
    docqa.indexing.vectors.embed_all(embedder, texts, None, "embedding")
    seconds = time.perf_counter() - started
    return {"sentences": len(texts), "seconds": round(seconds, 2), "per_s": len(texts) / seconds}


def _sentences_in(index: Path) -> int:
    from docqa.indexing.store import current_build, sentence_count

    folder = current_build(index)
    return sentence_count(folder) if folder else 0


def measure_book(
    settings: Settings, work: Path, book_bytes: int, encoders: Path, notify: Notify
) -> dict[str, Any]:
    """A generated book indexed in a fresh child (encoder prepared beforehand), the build's
    embedder alone on a sample of its sentences just before and after, then a 2 KB note
    added to and removed from the corpus holding the book."""
    corpus, index = work / "book-corpus", work / "book-index"
    book = write_book(settings.corpus_dir, corpus / "book.txt", book_bytes)
    shutil.copytree(encoders, index / encoders.name)  # the one-off export is not the book's
    encoder = str(next(index.glob(f"{encoders.name}/*/fp32")))
    notify(f"indexing: the embedder alone on {EMBED_SAMPLE} sentences of the book")
    alone = [in_child(embedding_alone, str(corpus), encoder, EMBED_SAMPLE)]
    notify(f"indexing: a {book.stat().st_size / 1e6:.1f} MB book, in a fresh index folder")
    build = _build(corpus, index, "full")
    build["sentences"] = _sentences_in(index)
    build["per_s"] = build["sentences"] / build["seconds"]
    notify("indexing: the embedder alone again")
    alone.append(in_child(embedding_alone, str(corpus), encoder, EMBED_SAMPLE))
    notify("indexing: a 2 KB note added to the corpus holding the book, then removed")
    write_note(corpus / "note.txt")
    added = _build(corpus, index, "update")
    (corpus / "note.txt").unlink()
    removed = _build(corpus, index, "update")
    notify("indexing: the service's switch to a build with the note beside the book")
    switch = in_child(switch_after_add, str(corpus), str(index))
    return {
        "book_bytes": book.stat().st_size,
        "book_build": build,
        "embedding_alone": alone,
        "book_add_note": added,
        "book_remove_note": removed,
        "book_switch": switch,
    }


def measure_indexing(settings: Settings, plan: Plan, work: Path, notify: Notify) -> dict[str, Any]:
    """The indexing figures: adding a small file, and a book (smaller in the quick plan)."""
    book_bytes = 1_000_000 if plan.quick else BOOK_BYTES
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        folder = Path(scratch)
        added = measure_add(settings, folder, notify)
        encoders = folder / "add-index" / CACHE_FOLDER
        return {**added, **measure_book(settings, folder, book_bytes, encoders, notify)}


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
    before = figures["before_full_build"]
    rows = [
        _row("corpus + 2 KB note, full build as before", before, before),
        _row("2 KB note added to the indexed corpus now", figures["add_note"], before),
    ]
    headers = ["build", "seconds", "/ before", "CPU s", "/ before", "peak RSS MB"]
    build, alone = figures["book_build"], figures["embedding_alone"]
    mb = f"{figures['book_bytes'] / 1e6:.1f} MB book"
    book_rows = [
        [
            f"{mb}: whole build",
            build["seconds"],
            build["sentences"],
            round(build["per_s"]),
            build["peak_rss_mb"],
        ],
        *[
            [
                f"the build's embedder alone ({when})",
                run["seconds"],
                run["sentences"],
                round(run["per_s"]),
                "",
            ]
            for when, run in zip(("before", "after"), alone, strict=False)
        ],
        [
            f"2 KB note added to the {mb}'s corpus",
            figures["book_add_note"]["seconds"],
            "",
            "",
            figures["book_add_note"]["peak_rss_mb"],
        ],
        [
            "2 KB note removed again",
            figures["book_remove_note"]["seconds"],
            "",
            "",
            figures["book_remove_note"]["peak_rss_mb"],
        ],
    ]
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
        f"A generated {mb} (no sentence repeated), indexed in a fresh index folder with the "
        "encoder prepared beforehand (a one-off per model); the build's embedder alone is "
        f"timed on {EMBED_SAMPLE} of its sentences just before and after the build.",
        "",
        table(["run", "seconds", "sentences", "sentences/s", "peak RSS MB"], book_rows),
        "",
        *_switch_lines(figures.get("book_switch")),
    ]


def _switch_lines(switch: dict[str, float] | None) -> list[str]:
    if not switch:
        return []
    return [
        f"A service answering from the book loads its index whole in {switch['load_s']} s; "
        f"after a 2 KB note is indexed beside it, it switches to the new build in "
        f"{switch['switch_s']} s ({switch['chunks']} chunks), taking the book's segment from "
        "the index it holds.",
        "",
    ]


def indexing_targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The issues' indexing targets with the figures measured against them."""
    before, added = figures["before_full_build"], figures["add_note"]
    add_share = added["seconds"] / before["seconds"]
    build = figures["book_build"]
    alone = statistics.mean(run["per_s"] for run in figures["embedding_alone"])
    share = build["per_s"] / alone
    mb = f"{figures['book_bytes'] / 1e6:.1f} MB book"
    book_add, book_remove = figures["book_add_note"], figures["book_remove_note"]
    worst_s = max(book_add["seconds"], book_remove["seconds"])
    worst_mb = max(book_add["peak_rss_mb"], book_remove["peak_rss_mb"])
    return [
        {
            "name": "add a 2 KB file: seconds / share of a full build before",
            "target": f"<= {TARGET_ADD_S} / <= {TARGET_ADD_SHARE}",
            "measured": f"{added['seconds']} / {add_share:.3f}",
            "met": added["seconds"] <= TARGET_ADD_S and add_share <= TARGET_ADD_SHARE,
        },
        {
            "name": f"{mb}: build seconds / peak MB",
            "target": f"<= {TARGET_BOOK_S:.0f} / <= {TARGET_BOOK_RSS_MB:.0f}",
            "measured": f"{build['seconds']} / {build['peak_rss_mb']}",
            "met": build["seconds"] <= TARGET_BOOK_S and build["peak_rss_mb"] <= TARGET_BOOK_RSS_MB,
        },
        {
            "name": f"{mb}: build sentences/s over the embedder alone's",
            "target": f">= {TARGET_BUILD_SHARE}",
            "measured": f"{share:.2f} ({build['per_s']:.0f} / {alone:.0f})",
            "met": share >= TARGET_BUILD_SHARE,
        },
        {
            "name": f"add / remove a 2 KB file beside the {mb}: seconds / peak MB",
            "target": f"<= {TARGET_BOOK_ADD_S:.0f} / <= {TARGET_BOOK_ADD_MB:.0f}",
            "measured": f"{book_add['seconds']}, {book_remove['seconds']} / {worst_mb}",
            "met": worst_s <= TARGET_BOOK_ADD_S and worst_mb <= TARGET_BOOK_ADD_MB,
        },
    ]
