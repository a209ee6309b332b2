"""End to end with the real model: a folder holding a PDF, a DOCX, an HTML page, a Latin-1
text and a binary file is indexed, and each document answers the questions on its own as
well as the plain-text version does. Expected facts come from tests/documents.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from docqa.config import Settings
from docqa.engine import Engine
from docqa.indexing.build import update_index
from documents import write_folder

pytestmark = pytest.mark.model

DOCUMENTS = ("report.pdf", "handbook.docx", "page.html", "notes.txt")
# question -> (a fact of the answer, the section holding it, its page in report.pdf)
QUESTIONS = {
    "How much does annual membership cost for students?": ("20", "membership", 1),
    "When was the astronomy club founded?": ("1987", "history", 2),
    "Which building does the club meet in?": ("old library building", "meeting", 2),
}
CHROME = re.compile(r"<|>|&\w+;|Annual Report|Join us|Copyright|tracking|Confidential")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    folder = tmp_path_factory.mktemp("formats")
    settings = Settings(corpus_dir=write_folder(folder / "corpus"), index_dir=folder / "index")
    report = update_index(settings)
    statuses = {r.name: r.status for r in report.documents}
    assert statuses == {**dict.fromkeys(DOCUMENTS, "indexed"), "image.txt": "skipped"}
    return Engine.load(settings)


@pytest.mark.parametrize("question", QUESTIONS)
def test_every_format_answers_like_the_plain_text(engine: Engine, question: str) -> None:
    fact, section, _ = QUESTIONS[question]
    hits = engine.search(question, k=20).hits
    for name in DOCUMENTS:
        best = next(hit for hit in hits if hit.chunk.document == name)
        assert fact in best.chunk.text, (name, best.chunk.text)
        assert section in best.chunk.section.lower(), (name, best.chunk.section)
    assert fact in engine.ask(question).text


@pytest.mark.parametrize("question", QUESTIONS)
def test_pdf_sources_carry_the_right_page(engine: Engine, question: str) -> None:
    _, _, page = QUESTIONS[question]
    hits = engine.search(question, k=20).hits
    best = next(hit for hit in hits if hit.chunk.document == "report.pdf")
    assert best.chunk.page == page


def test_no_source_holds_markup_or_page_chrome(engine: Engine) -> None:
    for chunk in engine.index.chunks:
        assert not CHROME.search(chunk.text), (chunk.document, chunk.text)
        assert not CHROME.search(chunk.section), (chunk.document, chunk.section)


def test_the_binary_file_is_named_as_skipped(engine: Engine, tmp_path: Path) -> None:
    [record] = [r for r in update_index(engine.settings).documents if r.name == "image.txt"]
    assert (record.status, record.reason) == ("skipped", "binary data, not text")
