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
from typing import Any

CACHE_FOLDER = "encoders"
EXPORT_VERSION = 1
KNOWN_HASHES = "known-hashes.json"
"""The hashes of the model's and the encoders' files with their sizes, times and inodes: an
update re-hashes only a file that changed, instead of ~200 MB on every build (~1.9 s of an
8 s update beside a 2 MB book)."""
"""Bumped when export_onnx or quantize_onnx change what they write, so old caches are redone."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


Known = dict[str, list[Any]]
"""Hashes already computed: path -> [size, mtime_ns, inode, sha256]."""


def _known_sha256(path: Path, known: Known | None) -> str:
    """The file's SHA-256, taken from `known` while its size, time and inode are unchanged."""
    if known is None:
        return _sha256(path)
    status = path.stat()
    stamp = [status.st_size, status.st_mtime_ns, status.st_ino]
    entry = known.get(str(path))
    if entry is not None and entry[:3] == stamp:
        return str(entry[3])
    digest = _sha256(path)
    known[str(path)] = [*stamp, digest]
    return digest


def folder_hashes(folder: Path, known: Known | None = None) -> dict[str, str]:
    """SHA-256 of every file in a folder (recursively), keyed by relative name."""
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): _known_sha256(path, known)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def model_key(model_path: Path, known: Known | None = None) -> str:
    """A short hash of the model's files and the export version."""
    key = json.dumps([folder_hashes(model_path, known), EXPORT_VERSION], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _fresh(folder: Path, known: Known | None = None) -> bool:
    record = folder.with_name(folder.name + ".sha256.json")
    try:
        recorded = json.loads(record.read_text(encoding="utf-8"))
        return bool(recorded == folder_hashes(folder, known))
    except (OSError, ValueError):
        return False


def _record(folder: Path, known: Known | None = None) -> None:
    record = folder.with_name(folder.name + ".sha256.json")
    temporary = record.with_name(f".{record.name}.{os.getpid()}")
    temporary.write_text(json.dumps(folder_hashes(folder, known), indent=1), encoding="utf-8")
    os.replace(temporary, record)


def _read_known(path: Path) -> Known:
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _write_known(path: Path, known: Known) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(known), encoding="utf-8")
    os.replace(temporary, path)


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
    from docqa.indexing import embedding

    model_path = embedding.resolve_model_path(model)
    known_file = index_dir / CACHE_FOLDER / KNOWN_HASHES
    known = _read_known(known_file)
    folder = index_dir / CACHE_FOLDER / model_key(model_path, known)
    fp32 = folder / "fp32"
    quantized = folder / "int8"
    stage = "preparing the encoder (once per model)"
    wants_int8 = "int8" in (precision, passage_precision)
    missing = not _fresh(fp32, known) or (wants_int8 and not _fresh(quantized, known))
    if missing and progress:
        progress(stage, 0, 1)
    if not _fresh(fp32, known):
        embedding.export_onnx(model_path, fp32)
        _record(fp32, known)
    if wants_int8 and not _fresh(quantized, known):
        with _quiet_root_logger():
            embedding.quantize_onnx(fp32, quantized)
        _record(quantized, known)
    if missing and progress:
        progress(stage, 1, 1)
    _remove_other_keys(folder)
    _write_known(known_file, known)
    encoders = {"fp32": fp32, "int8": quantized}
    return encoders[passage_precision], encoders[precision]


def _remove_other_keys(keep: Path) -> None:
    """Drop the encoders of other models or versions: one model is cached at a time."""
    for other in keep.parent.iterdir():
        if other.is_dir() and other != keep:
            shutil.rmtree(other, ignore_errors=True)


def link_or_copy(source: str, target: str) -> None:
    """A hard link to the file where the file system allows one, else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def install_encoder(source: Path, target: Path) -> None:
    """Put the query encoder into a build folder: hard links where possible (no copy)."""
    if source.is_dir():
        shutil.copytree(source, target, copy_function=link_or_copy)
    else:
        target.mkdir(parents=True, exist_ok=True)
