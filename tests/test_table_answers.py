"""A question about a table cell, in a PDF, a DOCX and an HTML page, is answered with that
cell from the row that holds it: each row is a passage of its own with its column headers
(rows run together in one passage once gave the head of Logistics for "Who is the head of
Finance?"), and the short answer is the cell of the column the question names.
The end-to-end tests use the real model."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from docqa.answer.cells import cell_reading, row_cells
from docqa.answer.reader import Reading
from docqa.config import Settings
from docqa.engine import Engine
from docqa.indexing.build import update_index
from docqa.indexing.chunking import ChunkSettings, chunk_document
from docqa.ingest import extract
from docqa.models import Document
from documents import write_table_pdf

LIBRARY_ROWS = (
    ("Room", "Floor", "Keeper"),
    ("Map room", "2", "Ingrid Falk"),
    ("Rare books", "3", "Oskar Nyman"),
    ("Music archive", "1", "Lena Holm"),
)
TRAINS_HTML = """<html><body><h1>Departures</h1><p>Trains leave from the north hall.</p>
<table><tr><th>Train</th><th>Platform</th><th>Destination</th></tr>
<tr><td>IC 412</td><td>5</td><td>Uppsala</td></tr>
<tr><td>RE 88</td><td>9</td><td>Malmo</td></tr>
<tr><td>EX 17</td><td>2</td><td>Narvik</td></tr></table></body></html>"""


def write_library_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Library rooms", level=1)
    document.add_paragraph("Each room has a keeper who holds its keys.")
    table = document.add_table(rows=len(LIBRARY_ROWS), cols=3)
    for row, cells in enumerate(LIBRARY_ROWS):
        for column, text in enumerate(cells):
            table.cell(row, column).text = text
    document.save(str(path))
    return path


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    root = tmp_path_factory.mktemp("tables")
    corpus = root / "corpus"
    corpus.mkdir()
    shutil.copy(write_table_pdf(root / "directory.pdf"), corpus / "directory.pdf")
    write_library_docx(corpus / "library.docx")
    (corpus / "departures.html").write_text(TRAINS_HTML, encoding="utf-8")
    settings = Settings(corpus_dir=corpus, index_dir=root / "index")
    update_index(settings)
    yield Engine.load(settings)


def test_each_table_row_is_a_passage_of_its_own() -> None:
    _, extracted = extract("departures.html", TRAINS_HTML.encode())
    document = Document("departures.html", extracted.text, extracted.blocks)
    texts = [chunk.text for chunk in chunk_document(document, ChunkSettings(800, 1280, 120))]
    assert texts == [
        "Trains leave from the north hall.",
        "Train: IC 412 · Platform: 5 · Destination: Uppsala",
        "Train: RE 88 · Platform: 9 · Destination: Malmo",
        "Train: EX 17 · Platform: 2 · Destination: Narvik",
    ]


@pytest.mark.model
@pytest.mark.parametrize(
    ("question", "cell", "row"),
    [
        ("Who is the head of Finance?", "Tom Berg", "Department: Finance"),
        ("What is the extension of Human Resources?", "4431", "Department: Human Resources"),
        ("What is Tom Berg's extension?", "4420", "Department: Finance"),
        ("Which department has extension 4431?", "Human Resources", "Department: Human Resources"),
        ("Who is the keeper of the rare books room?", "Oskar Nyman", "Room: Rare books"),
        ("Which platform does RE 88 leave from?", "9", "Train: RE 88"),
    ],
)
def test_a_question_about_a_cell_is_answered_from_its_row(
    engine: Engine, question: str, cell: str, row: str
) -> None:
    answer = engine.ask(question)
    assert answer.answered, answer
    assert answer.citations[0].text.startswith(row), answer.citations[0].text
    assert answer.short_answer == cell


def reading_of(passage: str, text: str) -> Reading:
    start = passage.index(text)
    return Reading(text, start, start + len(text), 1.0)


ROW = "Department: Logistics · Extension: 4417 · Head: Maria Olsen"


def test_a_row_passage_is_cut_into_its_cells() -> None:
    assert [(c.label, c.value, ROW[c.start : c.end]) for c in row_cells(ROW)] == [
        ("Department", "Logistics", "Logistics"),
        ("Extension", "4417", "4417"),
        ("Head", "Maria Olsen", "Maria Olsen"),
    ]


def test_prose_is_no_row() -> None:
    assert row_cells("The club meets at seven · Bring a torch: the path is dark.") == []


def test_the_cell_of_the_column_the_question_names_is_the_short_answer() -> None:
    wide = reading_of(ROW, "Logistics · Extension: 4417 · Head: Maria Olsen")
    narrowed = cell_reading("What is the phone extension of the Logistics department?", ROW, wide)
    assert (narrowed.text, ROW[narrowed.start : narrowed.end]) == ("4417", "4417")


def test_a_cell_the_question_already_names_is_not_the_answer() -> None:
    named = reading_of(ROW, "4417")
    assert cell_reading("Which department has extension 4417?", ROW, named).text == "Logistics"


def test_without_a_named_column_the_cell_under_the_span_is_kept() -> None:
    span = reading_of(ROW, "Maria")
    assert cell_reading("Who runs it?", ROW, span).text == "Maria Olsen"


def test_a_reading_in_prose_is_left_as_it_is() -> None:
    prose = "The club meets on the first Tuesday of each month."
    reading = reading_of(prose, "the first Tuesday")
    assert cell_reading("When does the club meet?", prose, reading) == reading
