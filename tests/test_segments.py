"""The index in segments: a long document's segment is kept (hard-linked, never read) while
small files come and go beside it, and the segments are searched as one index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import pytest

from docqa.answer.retrieval import dense_ranking, lexical_ranking
from docqa.config import Settings
from docqa.indexing import segments
from docqa.indexing.build import update_index
from docqa.indexing.index import Index
from docqa.indexing.lexical import Bm25, TermCounts, tokenize
from docqa.indexing.store import load_build, read_manifest
from fakes import HashedBagOfWords, tiny_settings, use_fake_embedder

LONG_ROWS = 12
"""Segment size from which a segment is kept apart, in these tests (chunks are paragraphs)."""

TOPICS = ("harbour", "lighthouse", "keeper", "storm", "ferry", "granite", "signal", "tide")


def book(chapters: int) -> str:
    """A text of `chapters` one-paragraph chunks, each naming two topics and its number."""
    return "\n\n".join(
        f"Chapter {n} tells of the {TOPICS[n % 8]} and the {TOPICS[(n * 3 + 1) % 8]} "
        f"in the year {1800 + n}."
        for n in range(chapters)
    )


NOTE = "MEETING\n\nThe meeting moved the ferry timetable to Thursday."
MEMO = "MEMO\n\nThe granite quay was repaired by the harbour board."


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    use_fake_embedder(monkeypatch)
    monkeypatch.setattr(segments, "SEGMENT_ROWS", LONG_ROWS)
    return tiny_settings(tmp_path, {"book.txt": book(40), "note.txt": NOTE})


def segment_holding(folder: Path, document: str) -> dict[str, Any]:
    manifest = read_manifest(folder)
    (entry,) = [e for e in manifest["segments"] if document in e["documents"]]
    return entry


def inode(folder: Path, entry: dict[str, Any]) -> int:
    return (folder / "segments" / entry["name"] / "sentences.npy").stat().st_ino


def record_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    loaded: list[str] = []
    real = segments.load_segment

    def load_segment(folder: Path, name: str) -> Any:
        loaded.append(name)
        return real(folder, name)

    monkeypatch.setattr(segments, "load_segment", load_segment)
    return loaded


def test_a_long_document_gets_a_segment_of_its_own(settings: Settings) -> None:
    folder = update_index(settings).folder
    entries = read_manifest(folder)["segments"]
    assert sorted(e["documents"] for e in entries) == [["book.txt"], ["note.txt"]]
    assert segment_holding(folder, "book.txt")["chunks"] == 40


def test_a_file_added_beside_a_long_one_leaves_its_segment_linked_and_unread(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = update_index(settings).folder
    long_segment = segment_holding(first, "book.txt")
    linked = inode(first, long_segment)
    loaded = record_loads(monkeypatch)
    (settings.corpus_dir / "memo.txt").write_text(MEMO, encoding="utf-8")
    report = update_index(settings)
    assert report.embedded_documents == 1
    assert segment_holding(report.folder, "book.txt") == long_segment
    assert inode(report.folder, long_segment) == linked  # a hard link, not a copy
    assert long_segment["name"] not in loaded
    index = load_build(report.folder)
    assert {c.document for c in index.chunks} == {"book.txt", "note.txt", "memo.txt"}


def test_a_file_removed_beside_a_long_one_leaves_its_segment_unread(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = update_index(settings).folder
    long_segment = segment_holding(first, "book.txt")
    loaded = record_loads(monkeypatch)
    (settings.corpus_dir / "note.txt").unlink()
    report = update_index(settings)
    assert loaded == []  # the note's segment is dropped, the book's linked
    assert read_manifest(report.folder)["segments"] == [long_segment]
    assert {c.document for c in load_build(report.folder).chunks} == {"book.txt"}


PARTS = {f"part{n}.txt": book(5).replace("Chapter", f"Part{n} chapter") for n in range(4)}
"""Four files of five chunks, each naming its own part ("Part2"): one segment of 20."""


@pytest.fixture
def parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings over PARTS, with segments of LONG_ROWS kept apart."""
    use_fake_embedder(monkeypatch)
    monkeypatch.setattr(segments, "SEGMENT_ROWS", LONG_ROWS)
    return tiny_settings(tmp_path / "parts", PARTS)


def test_a_file_removed_from_a_long_segment_is_dropped_unread_and_the_others_kept(
    parts: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = parts
    first = load_build(update_index(settings).folder)
    assert len(first.segments) == 1
    loaded = record_loads(monkeypatch)
    (settings.corpus_dir / "part2.txt").unlink()
    report = update_index(settings)
    assert report.embedded_documents == 0 and loaded == []
    (entry,) = read_manifest(report.folder)["segments"]
    assert (entry["name"], entry["dropped"]) == (first.segments[0].name, ["part2.txt"])
    after = load_build(report.folder)
    assert {c.document for c in after.chunks} == {"part0.txt", "part1.txt", "part3.txt"}
    for row, chunk in enumerate(after.chunks):
        before = first.passage_vector(first.row_of[chunk.id])
        np.testing.assert_array_equal(after.passage_vector(row), before)
        assert after.sentence_terms(row) == first.sentence_terms(first.row_of[chunk.id])


def test_an_index_with_a_dropped_file_searches_as_one_built_without_it(
    parts: Settings, tmp_path: Path
) -> None:
    settings = parts
    update_index(settings)
    (settings.corpus_dir / "part2.txt").unlink()
    dropped = load_build(update_index(settings).folder)
    rest = {name: text for name, text in PARTS.items() if name != "part2.txt"}
    fresh = load_build(update_index(tiny_settings(tmp_path / "fresh", rest)).folder)
    assert dropped.dropped == [frozenset({"part2.txt"})] and fresh.dropped == [frozenset()]
    for question in (*QUESTIONS, "Part2 chapter harbour", "Part3 chapter granite"):
        assert rankings(dropped, question) == rankings(fresh, question), question
    only = dropped.rows_of(frozenset({"part3.txt"}))
    rows, _ = dropped.dense_search(HashedBagOfWords().embed(["Part3 harbour"])[0], 20, only)
    assert sorted(rows) == only.tolist()


def test_dropping_over_a_quarter_of_a_segment_writes_it_again(parts: Settings) -> None:
    settings = parts
    first = update_index(settings).folder
    (name,) = [e["name"] for e in read_manifest(first)["segments"]]
    (settings.corpus_dir / "part2.txt").unlink()
    update_index(settings)
    (settings.corpus_dir / "part1.txt").unlink()  # 10 of 20 chunks dropped, 10 left: small
    report = update_index(settings)
    (entry,) = read_manifest(report.folder)["segments"]
    assert entry["name"] != name and "dropped" not in entry
    assert entry["documents"] == ["part0.txt", "part3.txt"]


def test_a_changed_file_of_a_long_segment_is_found_only_as_it_is_now(parts: Settings) -> None:
    settings = parts
    update_index(settings)
    (settings.corpus_dir / "part1.txt").write_text("Part1 was rewritten.", "utf-8")
    index = load_build(update_index(settings).folder)
    texts = [chunk.text for chunk in index.chunks if chunk.document == "part1.txt"]
    assert texts == ["Part1 was rewritten."]
    assert (
        lexical_ranking(index, tokenize(["Part1"])[0], 10).rows
        == index.rows_of(frozenset({"part1.txt"})).tolist()
    )


def test_a_kept_segment_whose_files_changed_is_not_kept_and_all_is_read_again(
    settings: Settings,
) -> None:
    first = update_index(settings).folder
    long_segment = segment_holding(first, "book.txt")
    with open(first / "segments" / long_segment["name"] / "chunks.jsonl", "a") as handle:
        handle.write("\n")
    (settings.corpus_dir / "memo.txt").write_text(MEMO, encoding="utf-8")
    report = update_index(settings)
    assert report.embedded_documents == 3
    assert segment_holding(report.folder, "book.txt")["name"] != long_segment["name"]


def test_segments_already_loaded_are_taken_from_the_index_answering(settings: Settings) -> None:
    previous = load_build(update_index(settings).folder)
    (settings.corpus_dir / "memo.txt").write_text(MEMO, encoding="utf-8")
    index = load_build(update_index(settings).folder, previous)
    (long_now,) = [s for s in index.segments if s.documents() == ["book.txt"]]
    (long_before,) = [s for s in previous.segments if s.documents() == ["book.txt"]]
    assert long_now is long_before


QUESTIONS = (
    "What happened to the harbour in 1807?",
    "Tell me about the storm and the granite",
    "When did the ferry timetable move?",
    "keeper signal tide",
)


def rankings(index: Index, question: str) -> list[tuple[list[float], dict[str, float]]]:
    """Dense and lexical: the top scores, and the chunks scored above the last of them (ties
    at the cut may fall either way)."""
    vector = HashedBagOfWords().embed([question])[0]
    found = []
    for ranking in (
        dense_ranking(index, vector, 10),
        lexical_ranking(index, tokenize([question])[0], 10),
    ):
        scores = [round(score, 5) for score in ranking.scores]
        above = {
            index.chunks[row].id: score
            for row, score in zip(ranking.rows, scores, strict=True)
            if score > min(scores)
        }
        found.append((scores, above))
    return found


def test_segments_are_searched_as_one_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake_embedder(monkeypatch)
    corpus = {"book.txt": book(40), "note.txt": NOTE, "memo.txt": MEMO}
    one = load_build(update_index(tiny_settings(tmp_path / "one", corpus)).folder)
    monkeypatch.setattr(segments, "SEGMENT_ROWS", LONG_ROWS)
    cut = load_build(update_index(tiny_settings(tmp_path / "cut", corpus)).folder)
    assert (len(one.segments), len(cut.segments)) == (1, 2)
    for question in QUESTIONS:
        assert rankings(cut, question) == rankings(one, question), question
    only = cut.rows_of(frozenset({"note.txt"}))
    rows, _ = cut.dense_search(HashedBagOfWords().embed(["harbour"])[0], 5, only)
    assert {cut.chunks[row].document for row in rows} == {"note.txt"}


def test_bm25_over_parts_scores_as_bm25s_over_all_chunks() -> None:
    texts = [book(30).split("\n\n")[n] for n in range(30)] + [NOTE, MEMO, "storm storm storm"]
    reference = bm25s.BM25()
    reference.index(tokenize(texts), show_progress=False)
    parts = Bm25([TermCounts.of(texts[:7]), TermCounts.of(texts[7:20]), TermCounts.of(texts[20:])])
    for query in (*QUESTIONS, "storm storm harbour", "a word no chunk has"):
        tokens = tokenize([query])[0]
        expected = reference.get_scores(tokens) if tokens else np.zeros(len(texts))
        np.testing.assert_allclose(parts.get_scores(tokens), expected, rtol=1e-5, atol=1e-6)


def test_term_counts_of_some_rows_keep_only_their_terms() -> None:
    counts = TermCounts.of(["storm harbour", "ferry", "storm storm tide"])
    part = counts.rows([2])
    assert sorted(part.terms) == ["storm", "tide"]
    assert dict(zip(part.terms, part.counts.toarray()[0].tolist(), strict=True)) == {
        "storm": 2,
        "tide": 1,
    }
