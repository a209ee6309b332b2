"""Cleaned blocks -> section-aware chunks. Pure functions, no I/O."""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from docqa.ingest.base import page_at
from docqa.ingest.cleaning import OffsetMap, split_blocks
from docqa.models import Block, Chunk, Document

INTRODUCTION = "Introduction"
# A sentence ends at . ! or ? (maybe followed by closing quotes or brackets), then space,
# then something that can start a sentence.
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*\s+(?=[\"“‘(\[]?[A-Z0-9])")
_ABBREVIATION = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|St|No|Art|vs|etc|e\.g|i\.e|cf)|\b[A-Z])\.$")
_ABBREVIATION_CHARS = 8  # longer than any abbreviation above ("Prof.")


@dataclass(frozen=True)
class ChunkSettings:
    """How passages are sized: packed to `target_chars`, never above `max_chars`."""

    target_chars: int = 800
    max_chars: int = 1280
    min_chars: int = 120

    def describe(self) -> dict[str, int | str]:
        """The settings as recorded in the index manifest (an index cut otherwise is stale)."""
        return {
            "target_chars": self.target_chars,
            "max_chars": self.max_chars,
            "min_chars": self.min_chars,
            "table_rows": "one passage each",
        }


@dataclass
class _Piece:
    """A span of one block's text that will become (part of) a chunk."""

    block: Block
    start: int
    end: int
    sentences: list[tuple[int, int]]
    mapping: OffsetMap
    """The block's offset map, built once per block: rebuilding it per piece is quadratic."""

    @property
    def size(self) -> int:
        return self.end - self.start


def split_sentences(text: str, max_chars: int) -> list[tuple[int, int]]:
    """Sentence spans of `text`; a sentence longer than `max_chars` is cut at spaces."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.start() + len(match.group().rstrip())
        # Only the sentence's tail can end in an abbreviation; searching the whole of it made
        # a run of "A. B. C. ..." quadratic.
        if _ABBREVIATION.search(text, max(start, end - _ABBREVIATION_CHARS), end):
            continue
        spans.append((start, end))
        start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return [piece for span in spans for piece in _cut_long(text, span, max_chars)]


def _cut_long(text: str, span: tuple[int, int], max_chars: int) -> Iterator[tuple[int, int]]:
    start, end = span
    while end - start > max_chars:
        cut = text.rfind(" ", start + 1, start + max_chars)
        cut = cut if cut > start else start + max_chars
        yield start, cut
        start = cut + 1 if text[cut] == " " else cut
    if end > start:
        yield start, end


def split_sections(blocks: list[Block]) -> list[tuple[str, list[Block]]]:
    """Group blocks under their headings; text before the first heading is the introduction."""
    sections: list[tuple[str, list[Block]]] = []
    title, body = INTRODUCTION, list[Block]()
    for block in blocks:
        if block.kind == "heading":
            if body:
                sections.append((title, body))
            title, body = block.text, []
        else:
            body.append(block)
    if body:
        sections.append((title, body))
    return sections


def pack_block(block: Block, settings: ChunkSettings) -> list[_Piece]:
    """Split one block at sentence boundaries into pieces near the target size."""
    sentences = split_sentences(block.text, settings.max_chars)
    mapping = OffsetMap(list(block.offsets))
    pieces: list[_Piece] = []
    current: list[tuple[int, int]] = []
    for sentence in sentences:
        size = sentence[1] - current[0][0] if current else 0
        if current and (
            size > settings.max_chars or current[-1][1] - current[0][0] >= settings.target_chars
        ):
            pieces.append(_Piece(block, current[0][0], current[-1][1], current, mapping))
            current = []
        current.append(sentence)
    if current:
        pieces.append(_Piece(block, current[0][0], current[-1][1], current, mapping))
    return pieces


def group_pieces(blocks: list[Block], settings: ChunkSettings) -> list[list[_Piece]]:
    """Pieces of a section, short paragraphs merged with their neighbour; entries and table
    rows alone, so that a question about a cell retrieves its row and the reader reads that
    row only (rows run together in one passage had the reader answer from the wrong row)."""
    groups: list[list[_Piece]] = []
    for block in blocks:
        for piece in pack_block(block, settings):
            previous = groups[-1] if groups else None
            mergeable = (
                previous is not None
                and block.kind == "paragraph"
                and previous[-1].block.kind == "paragraph"
                and (
                    piece.size < settings.min_chars
                    or sum(p.size for p in previous) < settings.min_chars
                )
                and sum(p.size + 1 for p in previous) + piece.size <= settings.max_chars
            )
            if mergeable and previous is not None:
                previous.append(piece)
            else:
                groups.append([piece])
    return groups


def make_chunk(document: str, section: str, ordinal: int, pieces: list[_Piece]) -> Chunk:
    """Join pieces into a chunk with its sentence spans and offsets into the document."""
    parts: list[str] = []
    sentences: list[tuple[int, int]] = []
    offsets: list[tuple[int, int]] = []
    length = 0
    for piece in pieces:
        if parts:
            parts.append("\n")
            length += 1
        offsets.extend(_local_offsets(piece, piece.mapping, length))
        sentences.extend(
            (s - piece.start + length, e - piece.start + length) for s, e in piece.sentences
        )
        parts.append(piece.block.text[piece.start : piece.end])
        length += piece.size
    text = "".join(parts)
    first, last = pieces[0], pieces[-1]
    start = first.mapping(first.start)
    end = last.mapping(last.end - 1) + 1
    # surrogatepass: a str may hold lone surrogates (not from a UTF-8 file, but from the API).
    key = f"{document}\x00{section}\x00{text}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha1(key).hexdigest()[:16]
    return Chunk(
        digest, document, section, ordinal, start, end, text, tuple(sentences), tuple(offsets)
    )


def _local_offsets(piece: _Piece, mapping: OffsetMap, base: int) -> list[tuple[int, int]]:
    """Offset pairs of a piece, re-based to the piece's position inside the chunk text."""
    pairs = [(base, mapping(piece.start))]
    first = bisect.bisect_right(mapping.clean, piece.start)
    last = bisect.bisect_left(mapping.clean, piece.end)
    kept = zip(mapping.clean[first:last], mapping.original[first:last], strict=True)
    return pairs + [(clean - piece.start + base, original) for clean, original in kept]


def chunk_document(document: Document, settings: ChunkSettings) -> list[Chunk]:
    """Split a document into chunks that never cross a heading."""
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    blocks = list(document.blocks) or split_blocks(document.text)
    for section, section_blocks in split_sections(blocks):
        for pieces in group_pieces(section_blocks, settings):
            chunk = make_chunk(document.name, section, len(chunks), pieces)
            chunk = replace(chunk, page=page_at(document.page_starts, chunk.start))
            repeats = seen.get(chunk.id, 0)
            seen[chunk.id] = repeats + 1
            if repeats:  # the same text twice in one section: keep ids unique and stable
                chunk = replace(chunk, id=f"{chunk.id[:13]}-{repeats:02d}")
            chunks.append(chunk)
    return chunks


def map_to_document(chunk: Chunk, position: int) -> int:
    """The position in the original document of a position in the chunk's text."""
    return OffsetMap(list(chunk.offsets))(position)


def window_chunks(document: Document, size: int, overlap: int) -> list[Chunk]:
    """Fixed windows of `size` characters of whitespace-collapsed text, each overlapping the
    previous one by `overlap`: blind to headings, paragraphs and sentences (a naive baseline)."""
    if not 0 <= overlap < size:
        raise ValueError(f"a window overlap of {overlap} needs a window size above it, got {size}")
    text, pairs = _collapse_whitespace(document.text)
    mapping = OffsetMap(pairs)
    chunks: list[Chunk] = []
    begin = 0
    while begin < len(text):
        end = min(begin + size, len(text))
        window = text[begin:end]
        inside = slice(
            bisect.bisect_right(mapping.clean, begin), bisect.bisect_left(mapping.clean, end)
        )
        offsets = [(0, mapping(begin))] + [(c - begin, o) for c, o in pairs[inside]]
        key = f"{document.name}\x00{begin}\x00{window}".encode("utf-8", "surrogatepass")
        digest = hashlib.sha1(key).hexdigest()
        chunks.append(
            Chunk(
                digest[:16],
                document.name,
                "",
                len(chunks),
                mapping(begin),
                mapping(end - 1) + 1,
                window,
                tuple(split_sentences(window, size)),
                tuple(offsets),
                page_at(document.page_starts, mapping(begin)),
            )
        )
        if end == len(text):
            break
        begin += size - overlap
    return chunks


def _collapse_whitespace(text: str) -> tuple[str, list[tuple[int, int]]]:
    """Text with every whitespace run made one space, and (clean, original) offset pairs."""
    parts: list[str] = []
    pairs: list[tuple[int, int]] = []
    length = 0
    for match in re.finditer(r"\S+", text):
        piece, original = (
            (" " + match.group(), match.start() - 1) if parts else (match.group(), match.start())
        )
        if not pairs or original - pairs[-1][1] != length - pairs[-1][0]:
            pairs.append((length, original))
        parts.append(piece)
        length += len(piece)
    return "".join(parts), pairs
