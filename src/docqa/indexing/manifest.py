"""The manifest of a build: what it was built from (model, chunker, corpus hashes and the
per-file report), and why an index no longer matches the corpus or the settings."""

from __future__ import annotations

import time
from typing import Any

from docqa.config import Settings
from docqa.indexing.chunking import ChunkSettings
from docqa.indexing.corpus import (
    READING_LIMITS,
    Stamp,
    hash_corpus,
    judge_again,
    raised_limit,
    skipped_for_limit,
)
from docqa.models import DocumentRecord

FORMAT_VERSION = 5
"""3: chunks carry their page; the manifest carries the per-file report (`records`).
4: passage vectors are made from their sentences' vectors (vectors.passage_vectors).
5: the index is cut into segments, with BM25 term counts instead of bm25s's scores."""


def chunk_settings(settings: Settings) -> ChunkSettings:
    """The chunker settings from the global settings."""
    return ChunkSettings(
        settings.chunk_target_chars, settings.chunk_max_chars, settings.chunk_min_chars
    )


def chunker_description(settings: Settings) -> dict[str, Any]:
    """How the corpus is cut into chunks, as recorded in (and checked against) the manifest."""
    if settings.chunker == "windows":
        return {
            "kind": "windows",
            "window_chars": settings.window_chars,
            "window_overlap": settings.window_overlap,
        }
    return chunk_settings(settings).describe()


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
            reasons.append(_fits_reason(records[name], settings))
    return reasons


def _fits_now(record: DocumentRecord, settings: Settings) -> bool:
    return skipped_for_limit(record) and judge_again(record, settings) is None


def _fits_reason(record: DocumentRecord, settings: Settings) -> str:
    now = raised_limit(record, settings)
    if now is not None:
        setting = READING_LIMITS[record.limit]
        return (
            f"{record.name} was skipped for {setting} {record.limit_value:g}, now {now:g}: "
            "it is read again"
        )
    return (
        f"{record.name} was skipped for its size and may fit the limits now "
        f"(DOCQA_MAX_FILE_BYTES {settings.max_file_bytes:,}, "
        f"DOCQA_MAX_DOCUMENT_CHARS {settings.max_document_chars:,})"
    )


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
