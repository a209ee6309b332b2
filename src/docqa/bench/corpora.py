"""Generated corpora: the brief's documents shuffled and reworded, for scaling runs."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

# Word swaps applied to the brief's sentences; each generated document draws its own subset.
REWRITES = (
    ("cooperation", "collaboration"),
    ("organisations", "institutions"),
    ("organizations", "bodies"),
    ("Alliance", "coalition"),
    ("strengthen", "reinforce"),
    ("security", "safety"),
    ("defence", "defense"),
    ("members", "participants"),
    ("important", "significant"),
    ("however", "nevertheless"),
    ("However", "Nevertheless"),
    ("countries", "states"),
    ("both", "the two"),
    ("recently", "lately"),
    ("joint", "common"),
    ("partnership", "relationship"),
    ("threats", "dangers"),
    ("capabilities", "means"),
    ("increase", "growth"),
    ("mission", "operation"),
    ("support", "assistance"),
    ("European", "continental"),
)


def rewrite_sentence(text: str, swaps: dict[str, str]) -> str:
    """The sentence with every swapped word replaced."""
    return " ".join(swaps.get(word, word) for word in text.split(" "))


def generate_document(sections: list[tuple[str, list[Any]]], rng: random.Random) -> str:
    """A new document from the brief: each section's paragraphs shuffled and reworded."""
    swaps = dict(pair for pair in REWRITES if rng.random() < 0.5)
    parts = []
    for title, blocks in sections:
        if title != sections[0][0]:
            parts.append(title.upper())
        paragraphs = [rewrite_sentence(block.text, swaps) for block in blocks]
        rng.shuffle(paragraphs)
        parts.extend(paragraphs)
    return "\n\n".join(parts) + "\n"


def write_scaled_corpus(corpus_dir: Path, out_dir: Path, factor: int, seed: int = 0) -> Path:
    """A corpus of `factor` documents rewritten from those in corpus_dir."""
    from docqa.indexing.chunking import split_sections
    from docqa.indexing.corpus import read_corpus
    from docqa.ingest.cleaning import split_blocks

    sources = [split_sections(split_blocks(d.text)) for d in read_corpus(corpus_dir)]
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    for number in range(factor):
        text = generate_document(sources[number % len(sources)], rng)
        (out_dir / f"generated-{number:05d}.txt").write_text(text, encoding="utf-8")
    return out_dir
