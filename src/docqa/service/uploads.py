"""POST /documents: what its OpenAPI schema says an upload is, and reading one.

The schema and the reader say the same thing: a multipart/form-data body of one or more
`files` parts, each a file (a part with a file name) of a type docqa reads, and no other
field. What JSON Schema cannot say is checked cheaply in the request (an empty file: 422; a
text over the length limit: 413); a file its reader then refuses (binary data named .txt, a
damaged PDF) is stored, answered 202 and listed as skipped or failed with its reason.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from docqa.config import Settings
from docqa.library import UnsupportedTypeError, UploadError, supported_suffixes

FIELD = "files"
MAX_FORM_FIELDS = 10
"""Plain (non-file) form fields parsed before the form is refused: none is accepted, a few
are read to name them in the error."""


def accepted_suffixes(settings: Settings) -> list[str]:
    """The file suffixes an upload may have: those docqa reads, narrowed by `upload_types`."""
    readable = supported_suffixes()
    if not settings.upload_types:
        return list(readable)
    wanted = {suffix.lower() for suffix in settings.upload_types}
    return [suffix for suffix in readable if suffix in wanted]


def upload_body(settings: Settings) -> dict[str, Any]:
    """The OpenAPI request body of POST /documents (FastAPI cannot infer it: the route reads
    the form itself, to bound it and to name what is wrong with it)."""
    suffixes = accepted_suffixes(settings)
    names = "|".join(re.escape(suffix.lstrip(".")) for suffix in suffixes)
    example = "report.txt" if ".txt" in suffixes or not suffixes else f"report{suffixes[0]}"
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": [FIELD],
                        "additionalProperties": False,
                        "properties": {
                            FIELD: {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": settings.max_upload_files,
                                "items": {"type": "string", "format": "binary"},
                                # Read by the page, to refuse a file before sending it.
                                "x-suffixes": suffixes,
                                "x-max-bytes": settings.max_upload_bytes,
                                "description": (
                                    "The documents, one `files` part per file, each with a file "
                                    f"name ending in {', '.join(suffixes)} (any case); no other "
                                    "field. A file that cannot be read as its type is refused "
                                    "with 422."
                                ),
                            }
                        },
                    },
                    "encoding": {
                        FIELD: {
                            "headers": {
                                "Content-Disposition": {
                                    "description": "The part's file name names its type.",
                                    "schema": {
                                        "type": "string",
                                        "pattern": (
                                            rf'^form-data; name="{FIELD}"; '
                                            rf'filename="[^"/\\]+\.({names})"$'
                                        ),
                                    },
                                    "example": f'form-data; name="{FIELD}"; filename="{example}"',
                                }
                            }
                        }
                    },
                }
            },
        }
    }


async def read_uploads(request: Request, settings: Settings) -> list[tuple[str, bytes]]:
    """The (file name, content) of each file of a multipart upload; UploadError when the
    form holds anything but `files` file parts, or none."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        raise UnsupportedTypeError(
            "send the files as multipart/form-data, one `files` field per file, "
            "e.g. curl -F files=@report.txt"
        )
    form = await request.form(max_files=settings.max_upload_files, max_fields=MAX_FORM_FIELDS)
    try:
        parts = form.multi_items()
        check_fields([(name, isinstance(value, UploadFile)) for name, value in parts])
        files = [value for _, value in parts if isinstance(value, UploadFile)]
        return [(file.filename or "", await file.read()) for file in files]
    finally:
        await form.close()


def check_fields(parts: list[tuple[str, bool]]) -> None:
    """Raises UploadError unless the form's parts, as (field name, is a file), are one or
    more `files` files and nothing else."""
    others = sorted({name for name, _ in parts if name != FIELD})
    if others:
        shown = ", ".join(repr(name[:40]) for name in others[:5])
        raise UploadError(
            f"the upload has fields other than `{FIELD}` ({shown}): send only the files, "
            f"one `{FIELD}` field per file, e.g. curl -F {FIELD}=@report.txt"
        )
    if any(not is_file for _, is_file in parts):
        raise UploadError(
            f"a `{FIELD}` field holds text, not a file: send each file with its file name, "
            f"e.g. curl -F {FIELD}=@report.txt"
        )
    if not parts:
        raise UploadError(f"the upload holds no file: send each file in a `{FIELD}` field")
