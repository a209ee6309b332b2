"""The data that flows through docqa: documents, chunks, hits and answers. No logic."""

from __future__ import annotations

from dataclasses import dataclass, field


class DocqaError(Exception):
    """Base of every error docqa reports to its user as a clear message."""


@dataclass(frozen=True)
class Block:
    """A cleaned paragraph or heading, with the span it covers in the original text."""

    kind: str  # "heading" | "paragraph" | "entry" (a dated timeline entry) | "row" (a table row)
    text: str
    start: int
    end: int
    offsets: tuple[tuple[int, int], ...] = field(repr=False, compare=False)
    """(position in `text`, position in the original) where each contiguous piece starts."""
    page: int | None = None
    """1-based page the block starts on, for paged formats; None otherwise."""


@dataclass(frozen=True)
class Document:
    """A corpus file: its name (path relative to the corpus folder) and extracted text.

    `blocks` are the cleaned blocks a format reader found (empty: cut `text` by the plain-text
    rules); `page_starts[i]` is where page i + 1 starts in `text` (empty: an unpaged format).
    """

    name: str
    text: str
    blocks: tuple[Block, ...] = field(default=(), repr=False, compare=False)
    page_starts: tuple[int, ...] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class Chunk:
    """A passage that is indexed and cited: never crosses a section heading."""

    id: str
    document: str
    section: str
    ordinal: int
    start: int
    end: int
    text: str
    sentences: tuple[tuple[int, int], ...] = ()
    """Sentence spans as (start, end) offsets into `text`."""
    offsets: tuple[tuple[int, int], ...] = field(default=(), repr=False, compare=False)
    """(position in `text`, position in the original document) where each piece starts."""
    page: int | None = None
    """1-based page where the chunk starts, for paged formats (PDF); None otherwise."""


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score and the rankings it came from."""

    chunk: Chunk
    rank: int
    score: float
    dense_score: float
    lexical_score: float


@dataclass(frozen=True)
class Citation:
    """An answer sentence: the hit it came from and its span in the chunk and document."""

    rank: int
    chunk_id: str
    text: str
    start: int
    end: int
    document_start: int
    document_end: int


@dataclass(frozen=True)
class Answer:
    """The reply to one question: short text, whether it is answered, and its evidence."""

    question: str
    text: str
    answered: bool
    confidence: float
    hits: tuple[Hit, ...]
    citations: tuple[Citation, ...]
    timings_ms: dict[str, float]
    query: str = ""
    """The query actually searched (differs from `question` for follow-ups)."""
    short_answer: str | None = None
    """The span of the evidence that answers (a date, number, name or phrase), or None when
    abstaining or when no span can be singled out."""


@dataclass(frozen=True)
class DocumentRecord:
    """What happened to one corpus file in the last index build: the per-file report."""

    id: str
    """Stable identifier derived from the name (safe in a URL)."""
    name: str
    type: str
    """Format read ("pdf", "docx", "html", "markdown", "text"), or the file's suffix."""
    status: str  # "indexed" | "skipped" | "failed"
    reason: str = ""
    pages: int | None = None
    sections: int = 0
    chunks: int = 0
    encoding: str | None = None
    """The encoding a text file was decoded with (detected)."""
    size: int = 0
    sha256: str = ""
    added_at: str = ""
    """When this version of the file was first indexed (UTC, ISO 8601)."""
    modified_ns: int = 0
    """The file's modification time when it was read (0: not recorded, it is hashed again):
    while its size and this stay the same, the file is taken as unchanged without reading it."""
    chars: int = 0
    """Characters of extracted text (0 when the file was not extracted)."""
    limit: str = ""
    """For a file skipped for a limit: the setting it was over (`max_file_bytes`,
    `max_document_chars`, `max_pages`, `read_timeout_s` or `read_memory_mb`); a run with
    other limits judges it again."""
    limit_value: float = 0
    """The value of that setting when the file was judged."""
    ocr_pages: int = 0
    """How many of its pages were read by OCR (scanned pages without a text layer)."""
