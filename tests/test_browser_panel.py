"""The library panel with 200 documents, in headless Chromium at 1280x800 against a real
`docqa serve` whose corpus folder holds them at start (one index build): the question box and
the first answer stay on the first screen, filters, ticking two and deleting them, refused
uploads as messages, a progress bar for a big file.

Run with -s to see the measured filter time. Set DOCQA_SCREENSHOT_DIR=docs to save
docs/library.png (the 200-document library with an answer).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import test_browser
from test_browser import ANSWER_TIMEOUT_MS, ask, chromium_page
from test_browser_library import save_screenshot
from test_server import Server, spawned_server, wait_until_ready

pytestmark = pytest.mark.browser
page = test_browser.page  # a fresh page that fails the test on console errors

WIDTH, HEIGHT = 1280, 800
TOPICS = ("orchard", "harbour", "railway", "library", "bakery", "quarry", "chapel", "mill")
MARKDOWN_DOCUMENTS = 20
HTML_DOCUMENTS = 10
LIGHTHOUSE = """CAPE WRATH

The lighthouse at Cape Wrath was built in 1828 by Robert Stevenson. It stands on the most
north-westerly point of Great Britain.
"""


def write_library(corpus: Path) -> None:
    """199 short notes (169 .txt, 20 .md, 10 .html) and the lighthouse: 200 documents."""
    for i in range(199):
        topic = TOPICS[i % len(TOPICS)]
        text = f"The {topic} ledger entry {i} was written in {1800 + i}. It lists {i + 3} items."
        if i < MARKDOWN_DOCUMENTS:
            (corpus / f"{topic}-{i:03d}.md").write_text(f"# {topic} {i}\n\n{text}\n")
        elif i < MARKDOWN_DOCUMENTS + HTML_DOCUMENTS:
            html = f"<html><body><h1>{topic} {i}</h1><p>{text}</p></body></html>"
            (corpus / f"{topic}-{i:03d}.html").write_text(html)
        else:
            (corpus / f"{topic}-{i:03d}.txt").write_text(text + "\n")
    (corpus / "cape-wrath-lighthouse.txt").write_text(LIGHTHOUSE)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A server over 200 documents, indexed once at start."""
    with tempfile.TemporaryDirectory(prefix="docqa-panel-") as folder:
        root = Path(folder)
        (root / "corpus").mkdir()
        write_library(root / "corpus")
        env = {"DOCQA_CORPUS_DIR": str(root / "corpus"), "DOCQA_INDEX_DIR": str(root / "index")}
        with spawned_server(root / "server.log", **env) as server:
            wait_until_ready(server)
            yield server


def open_library(page: Any, server: Server) -> Any:
    """The page at 1280x800 with the 200 documents listed; the list's rows."""
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    page.goto(f"{server.url}/")
    page.locator('#status[data-state="ready"]').wait_for(timeout=ANSWER_TIMEOUT_MS)
    rows = page.locator("#documents li.document")
    rows.first.wait_for(state="attached", timeout=ANSWER_TIMEOUT_MS)  # all come at once
    return rows


def on_first_screen(page: Any, selector: str) -> bool:
    """Whether the element's top edge is inside the window with the page scrolled to the top."""
    page.evaluate("window.scrollTo(0, 0)")
    box = page.locator(selector).bounding_box()
    return box is not None and 0 <= box["y"] < HEIGHT


SAMPLE_NAMES = ("orchard-040.txt", "bakery-012.md", "mill-047.txt", "harbour-025.html")
FILTER_JS = """(name) => {
    const input = document.querySelector('#library-filter');
    const started = performance.now();
    input.value = name;
    input.dispatchEvent(new Event('input', { bubbles: true }));
    document.body.getBoundingClientRect();  // the layout of the filtered list
    return performance.now() - started;
}"""


def filter_to(page: Any, name: str) -> float:
    """Type a whole name into the filter at once; the milliseconds to the filtered layout."""
    page.fill("#library-filter", "")
    elapsed: float = page.evaluate(FILTER_JS, name)
    return elapsed


def timings_text(timings: list[float]) -> str:
    ordered = sorted(timings)
    return f"median {ordered[len(ordered) // 2]:.1f} ms, max {ordered[-1]:.1f} ms, n={len(ordered)}"


def test_200_documents_leave_the_question_and_the_first_answer_on_the_first_screen(
    page: Any, server: Server
) -> None:
    open_library(page, server)
    assert page.locator("#library-count").inner_text() == "(200)"
    assert page.locator("#library-stats").inner_text() == "200 ready"

    answer = ask(page, "When was the lighthouse at Cape Wrath built?")

    assert "1828" in answer.locator(".answer-text").inner_text()
    assert on_first_screen(page, "#question")
    assert on_first_screen(page, "#transcript .answer")
    question_top = page.locator("#question").bounding_box()["y"]
    assert page.locator("#transcript .answer").bounding_box()["y"] < question_top
    save_screenshot(page, "library.png")


def test_filtering_by_name_shows_exactly_that_document_and_by_type_only_that_type(
    page: Any, server: Server
) -> None:
    rows = open_library(page, server)

    timings = [filter_to(page, name) for name in (*SAMPLE_NAMES, "quarry-109.txt")]
    print(f"\nfiltering 200 documents to one name (performance.now): {timings_text(timings)}")

    shown = rows.filter(visible=True).locator(".document-name")
    assert shown.all_inner_texts() == ["quarry-109.txt"]
    assert page.locator("#library-count").inner_text() == "(1 of 200)"
    page.fill("#library-filter", "")
    page.select_option("#library-type", "markdown")
    assert rows.filter(visible=True).count() == MARKDOWN_DOCUMENTS
    assert page.locator("#library-count").inner_text() == f"({MARKDOWN_DOCUMENTS} of 200)"


def test_ticking_two_documents_and_deleting_them_after_confirming(
    page: Any, server: Server
) -> None:
    rows = open_library(page, server)
    first, second = rows.nth(0), rows.nth(1)
    names = [
        first.locator(".document-name").inner_text(),
        second.locator(".document-name").inner_text(),
    ]
    first.locator(".document-check").check()
    second.locator(".document-check").check()

    page.click("#delete-selected")
    assert page.locator("#delete-confirm .confirm-text").inner_text() == "Delete 2 documents?"
    page.click("#delete-confirm .confirm-yes")

    page.locator("#library-count").filter(has_text="(198)").wait_for(timeout=ANSWER_TIMEOUT_MS)
    shown = page.locator("#documents .document-name").all_inner_texts()
    assert not set(names) & set(shown)
    assert page.locator("#library-message").inner_text() == (
        "Deleted 2 documents: they are no longer used in answers."
    )


def test_collapsing_the_panel_is_remembered_after_a_reload(page: Any, server: Server) -> None:
    open_library(page, server)
    page.click("#library-toggle")
    assert page.locator("#library-body").is_hidden()

    page.reload()
    page.locator('#status[data-state="ready"]').wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert page.locator("#library-body").is_hidden()
    assert page.locator("#library-toggle").get_attribute("aria-expanded") == "false"
    page.click("#library-toggle")
    assert page.locator("#library-body").is_visible()


def test_a_file_of_a_type_docqa_does_not_read_is_a_message_not_a_console_error(
    page: Any, server: Server, tmp_path: Path
) -> None:
    open_library(page, server)
    picture = tmp_path / "holiday.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))

    page.set_input_files("#upload-input", str(picture))

    row = page.locator('#uploads li.upload[data-state="error"]')
    row.wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert "files of type .png are not supported" in row.locator(".upload-label").inner_text()
    message = page.locator('#library-message[data-kind="error"]')
    assert message.inner_text().startswith("Could not add holiday.png: files of type .png")


def test_a_big_file_shows_its_upload_progress_and_is_added(
    page: Any, server: Server, tmp_path: Path
) -> None:
    open_library(page, server)
    big = tmp_path / "harbour-log.html"
    # 8 MB, nearly all of it a comment: a slow upload, a one-sentence document to index.
    filler = "<!-- " + "tide table " * 750_000 + " -->"
    big.write_text(f"<html><body>{filler}<p>The harbour log was kept until 1911.</p></body></html>")

    page.set_input_files("#upload-input", str(big))

    row = page.locator('#uploads li.upload:has(.upload-name:text-is("harbour-log.html"))')
    row.wait_for(timeout=ANSWER_TIMEOUT_MS)
    row.and_(page.locator('[data-state="done"]')).wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert row.locator(".upload-bar").evaluate("bar => bar.value") == 100
    item = page.locator('#documents li.document:has(.document-name:text-is("harbour-log.html"))')
    item.wait_for(state="attached", timeout=ANSWER_TIMEOUT_MS)


@pytest.fixture
def network_logging_page() -> Iterator[tuple[Any, list[str]]]:
    """A 1280x800 page and the console errors it logs (a test says which it expects)."""
    with chromium_page(viewport={"width": WIDTH, "height": HEIGHT}) as (page, errors):
        yield page, errors


def test_a_file_the_server_refuses_is_a_message_and_only_the_browser_logs_the_status(
    network_logging_page: tuple[Any, list[str]], server: Server, tmp_path: Path
) -> None:
    page, errors = network_logging_page
    open_library(page, server)
    blank = tmp_path / "minutes.txt"
    blank.write_text("  \n\n  \n")  # not empty, so the page sends it: the server's 422

    page.set_input_files("#upload-input", str(blank))

    row = page.locator('#uploads li.upload[data-state="error"]')
    row.wait_for(timeout=ANSWER_TIMEOUT_MS)
    reason = "minutes.txt is empty: there is nothing in it to index"
    assert row.locator(".upload-label").inner_text() == reason
    message = page.locator('#library-message[data-kind="error"]')
    assert message.inner_text() == f"Could not add minutes.txt: {reason}"
    # Chromium logs every 4xx answer itself ("Failed to load resource"); the page adds nothing.
    assert len(errors) == 1
    assert errors[0].startswith(
        "console: Failed to load resource: the server responded with a status of 422"
    )
