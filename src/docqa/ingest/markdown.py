"""Markdown: markdown-it-py's CommonMark parse gives ATX and setext headings, paragraphs,
lists, code and tables; inline markup (emphasis, links, entities) is reduced to its text.

Quotes and lists nested deeper than MAX_NESTING: markdown-it leaves out what lies beyond its
nesting limit; those lines are kept as plain paragraphs, their quote and list markers dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from docqa.ingest.base import Extracted, Part, assemble
from docqa.ingest.text import decode

MAX_NESTING = 100
"""Block nesting markdown-it parses (its CommonMark preset stops at 20): each level of a
quote costs two Python frames, so 100 levels stay well within Python's recursion limit."""
_CONTAINERS = frozenset({"blockquote_open", "list_item_open"})
_MARKERS = re.compile(r"(?:[ \t]*(?:>|(?:[-+*]|\d{1,9}[.)])(?=[ \t]|$)))*[ \t]*")
_LIST_MARKER = re.compile(r"(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)")
_HEADING = re.compile(r"(#{1,6})(?:[ \t]+|$)")
_LINE_BREAK = re.compile(r"\r\n?|\n")  # markdown-it's lines (not str.splitlines's)


def inline_text(token: Any) -> str:
    """The plain text of an inline token: markup dropped, link and image text kept."""
    pieces = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            pieces.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            pieces.append(" ")
        elif child.type == "image":
            pieces.append(child.content)  # the alt text
    return "".join(pieces)


def markdown_parts(source: str) -> Iterator[Part]:
    """Headings, paragraphs, code blocks and tables (one row per line), in order."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"maxNesting": MAX_NESTING}).enable("table")
    tokens = parser.parse(source)
    lines: list[str] | None = None
    row: list[str] = []
    rows: list[str] = []
    for i, token in enumerate(tokens):
        if token.type in _CONTAINERS and token.level + 1 >= MAX_NESTING and token.map:
            lines = _LINE_BREAK.split(source) if lines is None else lines
            yield from unnested_parts(parser, lines[token.map[0] : token.map[1]])
        elif token.type == "inline" and tokens[i - 1].type in ("th_open", "td_open"):
            row.append(inline_text(token))
        elif token.type == "tr_close":
            rows.append(" | ".join(row))
            row = []
        elif token.type == "table_close":
            yield Part("paragraph", "\n".join(rows))
            rows = []
        elif token.type == "inline" and tokens[i - 1].type == "heading_open":
            yield Part("heading", inline_text(token))
        elif token.type == "inline" and tokens[i - 1].type == "paragraph_open":
            yield Part("paragraph", inline_text(token))
        elif token.type in ("fence", "code_block"):
            yield Part("paragraph", token.content)
        elif token.type == "html_block":
            from docqa.ingest.html import visible_text

            yield Part("paragraph", visible_text(token.content))


def unnested_parts(parser: Any, lines: list[str]) -> Iterator[Part]:
    """Lines nested beyond the parser's limit as plain paragraphs (a list item starts a new
    one) and headings, without their quote and list markers."""
    paragraph: list[str] = []
    for line in [*lines, ""]:
        markers = _MARKERS.match(line)
        prefix = markers.group() if markers else ""
        text = line[len(prefix) :].strip()
        heading = _HEADING.match(text)
        if paragraph and (not text or heading or _LIST_MARKER.search(prefix)):
            yield Part("paragraph", _inline(parser, " ".join(paragraph)))
            paragraph = []
        if heading:
            yield Part("heading", _inline(parser, text[heading.end() :].rstrip("# \t")))
        elif text:
            paragraph.append(text)


def _inline(parser: Any, text: str) -> str:
    return "".join(inline_text(token) for token in parser.parseInline(text))


def read(data: bytes) -> Extracted:
    """Decode a Markdown file and return its blocks without markup."""
    source, encoding = decode(data)
    return assemble(markdown_parts(source), encoding=encoding)
