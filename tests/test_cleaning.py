"""cleaning.split_blocks on the EU-NATO brief and on small hand-made texts.

Expected values were read off corpus/eu-nato-cooperation.txt by hand, not produced by the code.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from docqa.ingest.cleaning import split_blocks
from docqa.models import Block

BRIEF_PATH = Path(__file__).resolve().parent.parent / "corpus" / "eu-nato-cooperation.txt"

# The lines of the brief that start a dated entry under TIMELINE (lines 394-523 of the file).
TIMELINE_DATES = [
    "February 1992",
    "June 1992",
    "January 1994",
    "June 1996",
    "June 1999",
    "December 1999",
    "January 2001",
    "May 2001",
    "December 2002",
    "March 2003",
    "May 2003",
    "July 2003",
    "November 2003",
    "November 2005",
    "March 2006",
    "2010",
    "November 2010",
    "February 2016",
    "July 2016",
    "December 2016",
    "June 2017",
    "December 2017",
    "July 2018",
    "June 2021",
]


@pytest.fixture(scope="module")
def brief() -> str:
    return BRIEF_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def blocks(brief: str) -> list[Block]:
    return split_blocks(brief)


def block_holding(blocks: list[Block], phrase: str) -> Block:
    found = [b for b in blocks if phrase in b.text]
    assert len(found) == 1, f"{phrase!r} is in {len(found)} blocks"
    return found[0]


def texts(text: str) -> list[tuple[str, str]]:
    return [(b.kind, b.text) for b in split_blocks(text)]


# --- the brief --------------------------------------------------------------------------------


def test_brief_headings_are_the_five_capitalised_titles_in_order(blocks: list[Block]) -> None:
    assert [b.text for b in blocks if b.kind == "heading"] == [
        "BACKROUND",
        "TYPES OF TECHNICAL COOPERATION",
        "REGIONAL COOPERATION",
        "TIMELINE",
        "ADDITIONAL RESOURCES AND INFORMATION",
    ]


def test_brief_lines_are_rejoined_into_paragraphs(blocks: list[Block]) -> None:
    assert [b.text for b in blocks if "\n" in b.text] == []
    first = blocks[0].text
    assert first.startswith(
        "EU-NATO coordination slowed down at the end of the second decade of the new millennium."
    )


def test_paragraph_broken_by_a_page_break_continues_in_one_block(blocks: list[Block]) -> None:
    block = block_holding(blocks, "At the end of 2020,")
    assert (
        "At the end of 2020, Commission Vice-President and EU High Representative Josep Borrell "
        "made concrete proposals"
    ) in block.text


def test_sentence_split_by_a_page_break_after_a_lowercase_word_continues(
    blocks: list[Block],
) -> None:
    block = block_holding(blocks, "They followed up on the")
    assert "They followed up on the steps taken in the 1990s to strengthen" in block.text


def test_timeline_entry_split_by_a_page_break_stays_one_entry(blocks: list[Block]) -> None:
    block = block_holding(blocks, "December 2002 - ")
    assert block.kind == "entry"
    assert block.text.endswith("own military operations.")


def test_hyphen_of_a_compound_at_a_line_end_is_kept(blocks: list[Block]) -> None:
    assert "joint EU-NATO Task Force on Cyber Security" in block_holding(blocks, "Task Force").text
    assert "the NATO-EU Strategic Partnership" in block_holding(blocks, "Lisbon Summit").text


def test_brief_has_24_dated_timeline_entries_from_february_1992_to_june_2021(
    blocks: list[Block],
) -> None:
    entries = [b.text for b in blocks if b.kind == "entry"]
    dates = [re.match(r"(?:[A-Z][a-z]+ )?\d{4} [-–] ", e) for e in entries]
    assert [d.group()[:-3] if d else e[:20] for d, e in zip(dates, entries, strict=True)] == (
        TIMELINE_DATES
    )


def test_resources_with_dates_in_brackets_are_paragraphs_not_entries(blocks: list[Block]) -> None:
    block = block_holding(blocks, "NATO: Relations with the EU")
    assert (block.kind, block.text) == ("paragraph", "NATO: Relations with the EU (21 June 2021)")


def test_each_block_span_holds_its_words_in_order(brief: str, blocks: list[Block]) -> None:
    # The brief has no word split at a line end, so only whitespace differs ("EU-\nNATO").
    for block in blocks:
        span = brief[block.start : block.end]
        assert "".join(span.split()) == "".join(block.text.split()), block.text[:60]


def test_block_span_of_a_joined_word_covers_both_halves() -> None:
    text = "Better coopera-\ntion is needed.\n"
    [block] = split_blocks(text)
    assert (block.start, block.end) == (0, len(text) - 1)


# --- hand-made texts --------------------------------------------------------------------------


def test_word_split_at_a_line_end_is_joined() -> None:
    assert texts("Better coopera-\ntion is needed.\n") == [
        ("paragraph", "Better cooperation is needed.")
    ]


def test_hyphen_before_a_capital_is_kept() -> None:
    assert texts("A concern for non-\nEU members.\n") == [
        ("paragraph", "A concern for non-EU members.")
    ]


def test_hyphenated_word_seen_elsewhere_keeps_its_hyphen_at_a_line_end() -> None:
    text = "A well-known fact.\nIt is also well-\nknown here.\n"
    assert texts(text) == [("paragraph", "A well-known fact. It is also well-known here.")]


def test_line_of_non_breaking_spaces_separates_paragraphs() -> None:
    text = "First paragraph ends here.\n\u00a0 \u00a0\nSecond paragraph starts here.\n"
    assert texts(text) == [
        ("paragraph", "First paragraph ends here."),
        ("paragraph", "Second paragraph starts here."),
    ]


def test_finished_sentence_before_a_blank_line_is_not_continued() -> None:
    text = "The first ends.\n\n\n\nthe second starts in lower case.\n"
    assert texts(text) == [
        ("paragraph", "The first ends."),
        ("paragraph", "the second starts in lower case."),
    ]


def test_line_starting_with_a_date_and_dash_is_an_entry() -> None:
    text = "TIMELINE\n\nMay 2001 - A first meeting\ntakes place.\n\n2010 - A new concept.\n"
    assert texts(text) == [
        ("heading", "TIMELINE"),
        ("entry", "May 2001 - A first meeting takes place."),
        ("entry", "2010 - A new concept."),
    ]


def test_markdown_title_line_is_a_heading_without_its_marks() -> None:
    blocks = split_blocks("# Title\n\nSome text here.\n")
    assert [(b.kind, b.text, b.start, b.end) for b in blocks] == [
        ("heading", "Title", 2, 7),
        ("paragraph", "Some text here.", 9, 24),
    ]


def test_capitalised_line_ending_in_a_comma_is_not_a_heading() -> None:
    assert texts("NATO AND THE EU,\n\nare partners.\n") == [
        ("paragraph", "NATO AND THE EU, are partners.")
    ]
