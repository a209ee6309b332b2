"""HTTP request and response bodies, as published in the OpenAPI schema.

The module avoids `from __future__ import annotations`: FastAPI and pydantic read these
annotations at runtime.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

NOT_BLANK = r"[^\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
"""JSON Schema pattern of a text that is not only whitespace: one character outside the
characters Python's str.strip() removes, which is what the service refuses (JSON Schema's
own \\s is another set: it misses "\\x1f" and includes "\\ufeff")."""


def not_blank(text: str, what: str) -> str:
    """The text, unless it is only whitespace (then a validation error saying so)."""
    if not text.strip():
        raise PydanticCustomError("blank", f"the {what} is only whitespace: type a question")
    return text


class ChatRequestBase(BaseModel):
    """A question, optionally continuing a conversation."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, description="The question, in plain text.")
    conversation_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="The id returned by an earlier /chat answer, to ask a follow-up; "
        "null (or absent) starts a new conversation.",
    )
    k: int = Field(5, ge=1, le=50, strict=True, description="How many passages to return.")
    documents: list[Annotated[str, Field(max_length=100)]] | None = Field(
        None,
        max_length=100,
        description="Ids of the documents the answer may come from (GET /documents lists "
        "them). Kept by the conversation for its follow-ups; null (or absent) keeps the "
        "conversation's choice, all documents for a new one; [] means all documents.",
    )

    @field_validator("message")
    @classmethod
    def _not_blank(cls, message: str) -> str:
        return not_blank(message, "message")

    @field_validator("k", mode="before")
    @classmethod
    def _integral_number(cls, k: object) -> object:
        # JSON has one number type: to JSON Schema, and so to the published OpenAPI schema,
        # 5.0 is the integer 5. A string or a boolean still fails the strict check.
        return int(k) if isinstance(k, float) and k.is_integer() else k


class Source(BaseModel):
    """A retrieved passage of the document."""

    rank: int = Field(description="Position in the ranking, 1 for the best passage.")
    chunk_id: str = Field(description="Stable id of the passage in the index.")
    document: str = Field(description="Corpus file the passage comes from.")
    document_id: str = Field(
        description="Id of that document: GET /documents/{id}/text (and /pages/{n}) shows it."
    )
    section: str = Field(description="Heading of the section that holds the passage.")
    text: str = Field(description="The passage text (cleaned of PDF line breaks).")
    score: float = Field(
        description="Retrieval score from 0 to 1 (best sentence match); higher is better."
    )
    start: int = Field(description="Offset of the passage's first character in the document.")
    end: int = Field(description="Offset just after the passage's last character in the document.")
    page: int | None = Field(
        description="1-based page the passage starts on (PDF); null for unpaged formats."
    )
    weak: bool = Field(
        description="A weak match: its score is under half the best source's, so it is "
        "probably unrelated to the question."
    )


class Citation(BaseModel):
    """A sentence of a source that the answer quotes."""

    rank: int = Field(description="Rank of the source the sentence comes from.")
    chunk_id: str = Field(description="Id of that source.")
    text: str = Field(description="The quoted sentence.")
    start: int = Field(description="Offset of the sentence inside the source's `text`.")
    end: int = Field(description="Offset just after the sentence inside the source's `text`.")
    document_start: int = Field(
        description="Offset of the sentence in the document's text (GET /documents/{id}/text)."
    )
    document_end: int = Field(description="Offset just after the sentence in that text.")


class ChatResponse(BaseModel):
    """The answer to one message and the passages it rests on."""

    conversation_id: str = Field(description="Send it back with the next message to follow up.")
    short_answer: str | None = Field(
        description="The span of the evidence that answers (a date, number, name or phrase); "
        "null when not answered or when no span can be singled out."
    )
    answer: str = Field(
        description="Sentences quoted from the document, or a notice that it does not say."
    )
    answered: bool = Field(description="False when the document does not cover the question.")
    confidence: float = Field(ge=0.0, le=1.0, description="How sure the answer is, 0 to 1.")
    sources: list[Source] = Field(description="The passages retrieved, best first.")
    citations: list[Citation] = Field(
        description="The source sentences that make up the answer; empty when not answered."
    )
    timings_ms: dict[str, float] = Field(
        description="Milliseconds per stage (encode, dense, lexical, fusion, answer, total)."
    )


class SearchResponse(BaseModel):
    """The passages ranked for a query, without an answer."""

    query: str = Field(description="The query as searched.")
    sources: list[Source] = Field(description="The passages retrieved, best first.")
    timings_ms: dict[str, float] = Field(description="Milliseconds per retrieval stage.")


class Section(BaseModel):
    """A section of a document."""

    title: str = Field(description="The section heading ('Introduction' before the first one).")
    chunks: int = Field(description="Number of indexed passages in the section.")


class DocumentRecord(BaseModel):
    """A document of the library: what it is and whether answers can come from it yet."""

    id: str = Field(description="Stable id (from the name): for filters and DELETE.")
    name: str = Field(description="Path of the file inside the corpus folder.")
    type: str = Field(description="Format, e.g. 'pdf', 'docx', 'html', 'markdown', 'text'.")
    pages: int | None = Field(description="Number of pages, for paged formats; else null.")
    encoding: str | None = Field(
        None, description="The encoding a text file was read with (detected); else null."
    )
    chunks: int = Field(description="Number of indexed passages in the document.")
    sections: list[Section] = Field(description="Sections in the order they appear.")
    status: Literal["indexed", "queued", "indexing", "skipped", "failed"] = Field(
        description="indexed: answers can come from it; queued or indexing: uploaded, the "
        "index is being brought up to date; skipped or failed: not indexed, see `reason`."
    )
    reason: str = Field(description="Why it is skipped or failed; empty otherwise.")
    added_at: str | None = Field(description="When the file was added (UTC, ISO 8601).")
    status_url: str = Field(description="Where to follow its status (GET).")


class UploadedDocument(DocumentRecord):
    """An uploaded file: the document it is in the library, and whether it was stored now."""

    stored: bool = Field(
        description="True: stored now, indexed in the background; false: the library already "
        "held the same bytes, as the document this record names (nothing was stored)."
    )
    detail: str = Field(
        description="What became of the file: 'added', or 'already in the library as NAME'."
    )


class UploadResponse(BaseModel):
    """Uploaded documents: 202 when some were stored and are being indexed in the background,
    200 when the library already held every one of them."""

    documents: list[UploadedDocument] = Field(
        description="One record per uploaded file, in the order sent, under the name it is in "
        "the library with: a new file's name (one already taken gets ' (2)', ' (3)', ... "
        "before its suffix), or that of the document with the same bytes."
    )


class Deleted(BaseModel):
    """A document removed from the library."""

    id: str = Field(description="The id of the deleted document.")
    name: str = Field(description="Its file name.")
    detail: str = Field(description="What happens next.")


class Reindexing(BaseModel):
    """A rebuild of the index from the corpus folder, running in the background (202)."""

    detail: str = Field(description="What happens next.")


class Health(BaseModel):
    """The service is ready."""

    status: Literal["ok"] = Field(description="Always 'ok' with status code 200.")
    documents: int = Field(description="Number of indexed documents.")
    chunks: int = Field(description="Number of indexed passages.")
    model: str = Field(description="Embedding model the index was built with.")
    index_built_at: str | None = Field(
        description="When the index was built (UTC, ISO 8601); null while the library is empty."
    )
    index_version: str | None = Field(
        description="Name of the index build answering now; changes when a new build is "
        "switched in (the service follows index/CURRENT without a restart); null while the "
        "library is empty."
    )
    stale: bool = Field(
        description="True when the corpus on disk no longer matches the loaded index: the "
        "service keeps answering from it until a new build is switched in."
    )
    stale_reasons: list[str] = Field(
        description="What differs, e.g. 'brief.txt has changed'; empty when not stale."
    )


class HealthBrief(BaseModel):
    """The service is ready (what a request without the API key sees when one is set)."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["ok"] = Field(description="Always 'ok' with status code 200.")


class HealthProblem(BaseModel):
    """The service cannot answer yet (503)."""

    status: Literal["loading", "error"] = Field(
        description="'loading' while the index loads, 'error' if loading failed."
    )
    detail: str = Field(description="What is happening, for a person.")


class FieldProblem(BaseModel):
    """One invalid field of a request."""

    loc: list[str | int] = Field(description="Where the problem is, e.g. ['body', 'k'].")
    msg: str = Field(description="What is wrong.")
    type: str = Field(description="Machine-readable kind of problem.")


class ErrorBody(BaseModel):
    """Every error response."""

    detail: str = Field(description="What went wrong and, when it helps, how to fix it.")
    errors: list[FieldProblem] | None = Field(
        None, description="For 422: each invalid field of the request."
    )
