"""The service's document library: uploads and deletions in the corpus folder, and the one
background worker that brings the index up to date after them.

Builds are serialised by the single worker (and by the index lock, against `docqa index`
run beside the service); requests that arrive while a build runs are covered by the next
one, so a burst of uploads costs at most two builds. The service answers from the old index
until the new one is switched in, and never cites a deleted document meanwhile (`hidden`).

An upload is only checked for what is cheap before it is stored and answered; its reader
runs in the build within the reading limits (docqa.isolation), and the build runs in a child
process: the serving process never holds what a build loads. SIGTERM kills both at once.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docqa.config import Settings
from docqa.engine import Engine
from docqa.indexing.build import build_index, update_index
from docqa.indexing.corpus import find_same_content
from docqa.indexing.manifest import records_of
from docqa.isolation import Bounds, Stopper, run_bounded
from docqa.library import (
    Added,
    DocumentNotFoundError,
    UploadError,
    add_document,
    check_before_reading,
    check_type,
    document_id,
    document_type,
    library_names,
    remove_file,
    safe_filename,
)
from docqa.models import Chunk, DocqaError, DocumentRecord

log = logging.getLogger("docqa.service")


def rebuild_index(settings: Settings) -> Path | None:
    """Bring the index up to date with the corpus; None when the corpus holds no document."""
    if not library_names(settings.corpus_dir):
        return None
    return update_index(settings).folder  # only what was added or changed is embedded


def check_upload(name: str, data: bytes, settings: Settings) -> None:
    """Raises UploadError for an upload that is empty, over the file size limit, or a plain
    text or Markdown file whose text is over the length limit: checks that cost no reader
    run (the reader runs in the build, within the reading limits)."""
    if len(data) > settings.max_file_bytes:
        raise UploadError(
            f"{name}: {len(data) / 1e6:.1f} MB is over the size limit of "
            f"{settings.max_file_bytes / 1e6:.1f} MB (DOCQA_MAX_FILE_BYTES)"
        )
    check_before_reading(name, data, settings.max_document_chars)


NOT_INDEXED = (
    "in the corpus folder, not indexed yet: another worker may be indexing it; a file put "
    "there by hand is indexed by POST /reindex"
)


@dataclass
class Pending:
    """A document waiting for the build that indexes it, or whose build failed."""

    name: str
    added_at: str
    generation: int
    reason: str = ""


@dataclass
class Library:
    """Uploads, deletions and the background worker that rebuilds the index after them."""

    settings: Settings
    adopt: Callable[[Path | None], None]
    """Called by the worker with each new build (None: the library is empty) to answer from it."""
    rebuild: Callable[[Settings], Path | None] | None = None
    """How a build is made; by default rebuild_index, in a child unless not build_in_child."""
    requested: int = 0
    """Generation asked for: each upload, deletion or reindex adds one."""
    building: int = 0
    """Generation the running build covers (0 when idle)."""
    built: int = 0
    """Generation of the last finished build."""
    pending: dict[str, Pending] = field(default_factory=dict)
    failed: dict[str, Pending] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)
    """Deleted documents that the index in use may still hold: never cited."""
    condition: threading.Condition = field(default_factory=threading.Condition)
    worker: threading.Thread | None = None
    stopper: Stopper = field(default_factory=Stopper)
    """Kills the running build's child process at shutdown."""
    disk: FolderView = field(init=False)
    visible_cache: tuple[tuple[Any, ...], frozenset[str] | None] | None = None

    def __post_init__(self) -> None:
        self.disk = FolderView(self.settings.corpus_dir, self.settings.stale_check_s)

    def add(self, uploads: Sequence[tuple[str, bytes]]) -> list[Added]:
        """Check every upload, then store each one whose bytes the library does not hold yet
        and ask for a build; where each upload is in the library. Nothing is stored when
        one upload is refused."""
        corpus_dir = self.settings.corpus_dir
        checked = []
        for raw_name, data in uploads:
            name = safe_filename(raw_name)
            check_type(name, self.settings.upload_types)
            if find_same_content(corpus_dir, data) is None:  # a copy was checked when it came
                check_upload(name, data, self.settings)
            checked.append((name, data))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self.condition:
            added = [add_document(corpus_dir, name, data) for name, data in checked]
            stored = [a.name for a in added if a.stored]
            if stored:
                generation = self.request_build()
                for name in stored:
                    self.pending[name] = Pending(name, stamp, generation)
                    self.hidden.discard(name)
        if stored:
            log.info("uploaded %s", ", ".join(stored))
        for item in added:
            if not item.stored:
                log.info("upload not stored: %s", item.detail)
        return added

    def remove(self, doc_id: str, engine: Engine | None) -> str:
        """Delete a document by id: from the folder now, from answers at once, from the index
        by the next build; its name."""
        with self.condition:
            name = next((n for n in self.names(engine) if document_id(n) == doc_id), None)
            if name is None:
                raise DocumentNotFoundError(
                    f"no document has id {doc_id[:80]!r}: GET /documents lists them"
                )
            remove_file(self.settings.corpus_dir, name)
            self.pending.pop(name, None)
            self.failed.pop(name, None)
            self.hidden.add(name)
            self.request_build()
        log.info("deleted %s", name)
        return name

    def reindex(self) -> int:
        """Ask for a build of the corpus as it is on disk; the generation that covers it."""
        with self.condition:
            return self.request_build()

    def request_build(self) -> int:
        """Ask the worker for a build (starting it the first time); call under the condition."""
        self.requested += 1
        if self.worker is None:
            self.worker = threading.Thread(target=self.run, name="docqa-indexer", daemon=True)
            self.worker.start()
        self.condition.notify_all()
        return self.requested

    def run(self) -> None:
        """The worker: one build at a time, each covering every request made before it began."""
        while True:
            with self.condition:
                while self.built >= self.requested:
                    self.condition.wait()
                self.building = self.requested
            failure = self.build_once()
            with self.condition:
                if not failure:  # a build indexes the whole corpus: earlier failures are over
                    self.failed.clear()
                for name, pending in list(self.pending.items()):
                    if pending.generation <= self.building:
                        del self.pending[name]
                        if failure:
                            pending.reason = failure
                            self.failed[name] = pending
                self.built, self.building = self.building, 0
                self.condition.notify_all()

    def build_once(self) -> str:
        """Rebuild and switch to the result; the reason it failed, or "" when it did not."""
        started = time.perf_counter()
        rebuild = self.rebuild or (
            self.rebuild_in_child if self.settings.build_in_child else rebuild_index
        )
        try:
            folder = rebuild(self.settings)
            self.adopt(folder)
        except DocqaError as error:
            log.error("indexing failed, still answering from the previous index: %s", error)
            return str(error)
        except Exception as error:  # a model or library failure must reach the document list
            log.exception("indexing failed")
            return f"indexing failed: {error}"
        log.info("library indexed in %.1f s", time.perf_counter() - started)
        return ""

    def rebuild_in_child(self, settings: Settings) -> Path | None:
        """rebuild_index in a child process, which takes what the build loads with it."""
        if not library_names(settings.corpus_dir):
            return None
        return self.build_in_child(settings, False)

    def build_in_child(self, settings: Settings, force: bool) -> Path:
        """build_index (all again with `force`, else what changed) in a child process."""
        folder: Path = run_bounded(build_index, (settings, None, force), Bounds(), self.stopper)
        return folder

    @property
    def closed(self) -> bool:
        """Whether the library was closed: the service is shutting down."""
        return self.stopper.stopped

    def close(self) -> None:
        """Kill the running build's child process (its readers end with it), start no other;
        safe to call again, and from a signal handler."""
        if not self.stopper.stopped:
            log.info("stopping: the running build, if any, is abandoned")
        self.stopper.stop()

    def wait_until_idle(self, timeout_s: float) -> bool:
        """Wait until every requested build is done (for tests and shutdown); True if so."""
        with self.condition:
            return self.condition.wait_for(lambda: self.built >= self.requested, timeout_s)

    def names(self, engine: Engine | None) -> list[str]:
        """Every document the library knows: indexed, waiting, failed, or added to the folder
        (by another worker process, or by hand) and not indexed yet; deleted ones left out."""
        indexed = list(engine.index.document_rows) if engine is not None else []
        reported = [r.name for r in records_of(engine.index.manifest)] if engine else []
        on_disk = self.disk.names()
        known = [*indexed, *reported, *self.pending, *self.failed, *sorted(on_disk)]
        gone = self.hidden | (set(indexed + reported) - on_disk)
        return [n for n in dict.fromkeys(known) if n not in gone]

    def visible(self, engine: Engine) -> frozenset[str] | None:
        """The indexed documents answers may cite, or None when that is all of them: never
        one deleted here, or from the folder (by another worker process) since indexing.
        Computed again only when the index, the folder or the deletions change (it is asked
        on every question, and costs a pass over the documents)."""
        on_disk = self.disk.names()
        with self.condition:
            key = (engine.index.path, on_disk, frozenset(self.hidden))  # same objects: cheap
            if self.visible_cache is not None and self.visible_cache[0] == key:
                return self.visible_cache[1]
            indexed = set(engine.index.document_rows)
            hidden = (self.hidden | (indexed - on_disk)) & indexed
            result = frozenset(indexed - hidden) if hidden else None
            self.visible_cache = (key, result)
            return result

    def records(self, engine: Engine | None) -> list[dict[str, Any]]:
        """One record per document: id, name, type, counts, sections, status and reason."""
        with self.condition:
            names = self.names(engine)
            pending, failed = dict(self.pending), dict(self.failed)
            building = self.building
        chunks = engine.index.chunks if engine is not None else []
        outline = {d["name"]: d for d in outline_documents(chunks)}
        report = {r.name: r for r in records_of(engine.index.manifest)} if engine else {}
        records = []
        for name in names:
            record = document_record(
                name, self.settings.corpus_dir, outline.get(name), report.get(name)
            )
            if name in pending:
                waiting = pending[name]
                running = building and waiting.generation <= building
                record.update(status="indexing" if running else "queued", added_at=waiting.added_at)
            elif name in failed:
                record.update(status="failed", reason=failed[name].reason)
            elif name not in outline and name not in report:
                record["reason"] = NOT_INDEXED
            records.append(record)
        return records


@contextlib.contextmanager
def closed_on_signals(library: Library) -> Iterator[None]:
    """Close the library as soon as SIGTERM or SIGINT arrives, then pass the signal on to
    uvicorn's handler (which waits for requests in flight): a build does not run on. Only
    the main thread can handle signals; elsewhere (a test client) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def handle(number: int, frame: Any) -> None:
        library.close()
        handler = previous[number]
        if callable(handler):
            handler(number, frame)
        elif handler == signal.SIG_DFL:
            signal.signal(number, signal.SIG_DFL)
            signal.raise_signal(number)

    for number in previous:
        signal.signal(number, handle)
    try:
        yield
    finally:
        for number, handler in previous.items():
            if signal.getsignal(number) is handle:
                signal.signal(number, handler)


@dataclass
class FolderView:
    """The document names in the corpus folder, listed again only when the folder's
    modification time changes (an upload or a deletion there, by any process) or after
    `every_s` seconds (for changes inside its subfolders): one stat per question."""

    folder: Path
    every_s: float
    stamp: tuple[int, float] | None = None
    cached: frozenset[str] = frozenset()
    lock: threading.Lock = field(default_factory=threading.Lock)

    def names(self) -> frozenset[str]:
        """The names of the documents in the folder now."""
        try:
            modified = self.folder.stat().st_mtime_ns
        except OSError:
            modified = -1
        with self.lock:
            fresh = self.stamp is not None and self.stamp[0] == modified
            if fresh and self.stamp is not None and time.monotonic() - self.stamp[1] < self.every_s:
                return self.cached
            self.cached = frozenset(library_names(self.folder))
            self.stamp = (modified, time.monotonic())
            return self.cached


def document_record(
    name: str,
    corpus_dir: Path,
    outline: dict[str, Any] | None,
    reported: DocumentRecord | None = None,
) -> dict[str, Any]:
    """The record of one document: its passages and sections as indexed (`outline`, None
    when it is not), with what the index report says of it (type, pages, skipped or failed
    and why) when the build in use read it."""
    try:
        modified = (corpus_dir / name).stat().st_mtime
        added_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(modified))
    except OSError:
        added_at = None
    doc_id = document_id(name)
    record = {
        "id": doc_id,
        "name": name,
        "type": document_type(name),
        "pages": None,
        "chunks": outline["chunks"] if outline else 0,
        "sections": outline["sections"] if outline else [],
        "status": "indexed" if outline else "queued",
        "reason": "",
        "added_at": added_at,
        "status_url": f"/documents/{doc_id}",
    }
    if reported is not None:
        record.update(
            type=reported.type or record["type"],
            pages=reported.pages,
            encoding=reported.encoding,
            added_at=reported.added_at or added_at,
        )
        if reported.status != "indexed":
            record.update(status=reported.status, reason=reported.reason)
    return record


def outline_documents(chunks: Sequence[Chunk]) -> list[dict[str, Any]]:
    """Documents in index order, each with its sections in order and their chunk counts."""
    sections: dict[str, dict[str, int]] = {}
    for chunk in chunks:
        counts = sections.setdefault(chunk.document, {})
        counts[chunk.section] = counts.get(chunk.section, 0) + 1
    return [
        {
            "name": name,
            "chunks": sum(counts.values()),
            "sections": [{"title": title, "chunks": n} for title, n in counts.items()],
        }
        for name, counts in sections.items()
    ]
