"""The encoder cache: made once per model, trusted from the recorded hashes while no file's
size, time or inode changed, and made again when a file did change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from docqa.indexing import embedding, encoders


@pytest.fixture
def exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """A stand-in model folder (tmp_path/model) and an export that writes a small encoder;
    the folders exported, in order."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"weights" * 1000)
    monkeypatch.setattr(embedding, "resolve_model_path", lambda name: folder)
    exports: list[Path] = []

    def export(model_path: Path, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "model.onnx").write_bytes(b"onnx" * 1000)
        exports.append(out_dir)
        return out_dir

    monkeypatch.setattr(embedding, "export_onnx", export)
    return exports


def hashed_files(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file hashed from now on."""
    hashed: list[Path] = []
    real = encoders._sha256

    def counting(path: Path) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(encoders, "_sha256", counting)
    return hashed


def test_an_unchanged_cache_is_trusted_without_hashing_a_file_again(
    exports: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoders.cached_encoders("m", "fp32", tmp_path / "index")
    hashed = hashed_files(monkeypatch)
    passage, query = encoders.cached_encoders("m", "fp32", tmp_path / "index")
    assert hashed == []
    assert (passage / "model.onnx").is_file() and passage == query
    assert len(exports) == 1


def test_a_changed_encoder_file_is_hashed_and_the_encoder_made_again(
    exports: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    passage, _ = encoders.cached_encoders("m", "fp32", tmp_path / "index")
    (passage / "model.onnx").write_bytes(b"damaged")
    hashed = hashed_files(monkeypatch)
    encoders.cached_encoders("m", "fp32", tmp_path / "index")
    assert passage / "model.onnx" in hashed
    assert len(exports) == 2


def test_a_changed_model_gets_a_new_key(exports: list[Path], tmp_path: Path) -> None:
    first, _ = encoders.cached_encoders("m", "fp32", tmp_path / "index")
    weights = tmp_path / "model" / "weights.bin"
    weights.write_bytes(b"other weights" * 1000)
    os.utime(weights, ns=(1, 1))
    second, _ = encoders.cached_encoders("m", "fp32", tmp_path / "index")
    assert first.parent.name != second.parent.name
    assert not first.exists()  # one model is cached at a time
