"""The web page in headless Chromium against a real `docqa serve`: a two-turn conversation.

Set DOCQA_SCREENSHOT=docs/screenshot.png to save a picture of the page after the conversation
(that is how the README image is made; by default the test writes nothing into the repo).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from test_server import Server, running_server

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ANSWER_TIMEOUT_MS = 30_000


def find_chromium() -> str | None:
    """Debian's chromium, or one on PATH."""
    candidates = ["/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as server:
        yield server


@contextlib.contextmanager
def chromium_page(**options: Any) -> Iterator[tuple[Any, list[str]]]:
    """A page in headless Chromium (`options` for `new_page`) and the console errors and
    page errors it logs; skips the test when Chromium is not installed."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    executable = find_chromium()
    if executable is None:
        pytest.skip("chromium not found: install it with `apt-get install -y chromium`")
    errors: list[str] = []
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_page(**options)
        page.on(
            "console",
            lambda message: (
                errors.append(f"console: {message.text}") if message.type == "error" else None
            ),
        )
        page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
        try:
            yield page, errors
        finally:
            browser.close()


@pytest.fixture
def page(server: Server) -> Iterator[Any]:
    """A fresh page in headless Chromium; fails the test on any console error."""
    # Reduced motion: chat.js then scrolls instantly, so screenshots are not mid-scroll.
    viewport = {"width": 1100, "height": 1000}
    with chromium_page(viewport=viewport, reduced_motion="reduce") as (page, errors):
        yield page
    assert errors == [], "\n".join(errors)


def ask(page: Any, question: str) -> Any:
    """Type a question, press Enter and return the new answer bubble."""
    answers = page.locator("#transcript .answer")
    count = answers.count()
    page.fill("#question", question)
    page.press("#question", "Enter")
    answers.nth(count).wait_for(timeout=ANSWER_TIMEOUT_MS)
    return answers.nth(count)


def test_conversation_in_the_page(page: Any, server: Server) -> None:
    page.goto(f"{server.url}/")
    page.locator('#status[data-state="ready"]').wait_for(timeout=ANSWER_TIMEOUT_MS)

    first = ask(page, "When did EUFOR Althea take over from SFOR?")

    assert "2004" in first.locator(".answer-text").inner_text()
    assert first.locator(".sources .source").count() > 0
    assert "SFOR" in first.locator(".sources .source-text mark").first.inner_text()
    conversation_id = page.get_attribute("#transcript", "data-conversation-id")
    assert conversation_id

    second = ask(page, "Who did it take over from?")

    assert "Stabilization Force" in second.locator(".answer-text").inner_text()
    assert page.locator("#transcript .answer").count() == 2
    assert page.locator("#transcript .error").count() == 0
    assert second.get_attribute("data-conversation-id") == conversation_id
    screenshot = os.environ.get("DOCQA_SCREENSHOT")
    if screenshot:
        save_screenshot(page, Path(screenshot))


def save_screenshot(page: Any, path: Path) -> None:
    """The page from the first question down, as the README shows it."""
    page.locator("#transcript .user").first.evaluate("node => node.scrollIntoView()")
    page.evaluate("window.scrollBy(0, -80)")  # below the sticky header
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
