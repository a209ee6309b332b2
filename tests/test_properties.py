"""Cleaning and chunking never crash, never lose text, and always point back to the source.

Property tests over arbitrary text (control characters, mixed scripts, emoji, CRLF, BOM,
lone surrogates, long lines) and over PDF-like text built from the brief's quirks, plus
explicit examples: empty and blank input, 5 MB single lines, headings, timelines,
hyphenated line ends, and the real brief.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from docqa.indexing.chunking import ChunkSettings, chunk_document, map_to_document, window_chunks
from docqa.ingest.cleaning import split_blocks
from docqa.models import Block, Chunk, Document

BRIEF = Path(__file__).resolve().parents[1] / "corpus" / "eu-nato-cooperation.txt"
EXAMPLES = 150
LONG_LINE_CHARS = 5_000_000
# Above this many characters of chunk text, positions are checked at the offset-map breaks
# (where the piecewise map can go wrong) instead of one by one.
EXHAUSTIVE_MAP_CHARS = 200_000

# ---------------------------------------------------------------- inputs

# Pieces of the brief's PDF quirks: wrapped lines ending in a space, page breaks made of
# blank lines holding spaces or NBSPs, capitals headings, dated timeline entries, words
# split by a hyphen at a line end, and real compounds (EU-NATO) split the same way.
FRAGMENTS = [
    "EU",
    "NATO",
    "EU-",
    "inter-",
    "national",
    "non-",
    "military",
    "well-",
    "known",
    "Cooperation",
    "the",
    "of",
    "Mr.",
    "A.",
    "e.g.",
    "end.",
    "Why?",
    "(1)",
    '"quoted."',
    "BACKROUND",
    "CONCLUSIONS AND OUTLOOK",
    "# Title",
    "## Sub title",
    "#",
    "June 2007 - ",
    "12 May 2008 – ",
    "2016: ",
    "-",
    "—",
    ",",
    ";",
    "Евросоюз",
    "北大西洋条約機構",
    "الناتو",
    "🇪🇺🤝",
    "\u00a0",
    "\ufeff",
    "\t",
    "\x0c",
    "\x1c",
    "\u2028",
    "\r\n",
    " \n",
    "\n",
    "\n\n",
    " \n \n\u00a0\n",
    " ",
]

settings_strategy = st.one_of(
    st.just(ChunkSettings()),
    # Any sizes the Settings class accepts, small ones included so short texts split too.
    st.builds(
        ChunkSettings,
        target_chars=st.integers(50, 600),
        max_chars=st.integers(100, 900),
        min_chars=st.integers(0, 200),
    ),
)
any_character = st.characters(exclude_categories=())
lone_surrogate = st.characters(categories=["Cs"])
# st.text never yields surrogates, so text with lone surrogates is joined from characters.
arbitrary_text = st.lists(st.one_of(any_character, lone_surrogate), max_size=400).map("".join)
pdf_like_text = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(any_character, max_size=6)), max_size=120
).map(" ".join)
glued_text = st.lists(st.sampled_from(FRAGMENTS), max_size=120).map("".join)
long_line = st.builds(
    lambda word, repeat, gap: (word + gap) * repeat,
    st.sampled_from(["x", "Word", "EU-NATO", "end.", "Евросоюз", "🤝"]),
    st.integers(200, 3000),
    st.sampled_from(["", " ", "  ", "\t", "\u00a0"]),
)
line = st.one_of(
    st.sampled_from(["BACKROUND", "CONCLUSIONS AND OUTLOOK ", "# Title", "### Sub-title", "NATO"]),
    st.lists(st.sampled_from(FRAGMENTS[:40]), min_size=1, max_size=12).map(" ".join),
)
line_break = st.sampled_from(["\n", "\n", " \n", "\r\n", "\n\n", " \n \n\u00a0\n"])
document_text = st.lists(st.tuples(line, line_break), max_size=40).map(
    lambda lines: "".join(text + end for text, end in lines)
)
texts = st.one_of(arbitrary_text, pdf_like_text, glued_text, long_line, document_text)

PDF_EXCERPT = (
    "EU-NATO coordination slowed down at the end of \n"
    "the second decade of the new millennium. However, \n"
    "strategic cooperation is discussed again. \n\n \n\n"
    "BACKROUND \n\n"
    "Although the EU and NATO are increasingly talking \n"
    "about closer cooperation, the nature of the two \n"
    "communities is different. The European Union is a non-\n"
    "military organization. The so-called Berlin Plus agree-\n"
    "ments gave the EU access to NATO assets and capa-\n"
    "\n \n\u00a0\n"
    "bilities. Both the EU-\nNATO staff and the Mr. \nSmith office took part.\n\n"
    "TIMELINE \n\n"
    "June 2007 - The EU and NATO agreed on a joint \ndeclaration. \n\n"
    "12 May 2008 – First meeting of the staffs. \n"
    "2016: Warsaw declaration. \n\n"
)
EXPLICIT = {
    "empty": "",
    "only whitespace": " \n\t \r\n\u00a0\n\x0c\u2028 \n\n",
    "long line without spaces": "abcdefghij" * (LONG_LINE_CHARS // 10),
    "long line with spaces": "The EU and NATO met again. " * (LONG_LINE_CHARS // 27),
    "heading only": "BACKROUND\n\n",
    "headings back to back": "BACKROUND\n\nCONCLUSIONS\n\n# Outlook\n\nSome text after them.\n",
    "timeline": (
        "TIMELINE\n\nJune 2007 - The EU and NATO agreed.\n\n"
        "June 2008 - Staff talks began.\nThey went on.\n\n2016: Warsaw.\n"
    ),
    "hyphens at line ends": (
        "The inter-\nnational staff of the EU-\nNATO office, a well-\nknown non-\nstop\n"
        "meet-\n\n \n\u00a0\nings across a page break, and a dash -\nalone.\n"
    ),
    "pdf excerpt": PDF_EXCERPT,
    "pdf excerpt with CRLF": PDF_EXCERPT.replace("\n", "\r\n"),
    "pdf excerpt with BOM": "\ufeff" + PDF_EXCERPT,
    "lone surrogates": "The EU \ud800 and NATO\udfff agreed.\n\n\udc00BACKROUND\n",
    "the brief": BRIEF.read_text(encoding="utf-8"),
}


# ---------------------------------------------------------------- invariants


def hyphen_tolerant_pattern(source: str) -> re.Pattern[str]:
    """A regex for `source`'s tokens in order, where a token ending in a hyphen at a line end
    may be glued to the next token with or without that hyphen (inter-/national, EU-/NATO)."""
    parts = [r"\s*"]
    tokens = list(re.finditer(r"\S+", source))
    for i, token in enumerate(tokens):
        word = token.group()
        after = source[token.end() : tokens[i + 1].start()] if i + 1 < len(tokens) else ""
        if len(word) > 1 and word.endswith("-") and "\n" in after:
            parts.append(re.escape(word[:-1]) + r"(?:-\s*)?")
        else:
            parts.append(re.escape(word) + (r"\s+" if i + 1 < len(tokens) else r"\s*"))
    return re.compile("".join(parts))


def same_tokens(source: str, cleaned: str) -> bool:
    """Whether `cleaned` holds `source`'s tokens, whitespace collapsed, line-end hyphens joined."""
    if source.split() == cleaned.split():
        return True
    return hyphen_tolerant_pattern(source).fullmatch(cleaned) is not None


def is_split_hyphen(text: str, position: int) -> bool:
    """A hyphen that ends a word at a line end, with more text on a later line."""
    if text[position] != "-" or position == 0 or text[position - 1].isspace():
        return False
    rest = text[position + 1 :]
    following = re.search(r"\S", rest)
    return following is not None and "\n" in rest[: following.start()]


def is_heading_marker(text: str, position: int, headings: list[Block]) -> bool:
    """A `#` of a Markdown heading line whose title is a heading block."""
    line_end = text.find("\n", position)
    line_end = len(text) if line_end == -1 else line_end
    line_start = text.rfind("\n", 0, position) + 1
    marks = text[line_start:line_end].lstrip()
    return (
        text[position] == "#"
        and marks.startswith("#")
        and any(line_start <= h.start < line_end for h in headings)
    )


@functools.cache
def explicit_result(name: str) -> tuple[list[Block], list[Chunk]]:
    text = EXPLICIT[name]
    return split_blocks(text), chunk_document(Document(f"{name}.txt", text), ChunkSettings())


def check_spans_match_source(text: str, chunks: list[Chunk]) -> None:
    for chunk in chunks:
        assert 0 <= chunk.start < chunk.end <= len(text), (chunk.start, chunk.end, len(text))
        source = text[chunk.start : chunk.end]
        assert same_tokens(source, chunk.text), (source, chunk.text)


def check_no_chunk_crosses_a_heading(blocks: list[Block], chunks: list[Chunk]) -> None:
    headings = [b for b in blocks if b.kind == "heading"]
    for chunk in chunks:
        for heading in headings:
            overlap = heading.start < chunk.end and chunk.start < heading.end
            assert not overlap, (heading.text, chunk.text)


def check_nothing_dropped(text: str, blocks: list[Block], chunks: list[Chunk]) -> None:
    headings = [b for b in blocks if b.kind == "heading"]
    spans = sorted([(c.start, c.end) for c in chunks] + [(h.start, h.end) for h in headings])
    covered_to = 0
    gaps = []
    for start, end in [*spans, (len(text), len(text))]:
        if start > covered_to:
            gaps.append((covered_to, start))
        covered_to = max(covered_to, end)
    for start, end in gaps:
        for found in re.finditer(r"\S", text[start:end]):
            position = start + found.start()
            context = text[max(0, position - 40) : position + 40]
            assert is_split_hyphen(text, position) or is_heading_marker(text, position, headings), (
                f"{text[position]!r} at {position} is in no chunk: {context!r}"
            )


def check_ids_unique(chunks: list[Chunk]) -> None:
    ids = [chunk.id for chunk in chunks]
    assert len(set(ids)) == len(ids)


def check_sentences_inside(chunks: list[Chunk]) -> None:
    for chunk in chunks:
        for start, end in chunk.sentences:
            assert 0 <= start < end <= len(chunk.text), (start, end, len(chunk.text))


def positions_to_check(chunk: Chunk, exhaustive: bool) -> range | set[int]:
    if exhaustive:
        return range(len(chunk.text))
    breaks = {clean for clean, _ in chunk.offsets}
    return {p for b in breaks for p in (b - 1, b) if 0 <= p < len(chunk.text)} | {
        len(chunk.text) - 1
    }


def check_positions_map_inside(text: str, chunks: list[Chunk]) -> None:
    exhaustive = sum(len(c.text) for c in chunks) <= EXHAUSTIVE_MAP_CHARS
    for chunk in chunks:
        breaks = [clean for clean, _ in chunk.offsets]
        assert breaks == sorted(set(breaks)) and breaks[0] == 0, breaks
        for position in positions_to_check(chunk, exhaustive):
            mapped = map_to_document(chunk, position)
            assert chunk.start <= mapped < chunk.end, (position, mapped, chunk.start, chunk.end)
            if not chunk.text[position].isspace():
                assert text[mapped] == chunk.text[position], (position, mapped)


CHECKS = {
    "spans match source": lambda text, blocks, chunks: check_spans_match_source(text, chunks),
    "no chunk crosses a heading": lambda text, blocks, chunks: check_no_chunk_crosses_a_heading(
        blocks, chunks
    ),
    "nothing dropped": check_nothing_dropped,
    "ids unique": lambda text, blocks, chunks: check_ids_unique(chunks),
    "sentences inside": lambda text, blocks, chunks: check_sentences_inside(chunks),
    "positions map inside": lambda text, blocks, chunks: check_positions_map_inside(text, chunks),
}

bounded = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def chunks_of(text: str, chunk_settings: ChunkSettings) -> list[Chunk]:
    return chunk_document(Document("doc.txt", text), chunk_settings)


# ---------------------------------------------------------------- properties


@bounded
@given(text=texts)
@example(text="")
@example(text="BACKROUND\n\n")
@example(text="a\ud800b\n\n\udfff")
def test_split_blocks_never_crashes_and_stays_inside_the_text(text: str) -> None:
    for block in split_blocks(text):
        assert 0 <= block.start < block.end <= len(text)
        assert block.text and not block.text.isspace()


@bounded
@given(text=texts, chunk_settings=settings_strategy)
def test_chunk_spans_hold_the_chunk_text(text: str, chunk_settings: ChunkSettings) -> None:
    check_spans_match_source(text, chunks_of(text, chunk_settings))


@bounded
@given(text=texts, chunk_settings=settings_strategy)
def test_chunks_never_cross_a_heading(text: str, chunk_settings: ChunkSettings) -> None:
    check_no_chunk_crosses_a_heading(split_blocks(text), chunks_of(text, chunk_settings))


@bounded
@given(text=texts, chunk_settings=settings_strategy)
def test_no_text_is_dropped(text: str, chunk_settings: ChunkSettings) -> None:
    check_nothing_dropped(text, split_blocks(text), chunks_of(text, chunk_settings))


@bounded
@given(text=texts, chunk_settings=settings_strategy)
def test_chunk_ids_are_unique(text: str, chunk_settings: ChunkSettings) -> None:
    check_ids_unique(chunks_of(text + "\n\n" + text, chunk_settings))


@bounded
@given(text=texts, chunk_settings=settings_strategy)
def test_sentence_spans_lie_inside_the_chunk(text: str, chunk_settings: ChunkSettings) -> None:
    check_sentences_inside(chunks_of(text, chunk_settings))


@bounded
@given(text=texts, chunk_settings=settings_strategy)
def test_chunk_positions_map_into_the_chunk_span(text: str, chunk_settings: ChunkSettings) -> None:
    check_positions_map_inside(text, chunks_of(text, chunk_settings))


# ---------------------------------------------------------------- explicit examples


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("name", EXPLICIT)
def test_explicit_example_keeps_invariant(name: str, check: str) -> None:
    blocks, chunks = explicit_result(name)
    CHECKS[check](EXPLICIT[name], blocks, chunks)


def test_long_lines_are_cut_into_bounded_chunks() -> None:
    for name in ("long line without spaces", "long line with spaces"):
        _, chunks = explicit_result(name)
        assert chunks and max(len(c.text) for c in chunks) <= ChunkSettings().max_chars


def test_the_brief_has_its_sections() -> None:
    blocks, chunks = explicit_result("the brief")
    assert "BACKROUND" in [b.text for b in blocks if b.kind == "heading"]
    assert {c.section for c in chunks} >= {"Introduction", "BACKROUND"}


@bounded
@given(text=texts, size=st.integers(50, 600), overlap=st.integers(0, 49))
def test_window_chunks_hold_their_text_and_map_inside(text: str, size: int, overlap: int) -> None:
    chunks = window_chunks(Document("doc.txt", text), size, overlap)
    check_spans_match_source(text, chunks)
    check_positions_map_inside(text, chunks)
