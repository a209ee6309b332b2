"""Writing a build folder: its segments (new ones written, kept ones hard-linked), the query
encoder and the manifest; a failed write (a full disk) is one clear error, and the caller
removes the folder."""

from __future__ import annotations

import contextlib
import errno
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from docqa.config import Settings
from docqa.indexing.lexical import TermCounts
from docqa.indexing.manifest import manifest_for
from docqa.indexing.store import (
    HNSW_FROM,
    IndexBuildError,
    chunk_record,
    live_chunk_count,
    make_dense_index,
    segment_stamps,
)
from docqa.indexing.vectors import DocumentVectors
from docqa.models import DocumentRecord


@contextlib.contextmanager
def failed_writes_reported(index_dir: Path) -> Iterator[None]:
    """A write that fails in the block (a full disk) raises IndexBuildError; faiss reports
    a failed write as a RuntimeError, any other RuntimeError is a bug and passes."""
    try:
        yield
    except (OSError, RuntimeError) as error:
        if isinstance(error, RuntimeError) and not disk_full(error) and "write" not in str(error):
            raise
        raise write_failure(error, index_dir) from error


@dataclass
class KeptSegment:
    """A segment of the build in use that the new build keeps as it is (hard-linked)."""

    folder: Path
    entry: dict[str, Any]


SegmentPlan = list[KeptSegment | list[DocumentVectors]]
"""The segments of a new build: kept ones, and new ones to write from documents' vectors."""


def write_build(
    settings: Settings,
    folder: Path,
    records: list[DocumentRecord],
    corpus: dict[str, str],
    plan: SegmentPlan,
    query_encoder: Path,
    dimension: int,
) -> dict[str, Any]:
    """Write the segments, encoder and manifest into `folder`; a write that fails (a full
    disk) raises IndexBuildError, and the caller removes `folder`."""
    from docqa.indexing.encoders import install_encoder, link_or_copy

    entries = []
    with failed_writes_reported(folder.parent):
        install_encoder(query_encoder, folder / "encoder")
        for part in plan:
            if isinstance(part, KeptSegment):
                target = folder / "segments" / part.entry["name"]
                shutil.copytree(part.folder, target, copy_function=link_or_copy)
                entries.append(part.entry)
            else:
                entries.append(write_segment(folder / "segments", part))
        chunks = sum(live_chunk_count(entry) for entry in entries)
        largest = max((int(entry["chunks"]) for entry in entries), default=0)
        kind = "flat" if largest <= HNSW_FROM else "hnsw"
        manifest = manifest_for(settings, corpus, dimension, kind)
        manifest["chunks"] = chunks
        manifest["segments"] = entries
        manifest["records"] = [asdict(record) for record in records]
        (folder / "manifest.json").write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8"
        )
    return manifest


def write_segment(parent: Path, documents: list[DocumentVectors]) -> dict[str, Any]:
    """Write a new segment of the documents' chunks and vectors; its manifest entry."""
    import faiss

    name = f"segment-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    folder = parent / name
    (folder / "terms").mkdir(parents=True)
    chunks = [c for v in documents for c in v.chunks]
    passages = np.concatenate([v.passages for v in documents]).astype(np.float32)
    sentences = [s for v in documents for s in v.sentences]
    starts = np.cumsum([0] + [len(s) for s in sentences]).astype(np.int64)
    faiss.write_index(make_dense_index(passages), str(folder / "dense.faiss"))
    _save_rows(folder / "sentences.npy", sentences, int(passages.shape[1]))
    np.save(folder / "sentence_starts.npy", starts)
    counted = [
        v.terms or TermCounts.of([f"{c.section} {c.text}" for c in v.chunks]) for v in documents
    ]
    TermCounts.join(counted).save(folder / "terms")
    with open(folder / "chunks.jsonl", "w", encoding="utf-8") as handle:
        for chunk in chunks:
            handle.write(json.dumps(chunk_record(chunk), ensure_ascii=False) + "\n")
    return {
        "name": name,
        "chunks": len(chunks),
        "documents": [v.chunks[0].document for v in documents],
        "sizes": [len(v.chunks) for v in documents],
        "files": segment_stamps(folder),
    }


def _save_rows(path: Path, parts: list[np.ndarray], dimension: int) -> None:
    """Save the parts' rows as one float32 .npy, part by part: never a second copy of all."""
    shape = (sum(len(part) for part in parts), dimension)
    with open(path, "wb") as handle:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False}
        np.lib.format.write_array_header_1_0(handle, {**header, "shape": shape})
        for part in parts:
            handle.write(np.ascontiguousarray(part, dtype="<f4").tobytes())


def disk_full(error: BaseException) -> bool:
    """Whether a failed write ran out of disk space (or of the user's quota)."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    return any(words in str(error) for words in ("No space left on device", "quota exceeded"))


def write_failure(error: OSError | RuntimeError, index_dir: Path) -> IndexBuildError:
    """The one-line error for an index that could not be written."""
    if disk_full(error):
        words = (isinstance(error, OSError) and error.strerror) or "No space left on device"
        return IndexBuildError(
            f"the disk is full ({words}): the new index could not be written in {index_dir}; "
            "the index in use is unchanged. Free space and run `docqa index` again"
        )
    if isinstance(error, OSError):
        where = f" ({error.filename})" if error.filename else ""
        return IndexBuildError(
            f"cannot write the index in {index_dir}: {error.strerror or error}{where}"
        )
    return IndexBuildError(f"cannot write the index in {index_dir}: {error}")
