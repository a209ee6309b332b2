"""Verdicts on corpus files with the fake embedder: the default size limits, a skipped file
judged again when a limit changes, unchanged files never read again (reads are counted through
corpus.open_document), and identical content stored once by `docqa add`."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict
from io import BufferedReader
from pathlib import Path

import pytest

import docqa.indexing.corpus
from docqa.cli import main
from docqa.config import Settings
from docqa.indexing.build import IndexReport, update_index
from docqa.indexing.corpus import CorpusFile, read_file
from docqa.indexing.manifest import compare_corpus, records_of
from docqa.indexing.store import current_build, read_manifest
from docqa.library import Added, add_files, remove_documents
from fakes import tiny_settings, use_fake_embedder

BRIEF = "SUMMIT\n\nThe summit took place in Vilnius in July 2023 after long talks.\n"
OTHER = "BUDGET\n\nThe common budget grew by two percent over the previous financial year.\n"
BOOK = "CHAPTER\n\n" + "The keeper of the lighthouse wrote the weather down each night. " * 400
LONG_AGO_NS = 1_600_000_000 * 10**9
"""A modification time long past (September 2020): such a file's size and time are trusted."""


@pytest.fixture(autouse=True)
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_embedder(monkeypatch)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return tiny_settings(tmp_path, {"brief.txt": BRIEF, "budget.txt": OTHER})


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each corpus file's bytes were opened for reading, by file name."""
    opened: Counter[str] = Counter()
    real = docqa.indexing.corpus.open_document

    def open_document(path: Path) -> BufferedReader:
        opened[path.name] += 1
        return real(path)

    monkeypatch.setattr(docqa.indexing.corpus, "open_document", open_document)
    return opened


def statuses(report: IndexReport) -> dict[str, tuple[str, str]]:
    return {r.name: (r.status, r.reason) for r in report.documents}


def add_old_file(settings: Settings, name: str, text: str) -> Path:
    """A corpus file last modified long ago (as a book put there earlier would be)."""
    path = settings.corpus_dir / name
    path.write_text(text, "utf-8")
    os.utime(path, ns=(LONG_AGO_NS, LONG_AGO_NS))
    return path


# ---------------------------------------------------------------- default limits


def test_a_text_of_three_million_characters_is_read_under_the_default_limits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "book.txt"
    path.write_text("CHAPTER\n\n" + "word " * 600_000, "utf-8")  # 3,000,009 characters
    defaults = Settings()
    document, record = read_file(
        CorpusFile("book.txt", path), defaults.max_file_bytes, defaults.max_document_chars
    )
    assert record.status == "indexed", record.reason
    assert document is not None and len(document.text) > 2_000_000


def test_the_default_limits_take_a_text_of_50_million_characters_and_one_such_upload() -> None:
    defaults = Settings()
    assert defaults.max_document_chars == 50_000_000
    assert defaults.max_file_bytes >= 2 * defaults.max_document_chars  # 2 bytes a character
    assert defaults.max_upload_bytes > defaults.max_file_bytes  # one such file, and its framing


# ---------------------------------------------------------------- a limit changed


def test_raising_the_character_limit_indexes_a_file_skipped_for_it_without_force(
    settings: Settings,
) -> None:
    limited = settings.model_copy(update={"max_document_chars": len(BRIEF)})
    [skipped] = [r for r in update_index(limited).documents if r.name == "budget.txt"]
    assert (skipped.status, skipped.limit, skipped.limit_value) == (
        "skipped",
        "max_document_chars",
        len(BRIEF),
    )

    report = update_index(settings)

    assert report.rebuilt and statuses(report)["budget.txt"][0] == "indexed"


def test_raising_the_file_size_limit_indexes_a_file_skipped_for_it_without_force(
    settings: Settings,
) -> None:
    limited = settings.model_copy(update={"max_file_bytes": len(BRIEF.encode())})
    assert "DOCQA_MAX_FILE_BYTES" in statuses(update_index(limited))["budget.txt"][1]

    assert statuses(update_index(settings))["budget.txt"][0] == "indexed"


def test_a_file_that_fits_a_raised_limit_makes_the_index_stale(settings: Settings) -> None:
    limited = settings.model_copy(update={"max_document_chars": len(BRIEF)})
    manifest = read_manifest(update_index(limited).folder)

    assert compare_corpus(manifest, limited) == []
    [reason] = compare_corpus(manifest, settings)
    assert reason.startswith("budget.txt was skipped for its size and may fit the limits now")


def test_a_file_still_over_a_changed_limit_is_judged_again_without_being_read(
    settings: Settings, reads: Counter[str]
) -> None:
    add_old_file(settings, "book.txt", BOOK)
    update_index(settings.model_copy(update={"max_document_chars": 10_000}))
    reads.clear()

    lower = settings.model_copy(update={"max_document_chars": 5_000})
    (settings.corpus_dir / "new.txt").write_text("NEWS\n\nA new member joined.\n", "utf-8")
    report = update_index(lower)

    [book] = [r for r in report.documents if r.name == "book.txt"]
    assert book.status == "skipped" and book.limit_value == 5_000
    assert f"{len(BOOK):,} characters is over the limit of 5,000" in book.reason
    assert reads["book.txt"] == 0


def test_a_file_skipped_for_a_limit_by_an_earlier_docqa_is_read_again_once_it_may_fit(
    settings: Settings,
) -> None:
    update_index(settings.model_copy(update={"max_document_chars": len(BRIEF)}))
    folder = current_build(settings.index_dir)
    assert folder is not None
    manifest = read_manifest(folder)
    # As docqa wrote it before records named their limit and modification time.
    manifest["records"] = [
        {k: v for k, v in asdict(r).items() if k not in {"limit", "limit_value", "modified_ns"}}
        for r in records_of(manifest)
    ]
    (folder / "manifest.json").write_text(json.dumps(manifest), "utf-8")

    assert statuses(update_index(settings))["budget.txt"][0] == "indexed"


# ---------------------------------------------------------------- unchanged files are not read


def test_an_unchanged_skipped_or_damaged_file_is_never_read_by_add_remove_or_index(
    settings: Settings, reads: Counter[str], tmp_path: Path
) -> None:
    add_old_file(settings, "book.txt", BOOK)
    add_old_file(settings, "image.txt", "\x00\x01\x02 binary " * 50)
    add_old_file(settings, "damaged.pdf", "%PDF-1.4 cut short")
    limited = settings.model_copy(update={"max_file_bytes": 5_000})
    first = statuses(update_index(limited))
    assert first["book.txt"][0] == first["image.txt"][0] == "skipped"
    assert first["damaged.pdf"][0] == "failed"
    reads.clear()

    source = tmp_path / "notes.txt"
    source.write_text("NOTES\n\nThe treasurer keeps the keys.\n", "utf-8")
    add_files(limited.corpus_dir, [source])
    update_index(limited)
    remove_documents(limited.corpus_dir, ["notes.txt"])
    update_index(limited)
    again = update_index(limited)

    assert not again.rebuilt and statuses(again) == first
    assert reads["book.txt"] == reads["image.txt"] == reads["damaged.pdf"] == 0


def test_an_unchanged_indexed_file_is_not_read_to_check_the_index(
    settings: Settings, reads: Counter[str]
) -> None:
    add_old_file(settings, "book.txt", BOOK)
    update_index(settings)
    reads.clear()

    assert not update_index(settings).rebuilt
    assert reads["book.txt"] == 0


def test_a_touched_file_keeps_its_vectors_and_its_new_time_spares_the_next_read(
    settings: Settings, reads: Counter[str]
) -> None:
    path = add_old_file(settings, "book.txt", BOOK)
    update_index(settings)
    os.utime(path, ns=(LONG_AGO_NS + 10**9, LONG_AGO_NS + 10**9))
    (settings.corpus_dir / "new.txt").write_text("NEWS\n\nA new member joined.\n", "utf-8")

    report = update_index(settings)

    assert report.embedded_documents == 1  # new.txt; the book kept its vectors
    [book] = [r for r in report.documents if r.name == "book.txt"]
    assert book.modified_ns == LONG_AGO_NS + 10**9
    reads.clear()
    (settings.corpus_dir / "new.txt").unlink()
    update_index(settings)
    assert reads["book.txt"] == 0


def test_a_file_rewritten_within_the_same_clock_tick_is_still_seen_as_changed(
    settings: Settings,
) -> None:
    path = settings.corpus_dir / "brief.txt"
    update_index(settings)
    written = path.stat().st_mtime_ns
    path.write_text(BRIEF.replace("Vilnius", "Tallinn"), "utf-8")  # the same size
    os.utime(path, ns=(written, written))  # as a clock that has not ticked since leaves it

    report = update_index(settings)

    assert report.rebuilt and report.embedded_documents == 1


# ---------------------------------------------------------------- identical content once


def test_adding_bytes_the_library_holds_under_another_name_stores_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    copy = tmp_path / "summit copy.txt"
    copy.write_text(BRIEF, "utf-8")

    assert add_files(settings.corpus_dir, [copy]) == [Added("brief.txt", stored=False)]
    assert Added("brief.txt", stored=False).detail == "already in the library as brief.txt"
    assert sorted(p.name for p in settings.corpus_dir.iterdir()) == ["brief.txt", "budget.txt"]


def test_adding_new_bytes_under_a_taken_name_keeps_both_or_replaces_with_replace(
    settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "brief.txt"
    source.write_text(OTHER.replace("two", "three"), "utf-8")

    assert add_files(settings.corpus_dir, [source]) == [Added("brief (2).txt", stored=True)]
    assert (settings.corpus_dir / "brief.txt").read_text("utf-8") == BRIEF
    assert add_files(settings.corpus_dir, [source], replace=True) == [
        Added("brief.txt", stored=True)
    ]
    assert (settings.corpus_dir / "brief.txt").read_text("utf-8") == source.read_text("utf-8")


def test_docqa_add_of_a_copy_says_already_in_the_library_as_its_name(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folders = ["--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir)]
    copy = tmp_path / "copy.txt"
    copy.write_text(OTHER, "utf-8")

    assert main([*folders, "add", str(copy)]) == 0

    assert f"{copy}: already in the library as budget.txt" in capsys.readouterr().out
    assert not (settings.corpus_dir / "copy.txt").exists()


def test_a_copy_is_answered_without_running_its_format_reader(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import docqa.library

    checked: list[str] = []
    real = docqa.library.check_content

    def check_content(name: str, data: bytes) -> None:
        checked.append(name)
        real(name, data)

    monkeypatch.setattr(docqa.library, "check_content", check_content)
    copy = tmp_path / "again.txt"
    copy.write_text(BRIEF, "utf-8")

    [added] = add_files(settings.corpus_dir, [copy])

    assert added == Added("brief.txt", stored=False) and checked == []
