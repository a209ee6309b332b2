"""The index under faults: stale, damaged, killed mid-build, built twice at once, bad corpus.

Every fault ends in a loadable index, an automatic rebuild, or a domain error that says
what is wrong (IndexStaleError, IndexCorruptError, CorpusError), never another exception.
The model is replaced by a hashed bag of words, so no test here needs it; builds killed
with SIGKILL run in subprocesses that install the same fake.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from docqa.config import Settings
from docqa.indexing.build import build_index, open_index
from docqa.indexing.corpus import CorpusError
from docqa.indexing.index import Index
from docqa.indexing.manifest import FORMAT_VERSION
from docqa.indexing.store import (
    IndexCorruptError,
    IndexStaleError,
    check_index,
    current_build,
    load_build,
)
from docqa.isolation import ChildFailedError
from fakes import segment_of

SRC = Path(__file__).resolve().parents[1] / "src"
TESTS = Path(__file__).resolve().parent
DIMENSION = 64
FAKE_CONFIG = "fake-encoder.json"
SUBPROCESS_TIMEOUT_S = 60
QUESTION = "Where did the summit take place?"

# ---------------------------------------------------------------- the fake model


class HashedWords:
    """Stands in for OnnxEmbedder: a hashed bag of words, L2-normalised float32 rows."""

    def __init__(self, folder: Path, *args: Any, **kwargs: Any) -> None:
        config = json.loads((Path(folder) / FAKE_CONFIG).read_text(encoding="utf-8"))
        self.name: str = config["model"]
        self.dimension: int = config["dimension"]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text (a text without words lands in one fixed bucket)."""
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()) or [""]:
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                vectors[row, int.from_bytes(digest, "little") % self.dimension] += 1.0
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def fake_export_onnx(model_path: Path, out_dir: Path) -> Path:
    """Stands in for export_onnx: an encoder folder holding only the fake's settings."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {"model": str(model_path), "dimension": DIMENSION}
    (out_dir / FAKE_CONFIG).write_text(json.dumps(config), encoding="utf-8")
    return out_dir


def fake_quantize_onnx(src: Path, dst: Path) -> Path:
    """Stands in for quantize_onnx: a copy of the fake encoder folder."""
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst


def install_fake_embedder(patch: Callable[[Any, str, Any], None] = setattr) -> None:
    """Make index builds use HashedWords; `patch` is monkeypatch.setattr in tests."""
    import docqa.indexing.embedding

    patch(docqa.indexing.embedding, "resolve_model_path", Path)
    patch(docqa.indexing.embedding, "export_onnx", fake_export_onnx)
    patch(docqa.indexing.embedding, "quantize_onnx", fake_quantize_onnx)
    patch(docqa.indexing.embedding, "OnnxEmbedder", HashedWords)


@pytest.fixture(autouse=True)
def fake_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_embedder(monkeypatch.setattr)


# ---------------------------------------------------------------- corpus and answers


def write_brief(corpus_dir: Path, city: str) -> None:
    corpus_dir.mkdir(parents=True, exist_ok=True)
    (corpus_dir / "brief.txt").write_text(
        "SUMMIT\n\n"
        f"The summit took place in {city} in July 2023. Leaders signed a joint declaration "
        "on cyber defence and on military mobility across the alliance.\n\n"
        "BUDGET\n\n"
        "The common budget grew by two percent after long negotiations between the "
        "member states over the costs of the new headquarters.\n",
        encoding="utf-8",
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    write_brief(tmp_path / "corpus", "Vilnius")
    return Settings(
        corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", auto_rebuild=False
    )


def rebuilding(settings: Settings) -> Settings:
    return settings.model_copy(update={"auto_rebuild": True})


def top_passage(index: Index, question: str = QUESTION) -> str:
    """The best chunk for a question by the index's dense vectors and its own encoder."""
    vector = HashedWords(index.path / "encoder").embed([question])
    rows, _ = index.dense_search(vector[0], 1)
    return index.chunks[rows[0]].text


def leftovers(index_dir: Path) -> list[str]:
    """Entries of the index folder besides CURRENT, the lock and the build in use."""
    current = current_build(index_dir)
    keep = {"CURRENT", ".lock", "encoders", current.name if current else ""}
    return sorted(p.name for p in index_dir.iterdir() if p.name not in keep)


# ---------------------------------------------------------------- build and staleness


def test_build_writes_current_naming_a_build_folder(settings: Settings) -> None:
    folder = build_index(settings)
    pointer = (settings.index_dir / "CURRENT").read_text(encoding="utf-8").strip()
    assert pointer == folder.name
    assert folder.name.startswith("build-")
    assert (folder / "manifest.json").is_file()


def test_open_index_loads_the_build(settings: Settings) -> None:
    folder = build_index(settings)
    index = open_index(settings)
    assert index.path == folder
    assert len(index.chunks) == index.manifest["chunks"] == 2
    assert "Vilnius" in top_passage(index)


def test_changed_corpus_file_makes_the_index_stale_naming_the_file(settings: Settings) -> None:
    build_index(settings)
    write_brief(settings.corpus_dir, "Madrid")
    with pytest.raises(IndexStaleError, match=r"brief\.txt has changed"):
        check_index(settings)


def test_stale_index_is_rebuilt_on_open_and_notify_says_why(settings: Settings) -> None:
    build_index(settings)
    write_brief(settings.corpus_dir, "Madrid")
    messages: list[str] = []
    index = open_index(rebuilding(settings), messages.append)
    assert len(messages) == 1
    assert "brief.txt has changed" in messages[0] and "building it now" in messages[0]
    assert "Madrid" in top_passage(index)


def test_stale_index_is_refused_without_auto_rebuild(settings: Settings) -> None:
    build_index(settings)
    write_brief(settings.corpus_dir, "Madrid")
    with pytest.raises(IndexStaleError, match=r"brief\.txt has changed.*docqa index --force"):
        open_index(settings)


def edit_manifest(folder: Path, **fields: Any) -> None:
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    (folder / "manifest.json").write_text(json.dumps({**manifest, **fields}), encoding="utf-8")


FOREIGN_MANIFESTS = {
    "another model": ({"model": "another-model"}, r"model another-model"),
    "another format": ({"format_version": FORMAT_VERSION + 1}, rf"format {FORMAT_VERSION + 1}"),
}


@pytest.mark.parametrize("foreign", FOREIGN_MANIFESTS)
def test_manifest_from_another_model_or_format_is_refused(settings: Settings, foreign: str) -> None:
    fields, reason = FOREIGN_MANIFESTS[foreign]
    edit_manifest(build_index(settings), **fields)
    with pytest.raises(IndexStaleError, match=rf"{reason}.*docqa index --force"):
        open_index(settings)


@pytest.mark.parametrize("foreign", FOREIGN_MANIFESTS)
def test_manifest_from_another_model_or_format_is_rebuilt(settings: Settings, foreign: str) -> None:
    fields, _ = FOREIGN_MANIFESTS[foreign]
    edit_manifest(build_index(settings), **fields)
    index = open_index(rebuilding(settings))
    assert index.manifest["model"] == settings.model
    assert index.manifest["format_version"] == FORMAT_VERSION


# ---------------------------------------------------------------- damaged parts


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def scribble(path: Path) -> None:
    path.write_bytes(b"\xff\xfe\x00 not what was written \x01")


def drop_first_line(path: Path) -> None:
    path.write_text("".join(path.read_text(encoding="utf-8").splitlines(True)[1:]))


def damage_current(index_dir: Path, content: bytes) -> None:
    (index_dir / "CURRENT").write_bytes(content)


# name -> damage(build folder); each leaves an index that must not load as it is.
DAMAGE: dict[str, Callable[[Path], object]] = {
    "dense.faiss truncated": lambda b: truncate(segment_of(b) / "dense.faiss"),
    "dense.faiss deleted": lambda b: (segment_of(b) / "dense.faiss").unlink(),
    "chunks.jsonl not UTF-8": lambda b: scribble(segment_of(b) / "chunks.jsonl"),
    "chunks.jsonl not JSON": lambda b: (segment_of(b) / "chunks.jsonl").write_text("not json\n"),
    "chunks.jsonl records of another shape": lambda b: (segment_of(b) / "chunks.jsonl").write_text(
        "[1]\n"
    ),
    "chunks.jsonl truncated": lambda b: truncate(segment_of(b) / "chunks.jsonl"),
    "chunks.jsonl missing a chunk": lambda b: drop_first_line(segment_of(b) / "chunks.jsonl"),
    "sentences.npy deleted": lambda b: (segment_of(b) / "sentences.npy").unlink(),
    "sentences.npy truncated": lambda b: truncate(segment_of(b) / "sentences.npy"),
    "sentences.npy flattened": lambda b: np.save(
        segment_of(b) / "sentences.npy", np.load(segment_of(b) / "sentences.npy").ravel()
    ),
    "sentence_starts.npy of another shape": lambda b: np.save(
        segment_of(b) / "sentence_starts.npy", np.zeros((3, 2), dtype=np.int64)
    ),
    "term counts deleted": lambda b: shutil.rmtree(segment_of(b) / "terms"),
    "term list of another length": lambda b: (segment_of(b) / "terms" / "terms.json").write_text(
        "[]"
    ),
    "term counts truncated": lambda b: truncate(segment_of(b) / "terms" / "counts.npz"),
    "segment folder deleted": lambda b: shutil.rmtree(segment_of(b)),
    "manifest without its segments": lambda b: edit_manifest(b, segments=None),
    "manifest not JSON": lambda b: (b / "manifest.json").write_text("{not json"),
    "manifest deleted": lambda b: (b / "manifest.json").unlink(),
    "manifest documents not a mapping": lambda b: edit_manifest(b, documents=["brief.txt"]),
    "manifest chunk count not a number": lambda b: edit_manifest(b, chunks=[2]),
    "CURRENT names a missing folder": lambda b: damage_current(b.parent, b"build-gone\n"),
    "CURRENT empty": lambda b: damage_current(b.parent, b""),
    "CURRENT not UTF-8": lambda b: damage_current(b.parent, b"\xff\xfebuild"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_index_is_refused_as_corrupt(settings: Settings, damage: str) -> None:
    DAMAGE[damage](build_index(settings))
    with pytest.raises(IndexCorruptError, match=r"docqa index --force"):
        open_index(settings)


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_index_is_rebuilt_on_open(settings: Settings, damage: str) -> None:
    damaged = build_index(settings)
    DAMAGE[damage](damaged)
    messages: list[str] = []
    index = open_index(rebuilding(settings), messages.append)
    assert index.path != damaged
    assert len(messages) == 1 and "building it now" in messages[0]
    assert "Vilnius" in top_passage(index)


def test_a_build_whose_child_dies_leaves_the_previous_index_answering(
    settings: Settings,
) -> None:
    previous = build_index(settings)
    write_brief(settings.corpus_dir, "Madrid")

    def builder(settings: Settings, force: bool) -> Path:
        raise ChildFailedError("the build's process died (signal 9)")

    messages: list[str] = []
    index = open_index(rebuilding(settings), messages.append, builder=builder)
    assert index.path == previous
    assert "the build's process died" in messages[-1] and "previous index" in messages[-1]


def test_index_command_without_force_rebuilds_a_damaged_current(settings: Settings) -> None:
    build_index(settings)
    damage_current(settings.index_dir, b"build-gone\n")
    folder = build_index(settings, force=False)
    assert "Vilnius" in top_passage(load_build(folder))


# ---------------------------------------------------------------- killed builds

# Runs build_index with the fake model in a fresh interpreter; argv: src, tests, stage.
BUILD_SCRIPT = """
import sys
sys.path[:0] = sys.argv[1:3]
import test_index_faults as faults
faults.install_fake_embedder()
faults.die_at(sys.argv[3])
from docqa.config import Settings
from docqa.indexing.build import build_index
print("ready", flush=True)
build_index(Settings())
"""


def die_at(stage: str) -> None:
    """Make this process SIGKILL itself at `stage` of build_index; "slow" only slows it."""
    import faiss

    from docqa.indexing import build, vectors, writing

    def kill() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def after(function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = function(*args, **kwargs)
            kill()
            return result

        return wrapper

    def before(function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kill()
            return function(*args, **kwargs)

        return wrapper

    def before_current_replaced(function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(source: Any, target: Any, *args: Any, **kwargs: Any) -> Any:
            if Path(target).name == "CURRENT":
                kill()
            return function(source, target, *args, **kwargs)

        return wrapper

    def slowly(function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            time.sleep(0.05)
            return function(*args, **kwargs)

        return wrapper

    hooks = {
        "after chunking": [(build, "chunk_corpus", after)],
        "after dense.faiss": [(faiss, "write_index", after)],
        "after a segment": [(writing, "write_segment", after)],
        "after the manifest": [(build, "write_build", after)],
        "before the CURRENT switch": [(build, "_point_to", before)],
        "inside the CURRENT switch": [(os, "replace", before_current_replaced)],
        "after the CURRENT switch": [(build, "_remove_old_builds", before)],
        "slow": [
            (module, name, slowly)
            for module, name in (
                (build, "chunk_corpus"),
                (vectors, "embed_all"),
                (writing, "write_segment"),
                (build, "_point_to"),
            )
        ]
        + [(faiss, "write_index", slowly)],
    }
    for module, name, wrap in hooks[stage]:
        setattr(module, name, wrap(getattr(module, name)))


def start_build(settings: Settings, stage: str) -> subprocess.Popen[str]:
    environment = {
        **os.environ,
        "DOCQA_CORPUS_DIR": str(settings.corpus_dir),
        "DOCQA_INDEX_DIR": str(settings.index_dir),
    }
    return subprocess.Popen(
        [sys.executable, "-c", BUILD_SCRIPT, str(SRC), str(TESTS), stage],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, errors = process.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return process.returncode, errors


KILLED_BEFORE_SWITCH = [
    "after chunking",
    "after dense.faiss",
    "after a segment",
    "after the manifest",
    "before the CURRENT switch",
    "inside the CURRENT switch",
]


@pytest.mark.parametrize("stage", KILLED_BEFORE_SWITCH)
def test_build_killed_before_the_switch_leaves_the_previous_index(
    settings: Settings, stage: str
) -> None:
    previous = build_index(settings)
    write_brief(settings.corpus_dir, "Madrid")
    returncode, errors = finish(start_build(settings, stage))
    assert returncode == -signal.SIGKILL, errors
    assert current_build(settings.index_dir) == previous
    assert "Vilnius" in top_passage(load_build(previous))


def test_build_killed_after_the_switch_leaves_the_new_index(settings: Settings) -> None:
    previous = build_index(settings)
    write_brief(settings.corpus_dir, "Madrid")
    returncode, errors = finish(start_build(settings, "after the CURRENT switch"))
    assert returncode == -signal.SIGKILL, errors
    assert current_build(settings.index_dir) != previous
    assert "Madrid" in top_passage(open_index(settings))


@pytest.mark.parametrize("stage", [*KILLED_BEFORE_SWITCH, "after the CURRENT switch"])
def test_next_build_removes_what_a_killed_build_left(settings: Settings, stage: str) -> None:
    build_index(settings)
    returncode, errors = finish(start_build(settings, stage))
    assert returncode == -signal.SIGKILL, errors
    assert leftovers(settings.index_dir)  # the kill did leave something behind
    build_index(settings)
    assert leftovers(settings.index_dir) == []


KILL_DELAYS_S = [round(random.Random(7).uniform(0.0, 0.5), 3) for _ in range(5)]


@pytest.mark.parametrize("delay", KILL_DELAYS_S)
def test_build_killed_at_a_random_moment_leaves_a_loadable_index(
    settings: Settings, delay: float
) -> None:
    build_index(settings)
    write_brief(settings.corpus_dir, "Madrid")
    process = start_build(settings, "slow")
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    finish(process)
    index = load_build(current_build(settings.index_dir))  # type: ignore[arg-type]
    assert re.search("Vilnius|Madrid", top_passage(index))
    build_index(settings)
    assert leftovers(settings.index_dir) == []


def test_two_builds_at_once_both_finish_with_one_consistent_index(settings: Settings) -> None:
    processes = [start_build(settings, "slow") for _ in range(2)]
    results = [finish(process) for process in processes]
    assert [code for code, _ in results] == [0, 0], results
    assert leftovers(settings.index_dir) == []
    assert [p.name for p in settings.index_dir.glob("build-*")] == [
        current_build(settings.index_dir).name  # type: ignore[union-attr]
    ]
    assert "Vilnius" in top_passage(open_index(settings))


# ---------------------------------------------------------------- bad corpus


def test_corpus_file_that_is_not_utf8_is_decoded_and_its_encoding_reported(
    settings: Settings,
) -> None:
    text = "LE SOMMET\n\nLa coopération au sommet de Vilnius a été signée en été.\n"
    (settings.corpus_dir / "latin1.txt").write_bytes(text.encode("latin-1"))
    index = load_build(build_index(settings))
    [record] = [r for r in index.manifest["records"] if r["name"] == "latin1.txt"]
    assert record["status"] == "indexed"
    assert text.encode("latin-1").decode(record["encoding"]) == text
    assert any("coopération" in c.text for c in index.chunks)


def test_empty_corpus_folder_is_refused_clearly(settings: Settings) -> None:
    (settings.corpus_dir / "brief.txt").unlink()
    with pytest.raises(CorpusError, match=r"holds no file: add a document"):
        build_index(settings)


def test_missing_corpus_folder_is_refused_clearly(settings: Settings, tmp_path: Path) -> None:
    missing = settings.model_copy(update={"corpus_dir": tmp_path / "nowhere"})
    with pytest.raises(CorpusError, match=r"nowhere does not exist"):
        build_index(missing)
