"""run_bounded: a function in a child process, killed over its time or memory limit, stopped
from outside, ended with its parent; and reading a file within the settings' limits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bombs import docx_of_paragraphs, docx_unpacking_to, pdf_of_pages
from docqa import isolation
from docqa.config import Settings
from docqa.ingest import SkippedFileError
from docqa.isolation import (
    Bounds,
    ChildFailedError,
    ChildLimitError,
    ChildStoppedError,
    Stopper,
    extract_bounded,
    reading_bounds,
    run_bounded,
)
from docqa.library import UploadError

TESTS = Path(__file__).resolve().parent


def refuse(message: str) -> None:
    raise UploadError(message)


def sleep_writing_pid(path: str, seconds: float) -> None:
    Path(path).write_text(str(os.getpid()), encoding="ascii")
    time.sleep(seconds)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in status_state(pid)


def status_state(pid: int) -> str:
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return "zombie"
    return next((line for line in text.splitlines() if line.startswith("State:")), "").lower()


def wait_for_file(path: Path, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text(encoding="ascii"):
            return path.read_text(encoding="ascii")
        time.sleep(0.05)
    pytest.fail(f"{path} was not written")


def test_the_result_comes_back_from_the_child() -> None:
    assert run_bounded(sorted, ([3, 1, 2],), Bounds(timeout_s=30)) == [1, 2, 3]


def test_a_docqa_error_comes_back_with_its_type_and_message() -> None:
    with pytest.raises(UploadError, match=r"^notes\.txt is refused$"):
        run_bounded(refuse, ("notes.txt is refused",), Bounds(timeout_s=30))


def test_a_child_over_its_time_limit_is_killed() -> None:
    with pytest.raises(ChildLimitError, match=r"took over 0\.5 s"):
        run_bounded(time.sleep, (30,), Bounds(timeout_s=0.5))


def test_a_child_over_its_memory_limit_is_stopped() -> None:
    with pytest.raises(ChildLimitError, match="needed over 100 MB"):
        run_bounded(bytearray, (1 << 30,), Bounds(timeout_s=30, memory_mb=100))


def test_a_child_that_dies_without_an_answer_is_reported() -> None:
    with pytest.raises(ChildFailedError, match="exit code 3"):
        run_bounded(os._exit, (3,), Bounds(timeout_s=30))


def test_a_stopper_kills_the_running_child_and_refuses_later_ones(tmp_path: Path) -> None:
    stopper = Stopper()
    pid_file = tmp_path / "pid"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_bounded(sleep_writing_pid, (str(pid_file), 60), Bounds(), stopper)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    pid = int(wait_for_file(pid_file))
    stopper.stop()
    thread.join(10)

    assert not thread.is_alive() and isinstance(errors[0], ChildStoppedError)
    assert not alive(pid)
    with pytest.raises(ChildStoppedError):
        run_bounded(sorted, ([1],), Bounds(), stopper)


def test_a_child_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); "
        "from docqa.isolation import Bounds, run_bounded; "
        "from test_isolation import sleep_writing_pid; "
        f"run_bounded(sleep_writing_pid, ({str(pid_file)!r}, 60), Bounds())"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        child = int(wait_for_file(pid_file))
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(child)
    finally:
        if parent.poll() is None:
            parent.kill()


# ------------------------------------------------------------- reading within the settings


def test_a_pdf_declaring_more_pages_than_the_limit_is_skipped_unread() -> None:
    with pytest.raises(SkippedFileError, match=r"50,000 pages are over the limit of 5,000"):
        extract_bounded("empty.pdf", pdf_of_pages(50_000), Settings())


def test_a_pdf_within_the_page_limit_is_read() -> None:
    found, extracted = extract_bounded("report.pdf", pdf_of_pages(3, 40), Settings())

    assert found.name == "pdf" and extracted.pages == 3
    assert "Page 3 line 20 of the long report." in extracted.text


def test_a_docx_unpacking_to_more_than_the_memory_limit_is_skipped_unread() -> None:
    settings = Settings(read_memory_mb=50)

    with pytest.raises(
        SkippedFileError, match=r"unpacks to 6\d MB, over the reading memory limit of 50 MB"
    ):
        extract_bounded("padded.docx", docx_unpacking_to(60), settings)


def test_a_file_read_longer_than_the_time_limit_is_skipped_saying_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow = pdf_of_pages(400, 40)  # ~10 s of layout analysis
    monkeypatch.setattr(isolation, "READ_SECONDS_PER_MB", 0.0)
    settings = Settings(read_timeout_s=0.5)

    with pytest.raises(SkippedFileError, match=r"^reading took over 0.5 s \(DOCQA_READ_TIMEOUT_S"):
        extract_bounded("slow.pdf", slow, settings)


def test_reading_time_grows_with_the_file_so_a_book_is_not_cut_off() -> None:
    settings = Settings(read_timeout_s=60)

    assert reading_bounds(settings, 1_000).timeout_s == pytest.approx(60, abs=0.1)
    assert reading_bounds(settings, 20_000_000).timeout_s == pytest.approx(60 + 20 * 15)


def test_a_docx_of_50000_empty_paragraphs_is_read_within_the_limits() -> None:
    data = docx_of_paragraphs(50_000)
    assert len(data) < 50_000

    with pytest.raises(SkippedFileError, match=r"^no text in it$"):
        extract_bounded("empty.docx", data, Settings())
