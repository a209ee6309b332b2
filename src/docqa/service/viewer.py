"""The source viewer's routes: a document's extracted text with its spans, a PDF's pages as
PNG images, and the boxes of a cited span on a page. Behind the same key, host checks and
rate limits as every route (the middleware wraps them all); the work is in docqa.sources.

The module avoids `from __future__ import annotations`: FastAPI reads the signatures.
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from docqa.config import Settings
from docqa.engine import Engine
from docqa.library import DocumentNotFoundError, document_id
from docqa.service.state import Service, get_service
from docqa.sources import DocumentText, SourceViewer

MAX_PAGE = 100_000
"""Larger page numbers are refused as invalid before any file is read."""


class TextSpan(BaseModel):
    """A heading or section of the text."""

    title: str = Field(description="The heading's text (for a section, its heading).")
    start: int = Field(description="Offset of its first character in `text`.")
    end: int = Field(description="Offset just after its last character in `text`.")


class PageSpan(BaseModel):
    """Where a page's text lies in the document's text."""

    number: int = Field(description="1-based page number.")
    start: int = Field(description="Offset of the page's first character in `text`.")
    end: int = Field(description="Offset just after the page's last character.")


class DocumentTextBody(BaseModel):
    """A document's extracted text, as indexed: sources' start and end, and citations'
    document_start and document_end, are offsets into `text`."""

    id: str = Field(description="The document's id.")
    name: str = Field(description="Its file name in the library.")
    type: str = Field(description="Format, e.g. 'pdf', 'docx', 'html', 'markdown', 'text'.")
    text: str = Field(description="The extracted text (blocks separated by a blank line).")
    headings: list[TextSpan] = Field(description="The headings, in order.")
    sections: list[TextSpan] = Field(description="Each section, from its heading to its end.")
    pages: list[PageSpan] = Field(description="The pages of a PDF; empty for other formats.")


class PageBox(BaseModel):
    """A rectangle on the page, as shares (0 to 1) of the page image's width and height."""

    x: float = Field(description="Left edge, from the page's left.")
    y: float = Field(description="Top edge, from the page's top.")
    width: float
    height: float


class PageBoxes(BaseModel):
    """Where a span of the document's text lies on a page: one box per line."""

    page: int = Field(description="The page asked for.")
    start: int = Field(description="The span's start in the document's text.")
    end: int = Field(description="The span's end in the document's text.")
    text: str = Field(description="The text of the span.")
    boxes: list[PageBox] = Field(
        description="One box per line of the span on this page; empty when the span is not "
        "on this page (a span over a page break has boxes on both pages)."
    )


def text_json(doc_id: str, document: DocumentText) -> dict[str, Any]:
    """The /documents/{id}/text body."""
    return {
        "id": doc_id,
        "name": document.name,
        "type": document.type,
        "text": document.text,
        "headings": [vars(span) for span in document.headings],
        "sections": [vars(span) for span in document.sections],
        "pages": [
            {"number": number, "start": start, "end": end}
            for number, (start, end) in enumerate(document.pages, 1)
        ],
    }


def add_viewer_routes(
    app: FastAPI,
    settings: Settings,
    problems: dict[int | str, dict[str, Any]],
    library_engine: Callable[[Service], Engine | None],
) -> None:
    """GET /documents/{id}/text, /documents/{id}/pages/{n} and .../pages/{n}/boxes."""
    ServiceDep = Annotated[Service, Depends(get_service)]
    PageNumber = Annotated[int, Path(ge=1, le=MAX_PAGE, description="1-based page number.")]
    viewer = SourceViewer(settings.corpus_dir, settings)  # read within the limits
    app.state.viewer = viewer

    def find(service: Service, doc_id: str) -> str:
        """The name of the library's document with this id (never a deleted one)."""
        for name in service.library.names(library_engine(service)):
            if document_id(name) == doc_id:
                return name
        raise DocumentNotFoundError(
            f"no document has id {doc_id[:80]!r}: GET /documents lists them"
        )

    @app.get("/documents/{doc_id}/text", response_model=DocumentTextBody, responses=problems)
    def document_text(doc_id: str, service: ServiceDep) -> Any:
        """The document's extracted text, as indexed, with its headings, sections and pages
        as spans: scroll to a source's start and end (or a citation's document_start and
        document_end) and highlight them."""
        name = find(service, doc_id)
        return text_json(doc_id, viewer.text(name))

    @app.get(
        "/documents/{doc_id}/pages/{number}",
        response_class=Response,
        responses={**problems, 200: {"content": {"image/png": {}}, "description": "The page"}},
    )
    def page_image(doc_id: str, number: PageNumber, service: ServiceDep) -> Response:
        """Page `number` of a PDF as a PNG image (404 for a page it does not have, 422 for a
        document that is not a PDF)."""
        name = find(service, doc_id)
        return Response(viewer.page(name, number).png, media_type="image/png")

    @app.get(
        "/documents/{doc_id}/pages/{number}/boxes", response_model=PageBoxes, responses=problems
    )
    def page_boxes(
        doc_id: str,
        number: PageNumber,
        service: ServiceDep,
        start: Annotated[int, Query(ge=0, description="Start of the span in the text.")],
        end: Annotated[int, Query(ge=1, description="End of the span in the text.")],
    ) -> Any:
        """Where text[start:end] of a PDF lies on page `number`: one box per line, as shares
        of the page's width and height, to draw over the page image."""
        name = find(service, doc_id)
        boxes = viewer.boxes(name, number, start, end)
        text = viewer.text(name).text[start:end]
        return {
            "page": number,
            "start": start,
            "end": end,
            "text": text,
            "boxes": [vars(box) for box in boxes],
        }
