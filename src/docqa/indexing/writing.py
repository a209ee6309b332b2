"""Writing a build folder: chunks, vectors, the lexical index, the query encoder and the
manifest; a failed write (a full disk) is one clear error, and the caller removes the folder."""

from __future__ import annotations

import contextlib
import errno
import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from docqa.config import Settings
from docqa.indexing.lexical import tokenize
from docqa.indexing.manifest import manifest_for
from docqa.indexing.store import HNSW_FROM, IndexBuildError, chunk_record, make_dense_index
from docqa.indexing.vectors import DocumentVectors
from docqa.models import Chunk, DocumentRecord


def _write_lexical(folder: Path, chunks: list[Chunk]) -> None:
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(tokenize([f"{c.section} {c.text}" for c in chunks]), show_progress=False)
    retriever.save(str(folder))


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


def write_build(
    settings: Settings,
    folder: Path,
    records: list[DocumentRecord],
    corpus: dict[str, str],
    vectors: dict[str, DocumentVectors],
    query_encoder: Path,
) -> dict[str, Any]:
    """Write the chunks, vectors, lexical index, encoder and manifest into `folder`; a
    write that fails (a full disk) raises IndexBuildError, and the caller removes `folder`."""
    import faiss

    from docqa.indexing.encoders import install_encoder

    ordered = [vectors[r.name] for r in records if r.name in vectors]
    chunks = [c for v in ordered for c in v.chunks]
    passages = np.concatenate([v.passages for v in ordered]).astype(np.float32)
    sentences = [s for v in ordered for s in v.sentences]
    starts = np.cumsum([0] + [len(s) for s in sentences]).astype(np.int64)
    with failed_writes_reported(folder.parent):
        install_encoder(query_encoder, folder / "encoder")
        faiss.write_index(make_dense_index(passages), str(folder / "dense.faiss"))
        _save_rows(folder / "sentences.npy", sentences, int(passages.shape[1]))
        np.save(folder / "sentence_starts.npy", starts)
        _write_lexical(folder / "lexical", chunks)
        with open(folder / "chunks.jsonl", "w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(json.dumps(chunk_record(chunk), ensure_ascii=False) + "\n")
        kind = "flat" if len(chunks) <= HNSW_FROM else "hnsw"
        manifest = manifest_for(settings, corpus, int(passages.shape[1]), kind)
        manifest["chunks"] = len(chunks)
        manifest["records"] = [asdict(record) for record in records]
        (folder / "manifest.json").write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8"
        )
    return manifest


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
