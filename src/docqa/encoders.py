"""The ONNX encoders of a model, exported (and quantized) once and cached under the index
folder, keyed and checked by hash: an index build no longer pays ~20 s to redo them."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

CACHE_FOLDER = "encoders"
EXPORT_VERSION = 1
"""Bumped when export_onnx or quantize_onnx change what they write, so old caches are redone."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file in a folder (recursively), keyed by relative name."""
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): _sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def model_key(model_path: Path) -> str:
    """A short hash of the model's files and the export version."""
    key = json.dumps([folder_hashes(model_path), EXPORT_VERSION], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _fresh(folder: Path) -> bool:
    record = folder.with_name(folder.name + ".sha256.json")
    try:
        return bool(json.loads(record.read_text(encoding="utf-8")) == folder_hashes(folder))
    except (OSError, ValueError):
        return False


def _record(folder: Path) -> None:
    record = folder.with_name(folder.name + ".sha256.json")
    temporary = record.with_name(f".{record.name}.{os.getpid()}")
    temporary.write_text(json.dumps(folder_hashes(folder), indent=1), encoding="utf-8")
    os.replace(temporary, record)


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime's quantizer logs a pre-processing hint through the root logger, which
    also installs a stderr handler that then prints every library's debug lines."""
    handlers = list(logging.root.handlers)
    logging.root.disabled = True
    try:
        yield
    finally:
        logging.root.disabled = False
        logging.root.handlers[:] = handlers


def cached_encoders(
    model: str,
    precision: str,
    index_dir: Path,
    passage_precision: str = "fp32",
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[Path, Path]:
    """The passage encoder and the query encoder (each fp32 or int8) of a model, made once.

    Call under the index folder's build lock: two builds never write the cache at once.
    """
    from docqa import embedding

    model_path = embedding.resolve_model_path(model)
    folder = index_dir / CACHE_FOLDER / model_key(model_path)
    fp32 = folder / "fp32"
    quantized = folder / "int8"
    stage = "preparing the encoder (once per model)"
    missing = not _fresh(fp32) or (
        "int8" in (precision, passage_precision) and not _fresh(quantized)
    )
    if missing and progress:
        progress(stage, 0, 1)
    if not _fresh(fp32):
        embedding.export_onnx(model_path, fp32)
        _record(fp32)
    if "int8" in (precision, passage_precision) and not _fresh(quantized):
        with _quiet_root_logger():
            embedding.quantize_onnx(fp32, quantized)
        _record(quantized)
    if missing and progress:
        progress(stage, 1, 1)
    _remove_other_keys(folder)
    encoders = {"fp32": fp32, "int8": quantized}
    return encoders[passage_precision], encoders[precision]


def _remove_other_keys(keep: Path) -> None:
    """Drop the encoders of other models or versions: one model is cached at a time."""
    for other in keep.parent.iterdir():
        if other.is_dir() and other != keep:
            shutil.rmtree(other, ignore_errors=True)


def install_encoder(source: Path, target: Path) -> None:
    """Put the query encoder into a build folder: hard links where possible (no copy)."""

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    if source.is_dir():
        shutil.copytree(source, target, copy_function=link_or_copy)
    else:
        target.mkdir(parents=True, exist_ok=True)
