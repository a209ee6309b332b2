"""The source viewer in headless Chromium against a real `docqa serve` that starts with an
EMPTY corpus: upload a two-page PDF and a DOCX, ask a question each answers, open the cited
source of each, and check that what is highlighted is the cited sentence, at its place (for
the PDF: on the cited page, where pdfminer lays that sentence out).

Set DOCQA_SCREENSHOT_DIR=docs to save the README pictures (viewer-pdf.png, viewer-docx.png).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import test_browser
from documents import write_pdf
from test_browser import ANSWER_TIMEOUT_MS
from test_browser_library import empty_library_server
from test_server import Server
from test_viewer import box_of

pytestmark = pytest.mark.browser
page = test_browser.page  # the fixture: a fresh page that fails the test on console errors

INDEX_TIMEOUT_S = 180.0  # the first upload builds the index with the real model: ~15-40 s
HEKLA = "The volcano Hekla in the south of Iceland last erupted in the year 2000."


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A server over an empty corpus folder and no index."""
    with empty_library_server("docqa-viewer-") as server:
        yield server


def write_volcanoes_docx(path: Path) -> Path:
    """A DOCX with two headings and the Hekla sentence under the first."""
    import docx

    document = docx.Document()
    document.add_heading("Volcanoes of Iceland", level=1)
    document.add_paragraph(f"{HEKLA} Hekla was known in the Middle Ages as the gateway to hell.")
    document.add_heading("Glaciers", level=1)
    document.add_paragraph("The glacier Vatnajokull covers about eight percent of Iceland.")
    document.save(str(path))
    return path


def upload_and_wait(server: Server, paths: list[Path]) -> None:
    """Upload the files (POST /documents, as the page does) and wait until they are indexed:
    the library panel is not what this test is about."""
    files = [("files", (path.name, path.read_bytes())) for path in paths]
    response = httpx.post(f"{server.url}/documents", files=files, timeout=30.0)
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + INDEX_TIMEOUT_S
    for record in response.json()["documents"]:
        url = server.url + record["status_url"]
        while (status := httpx.get(url, timeout=10.0).json()["status"]) != "indexed":
            assert status in ("queued", "indexing"), f"{record['name']} is {status}"
            assert time.monotonic() < deadline, f"not indexed after {INDEX_TIMEOUT_S} s"
            time.sleep(0.5)


def ask_and_open(page: Any, question: str, document: str) -> tuple[Any, list[str]]:
    """Ask, open the first cited source of `document`; that source and its cited sentences
    as the answer's source list highlights them."""
    answers = page.locator("#transcript .answer")
    count = answers.count()
    page.fill("#question", question)
    page.press("#question", "Enter")
    answer = answers.nth(count)
    answer.wait_for(timeout=ANSWER_TIMEOUT_MS)
    source = answer.locator(".source.cited").filter(
        has=page.locator(f'.source-document:text-is("{document}")')
    )
    source = source.first
    cited = [" ".join(t.split()) for t in source.locator(".source-text mark").all_inner_texts()]
    source.locator(".source-open").click()
    page.locator("#viewer:not([aria-busy])").wait_for(timeout=ANSWER_TIMEOUT_MS)
    return source, cited


def save_screenshot(page: Any, name: str) -> None:
    """The window, into DOCQA_SCREENSHOT_DIR when it is set."""
    folder = os.environ.get("DOCQA_SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=str(Path(folder) / name))


def test_cited_sources_open_highlighted_in_their_documents(
    page: Any, server: Server, tmp_path: Path
) -> None:
    pdf = write_pdf(tmp_path / "report.pdf")
    upload_and_wait(server, [pdf, write_volcanoes_docx(tmp_path / "volcanoes.docx")])
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{server.url}/")
    page.locator('#status[data-state="ready"]').wait_for(timeout=ANSWER_TIMEOUT_MS)
    check_the_pdf_source(page, pdf)
    check_the_docx_source(page)
    assert page.locator("#transcript .error").count() == 0


def check_the_pdf_source(page: Any, pdf: Path) -> None:
    """The cited page of the PDF, its sentence boxed where pdfminer lays it out."""
    source, sentences = ask_and_open(page, "When was the astronomy club founded?", "report.pdf")
    cited = sentences[0]
    assert "founded in 1987" in cited
    assert source.locator(".source-page").inner_text() == "p. 2"
    viewer = page.locator("#viewer")
    assert viewer.get_attribute("data-kind") == "pdf"
    assert page.locator("#viewer-page-label").inner_text() == "Page 2 of 2"
    image = page.locator("#viewer .viewer-image")
    assert image.get_attribute("data-page") == "2"
    assert image.get_attribute("data-src").endswith("/pages/2")
    boxes = page.locator("#viewer .viewer-box")
    assert boxes.count() >= 1
    assert " ".join(boxes.first.get_attribute("data-text").split()) == cited
    frame, shown = image.bounding_box(), boxes.first.bounding_box()
    x, y, _, height = box_of(pdf, 2, cited)
    assert (shown["x"] - frame["x"]) / frame["width"] == pytest.approx(x, abs=0.01)
    assert (shown["y"] - frame["y"]) / frame["height"] == pytest.approx(y, abs=0.01)
    assert shown["height"] / frame["height"] == pytest.approx(height, abs=0.01)
    save_screenshot(page, "viewer-pdf.png")
    page.click("#viewer-prev-page")
    page.locator('#viewer .viewer-image[data-page="1"]').wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert page.locator("#viewer-page-label").get_attribute("data-page") == "1"
    assert page.locator("#viewer .viewer-box").count() == 0  # the sentence is not on page 1
    page.click("#viewer-next-source")
    page.locator("#viewer .viewer-subtitle").filter(has_text="Source 2").wait_for()
    page.keyboard.press("Escape")
    assert viewer.is_hidden()


def check_the_docx_source(page: Any) -> None:
    """The DOCX's text with its headings, the cited sentence highlighted in view."""
    _, cited = ask_and_open(page, "When did Hekla last erupt?", "volcanoes.docx")
    assert cited[0] == HEKLA
    viewer = page.locator("#viewer")
    assert viewer.get_attribute("data-kind") == "text"
    mark = page.locator("#viewer .viewer-mark")
    assert [" ".join(text.split()) for text in mark.all_inner_texts()] == cited
    body, shown = page.locator("#viewer .viewer-body").bounding_box(), mark.first.bounding_box()
    assert body["y"] <= shown["y"] and shown["y"] + shown["height"] <= body["y"] + body["height"]
    headings = page.locator("#viewer .viewer-heading").all_inner_texts()
    assert headings == ["Volcanoes of Iceland", "Glaciers"]
    save_screenshot(page, "viewer-docx.png")
    page.click("#viewer-close")
    assert viewer.is_hidden()
    page.locator("#transcript .answer").last.locator("a.cite").first.click()  # a citation
    page.locator("#viewer:not([aria-busy]) .viewer-mark").first.wait_for()
    assert page.locator("#viewer-title").inner_text() == "volcanoes.docx"
    page.keyboard.press("Escape")
    assert viewer.is_hidden()
