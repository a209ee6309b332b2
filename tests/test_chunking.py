"""chunking: section-aware chunks of the EU-NATO brief, sentence splitting, offsets.

Expected values were read off corpus/eu-nato-cooperation.txt by hand, not produced by the code.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from docqa.indexing.chunking import ChunkSettings, chunk_document, map_to_document, split_sentences
from docqa.ingest.cleaning import split_blocks
from docqa.models import Chunk, Document

BRIEF_PATH = Path(__file__).resolve().parent.parent / "corpus" / "eu-nato-cooperation.txt"
BRIEF_NAME = "eu-nato-cooperation.txt"

# How each dated line of the TIMELINE starts in the file (some use an en dash).
TIMELINE_STARTS = [
    "February 1992 - ",
    "June 1992 - ",
    "January 1994 - ",
    "June 1996 – ",
    "June 1999 - ",
    "December 1999 - ",
    "January 2001 – ",
    "May 2001 - ",
    "December 2002 - ",
    "March 2003 – ",
    "May 2003 - ",
    "July 2003 - ",
    "November 2003 - ",
    "November 2005 - ",
    "March 2006 - ",
    "2010 - ",
    "November 2010 - ",
    "February 2016 - ",
    "July 2016 - ",
    "December 2016 – ",
    "June 2017 - ",
    "December 2017 - ",
    "July 2018 - ",
    "June 2021 - ",
]


@pytest.fixture(scope="module")
def brief() -> str:
    return BRIEF_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def chunks(brief: str) -> list[Chunk]:
    return chunk_document(Document(BRIEF_NAME, brief), ChunkSettings())


def chunk_holding(chunks: list[Chunk], phrase: str) -> Chunk:
    found = [c for c in chunks if phrase in " ".join(c.text.split())]
    assert len(found) == 1, f"{phrase!r} is in {len(found)} chunks"
    return found[0]


def chunk_texts(text: str, settings: ChunkSettings) -> list[tuple[str, str]]:
    return [(c.section, c.text) for c in chunk_document(Document("hand.txt", text), settings)]


# --- the brief --------------------------------------------------------------------------------


def test_every_chunk_lies_between_its_heading_and_the_next(brief: str, chunks: list[Chunk]) -> None:
    headings = [b for b in split_blocks(brief) if b.kind == "heading"]
    bounds = {"Introduction": (0, headings[0].start)}
    for heading, following in zip(headings, [*headings[1:], None], strict=True):
        bounds[heading.text] = (heading.end, following.start if following else len(brief))
    for chunk in chunks:
        low, high = bounds[chunk.section]
        assert low <= chunk.start < chunk.end <= high, (chunk.section, chunk.text[:60])


def test_brief_chunks_cover_all_five_sections_and_the_introduction(chunks: list[Chunk]) -> None:
    assert list(dict.fromkeys(c.section for c in chunks)) == [
        "Introduction",
        "BACKROUND",
        "TYPES OF TECHNICAL COOPERATION",
        "REGIONAL COOPERATION",
        "TIMELINE",
        "ADDITIONAL RESOURCES AND INFORMATION",
    ]


@pytest.mark.parametrize("start", TIMELINE_STARTS)
def test_each_timeline_entry_is_a_chunk_of_its_own(chunks: list[Chunk], start: str) -> None:
    found = [c for c in chunks if c.text.startswith(start)]
    assert len(found) == 1, f"{len(found)} chunks start with {start!r}"
    others = [s for s in TIMELINE_STARTS if s != start]
    line_starts = [s for s in others if re.search(rf"(?:^|\n){re.escape(s)}", found[0].text)]
    assert line_starts == []
    assert found[0].section == "TIMELINE"


def test_timeline_chunks_are_exactly_the_24_entries(chunks: list[Chunk]) -> None:
    assert len([c for c in chunks if c.section == "TIMELINE"]) == 24


def test_entry_broken_by_a_page_break_is_one_chunk(chunks: list[Chunk]) -> None:
    chunk = chunk_holding(chunks, "December 2002 - ")
    assert chunk.text == (
        "December 2002 - The NATO-EU Declaration on the European Security and Defence Policy "
        "(ESDP) reaffirms the EU's secure access to NATO capabilities, including for the "
        "EU’s’ own military operations."
    )


def test_brief_chunks_are_never_longer_than_max_chars(chunks: list[Chunk]) -> None:
    assert max(len(c.text) for c in chunks) <= ChunkSettings().max_chars


def test_sfor_handover_is_in_regional_cooperation(chunks: list[Chunk]) -> None:
    chunk = chunk_holding(
        chunks,
        "took over the operations in Bosnia and Herzegovina from NATO's Stabilization Force "
        "(SFOR) in 2004",
    )
    assert chunk.section == "REGIONAL COOPERATION"


def test_chunk_ids_are_the_same_in_two_runs(brief: str) -> None:
    first = chunk_document(Document(BRIEF_NAME, brief), ChunkSettings())
    second = chunk_document(Document(BRIEF_NAME, brief), ChunkSettings())
    assert [c.id for c in first] == [c.id for c in second]
    assert len({c.id for c in first}) == len(first)


def test_editing_one_passage_changes_only_its_chunk_id(brief: str, chunks: list[Chunk]) -> None:
    edited = brief.replace("(SFOR) in 2004.", "(SFOR) in 2005.")
    assert edited != brief
    after = chunk_document(Document(BRIEF_NAME, edited), ChunkSettings())
    changed = [i for i, (a, b) in enumerate(zip(chunks, after, strict=True)) if a.id != b.id]
    assert changed == [chunks.index(chunk_holding(chunks, "(SFOR) in 2004"))]


def test_every_chunk_word_maps_to_the_same_word_in_the_brief(
    brief: str, chunks: list[Chunk]
) -> None:
    for chunk in chunks:
        for word in re.finditer(r"\S+", chunk.text):
            start = map_to_document(chunk, word.start())
            end = map_to_document(chunk, word.end() - 1) + 1
            # A word may span a line break in the file ("EU-\nNATO"); nothing else differs.
            assert "".join(brief[start:end].split()) == word.group(), (chunk.id, word.group())


# --- hand-made texts --------------------------------------------------------------------------


def test_abbreviation_followed_by_a_number_does_not_end_a_sentence() -> None:
    text = "Under Art. 5 an attack on one is an attack on all. The Allies agree."
    assert split_sentences(text, 800) == [(0, 50), (51, 68)]


def test_initials_of_a_country_do_not_end_a_sentence() -> None:
    text = "The U.S. Congress agreed. The EU did too."
    assert split_sentences(text, 800) == [(0, 25), (26, 41)]


def test_sentence_ends_after_the_closing_quote() -> None:
    text = 'They called it "a new era." Then they left.'
    assert split_sentences(text, 800) == [(0, 27), (28, 43)]


def test_sentence_may_start_with_an_opening_quote() -> None:
    text = 'It ended. "Next," she said.'
    assert split_sentences(text, 800) == [(0, 9), (10, 27)]


def test_lowercase_after_a_full_stop_does_not_start_a_sentence() -> None:
    text = "Approx. ten states joined. Then more."
    assert split_sentences(text, 800) == [(0, 26), (27, 37)]


def test_long_sentence_without_punctuation_is_cut_at_spaces_under_max_chars() -> None:
    text = " ".join(["abcd"] * 400)  # 1999 characters, a space every fifth one
    assert split_sentences(text, 800) == [(0, 799), (800, 1599), (1600, 1999)]


def test_word_longer_than_max_chars_is_cut_at_max_chars() -> None:
    text = "x" * 250
    assert split_sentences(text, 100) == [(0, 100), (100, 200), (200, 250)]


SHORT = ChunkSettings(target_chars=100, max_chars=200, min_chars=120)


def test_short_paragraphs_of_a_section_are_merged() -> None:
    text = "ALPHA SECTION\n\nThe first short note.\n\nThe second short note.\n"
    assert chunk_texts(text, SHORT) == [
        ("ALPHA SECTION", "The first short note.\nThe second short note.")
    ]


def test_short_paragraphs_are_not_merged_across_a_heading() -> None:
    text = "ALPHA SECTION\n\nThe first short note.\n\nBETA SECTION\n\nThe second short note.\n"
    assert chunk_texts(text, SHORT) == [
        ("ALPHA SECTION", "The first short note."),
        ("BETA SECTION", "The second short note."),
    ]


def test_text_before_the_first_heading_is_the_introduction() -> None:
    text = "An opening line.\n\nALPHA SECTION\n\nThe body.\n"
    assert chunk_texts(text, SHORT) == [
        ("Introduction", "An opening line."),
        ("ALPHA SECTION", "The body."),
    ]


def test_short_dated_entries_are_not_merged() -> None:
    text = "TIMELINE\n\nMay 2001 - A meeting.\n\nJune 2002 - Another one.\n"
    assert chunk_texts(text, SHORT) == [
        ("TIMELINE", "May 2001 - A meeting."),
        ("TIMELINE", "June 2002 - Another one."),
    ]


def test_merged_paragraphs_with_their_separator_stay_within_max_chars() -> None:
    # Two 100-character paragraphs: merged they would be 201 characters with the "\n".
    first, second = "A" + "a" * 98 + ".", "B" + "b" * 98 + "."
    text = f"ALPHA SECTION\n\n{first}\n\n{second}\n"
    assert chunk_texts(text, SHORT) == [("ALPHA SECTION", first), ("ALPHA SECTION", second)]


def test_long_paragraph_is_split_at_sentences_near_the_target() -> None:
    sentences = [f"Sentence number {n} is about sixty characters long overall." for n in range(4)]
    text = "ALPHA SECTION\n\n" + " ".join(sentences) + "\n"
    settings = ChunkSettings(target_chars=100, max_chars=200, min_chars=0)
    assert chunk_texts(text, settings) == [
        ("ALPHA SECTION", " ".join(sentences[:2])),
        ("ALPHA SECTION", " ".join(sentences[2:])),
    ]


def test_chunk_word_joined_across_a_line_end_maps_to_both_halves() -> None:
    text = "ALPHA SECTION\n\nBetter coopera-\ntion is needed.\n"
    [chunk] = chunk_document(Document("hand.txt", text), SHORT)
    assert chunk.text == "Better cooperation is needed."
    start = chunk.text.index("cooperation")
    assert map_to_document(chunk, start) == text.index("coopera-")
    last = start + len("cooperation") - 1
    assert map_to_document(chunk, last) == text.index("tion is") + len("tion") - 1
    assert map_to_document(chunk, chunk.text.index("is needed")) == text.index("is needed")
