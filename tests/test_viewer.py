"""The source viewer's API (GET /documents/{id}/text, /pages/{n}, /pages/{n}/boxes) over an
in-process app and a corpus of a generated two-page PDF, a DOCX and a text file, indexed
with the fake embedder. Expected texts come from tests/documents.py, positions on the page
from pdfminer's own layout of the generated PDF (another library than the one under test)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

import docqa.isolation
import docqa.sources
from bombs import pdf_of_pages
from docqa.config import Settings
from docqa.engine import Engine
from docqa.library import document_id
from docqa.pages import ViewerError, find_span, line_boxes, render_page, span_boxes
from docqa.sources import SizedCache, SourceViewer
from documents import FACTS, write_docx, write_pdf
from fakes import tiny_settings, use_fake_embedder

NOTES = "FERRIES\n\nThe ferry to the island leaves the harbour at nine every morning.\n"
MEETS = "The club meets on the first Tuesday of each month in the old library building."
EVENING = "Meetings start at seven in the evening and end at nine."
A4 = (595.28, 841.89)  # fpdf2's default page, in points
PDF_ID = document_id("report.pdf")
DOCX_ID = document_id("handbook.docx")
NOTES_ID = document_id("notes.txt")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """An engine over report.pdf (2 pages), handbook.docx and notes.txt."""
    settings = tiny_settings(tmp_path_factory.mktemp("viewer"), {"notes.txt": NOTES})
    write_pdf(settings.corpus_dir / "report.pdf")
    write_docx(settings.corpus_dir / "handbook.docx")
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_fake_embedder(monkeypatch)
        return Engine.load(settings)


def box_of(pdf: Path, page: int, span: str) -> tuple[float, float, float, float]:
    """pdfminer's box of `span` within the first text line that holds its beginning,
    page-relative (x, y, width, height)."""
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTChar, LTTextContainer, LTTextLine

    layout = list(extract_pages(str(pdf)))[page - 1]
    lines = [
        line
        for element in layout
        if isinstance(element, LTTextContainer)
        for line in element
        if isinstance(line, LTTextLine)
    ]
    for line in lines:
        children = list(line)
        text = "".join(child.get_text() for child in children)
        words = span.split()
        at = text.find(" ".join(words[:3]))
        if at < 0:
            continue
        chars = [c for c in children[at : at + len(span)] if isinstance(c, LTChar)]
        x0, x1 = chars[0].x0, max(c.x1 for c in chars)
        y0, y1 = line.y0, line.y1
        w, h = layout.width, layout.height
        return x0 / w, (h - y1) / h, (x1 - x0) / w, (y1 - y0) / h
    raise AssertionError(f"no line holds {span[:20]!r} on page {page}")


def text_of(client: TestClient, doc_id: str) -> dict[str, Any]:
    response = client.get(f"/documents/{doc_id}/text")
    assert response.status_code == 200, response.text
    return response.json()


# ------------------------------------------------------------------------------------ text


def test_text_holds_the_documents_facts_with_heading_spans(client: TestClient) -> None:
    body = text_of(client, DOCX_ID)
    assert body["name"] == "handbook.docx" and body["type"] == "docx"
    titles = [heading for heading, _ in FACTS.values()]
    assert [h["title"] for h in body["headings"]] == titles
    for heading in body["headings"]:
        assert body["text"][heading["start"] : heading["end"]] == heading["title"]
    for title, fact in FACTS.values():
        section = next(s for s in body["sections"] if s["title"] == title)
        assert fact in body["text"][section["start"] : section["end"]]
    assert body["pages"] == []


def test_text_of_a_pdf_has_its_pages_as_spans(client: TestClient) -> None:
    body = text_of(client, PDF_ID)
    text = body["text"]
    assert [p["number"] for p in body["pages"]] == [1, 2]
    first, second = (text[p["start"] : p["end"]] for p in body["pages"])
    assert FACTS["membership"][1] in first and MEETS not in first
    assert MEETS in second and FACTS["history"][1] in second


def test_sources_and_citations_point_into_the_text(client: TestClient) -> None:
    answer = client.post("/chat", json={"message": "When does the club meet each month?"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    texts = {doc_id: text_of(client, doc_id)["text"] for doc_id in (PDF_ID, DOCX_ID, NOTES_ID)}
    for source in body["sources"]:
        text = texts[source["document_id"]]
        assert " ".join(text[source["start"] : source["end"]].split()) == source["text"]
    assert body["citations"]
    for citation in body["citations"]:
        source = next(s for s in body["sources"] if s["rank"] == citation["rank"])
        text = texts[source["document_id"]]
        cited = text[citation["document_start"] : citation["document_end"]]
        assert " ".join(cited.split()) == citation["text"]


def test_search_sources_carry_the_document_id(client: TestClient) -> None:
    sources = client.get("/search", params={"q": "ferry harbour"}).json()["sources"]
    assert {s["document"]: s["document_id"] for s in sources}["notes.txt"] == NOTES_ID


def test_a_second_view_does_not_extract_again(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    extract = docqa.sources.extract_bounded

    def counted(name: str, data: bytes, settings: Settings) -> Any:
        calls.append(name)
        return extract(name, data, settings)

    monkeypatch.setattr(docqa.sources, "extract_bounded", counted)
    text_of(client, NOTES_ID)
    text_of(client, NOTES_ID)
    assert calls == ["notes.txt"]


def test_a_changed_file_is_extracted_again(client: TestClient, engine: Engine) -> None:
    path = engine.settings.corpus_dir / "notes.txt"
    assert "harbour at nine" in text_of(client, NOTES_ID)["text"]
    original = path.read_text(encoding="utf-8")
    try:
        path.write_text(original.replace("nine", "ten"), encoding="utf-8")
        assert "harbour at ten" in text_of(client, NOTES_ID)["text"]
    finally:
        path.write_text(original, encoding="utf-8")


def test_a_document_gone_from_the_folder_is_404(client: TestClient, engine: Engine) -> None:
    path = engine.settings.corpus_dir / "extra.txt"
    path.write_text("EXTRA\n\nA file added to the folder by hand.\n", encoding="utf-8")
    try:
        assert "added to the folder" in text_of(client, document_id("extra.txt"))["text"]
    finally:
        path.unlink()
    response = client.get(f"/documents/{document_id('extra.txt')}/text")
    assert response.status_code == 404


def test_an_unknown_document_is_404(client: TestClient) -> None:
    response = client.get("/documents/no-such-doc/text")
    assert response.status_code == 404
    assert "GET /documents lists them" in response.json()["detail"]


# ----------------------------------------------------------------------------------- pages


def test_a_page_is_a_png_of_the_pages_shape(client: TestClient) -> None:
    response = client.get(f"/documents/{PDF_ID}/pages/2")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG"
    assert image.width / image.height == pytest.approx(A4[0] / A4[1], rel=0.01)
    assert image.width >= 1000  # sharp enough to read


def test_a_page_is_rendered_once(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    render = docqa.sources.render_page

    def counted(data: bytes, number: int) -> Any:
        calls.append(number)
        return render(data, number)

    monkeypatch.setattr(docqa.sources, "render_page", counted)
    first = client.get(f"/documents/{PDF_ID}/pages/1").content
    again = client.get(f"/documents/{PDF_ID}/pages/1").content
    assert first == again
    assert calls == [1]  # each test's app has its own caches
    assert client.app.state.viewer.pages.size() >= len(first)  # type: ignore[attr-defined]


@pytest.mark.parametrize("suffix", ["pages/3", "pages/3/boxes?start=0&end=5"])
def test_a_page_past_the_last_is_404(client: TestClient, suffix: str) -> None:
    response = client.get(f"/documents/{PDF_ID}/{suffix}")
    assert response.status_code == 404
    assert response.json()["detail"] == "report.pdf has pages 1 to 2: there is no page 3"


@pytest.mark.parametrize("number", ["0", "-1", "two", "99999999999"])
def test_a_page_number_that_is_not_one_is_422(client: TestClient, number: str) -> None:
    response = client.get(f"/documents/{PDF_ID}/pages/{number}")
    assert response.status_code == 422
    assert response.json()["detail"].startswith("path.number:")


def test_pages_of_a_docx_are_refused(client: TestClient) -> None:
    response = client.get(f"/documents/{DOCX_ID}/pages/1")
    assert response.status_code == 422
    assert "handbook.docx is not a PDF" in response.json()["detail"]


def test_pages_are_behind_the_api_key(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_key="viewer-key")
    assert client.get(f"/documents/{PDF_ID}/pages/1").status_code == 401
    assert client.get(f"/documents/{PDF_ID}/text").status_code == 401
    headers = {"Authorization": "Bearer viewer-key"}
    assert client.get(f"/documents/{PDF_ID}/pages/1", headers=headers).status_code == 200


# ----------------------------------------------------------------------------------- boxes


def boxes_of(client: TestClient, page: int, sentence: str) -> dict[str, Any]:
    text = text_of(client, PDF_ID)["text"]
    start = text.index(sentence)
    url = f"/documents/{PDF_ID}/pages/{page}/boxes"
    response = client.get(url, params={"start": start, "end": start + len(sentence)})
    assert response.status_code == 200, response.text
    return response.json()


def test_boxes_of_a_sentence_lie_on_its_line(client: TestClient, engine: Engine) -> None:
    body = boxes_of(client, 2, MEETS)
    assert body["text"] == MEETS
    assert len(body["boxes"]) == 1
    box = body["boxes"][0]
    x, y, width, height = box_of(engine.settings.corpus_dir / "report.pdf", 2, MEETS)
    assert box["x"] == pytest.approx(x, abs=0.01)
    assert box["y"] == pytest.approx(y, abs=0.01)
    assert box["width"] == pytest.approx(width, abs=0.02)
    assert box["height"] == pytest.approx(height, abs=0.01)


def test_a_sentence_over_two_lines_has_two_boxes(client: TestClient, engine: Engine) -> None:
    first, second = boxes_of(client, 2, EVENING)["boxes"]
    pdf = engine.settings.corpus_dir / "report.pdf"
    _, line_y, _, _ = box_of(pdf, 2, "evening and end at nine.")
    assert second["y"] == pytest.approx(line_y, abs=0.01)
    assert first["y"] < second["y"]
    assert second["x"] < first["x"]  # the sentence starts mid-line, goes on at the margin


def test_a_sentence_on_another_page_has_no_boxes(client: TestClient) -> None:
    assert boxes_of(client, 1, MEETS)["boxes"] == []


def test_boxes_on_a_rotated_page_turn_with_it(engine: Engine) -> None:
    import pypdfium2 as pdfium

    original = engine.settings.corpus_dir / "report.pdf"
    document = pdfium.PdfDocument(original.read_bytes())
    document[1].set_rotation(90)  # shown turned a quarter clockwise, as a scan often is
    buffer = io.BytesIO()
    document.save(buffer)
    document.close()
    page = render_page(buffer.getvalue(), 2)
    assert page.width / page.height == pytest.approx(A4[1] / A4[0], rel=0.01)
    (box,) = span_boxes(buffer.getvalue(), 2, MEETS)
    x, y, width, height = box_of(original, 2, MEETS)
    # A point (u, v) of the upright page is at (1 - v, u) once turned a quarter clockwise.
    assert box.x == pytest.approx(1 - y - height, abs=0.01)
    assert box.y == pytest.approx(x, abs=0.01)
    assert box.width == pytest.approx(height, abs=0.01)
    assert box.height == pytest.approx(width, abs=0.02)


def test_a_span_outside_the_text_is_422(client: TestClient) -> None:
    response = client.get(f"/documents/{PDF_ID}/pages/1/boxes?start=10&end=99999999")
    assert response.status_code == 422
    assert "outside the text of report.pdf" in response.json()["detail"]


# ------------------------------------------------------------------------------ the parts


def test_a_span_cut_by_a_page_break_is_found_by_its_part_on_the_page() -> None:
    page = "Running header\r\nThe end of the sentence is here. Then more."
    wanted = "It begins on the page before and the end of the sentence is here."
    found = find_span(page, wanted)
    assert page[found.start : found.stop] == "The end of the sentence is here"


def test_a_hyphen_broken_word_is_matched() -> None:
    page = "the tele-\r\nscope was a gift"
    found = find_span(page, "the telescope was a gift")
    assert (found.start, found.stop) == (0, len(page))


def test_a_few_letters_alone_are_not_taken_for_the_span() -> None:
    assert find_span("The club meets", "The cat sat on the mat all day long.") == range(0)


def test_line_boxes_merge_characters_of_a_line_and_skip_spaces() -> None:
    chars = [(10, 100, 15, 110), (15, 100, 20, 110), (0, 0, 0, 0), (10, 80, 14, 90)]
    assert line_boxes(chars) == [(10, 100, 20, 110), (10, 80, 14, 90)]


def test_the_cache_keeps_its_bound_and_drops_the_oldest() -> None:
    cache = SizedCache(100, len)
    for key in "abc":
        cache.get_or_make(key, lambda: b"x" * 40)
    assert cache.size() == 80
    assert cache.get_or_make("a", lambda: b"new") == b"new"  # "a" was dropped for "c"


def test_a_value_over_the_bound_is_returned_not_kept() -> None:
    cache = SizedCache(100, len)
    assert cache.get_or_make("big", lambda: b"x" * 101) == b"x" * 101
    assert cache.size() == 0


def test_a_first_view_reads_within_the_reading_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read in a child like the index build reads it: a file that takes too long is refused
    # with the limit's reason, and the serving process never runs its reader.
    monkeypatch.setattr(docqa.isolation, "READ_SECONDS_PER_MB", 0.0)
    (tmp_path / "slow.pdf").write_bytes(pdf_of_pages(400, 40))  # ~10 s of layout analysis
    viewer = SourceViewer(tmp_path, Settings(read_timeout_s=0.5))

    with pytest.raises(ViewerError, match=r"slow.pdf cannot be shown: reading took over 0.5 s"):
        viewer.text("slow.pdf")
