"""Measure removing, changing and adding one file in a library of many files indexed together
(one big index segment): each update in a fresh process, with its time and peak RSS.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_library_update.py --files 60 --paragraphs 100
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

from docqa.bench.indexing import timed_build
from docqa.bench.processes import in_child
from docqa.indexing.store import current_build, read_manifest

WORDS = Path(__file__).resolve().parent.parent / "corpus" / "eu-nato-cooperation.txt"


def write_library(corpus: Path, files: int, paragraphs: int) -> None:
    """`files` text files of `paragraphs` paragraphs of 60 words drawn from the brief."""
    words = WORDS.read_text(encoding="utf-8").split()
    rng = random.Random(0)
    corpus.mkdir(parents=True)
    for number in range(files):
        body = "\n\n".join(
            " ".join(rng.choice(words) for _ in range(60)) + "." for _ in range(paragraphs)
        )
        (corpus / f"file{number:04d}.txt").write_text(f"FILE {number}\n\n{body}\n", "utf-8")


def segments(index: Path) -> str:
    folder = current_build(index)
    assert folder is not None
    entries = read_manifest(folder)["segments"]
    return ", ".join(f"{e['chunks']} chunks ({len(e.get('dropped', []))} dropped)" for e in entries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--paragraphs", type=int, default=100)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        corpus, index = Path(scratch) / "corpus", Path(scratch) / "index"
        write_library(corpus, options.files, options.paragraphs)
        steps = [
            ("full build", lambda: None, "full"),
            ("one file removed", lambda: (corpus / "file0003.txt").unlink(), "update"),
            (
                "one file changed",
                lambda: (corpus / "file0005.txt").write_text("CHANGED\n\nNew words.\n", "utf-8"),
                "update",
            ),
            (
                "one 2 KB file added",
                lambda: (corpus / "note.txt").write_text("NOTE\n\n" + "A note. " * 250, "utf-8"),
                "update",
            ),
        ]
        print("| step | seconds | CPU s | peak RSS MB | segments after |")
        print("|---|---|---|---|---|")
        for label, change, mode in steps:
            change()
            run = in_child(timed_build, str(corpus), str(index), mode)
            print(
                f"| {label} | {run['seconds']} | {run['cpu_seconds']} | {run['peak_rss_mb']} "
                f"| {segments(index)} |"
            )


if __name__ == "__main__":
    main()
