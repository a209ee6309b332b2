"""PDF-extracted text -> headings, paragraphs and dated entries, with offsets to the source.

The brief was extracted from a PDF: lines are wrapped at ~50 characters, a page break is a
run of blank lines (some holding only spaces or non-breaking spaces) that may fall in the
middle of a sentence, headings are lines in capitals, and the timeline is a list of
paragraphs that start with a date. Every cleaned character keeps its position in the
original text, so a chunk or an answer sentence can always be shown where it came from.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from docqa.models import Block

_TOKEN = re.compile(r"\S+")
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
)
DATED_ENTRY = re.compile(rf"^(?:\d{{1,2}}\s+)?(?:{_MONTH}\s+)?\d{{4}}\s*[-–—:]\s+\S")
_MARKDOWN_HEADING = re.compile(r"^#{1,6}\s+(\S.*)$")
_TERMINAL = re.compile(r"[.!?][\"'”’)\]]*$")
_MAX_HEADING_CHARS = 80


@dataclass
class _Line:
    tokens: list[tuple[str, int]]  # (token, original start)

    @property
    def text(self) -> str:
        return " ".join(token for token, _ in self.tokens)


class OffsetMap:
    """Maps positions in cleaned text to positions in the original text, piecewise."""

    def __init__(self, pairs: list[tuple[int, int]]) -> None:
        self.clean = [clean for clean, _ in pairs]
        self.original = [original for _, original in pairs]

    def __call__(self, position: int) -> int:
        i = bisect.bisect_right(self.clean, position) - 1
        return self.original[i] + (position - self.clean[i])


class _Builder:
    """Joins original tokens into cleaned text, recording where every piece came from."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pairs: list[tuple[int, int]] = []
        self.length = 0

    def add(self, text: str, original: int) -> None:
        if not text:
            return
        last = self.pairs[-1] if self.pairs else None
        contiguous = last is not None and original - last[1] == self.length - last[0]
        if not contiguous:
            self.pairs.append((self.length, original))
        self.parts.append(text)
        self.length += len(text)

    def block(self, kind: str) -> Block:
        text = "".join(self.parts)
        mapping = OffsetMap(self.pairs)
        return Block(kind, text, mapping(0), mapping(len(text) - 1) + 1, tuple(self.pairs))


def read_lines(text: str) -> list[_Line | None]:
    """Split text into lines of whitespace-separated tokens; None marks a blank line."""
    lines: list[_Line | None] = []
    start = 0
    for raw in text.split("\n"):
        tokens = [(m.group(), start + m.start()) for m in _TOKEN.finditer(raw)]
        lines.append(_Line(tokens) if tokens else None)
        start += len(raw) + 1
    return lines


def group_paragraphs(lines: list[_Line | None]) -> list[list[_Line]]:
    """Group consecutive non-blank lines."""
    groups: list[list[_Line]] = []
    current: list[_Line] = []
    for line in lines:
        if line is None:
            if current:
                groups.append(current)
            current = []
        else:
            current.append(line)
    if current:
        groups.append(current)
    return groups


def is_heading(lines: list[_Line]) -> bool:
    """A heading is one short line in capitals (or a Markdown `#` line)."""
    if len(lines) != 1:
        return False
    text = lines[0].text
    if _MARKDOWN_HEADING.match(text):
        return True
    letters = [c for c in text if c.isalpha()]
    return (
        len(letters) >= 4
        and len(text) <= _MAX_HEADING_CHARS
        and all(c.isupper() for c in letters)
        and not DATED_ENTRY.match(text)
        and not text.endswith((",", ";"))
    )


def keeps_hyphen(before: str, after: str, vocabulary: set[str]) -> bool:
    """Decide whether a hyphen at a line end is part of the word (EU-NATO) or a split."""
    stem = before[:-1]
    word_after = _WORD.match(after)
    if not stem or not stem[-1].isalpha() or word_after is None:
        return True
    if not (stem[-1].islower() and after[0].islower()):
        return True  # EU-/NATO, non-/EU: a capital on either side marks a real compound
    joined_tail = _WORD.match(stem[::-1])
    head = joined_tail.group()[::-1] if joined_tail else stem
    hyphenated = f"{head}-{word_after.group()}".lower()
    joined = f"{head}{word_after.group()}".lower()
    return hyphenated in vocabulary and joined not in vocabulary


def _append_lines(builder: _Builder, lines: list[_Line], vocabulary: set[str]) -> None:
    for i, line in enumerate(lines):
        for j, (token, original) in enumerate(line.tokens):
            last_of_line = j == len(line.tokens) - 1
            next_line = lines[i + 1] if i + 1 < len(lines) else None
            if last_of_line and next_line and token.endswith("-") and len(token) > 1:
                after = next_line.tokens[0][0]
                if not keeps_hyphen(token, after, vocabulary):
                    builder.add(token[:-1], original)
                    continue
                builder.add(token, original)
                continue
            builder.add(token, original)
            if not (last_of_line and next_line is None):
                builder.add(" ", original + len(token))


def continues(previous: list[_Line], following: list[_Line]) -> bool:
    """Whether a paragraph broken by blank lines (a page break) goes on in `following`."""
    last_token = previous[-1].tokens[-1][0]
    first_token = following[0].tokens[0][0]
    if _TERMINAL.search(last_token) or DATED_ENTRY.match(following[0].text):
        return False
    return first_token[0].islower() or last_token.endswith((",", "-"))


def split_blocks(text: str) -> list[Block]:
    """Clean one document into headings, paragraphs and dated entries, in order."""
    vocabulary = {w.lower() for w in _WORD.findall(text)}
    groups = group_paragraphs(read_lines(text))
    merged: list[tuple[str, list[_Line]]] = []
    for group in groups:
        if is_heading(group):
            merged.append(("heading", group))
        elif merged and merged[-1][0] != "heading" and continues(merged[-1][1], group):
            merged[-1][1].extend(group)
        else:
            kind = "entry" if DATED_ENTRY.match(group[0].text) else "paragraph"
            merged.append((kind, list(group)))
    blocks = []
    for kind, lines in merged:
        if kind == "heading" and _MARKDOWN_HEADING.match(lines[0].text):
            lines = [_Line(lines[0].tokens[1:])]  # drop the "#" marks, keep the title
        builder = _Builder()
        _append_lines(builder, lines, vocabulary)
        blocks.append(builder.block(kind))
    return blocks


def block_offsets(block: Block) -> OffsetMap:
    """The offset map of a block's text back to the original document."""
    return OffsetMap(list(block.offsets))
