"""Markdown: markdown-it-py's CommonMark parse gives ATX and setext headings, paragraphs,
lists, code and tables; inline markup (emphasis, links, entities) is reduced to its text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from docqa.ingest.base import Extracted, Part, assemble
from docqa.ingest.text import decode


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

    tokens = MarkdownIt("commonmark").enable("table").parse(source)
    row: list[str] = []
    rows: list[str] = []
    for i, token in enumerate(tokens):
        if token.type == "inline" and tokens[i - 1].type in ("th_open", "td_open"):
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


def read(data: bytes) -> Extracted:
    """Decode a Markdown file and return its blocks without markup."""
    source, encoding = decode(data)
    return assemble(markdown_parts(source), encoding=encoding)
