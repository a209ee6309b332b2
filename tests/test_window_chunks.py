"""The naive fixed-window chunker that `docqa eval --compare` measures the sections against."""

import pytest

from docqa.config import Settings
from docqa.indexing.chunking import map_to_document, window_chunks
from docqa.indexing.manifest import FORMAT_VERSION, chunker_description, stale_reasons
from docqa.models import Document

TEXT = "ALPHA beta gamma\n\n   delta epsilon zeta \neta theta iota kappa lambda mu."
# collapsed: "ALPHA beta gamma delta epsilon zeta eta theta iota kappa lambda mu." (67 chars)


def test_windows_have_the_size_and_overlap_asked_for() -> None:
    chunks = window_chunks(Document("d.txt", TEXT), size=30, overlap=10)
    collapsed = " ".join(TEXT.split())
    assert [c.text for c in chunks] == [collapsed[0:30], collapsed[20:50], collapsed[40:67]]
    assert [c.section for c in chunks] == ["", "", ""]
    assert [c.ordinal for c in chunks] == [0, 1, 2]


def test_window_positions_map_back_to_the_original_text() -> None:
    for chunk in window_chunks(Document("d.txt", TEXT), size=30, overlap=10):
        assert " ".join(TEXT[chunk.start : chunk.end].split()) == chunk.text.strip()
        for position, character in enumerate(chunk.text):
            if character != " ":
                assert TEXT[map_to_document(chunk, position)] == character


def test_windows_carry_sentence_spans_for_answer_selection() -> None:
    (chunk,) = window_chunks(Document("d.txt", "One sentence here. Another one follows."), 100, 0)
    assert [chunk.text[s:e] for s, e in chunk.sentences] == [
        "One sentence here.",
        "Another one follows.",
    ]


def test_an_overlap_as_large_as_the_window_is_refused() -> None:
    with pytest.raises(ValueError, match="overlap of 30 needs a window size above it"):
        window_chunks(Document("d.txt", TEXT), size=30, overlap=30)


def test_a_windows_index_is_never_taken_for_a_sections_index() -> None:
    sections, windows = Settings(), Settings(chunker="windows")
    manifest = {
        "format_version": FORMAT_VERSION,
        "model": sections.model,
        "encoder_precision": sections.encoder_precision,
        "documents": {},
    }
    built_with_sections = {**manifest, "chunker": chunker_description(sections)}
    assert stale_reasons(built_with_sections, sections, {}) == []
    assert stale_reasons(built_with_sections, windows, {}) == [
        "it was built with another chunker or other chunk sizes"
    ]
