"""The document library in the page, in headless Chromium against a real `docqa serve` that
starts with an EMPTY corpus: upload a PDF with the button and get an answer with its page,
drop a second file, filter to it, reload, delete, outage.

docs/library.png is made by tests/test_browser_panel.py (the 200-document library).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import test_browser
from documents import write_pdf
from test_browser import ANSWER_TIMEOUT_MS, ask, chromium_page
from test_server import Server, running_server, spawned_server, wait_until_ready

pytestmark = pytest.mark.browser
page = test_browser.page  # the fixture: a fresh page that fails the test on console errors

# The first upload builds the index with the real model (ONNX export included): ~15-40 s.
INDEX_TIMEOUT_MS = 180_000
VOLCANOES = """VOLCANOES OF ICELAND

The volcano Hekla in the south of Iceland last erupted in the year 2000. Hekla was known in
the Middle Ages as the gateway to hell.

The eruption of Eyjafjallajokull in 2010 stopped air traffic over Europe for six days.
"""


@contextlib.contextmanager
def empty_library_server(prefix: str) -> Iterator[Server]:
    """A real `docqa serve` over an empty corpus folder and no index, ready."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        root = Path(folder)
        (root / "corpus").mkdir()
        env = {"DOCQA_CORPUS_DIR": str(root / "corpus"), "DOCQA_INDEX_DIR": str(root / "index")}
        with spawned_server(root / "server.log", **env) as server:
            wait_until_ready(server)
            yield server


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A server over an empty library: the page must invite an upload."""
    with empty_library_server("docqa-library-") as server:
        yield server


def upload_through_the_page(page: Any, path: Path) -> Any:
    """Choose a file with the upload button's file input; the document once indexed."""
    page.set_input_files("#upload-input", str(path))
    item = page.locator(f'#documents li.document:has(.document-name:text-is("{path.name}"))')
    item.and_(page.locator('[data-status="indexed"]')).wait_for(timeout=INDEX_TIMEOUT_MS)
    return item


def drop_on_the_page(page: Any, path: Path) -> Any:
    """Drop a file on the page as a drag from the desktop would; the document once indexed."""
    page.evaluate(
        """([name, text]) => {
            const data = new DataTransfer();
            data.items.add(new File([text], name, { type: 'text/markdown' }));
            for (const type of ['dragenter', 'dragover', 'drop']) {
                document.body.dispatchEvent(
                    new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
            }
        }""",
        [path.name, path.read_text(encoding="utf-8")],
    )
    item = page.locator(f'#documents li.document:has(.document-name:text-is("{path.name}"))')
    item.and_(page.locator('[data-status="indexed"]')).wait_for(timeout=INDEX_TIMEOUT_MS)
    return item


def sources_of(answer: Any) -> set[str]:
    return set(answer.locator(".source-document").all_text_contents())


def test_upload_ask_filter_delete_reload_in_the_page(
    page: Any, server: Server, tmp_path: Path
) -> None:
    page.goto(f"{server.url}/")
    page.locator('#status[data-state="ready"]').wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert page.locator("#empty-title").inner_text() == "Upload a document to start"
    assert page.locator("#send").is_disabled()

    write_pdf(tmp_path / "report.pdf")
    (tmp_path / "volcanoes.md").write_text(VOLCANOES, encoding="utf-8")
    report = upload_through_the_page(page, tmp_path / "report.pdf")

    assert report.locator(".document-meta").inner_text() == "PDF · 2 pages · 3 passages"
    assert page.locator("#title").inner_text() == "Ask report.pdf"
    assert "Tell me about Membership and Fees" in page.locator("#suggestions").inner_text()
    first = ask(page, "When was the astronomy club founded?")
    assert "1987" in first.locator(".answer-text").inner_text()
    cited = first.locator(".source.cited").first
    assert cited.locator(".source-document").inner_text() == "report.pdf"
    assert cited.locator(".source-page").inner_text() == "p. 2"

    volcanoes = drop_on_the_page(page, tmp_path / "volcanoes.md")
    assert page.locator("#drop-zone").is_hidden()
    assert page.locator("#title").inner_text() == "Ask your documents"
    volcanoes.locator(".document-check").check()
    assert page.locator("#composer-scope").inner_text() == "Asking volcanoes.md only"
    filtered = ask(page, "When was the astronomy club founded?")
    assert sources_of(filtered) == {"volcanoes.md"}
    volcanoes.locator(".document-check").uncheck()

    page.reload()
    page.locator("#transcript .answer").nth(1).wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert page.locator("#transcript .answer").count() == 2
    assert page.get_attribute("#transcript", "data-conversation-id")

    report.locator(".document-delete").click()
    report.locator(".confirm-yes").click()
    report.wait_for(state="detached", timeout=ANSWER_TIMEOUT_MS)
    after = ask(page, "When was the astronomy club founded?")
    assert "report.pdf" not in sources_of(after)
    assert page.locator("#transcript .error").count() == 0


def save_screenshot(page: Any, name: str) -> None:
    """The page from the top, into DOCQA_SCREENSHOT_DIR when it is set."""
    folder = os.environ.get("DOCQA_SCREENSHOT_DIR")
    if folder:
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(Path(folder) / name))


@pytest.fixture
def lenient_page() -> Iterator[Any]:
    """A page in headless Chromium that may log failed requests (a simulated outage, the
    401s before the API key is given)."""
    with chromium_page(reduced_motion="reduce") as (page, _):
        yield page


def test_the_status_turns_red_when_the_server_is_unreachable_and_recovers(
    lenient_page: Any, server: Server
) -> None:
    lenient_page.goto(f"{server.url}/")
    lenient_page.locator('#status[data-state="ready"]').wait_for(timeout=ANSWER_TIMEOUT_MS)

    lenient_page.route("**/health", lambda route: route.abort())  # as if the server were down
    lenient_page.locator('#status[data-state="error"]').wait_for(timeout=20_000)
    assert "unreachable" in lenient_page.locator("#status").inner_text().lower()
    lenient_page.unroute("**/health")

    lenient_page.locator('#status[data-state="ready"]').wait_for(timeout=20_000)


def test_the_document_list_appears_once_the_api_key_is_given(lenient_page: Any) -> None:
    page = lenient_page
    with running_server(DOCQA_API_KEY="page-key-4d1e") as keyed:
        page.goto(f"{keyed.url}/")
        message = page.locator("#library-message")
        message.filter(has_text="API key").wait_for(timeout=ANSWER_TIMEOUT_MS)
        assert page.locator("#documents li.document").count() == 0

        page.click("#api-key-button")
        page.fill("#api-key", "page-key-4d1e")
        page.press("#api-key", "Enter")

        page.locator("#documents li.document").first.wait_for(timeout=ANSWER_TIMEOUT_MS)
        assert page.locator(".document-name").all_inner_texts() == ["eu-nato-cooperation.txt"]
        assert message.inner_text() == ""
