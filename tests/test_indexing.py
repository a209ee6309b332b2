"""Index updates with the fake embedder: the per-file report, incremental reuse, the library
helpers, and the corpus and index faults that must end in one clear line."""

from __future__ import annotations

import errno
import os
from io import BufferedReader
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from docqa.config import Settings
from docqa.indexing.build import IndexReport, NothingToIndexError, open_index, update_index
from docqa.indexing.corpus import hash_corpus, list_corpus
from docqa.indexing.store import IndexBuildError, IndexStaleError, load_build
from docqa.library import (
    Added,
    DocumentNotFoundError,
    UploadError,
    add_files,
    remove_documents,
)
from documents import write_folder
from fakes import tiny_settings, use_fake_embedder

BRIEF = "SUMMIT\n\nThe summit took place in Vilnius in July 2023 after long talks.\n"
OTHER = "BUDGET\n\nThe common budget grew by two percent over the previous financial year.\n"


@pytest.fixture(autouse=True)
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_embedder(monkeypatch)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return tiny_settings(tmp_path, {"brief.txt": BRIEF, "budget.txt": OTHER})


def statuses(report: IndexReport) -> dict[str, tuple[str, str]]:
    return {r.name: (r.status, r.reason) for r in report.documents}


def vectors_by_chunk(folder: Path) -> dict[str, np.ndarray]:
    index = load_build(folder)
    return {c.id: index.passage_vector(row) for row, c in enumerate(index.chunks)}


# ---------------------------------------------------------------- the report


def test_mixed_folder_indexes_four_documents_and_names_the_binary_as_skipped(
    tmp_path: Path,
) -> None:
    corpus = write_folder(tmp_path / "corpus")
    report = update_index(Settings(corpus_dir=corpus, index_dir=tmp_path / "index"))
    found = {r.name: r for r in report.documents}
    assert {n for n, r in found.items() if r.status == "indexed"} == {
        "report.pdf",
        "handbook.docx",
        "page.html",
        "notes.txt",
    }
    assert (found["image.txt"].status, found["image.txt"].reason) == (
        "skipped",
        "binary data, not text",
    )
    assert found["report.pdf"].pages == 2 and found["report.pdf"].type == "pdf"
    assert found["notes.txt"].encoding and found["notes.txt"].chunks > 0
    assert found["handbook.docx"].sections == 3


def test_pdf_chunks_in_the_index_carry_their_page(tmp_path: Path) -> None:
    corpus = write_folder(tmp_path / "corpus")
    index = load_build(update_index(Settings(corpus_dir=corpus, index_dir=tmp_path / "i")).folder)
    pages = {c.section: c.page for c in index.chunks if c.document == "report.pdf"}
    assert pages == {"Membership and Fees": 1, "Meeting Schedule": 2, "History of the Club": 2}
    assert all(c.page is None for c in index.chunks if c.document != "report.pdf")


def test_a_corpus_with_nothing_indexable_names_each_file_and_why(settings: Settings) -> None:
    for path in settings.corpus_dir.iterdir():
        path.unlink()
    (settings.corpus_dir / "photo.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(NothingToIndexError, match=r"photo\.jpg: unsupported type \.jpg"):
        update_index(settings)


# ---------------------------------------------------------------- incremental updates


def test_an_added_file_is_the_only_one_read_and_the_others_keep_their_vectors(
    settings: Settings,
) -> None:
    first = update_index(settings)
    before = vectors_by_chunk(first.folder)
    (settings.corpus_dir / "new.txt").write_text("NEWS\n\nA new member joined.\n", "utf-8")
    second = update_index(settings)
    assert second.embedded_documents == 1 and second.rebuilt
    after = vectors_by_chunk(second.folder)
    assert set(before) < set(after)
    for chunk_id, vector in before.items():
        np.testing.assert_array_equal(after[chunk_id], vector)


def test_a_fresh_index_is_not_rebuilt(settings: Settings) -> None:
    first = update_index(settings)
    again = update_index(settings)
    assert not again.rebuilt and again.folder == first.folder


def test_a_removed_file_is_dropped_and_a_changed_one_read_again(settings: Settings) -> None:
    update_index(settings)
    (settings.corpus_dir / "budget.txt").unlink()
    (settings.corpus_dir / "brief.txt").write_text(BRIEF.replace("Vilnius", "Madrid"), "utf-8")
    report = update_index(settings)
    assert report.embedded_documents == 1
    index = load_build(report.folder)
    assert {c.document for c in index.chunks} == {"brief.txt"}
    assert any("Madrid" in c.text for c in index.chunks)


def test_force_reads_every_file_again(settings: Settings) -> None:
    update_index(settings)
    assert update_index(settings, force=True).embedded_documents == 2


def test_progress_is_told_each_stage(settings: Settings) -> None:
    seen: list[str] = []
    update_index(settings, lambda stage, done, total: seen.append(stage))
    assert {"reading", "embedding sentences"} <= set(seen)


def test_every_stage_is_announced_before_its_work_starts(settings: Settings) -> None:
    seen: list[tuple[str, int, int]] = []
    update_index(settings, lambda *step: seen.append(step))
    assert seen[0] == ("reading", 0, 2)  # before the first file is read
    firsts = {stage: done for stage, done, _ in reversed(seen)}
    assert firsts["embedding sentences"] == 0
    assert seen[-2:] == [("writing", 0, 1), ("writing", 1, 1)]


def test_open_index_shows_progress_when_it_builds(settings: Settings) -> None:
    seen: list[tuple[str, int, int]] = []
    open_index(settings, progress=lambda *step: seen.append(step))
    assert ("reading", 2, 2) in seen


# ---------------------------------------------------------------- the library helpers


def test_add_copies_files_and_never_overwrites_another_silently(
    settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "in" / "notes|1.txt"
    source.parent.mkdir()
    source.write_text("NOTES\n\nThe treasurer keeps the keys.\n", "utf-8")
    [added] = add_files(settings.corpus_dir, [source])
    name = added.name
    assert added == Added("notes_1.txt", stored=True)
    assert add_files(settings.corpus_dir, [source]) == [Added(name, stored=False)]
    source.write_text("other content", "utf-8")
    assert add_files(settings.corpus_dir, [source]) == [Added("notes_1 (2).txt", stored=True)]
    assert "treasurer" in (settings.corpus_dir / name).read_text("utf-8")
    add_files(settings.corpus_dir, [source], replace=True)
    assert (settings.corpus_dir / name).read_text("utf-8") == "other content"


def test_add_refuses_unsupported_types_before_copying_anything(
    settings: Settings, tmp_path: Path
) -> None:
    good, bad = tmp_path / "good.txt", tmp_path / "tool.exe"
    good.write_text("text", "utf-8")
    bad.write_bytes(b"MZ")
    with pytest.raises(UploadError, match=r"type \.exe are not supported"):
        add_files(settings.corpus_dir, [good, bad])
    assert not (settings.corpus_dir / "good.txt").exists()


def test_remove_by_name_or_id_and_a_typo_removes_nothing(settings: Settings) -> None:
    report = update_index(settings)
    budget_id = next(r.id for r in report.documents if r.name == "budget.txt")
    with pytest.raises(DocumentNotFoundError, match=r"no document named 'nope\.txt'"):
        remove_documents(settings.corpus_dir, ["brief.txt", "nope.txt"])
    assert (settings.corpus_dir / "brief.txt").exists()
    assert remove_documents(settings.corpus_dir, [budget_id]) == ["budget.txt"]
    assert [r.name for r in update_index(settings).documents] == ["brief.txt"]


# ---------------------------------------------------------------- limits and links


def test_a_file_over_the_size_limit_is_skipped_naming_the_setting(settings: Settings) -> None:
    (settings.corpus_dir / "huge.txt").write_text("WORDS\n\n" + "word " * 2000, "utf-8")
    limited = settings.model_copy(update={"max_file_bytes": 5000})
    status, reason = statuses(update_index(limited))["huge.txt"]
    assert status == "skipped" and "DOCQA_MAX_FILE_BYTES" in reason


def test_a_text_over_the_character_limit_is_skipped_naming_the_setting(
    settings: Settings,
) -> None:
    assert len(BRIEF) < len(OTHER)
    limited = settings.model_copy(update={"max_document_chars": len(BRIEF)})
    found = statuses(update_index(limited))
    assert found["brief.txt"][0] == "indexed"
    status, reason = found["budget.txt"]
    assert status == "skipped" and "DOCQA_MAX_DOCUMENT_CHARS" in reason


def test_a_link_leaving_the_corpus_is_refused_and_reported(
    settings: Settings, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("PASSWORDS\n\nThe root password is hunter2.\n", "utf-8")
    (settings.corpus_dir / "passwd.txt").symlink_to(secret)
    report = update_index(settings)
    assert statuses(report)["passwd.txt"] == (
        "skipped",
        "a link to a file outside the corpus folder",
    )
    assert not any("hunter2" in c.text for c in load_build(report.folder).chunks)


def test_a_link_to_a_folder_outside_the_corpus_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.txt").write_text("PRIVATE\n\nThe safe code is 1234.\n", "utf-8")
    (settings.corpus_dir / "more").symlink_to(outside, target_is_directory=True)
    report = update_index(settings)
    assert statuses(report)["more"] == ("skipped", "a link to a folder outside the corpus folder")
    assert not any("1234" in c.text for c in load_build(report.folder).chunks)


@pytest.mark.parametrize("target", ["gone.txt", "../gone.txt", "/nonexistent/gone.txt"])
def test_a_link_whose_target_does_not_exist_is_reported_as_broken(
    settings: Settings, target: str
) -> None:
    (settings.corpus_dir / "dangling.txt").symlink_to(target)
    report = update_index(settings)
    assert statuses(report)["dangling.txt"] == (
        "skipped",
        "a broken link: its target does not exist",
    )


def test_a_loop_of_links_is_reported_as_broken(settings: Settings) -> None:
    (settings.corpus_dir / "a.txt").symlink_to("b.txt")
    (settings.corpus_dir / "b.txt").symlink_to("a.txt")
    found = statuses(update_index(settings))
    assert (
        found["a.txt"] == found["b.txt"] == ("skipped", "a broken link: its target does not exist")
    )
    assert found["brief.txt"][0] == "indexed"


def test_a_link_inside_the_corpus_is_read(settings: Settings) -> None:
    (settings.corpus_dir / "alias.txt").symlink_to(settings.corpus_dir / "brief.txt")
    assert statuses(update_index(settings))["alias.txt"][0] == "indexed"


# ---------------------------------------------------------------- faults: one clear line


def _unreadable(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Reading `name` fails as it does without read permission (tests may run as root)."""
    import docqa.indexing.corpus

    real = docqa.indexing.corpus.open_document

    def open_document(path: Path) -> BufferedReader:
        if path.name == name:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path)

    monkeypatch.setattr(docqa.indexing.corpus, "open_document", open_document)


def test_an_unreadable_file_is_reported_as_failed_and_the_rest_indexed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _unreadable(monkeypatch, "budget.txt")
    assert hash_corpus(settings.corpus_dir)["budget.txt"] == "unreadable: Permission denied"
    found = statuses(update_index(settings))
    assert found["budget.txt"] == ("failed", "cannot be read: Permission denied")
    assert found["brief.txt"][0] == "indexed"


def test_a_file_removed_between_listing_and_reading_is_left_out(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import docqa.indexing.build
    import docqa.indexing.corpus

    listed = list_corpus(settings.corpus_dir)
    (settings.corpus_dir / "budget.txt").unlink()
    monkeypatch.setattr(docqa.indexing.corpus, "list_corpus", lambda folder: listed)
    monkeypatch.setattr(docqa.indexing.build, "list_corpus", lambda folder: listed)
    assert set(hash_corpus(settings.corpus_dir)) == {"brief.txt"}
    assert [r.name for r in update_index(settings).documents] == ["brief.txt"]


def test_an_index_folder_that_is_a_file_is_one_clear_error(settings: Settings) -> None:
    settings.index_dir.write_text("not a folder", "utf-8")
    with pytest.raises(IndexBuildError, match=r"index folder .* is a file, not a folder"):
        update_index(settings)


def test_opening_an_index_folder_that_is_a_file_says_only_that(settings: Settings) -> None:
    settings.index_dir.write_text("not a folder", "utf-8")
    messages: list[str] = []
    with pytest.raises(IndexBuildError, match=r"index folder .* is a file, not a folder"):
        open_index(settings, messages.append)
    assert messages == []


def _deny_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening the lock file fails as in a read-only index folder (tests may run as root)."""
    import builtins

    real = builtins.open

    def guarded(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file).endswith(".lock"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)


def test_a_read_only_index_folder_is_one_clear_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _deny_lock(monkeypatch)
    with pytest.raises(IndexBuildError, match=r"cannot write to index folder .*Permission denied"):
        update_index(settings)


def test_a_stale_index_in_a_read_only_folder_is_used_with_a_warning(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = update_index(settings)
    (settings.corpus_dir / "budget.txt").write_text(OTHER.replace("two", "three"), "utf-8")
    _deny_lock(monkeypatch)
    messages: list[str] = []
    index = open_index(settings, messages.append)
    assert index.path == first.folder
    assert messages[-1].startswith("warning: cannot write to index folder")
    assert "answering from the previous index" in messages[-1]


def test_a_full_disk_during_a_build_keeps_the_previous_index_in_use(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = update_index(settings)
    (settings.corpus_dir / "new.txt").write_text("NEWS\n\nA new member joined.\n", "utf-8")

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(IndexBuildError, match="No space left on device"):
        update_index(settings)
    assert sorted(p.name for p in settings.index_dir.glob(".tmp-*")) == []
    messages: list[str] = []
    assert open_index(settings, messages.append).path == first.folder
    assert "No space left on device" in messages[-1]


def test_without_an_older_index_a_failed_build_is_still_an_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _deny_lock(monkeypatch)
    with pytest.raises(IndexBuildError):
        open_index(settings)


def test_a_missing_corpus_with_an_intact_index_answers_from_it_with_a_warning(
    settings: Settings,
) -> None:
    first = update_index(settings)
    for path in settings.corpus_dir.iterdir():
        path.unlink()
    settings.corpus_dir.rmdir()
    messages: list[str] = []
    assert open_index(settings, messages.append).path == first.folder
    assert "does not exist" in messages[-1]


def test_a_stale_index_without_auto_rebuild_is_still_refused(settings: Settings) -> None:
    update_index(settings)
    (settings.corpus_dir / "budget.txt").unlink()
    with pytest.raises(IndexStaleError, match=r"budget\.txt was removed"):
        open_index(settings.model_copy(update={"auto_rebuild": False}))
