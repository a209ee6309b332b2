"""Running a function in a child process within bounds: a time limit, a memory limit, and a
stop from outside (the service shutting down). The caller's memory never holds what the
function loads, and a function that hangs or swells is killed, not waited for.

Children are started by multiprocessing's "forkserver": a small server process, started
once, forks each child from a state where no library has started threads (forking the
caller itself, once torch or onnxruntime threads exist, could deadlock the child). A child
also ends when its caller dies, so none is left behind.

Reading one corpus file within the bounds of the settings (`extract_bounded`) is the use
the index build makes of it; the service also runs whole index builds this way.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import multiprocessing.connection
import os
import resource
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, TypeVar

from docqa.ingest import Extracted, Format, SkippedFileError, extract, format_for
from docqa.models import DocqaError

if TYPE_CHECKING:
    from docqa.config import Settings

T = TypeVar("T")
PRELOAD = [
    "docqa.ingest",
    "bs4",
    "charset_normalizer",
    "docx",
    "markdown_it",
    "pdfminer.high_level",
]
"""Imported once by the fork server, so that each child starts with the readers and the
libraries they import loaded: a child that reads a small file costs ~30 ms. (A child also
imports the program's main script again, as multiprocessing does: `docqa`'s is small.)"""
MB = 1 << 20
READ_SECONDS_PER_MB = 15.0
"""Reading time allowed per megabyte of file beyond `read_timeout_s`: plain text reads at
~1 MB/s on this 2-core machine when it is busy (a 20 MB book: ~25 s idle), a scanned page
of ~0.3 MB takes 1-2.3 s of OCR at 300 dpi (README, "Formats")."""


class ChildLimitError(DocqaError):
    """The function went over its time or memory limit and was stopped."""


class ChildStoppedError(DocqaError):
    """The child was stopped from outside: the service is shutting down."""


class ChildFailedError(DocqaError):
    """The child ended without an answer (killed by a signal, or a crash in a library)."""


@dataclass(frozen=True)
class Bounds:
    """What a child may take: seconds of wall time, megabytes of memory beyond its start
    (address space, so that no allocation can pass it); None for no limit."""

    timeout_s: float | None = None
    memory_mb: int | None = None


@dataclass
class Stopper:
    """Stops the children started with it, now and from then on (at shutdown)."""

    stopped: bool = False
    running: set[BaseProcess] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stop(self) -> None:
        """Kill every running child; later runs are refused with ChildStoppedError."""
        with self.lock:
            self.stopped = True
            for process in self.running:
                with contextlib.suppress(OSError):
                    process.kill()

    @contextlib.contextmanager
    def watching(self, process: BaseProcess) -> Iterator[None]:
        """Keep `process` among those `stop` kills while the block runs."""
        with self.lock:
            if self.stopped:
                raise ChildStoppedError("stopped: the service is shutting down")
            process.start()
            self.running.add(process)
        try:
            yield
        finally:
            with self.lock:
                self.running.discard(process)


def run_bounded(
    function: Callable[..., T],
    args: tuple[Any, ...],
    bounds: Bounds,
    stopper: Stopper | None = None,
) -> T:
    """`function(*args)` run in a child process within `bounds`; its result, or its
    exception raised again here (a DocqaError keeps its type and message). Raises
    ChildLimitError over a limit, ChildStoppedError when `stopper` stops it, and
    ChildFailedError when the child dies without an answer."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    receiver, sender = context.Pipe(duplex=False)
    # Not a daemon: a child may start children of its own (a build, its readers); it never
    # outlives this call, which kills it on every way out.
    process = context.Process(target=_child_main, args=(sender, function, args, bounds.memory_mb))
    with receiver, (stopper or Stopper()).watching(process):
        try:
            sender.close()
            ready = multiprocessing.connection.wait([receiver, process.sentinel], bounds.timeout_s)
            if receiver in ready:
                with contextlib.suppress(EOFError):
                    outcome, value = receiver.recv()
                    return _unwrap(outcome, value, bounds)
        finally:
            if process.is_alive():
                process.kill()
            process.join()
    if stopper is not None and stopper.stopped:
        raise ChildStoppedError("stopped: the service is shutting down")
    if not ready:
        raise ChildLimitError(f"it took over {bounds.timeout_s:g} s")
    raise ChildFailedError(f"the process ended without an answer (exit code {process.exitcode})")


def _unwrap(outcome: str, value: Any, bounds: Bounds) -> Any:
    if outcome == "ok":
        return value
    if outcome == "memory":
        raise ChildLimitError(f"it needed over {bounds.memory_mb} MB of memory")
    raise value


def _child_main(
    sender: multiprocessing.connection.Connection,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    memory_mb: int | None,
) -> None:
    """In the child: end with the parent, limit the memory, run, send back what came of it."""
    _end_with_parent()
    if memory_mb:
        _limit_memory(memory_mb)
    try:
        sender.send(("ok", function(*args)))
    except MemoryError:
        sender.send(("memory", None))
    except BaseException as error:  # everything goes back to the caller, to be raised there
        try:
            sender.send(("error", error))
        except Exception:  # an exception that cannot be pickled: its type and words
            sender.send(("error", ChildFailedError(f"{type(error).__name__}: {error}")))


def _end_with_parent() -> None:
    """Exit as soon as the process that started this one ends (even by SIGKILL)."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="docqa-parent-watch", daemon=True).start()


def _limit_memory(memory_mb: int) -> None:
    """Cap the address space at what the process maps now plus `memory_mb`."""
    now = _mapped_bytes()
    limit = now + memory_mb * MB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _mapped_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


# ------------------------------------------------------------- reading a file within bounds


def extract_bounded(name: str, data: bytes, settings: Settings) -> tuple[Format, Extracted]:
    """`extract(name, data)` in a child within the settings' reading limits (time, memory,
    PDF pages, DOCX unpacked size); SkippedFileError naming the limit a file goes over. With
    `read_timeout_s` 0 the file is read here, without a child."""
    if not settings.read_timeout_s:
        return extract(name, data)
    bounds = reading_bounds(settings, len(data))
    try:
        return run_bounded(extract_within, (name, data, settings.max_pages, bounds), bounds)
    except ChildLimitError as error:
        setting, limit = "DOCQA_READ_MEMORY_MB", "read_memory_mb"
        value: float = settings.read_memory_mb
        if "took" in str(error):
            base, per_mb = settings.read_timeout_s, READ_SECONDS_PER_MB
            setting = f"DOCQA_READ_TIMEOUT_S: {base:g} s + {per_mb:g} s per MB"
            limit, value = "read_timeout_s", base
        reading = "reading " + str(error).removeprefix("it ")
        raise SkippedFileError(f"{reading} ({setting})", limit, value) from error
    except ChildFailedError as error:
        raise SkippedFileError(f"its reader stopped: {error}") from error


def reading_bounds(settings: Settings, size: int) -> Bounds:
    """The bounds of reading a file of `size` bytes: `read_timeout_s`, plus
    READ_SECONDS_PER_MB for each megabyte, so that a book or a long scan is not cut off."""
    seconds = settings.read_timeout_s + READ_SECONDS_PER_MB * size / 1e6
    return Bounds(seconds, settings.read_memory_mb or None)


def extract_within(
    name: str, data: bytes, max_pages: int, bounds: Bounds
) -> tuple[Format, Extracted]:
    """`extract`, after the checks that refuse a file from its declared size alone."""
    found = format_for(name)
    kind = found.name if found is not None else ""
    if kind == "pdf":
        pages = pdf_pages(data)
        if pages is not None and pages > max_pages:
            raise SkippedFileError(
                f"its {pages:,} pages are over the limit of {max_pages:,} (DOCQA_MAX_PAGES)",
                "max_pages",
                max_pages,
            )
    if kind == "docx" and bounds.memory_mb:
        unpacked = unpacked_bytes(data)
        if unpacked > bounds.memory_mb * MB:
            raise SkippedFileError(
                f"it unpacks to {unpacked / MB:,.0f} MB, over the reading memory limit of "
                f"{bounds.memory_mb:,} MB (DOCQA_READ_MEMORY_MB)",
                "read_memory_mb",
                bounds.memory_mb,
            )
    return extract(name, data)


def pdf_pages(data: bytes) -> int | None:
    """The page count a PDF declares in its page tree; None when it cannot be read cheaply
    (its reader then finds what is wrong)."""
    from pdfminer.pdfdocument import PDFDocument
    from pdfminer.pdfparser import PDFParser
    from pdfminer.pdftypes import resolve1

    try:
        document = PDFDocument(PDFParser(io.BytesIO(data)))
        count = resolve1(resolve1(document.catalog["Pages"])["Count"])
    except Exception:  # any damage: the reader reports it
        return None
    return count if isinstance(count, int) else None


def unpacked_bytes(data: bytes) -> int:
    """The size a zip archive (a DOCX) declares for its files unpacked; 0 when it is not
    one (its reader says so)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return 0
