"""Full disks (issue 18, item 9, from an outside probe): during an index build one clear line,
the half-written build removed and the previous index still answering; while storing an
upload a JSON 507, nothing partial left. Writes fail by monkeypatch, and on a real tiny
tmpfs when the tests run as root. Builds use the fake embedder (fakes.py).
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docqa.cli import main
from docqa.config import Settings
from docqa.indexing.build import open_index, update_index
from docqa.indexing.store import IndexBuildError, current_build, load_build
from docqa.library import DiskFullError, StorageError, add_document, store_file
from fakes import tiny_settings, use_fake_embedder
from test_parser_faults import BRIEF, fail_with, post_files, running_service, wait_until_idle

NEW_BRIEF = BRIEF.replace("Vilnius", "Madrid")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    use_fake_embedder(monkeypatch)
    return tiny_settings(tmp_path, {"brief.txt": BRIEF})


# ---------------------------------------------------------------- disk full during a build


FAISS_DISK_FULL = RuntimeError(
    "Error in void faiss::write_index(const Index*, IOWriter*, int) at index_write.cpp:499: "
    "Error: 'ret == (size * 4)' failed: write error in dense.faiss: 0 != 256 "
    "(No space left on device)"
)  # the words faiss 1.x wrote on a full tmpfs


@pytest.mark.parametrize(
    "target, error",
    [
        ("faiss.write_index", FAISS_DISK_FULL),
        ("numpy.save", OSError(errno.ENOSPC, "No space left on device")),
    ],
)
def test_disk_full_during_a_build_is_one_line_and_leaves_the_previous_index(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, target: str, error: BaseException
) -> None:
    previous = update_index(settings).folder
    (settings.corpus_dir / "brief.txt").write_text(NEW_BRIEF, encoding="utf-8")
    monkeypatch.setattr(target, fail_with(error))

    full = r"^the disk is full \(No space left on device\): .*Free space and run"
    with pytest.raises(IndexBuildError, match=full):
        update_index(settings)

    assert current_build(settings.index_dir) == previous
    assert not list(settings.index_dir.glob(".tmp-*"))
    assert sorted(p.name for p in settings.index_dir.glob("build-*")) == [previous.name]


def test_disk_full_while_switching_current_removes_the_new_build(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = update_index(settings).folder
    (settings.corpus_dir / "brief.txt").write_text(NEW_BRIEF, encoding="utf-8")
    real_replace = os.replace

    def replace(source: Any, target: Any) -> None:
        if Path(target).name == "CURRENT":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)

    with pytest.raises(IndexBuildError, match=r"^the disk is full"):
        update_index(settings)

    assert current_build(settings.index_dir) == previous
    assert sorted(p.name for p in settings.index_dir.iterdir() if p.name != "encoders") == [
        ".lock",
        "CURRENT",
        previous.name,
    ]


def test_ask_answers_from_the_previous_index_when_the_disk_is_full(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = update_index(settings).folder
    (settings.corpus_dir / "brief.txt").write_text(NEW_BRIEF, encoding="utf-8")
    monkeypatch.setattr("faiss.write_index", fail_with(FAISS_DISK_FULL))
    told: list[str] = []

    index = open_index(settings.model_copy(update={"auto_rebuild": True}), told.append)

    assert index.path == previous
    assert any("Vilnius" in chunk.text for chunk in index.chunks)
    assert told[-1].startswith("warning: the disk is full")
    assert "answering from the previous index" in told[-1]


def test_index_command_on_a_full_disk_prints_one_line_and_exits_1(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("faiss.write_index", fail_with(FAISS_DISK_FULL))
    folders = ["--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir)]

    code = main(["index", *folders])

    err = capsys.readouterr().err
    assert code == 1
    assert [line for line in err.splitlines() if line.startswith("docqa: ")] == [
        "docqa: error: the disk is full (No space left on device): the new index could not "
        f"be written in {settings.index_dir}; the index in use is unchanged. Free space and "
        "run `docqa index` again"
    ]
    assert "Traceback" not in err


def test_the_service_on_a_full_disk_lists_the_upload_as_failed_and_answers_from_before(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_service(settings) as client:
        monkeypatch.setattr("faiss.write_index", fail_with(FAISS_DISK_FULL))
        response = post_files(client, ("notes.txt", b"BUDGET\n\nThe budget grew by two percent."))
        wait_until_idle(client)

        assert response.status_code == 202, response.text
        record = {r["name"]: r for r in client.get("/documents").json()}["notes.txt"]
        assert record["status"] == "failed"
        assert record["reason"].startswith("the disk is full (No space left on device)")
        answer = client.post("/chat", json={"message": "Where did the summit take place?"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["sources"][0]["document"] == "brief.txt"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 512 KiB tmpfs (needs root and mount; skipped otherwise)."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def fill(folder: Path, leave_bytes: int) -> None:
    """Fill the file system of `folder` until about `leave_bytes` are free."""
    status = os.statvfs(folder)
    free = status.f_bavail * status.f_frsize
    (folder / "filler").write_bytes(b"\0" * max(free - leave_bytes, 0))


def test_a_real_full_disk_during_a_build_keeps_the_previous_index(
    settings: Settings, tiny_disk: Path
) -> None:
    on_disk = settings.model_copy(update={"index_dir": tiny_disk / "index"})
    previous = update_index(on_disk).folder
    fill(tiny_disk, leave_bytes=4096)
    (settings.corpus_dir / "brief.txt").write_text(NEW_BRIEF * 20, encoding="utf-8")

    with pytest.raises(IndexBuildError, match=r"^the disk is full"):
        update_index(on_disk)

    assert current_build(on_disk.index_dir) == previous
    assert not list(on_disk.index_dir.glob(".tmp-*"))
    assert any("Vilnius" in chunk.text for chunk in load_build(previous).chunks)


# ---------------------------------------------------------------- disk full during an upload


def test_disk_full_while_storing_a_file_raises_disk_full_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "fsync", fail_with(OSError(errno.ENOSPC, "No space left on device")))

    with pytest.raises(DiskFullError, match=r"^the disk is full: notes\.txt could not be stored"):
        store_file(tmp_path, "notes.txt", b"some text")

    assert os.listdir(tmp_path) == []


def test_disk_full_while_replacing_a_file_keeps_the_old_one_and_leaves_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "notes.txt").write_bytes(b"old notes")
    monkeypatch.setattr(os, "fsync", fail_with(OSError(errno.ENOSPC, "No space left on device")))

    with pytest.raises(DiskFullError, match=r"^the disk is full: notes\.txt could not be stored"):
        add_document(tmp_path, "notes.txt", b"new notes", replace=True)

    assert os.listdir(tmp_path) == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_bytes() == b"old notes"


def test_another_write_failure_while_storing_a_file_names_it_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "fsync", fail_with(OSError(errno.EIO, "Input/output error")))

    said = r"^notes\.txt could not be stored in the corpus folder: Input/output error$"
    with pytest.raises(StorageError, match=said):
        store_file(tmp_path, "notes.txt", b"some text")

    assert os.listdir(tmp_path) == []


def test_a_real_full_disk_while_storing_a_file_leaves_nothing(tiny_disk: Path) -> None:
    with pytest.raises(DiskFullError, match=r"^the disk is full"):
        store_file(tiny_disk, "big.txt", b"x" * 1_000_000)

    assert os.listdir(tiny_disk) == []


def test_upload_on_a_full_disk_is_a_json_507_and_stores_nothing(settings: Settings) -> None:
    with running_service(settings) as client:
        with pytest.MonkeyPatch.context() as disk:
            disk.setattr(os, "fsync", fail_with(OSError(errno.ENOSPC, "No space left")))
            response = post_files(client, ("notes.txt", b"Notes about the budget."))

        assert response.status_code == 507, response.text
        assert response.json()["detail"].startswith("the disk is full: notes.txt could not")
        assert sorted(os.listdir(settings.corpus_dir)) == ["brief.txt"]
        assert client.post("/chat", json={"message": "Where was the summit?"}).status_code == 200
