"""Which segments a new build keeps and which it writes: a segment of at least
SEGMENT_ROWS chunks is kept as it is (hard-linked, never read), its removed documents only
named as dropped until they are over MAX_DROPPED_SHARE of it; smaller segments are merged
with what an update adds. Adding or removing a small file beside a book, or among many
files indexed together, rewrites a few thousand chunks at most."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docqa.indexing.index import Segment
from docqa.indexing.store import (
    dropped_documents,
    live_chunk_count,
    load_segment,
    segment_entries,
    segment_stamps,
)
from docqa.indexing.vectors import DocumentVectors
from docqa.indexing.writing import KeptSegment, SegmentPlan

SEGMENT_ROWS = 5_000
"""Chunks from which a segment is kept apart rather than merged again by each update: a
document this long (a book) gets a segment of its own. Rewriting 5,000 chunks (their term
counts kept) costs well under a second."""


MAX_DROPPED_SHARE = 0.25
"""Share of a kept segment's chunks that may belong to removed documents (left in its files,
never found) before the segment is written again without them."""


def live_documents(entry: dict[str, Any]) -> list[str]:
    """The documents of a segment entry that the index still has."""
    dropped = set(dropped_documents(entry))
    return [name for name in entry.get("documents", []) if name not in dropped]


def indexed_documents(manifest: dict[str, Any]) -> set[str]:
    """The documents the build's segments hold."""
    return {name for entry in segment_entries(manifest) for name in live_documents(entry)}


def segments_intact(folder: Path, manifest: dict[str, Any]) -> bool:
    """Whether every segment's files have the size and modification time recorded when it
    was written (a segment is linked into the next build without being read)."""
    try:
        return all(
            segment_stamps(folder / "segments" / entry["name"]) == entry.get("files")
            for entry in segment_entries(manifest)
        )
    except OSError:
        return False


def plan_segments(
    folder: Path | None,
    manifest: dict[str, Any],
    staying: set[str],
    new: dict[str, DocumentVectors],
    order: list[str],
) -> SegmentPlan:
    """The segments of the next build: the build in use's big segments whose documents all
    stay, the rest of its documents that stay (read back), and the new documents (`order`:
    the corpus order), a long one in a segment of its own."""
    plan: SegmentPlan = []
    pool: list[DocumentVectors] = []
    for entry in segment_entries(manifest) if folder is not None else []:
        documents = live_documents(entry)
        kept = [name for name in documents if name in staying]
        source = folder / "segments" / entry["name"]  # type: ignore[operator]
        if entry["chunks"] >= SEGMENT_ROWS:
            marked = with_dropped(entry, [name for name in documents if name not in staying])
            if marked is not None:
                plan.append(KeptSegment(source, marked))
                continue
        if kept:
            vectors = segment_vectors(load_segment(source, entry["name"]), kept)
            big = sum(len(v.chunks) for v in vectors) >= SEGMENT_ROWS
            plan.append(vectors) if big else pool.extend(vectors)
    for name in order:
        if name in new:
            big = len(new[name].chunks) >= SEGMENT_ROWS
            plan.append([new[name]]) if big else pool.append(new[name])
    if pool:
        plan.append(pool)
    return plan


def with_dropped(entry: dict[str, Any], gone: list[str]) -> dict[str, Any] | None:
    """The entry of a big segment kept with `gone` documents dropped too, or None when it
    must be written again: too much of it would be dropped, or it would be small."""
    if not gone:
        return entry
    if "sizes" not in entry:
        return None
    marked = {**entry, "dropped": [*dropped_documents(entry), *gone]}
    live = live_chunk_count(marked)
    if live < SEGMENT_ROWS or live < (1 - MAX_DROPPED_SHARE) * entry["chunks"]:
        return None
    return marked


def segment_vectors(segment: Segment, documents: list[str]) -> list[DocumentVectors]:
    """The chunks, vectors and term counts of the named documents of a loaded segment."""
    passages = segment.dense.reconstruct_n(0, segment.dense.ntotal)
    rows_of: dict[str, list[int]] = {}
    for row, chunk in enumerate(segment.chunks):
        rows_of.setdefault(chunk.document, []).append(row)
    starts = segment.sentence_starts
    result = []
    for name in documents:
        rows = rows_of.get(name, [])
        result.append(
            DocumentVectors(
                [segment.chunks[row] for row in rows],
                passages[rows],
                [segment.sentence_vectors[starts[row] : starts[row + 1]] for row in rows],
                segment.terms.rows(rows),
            )
        )
    return result
