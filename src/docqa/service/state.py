"""What the routes share: the loaded engine (or why it failed), the conversations, and the
conversions from engine results to response bodies."""

import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request

from docqa.config import Settings
from docqa.engine import Engine, QuestionError, answer_json
from docqa.indexing.corpus import CorpusError
from docqa.indexing.manifest import compare_corpus
from docqa.indexing.store import current_build, load_build
from docqa.library import document_id, library_names
from docqa.models import Answer, DocqaError
from docqa.service.conversations import ConversationStore
from docqa.service.library import Library

log = logging.getLogger("docqa.service")


class NotReadyError(DocqaError):
    """The engine is still loading, or failed to load."""


class EmptyLibraryError(DocqaError):
    """The library holds no indexed document yet: there is nothing to answer from."""


def chat_json(answer: Answer, conversation_id: str) -> dict[str, Any]:
    """The /chat body: `docqa ask --json` without the question, plus the conversation."""
    body = answer_json(answer)
    del body["question"]
    return {"conversation_id": conversation_id, **body}


def empty_health_json(settings: Settings) -> dict[str, Any]:
    """The /health body of a service with an empty library: ready for uploads."""
    return {
        "status": "ok",
        "documents": 0,
        "chunks": 0,
        "model": settings.model,
        "index_built_at": None,
        "index_version": None,
        "stale": False,
        "stale_reasons": [],
    }


def health_json(engine: Engine, changes: list[str]) -> dict[str, Any]:
    """The /health body of a ready service, from the index manifest and the corpus changes."""
    manifest = engine.index.manifest
    return {
        "status": "ok",
        # Indexed files only: the manifest also lists the skipped and failed ones.
        "documents": len({chunk.document for chunk in engine.index.chunks}),
        "chunks": manifest.get("chunks", len(engine.index.chunks)),
        "model": manifest["model"],
        "index_built_at": manifest["built_at"],
        "index_version": engine.index.path.name,
        "stale": bool(changes),
        "stale_reasons": changes,
    }


def corpus_changes(engine: Engine) -> list[str]:
    """How the corpus on disk differs from the one the loaded index was built from."""
    try:
        return compare_corpus(engine.index.manifest, engine.settings)
    except CorpusError as error:
        return [str(error)]
    except OSError as error:  # a file removed or made unreadable while it was listed
        return [f"the corpus cannot be read: {error}"]


@dataclass
class StalenessCheck:
    """The corpus changes since the index was loaded, recomputed at most every `every_s`
    seconds however often /health is asked (a file whose size or modification time moved
    since the index read it is hashed)."""

    every_s: float
    changes: list[str] = field(default_factory=list)
    checked_at: float = -math.inf
    lock: threading.Lock = field(default_factory=threading.Lock)

    def current(self, engine: Engine) -> list[str]:
        """The changes, from the cache when it is recent enough."""
        with self.lock:
            now = time.monotonic()
            if now - self.checked_at >= self.every_s:
                changes = corpus_changes(engine)
                if changes and changes != self.changes:
                    log.warning(
                        "the index is stale (still answering from it): %s", "; ".join(changes)
                    )
                self.changes, self.checked_at = changes, now
            return self.changes

    def reset(self) -> None:
        """Forget the cached changes: a new index was switched in."""
        with self.lock:
            self.changes, self.checked_at = [], -math.inf


@dataclass
class Service:
    """What the routes share: the engine once loaded (or why it failed) and the conversations."""

    settings: Settings
    conversations: ConversationStore
    engine: Engine | None = None
    error: str | None = None
    loaded: threading.Event = field(default_factory=threading.Event)
    staleness: StalenessCheck = field(init=False)
    pointer_seen: tuple[int, int] | None = None
    """(inode, mtime) of index/CURRENT when the loaded build was chosen."""
    switching: threading.Lock = field(default_factory=threading.Lock)
    empty: bool = False
    """True while the corpus holds no document: the service is ready for uploads."""
    library: Library = field(init=False)

    def __post_init__(self) -> None:
        self.staleness = StalenessCheck(self.settings.stale_check_s)
        self.library = Library(self.settings, self.adopt)
        if self.engine is not None:
            self.pointer_seen = pointer_stamp(self.settings.index_dir)

    def follow_current(self) -> None:
        """Switch to the build index/CURRENT names when it changed since the last look.

        Called on every request: a stat costs microseconds. The new build loads in a
        background thread while requests keep the engine they started with.
        """
        stamp = pointer_stamp(self.settings.index_dir)
        # An empty library follows too: another worker process may have indexed an upload.
        waiting = self.engine is None and not self.empty
        if stamp is None or stamp == self.pointer_seen or waiting:
            return
        if self.switching.acquire(blocking=False):
            self.pointer_seen = stamp
            threading.Thread(target=self.switch, name="docqa-switch", daemon=True).start()

    def switch(self) -> None:
        """Load the build that index/CURRENT names and answer from it from now on (the
        thread follow_current starts, holding `switching`)."""
        try:
            self.load_current()
        except DocqaError as error:
            log.error("cannot switch to the new index, still answering from the old: %s", error)
        finally:
            self.switching.release()

    def adopt(self, folder: Path | None) -> None:
        """Answer from the build just made (the library's worker calls it), or, with None,
        from nothing: the library is empty. Raises when the build cannot be loaded."""
        with self.switching:
            self.pointer_seen = pointer_stamp(self.settings.index_dir)
            if folder is None:
                self.engine, self.empty = None, True
                log.info("the library is empty: waiting for an upload")
                return
            self.load_current()

    def load_current(self) -> None:
        """Load the build index/CURRENT names unless it is the one answering already."""
        folder = current_build(self.settings.index_dir)
        old = self.engine
        if folder is None or (old is not None and folder == old.index.path):
            return
        # Segments the new build kept (a book beside the file just added) are not read again.
        index = load_build(folder, old.index if old is not None else None)
        # The same model's query encoder is kept: loading another copy costs ~1 s.
        keys = ("model", "encoder_precision")
        same = old is not None and all(
            index.manifest.get(k) == old.index.manifest.get(k) for k in keys
        )
        embedder = old.embedder if old is not None and same else None
        self.engine = Engine.from_index(index, self.settings, embedder)
        self.empty, self.error = False, None
        self.staleness.reset()
        log.info("switched to index %s: %d chunks", folder.name, len(index.chunks))

    def load(self) -> None:
        """Load the engine (building the index if needed); record the error if it fails."""
        started = time.perf_counter()
        if not library_names(self.settings.corpus_dir):
            self.empty = True
            self.pointer_seen = pointer_stamp(self.settings.index_dir)  # a build of old files
            log.info("no document in %s yet: waiting for an upload", self.settings.corpus_dir)
            self.loaded.set()
            return
        log.info("loading the index from %s", self.settings.index_dir)
        try:
            # A build at start-up runs in a child too: the service keeps none of its memory.
            builder = self.library.build_in_child if self.settings.build_in_child else None
            self.engine = Engine.load(
                self.settings, notify=lambda message: log.warning("%s", message), builder=builder
            )
        except DocqaError as error:
            self.error = str(error)
            log.error("cannot load the index: %s", error)
        except Exception as error:  # a model or library failure must still reach /health
            self.error = f"the index could not be loaded: {error}"
            log.exception("cannot load the index")
        else:
            log.info(
                "ready: %d chunks, model %s, loaded in %.1f s",
                len(self.engine.index.chunks),
                self.engine.index.manifest.get("model"),
                time.perf_counter() - started,
            )
        finally:
            self.pointer_seen = pointer_stamp(self.settings.index_dir)
            self.loaded.set()


def pointer_stamp(index_dir: Path) -> tuple[int, int] | None:
    """(inode, mtime) of index/CURRENT, which a build replaces atomically; None if absent."""
    try:
        stat = (index_dir / "CURRENT").stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


# The two dependencies are `async` because they never block: FastAPI runs a plain `def`
# dependency in the thread pool, and each hop there costs ~0.2 ms per request (`docqa bench`).
async def get_service(request: Request) -> Service:
    """The app's shared state."""
    service: Service = request.app.state.service
    return service


async def ready_engine(service: Annotated[Service, Depends(get_service)]) -> Engine:
    """The loaded engine; 503 while loading or after a failed load."""
    service.follow_current()
    if service.engine is not None:
        return service.engine
    if service.empty:
        raise EmptyLibraryError(
            "the library has no documents yet: upload one (POST /documents, or on the page)"
        )
    if service.error is not None:
        raise NotReadyError(f"the service could not load its index: {service.error}")
    raise NotReadyError("the index is still loading: retry in a few seconds")


def chosen_documents(
    engine: Engine, library: Library, ids: Sequence[str] | None, strict: bool = True
) -> frozenset[str] | None:
    """The names of the documents an answer may come from: those with the given ids (all when
    none are given), never a deleted one; None when that is every document. An unknown id is
    a QuestionError when `strict`, else (a conversation's earlier choice) left out."""
    visible = library.visible(engine)
    if not ids:
        return visible
    known = frozenset(document_id(name) for name in engine.index.document_rows)
    names = engine.documents_named(ids if strict else [i for i in ids if i in known])
    if visible is not None:
        names &= visible
    if not names:
        raise QuestionError(
            "the documents asked for have been deleted: choose others, or send "
            '"documents": [] to ask all of them'
        )
    return names
