"""Reading the corpus folder: which files are documents, their text and their hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from docqa.models import DocqaError, Document

SUFFIXES = (".txt", ".md")


class CorpusError(DocqaError):
    """The corpus folder is missing, empty or holds a file that cannot be read."""


def corpus_files(corpus_dir: Path) -> list[Path]:
    """Every .txt and .md file under the corpus folder, in a stable order."""
    if not corpus_dir.is_dir():
        raise CorpusError(
            f"corpus folder {corpus_dir} does not exist: create it and add .txt or .md files"
        )
    files = sorted(
        p
        for p in corpus_dir.rglob("*")
        if p.is_file()
        and p.suffix.lower() in SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(corpus_dir).parts)
    )
    if not files:
        raise CorpusError(
            f"corpus folder {corpus_dir} holds no .txt or .md file: add a document to it"
        )
    return files


def read_document(path: Path, corpus_dir: Path) -> Document:
    """Read one corpus file as UTF-8 (a leading byte-order mark is dropped)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise CorpusError(
            f"{path} is not UTF-8 text (byte {error.start}): convert it, e.g. `iconv -t UTF-8`"
        ) from error
    except OSError as error:
        raise CorpusError(f"cannot read {path}: {error.strerror}") from error
    # A BOM is replaced by a space rather than removed so that offsets stay those of the file.
    if text.startswith("\ufeff"):
        text = " " + text[1:]
    return Document(path.relative_to(corpus_dir).as_posix(), text)


def read_corpus(corpus_dir: Path) -> list[Document]:
    """All documents of the corpus folder."""
    return [read_document(path, corpus_dir) for path in corpus_files(corpus_dir)]


def hash_corpus(corpus_dir: Path) -> dict[str, str]:
    """SHA-256 of every corpus file, keyed by its name; used to detect a stale index."""
    return {
        path.relative_to(corpus_dir).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in corpus_files(corpus_dir)
    }
