"""The question-answering engine: one object that the CLI, the API and the evaluation share."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from docqa.answer.compose import compose_answer
from docqa.answer.confidence import default_model
from docqa.answer.conversation import Turn, resolve_query
from docqa.answer.reader import default_reader
from docqa.answer.retrieval import Retrieval, search, weak_hits
from docqa.config import Settings
from docqa.indexing.build import Builder, open_index
from docqa.indexing.embedding import Embedder
from docqa.indexing.index import Index
from docqa.indexing.store import Notify
from docqa.library import document_id
from docqa.models import Answer, DocqaError, Hit

if TYPE_CHECKING:
    from docqa.indexing.vectors import Progress


class QuestionError(DocqaError, ValueError):
    """The question or its options are not acceptable (empty, too long, k out of range)."""


@dataclass
class Engine:
    """A loaded index and query encoder, ready to answer questions."""

    index: Index
    embedder: Embedder
    settings: Settings

    @classmethod
    def load(
        cls,
        settings: Settings,
        notify: Notify | None = None,
        progress: Progress | None = None,
        builder: Builder | None = None,
    ) -> Engine:
        """Open (building if needed, with `builder` when given) the index and load its ONNX
        query encoder."""
        return cls.from_index(open_index(settings, notify, progress, builder), settings)

    @classmethod
    def from_index(
        cls, index: Index, settings: Settings, embedder: Embedder | None = None
    ) -> Engine:
        """An engine over a loaded index, with its ONNX query encoder unless one is given."""
        import faiss

        from docqa.indexing.embedding import OnnxEmbedder

        # Queries come one at a time: OpenMP threads only add synchronisation to a single
        # search (`docqa bench`: flat search over 20k vectors 2.1 ms on 1 thread, 7.6 on 2).
        faiss.omp_set_num_threads(1)
        default_model()  # a damaged answer model is reported now, not on the first question
        default_reader(settings.encoder_threads)  # and so is a missing or damaged reader
        if embedder is None:
            embedder = OnnxEmbedder(
                index.path / "encoder", intra_op_num_threads=settings.encoder_threads
            )
        return cls(index, embedder, settings)

    def check(self, question: str, k: int | None) -> int:
        """Validate a question and k; returns the k to use."""
        if not question or not question.strip():
            raise QuestionError("the question is empty: type a question about the document")
        if len(question) > self.settings.max_question_chars:
            raise QuestionError(
                f"the question is {len(question)} characters long; the limit is "
                f"{self.settings.max_question_chars}"
            )
        k = self.settings.k if k is None else k
        if not 1 <= k <= 50:
            raise QuestionError(f"k must be between 1 and 50, got {k}")
        return k

    def documents_named(self, ids: Sequence[str]) -> frozenset[str]:
        """The names of the indexed documents with these ids; QuestionError for an unknown id."""
        names = {document_id(name): name for name in self.index.document_rows}
        unknown = [i for i in ids if i not in names]
        if unknown:
            listed = ", ".join(repr(i[:80]) for i in unknown[:5])
            raise QuestionError(
                f"unknown document id {listed}: GET /documents lists the ids of the documents"
            )
        return frozenset(names[i] for i in ids)

    def search(
        self,
        query: str,
        k: int | None = None,
        mode: str = "hybrid",
        documents: frozenset[str] | None = None,
    ) -> Retrieval:
        """The ranked passages for a query, without an answer; only from `documents` (names)
        when given."""
        k = self.check(query, k)
        only = None if documents is None else self.index.rows_of(documents)
        return search(self.index, self.embedder, query.strip(), k, self.settings, mode, only=only)

    def ask(
        self,
        question: str,
        k: int | None = None,
        history: list[Turn] | None = None,
        mode: str = "hybrid",
        documents: frozenset[str] | None = None,
    ) -> Answer:
        """Answer a question, using earlier turns when it is a follow-up.

        `mode` (hybrid, dense or lexical) picks the retrieval; the evaluation compares them.
        `documents`, when given, names the documents the answer may come from.
        """
        started = time.perf_counter()
        k = self.check(question, k)
        question = question.strip()
        query = resolve_query(question, history or [])
        only = None if documents is None else self.index.rows_of(documents)
        retrieval = search(
            self.index,
            self.embedder,
            query.text,
            k,
            self.settings,
            mode,
            question,
            query.carried,
            only,
        )
        clock = time.perf_counter()
        composed = compose_answer(self.index, retrieval, question, self.settings)
        timings = dict(retrieval.timings_ms)
        timings["answer"] = (time.perf_counter() - clock) * 1000.0
        timings["total"] = (time.perf_counter() - started) * 1000.0
        return Answer(
            question,
            composed.text,
            composed.answered,
            round(composed.confidence, 4),
            tuple(retrieval.hits),
            tuple(composed.citations),
            {name: round(ms, 3) for name, ms in timings.items()},
            query.text,
            composed.short_answer,
        )


def source_json(hit: Hit, weak: bool = False) -> dict[str, Any]:
    """One source in the documented JSON shape."""
    return {
        "rank": hit.rank,
        "chunk_id": hit.chunk.id,
        "document": hit.chunk.document,
        "document_id": document_id(hit.chunk.document),
        "section": hit.chunk.section,
        "text": hit.chunk.text,
        "score": round(hit.score, 4),
        "start": hit.chunk.start,
        "end": hit.chunk.end,
        "page": hit.chunk.page,
        "weak": weak,
    }


def sources_json(hits: Sequence[Hit]) -> list[dict[str, Any]]:
    """Hits as sources, those scoring under half the best marked weak (retrieval.weak_hits)."""
    weak = weak_hits(list(hits))
    return [source_json(hit, hit.rank in weak) for hit in hits]


def answer_json(answer: Answer) -> dict[str, Any]:
    """The answer in the documented JSON shape (shared by `ask --json` and the API)."""
    return {
        "question": answer.question,
        "short_answer": answer.short_answer,
        "answer": answer.text,
        "answered": answer.answered,
        "confidence": answer.confidence,
        "sources": sources_json(answer.hits),
        "citations": [
            {
                "rank": c.rank,
                "chunk_id": c.chunk_id,
                "text": c.text,
                "start": c.start,
                "end": c.end,
                "document_start": c.document_start,
                "document_end": c.document_end,
            }
            for c in answer.citations
        ],
        "timings_ms": answer.timings_ms,
    }
