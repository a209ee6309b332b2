"""How an answer is shown in a terminal: its text, then its sources, each with the passage
around the sentence the answer took from it; wrapped at word boundaries on a terminal."""

from __future__ import annotations

import re
import shutil
import sys
import textwrap
from collections.abc import Collection

from docqa.models import Answer

EXCERPT_CHARS = 240
"""Characters of a source shown under its heading (about three terminal lines)."""
INDENT = "     "
_SPACE = re.compile(r"\s")


def terminal_columns() -> int | None:
    """The terminal's width when stdout is one; None (no wrapping) for a pipe or a file."""
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def format_answer(answer: Answer, columns: int | None = None, weak: Collection[int] = ()) -> str:
    """The answer for a person: the short answer when there is one, the evidence text under
    it, then numbered sources with section and score, each
    with the passage around its cited sentence; `weak` ranks are marked as weak matches and
    shown without a passage. Lines are wrapped to `columns` when given."""
    spans = cited_spans(answer)
    lines = [f"Answer: {answer.short_answer}", ""] if answer.short_answer else []
    lines += [*wrap(answer.text, columns), "", "Sources:"]
    for hit in answer.hits:
        marker = "*" if hit.rank in spans else " "
        page = f"p. {hit.chunk.page}, " if hit.chunk.page is not None else ""
        note = ", weak match" if hit.rank in weak else ""
        heading = (
            f"{marker}[{hit.rank}] {hit.chunk.section} - {hit.chunk.document} "
            f"({page}score {hit.score:.2f}{note}, chars {hit.chunk.start}-{hit.chunk.end})"
        )
        lines += wrap(heading, columns, INDENT)
        if hit.rank not in weak:
            passage = excerpt(hit.chunk.text, spans.get(hit.rank), EXCERPT_CHARS)
            lines += wrap(INDENT + passage, columns, INDENT)
    return "\n".join(lines)


def cited_spans(answer: Answer) -> dict[int, tuple[int, int]]:
    """For each cited source rank, the span (in its text) covering the sentences cited."""
    spans: dict[int, tuple[int, int]] = {}
    for citation in answer.citations:
        start, end = spans.get(citation.rank, (citation.start, citation.end))
        spans[citation.rank] = (min(start, citation.start), max(end, citation.end))
    return spans


def excerpt(text: str, span: tuple[int, int] | None, width: int) -> str:
    """About `width` characters of `text` around `span` (the start without one), cut at
    spaces, whitespace runs made one space, with "..." where text was left out. A cited span
    longer than `width` is shown whole."""
    start, end = span or (0, 0)
    room = max(0, width - (end - start))
    left = max(0, start - room // 2)
    right = min(len(text), end + room - (start - left))
    left = max(0, min(left, right - max(width, end - start)))  # the end came first: widen left
    if left > 0 and (space := _SPACE.search(text, left, start)):
        left = space.end()
    if right < len(text):
        spaces = [m.start() for m in _SPACE.finditer(text, end, right)]
        right = spaces[-1] if spaces else right
    passage = " ".join(text[left:right].split())
    return f"{'...' if left > 0 else ''}{passage}{'...' if right < len(text) else ''}"


def wrap(line: str, columns: int | None, indent: str = "") -> list[str]:
    """The line cut at spaces to fit `columns`, continuation lines indented; whole if None."""
    if columns is None or len(line) <= columns:
        return [line]
    return textwrap.wrap(
        line,
        width=columns,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
        drop_whitespace=True,
    ) or [line]
