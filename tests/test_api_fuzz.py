"""The HTTP API fuzzed from its own OpenAPI schema (schemathesis, in process, fake embedder).

Each operation gets up to MAX_EXAMPLES generated requests, valid and invalid ones: none may
get a 5xx, every response must match the schema (status code documented, body shape), and
every error must be a JSON object with a non-empty `detail` sentence.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis import GenerationMode

from docqa.engine import Engine
from docqa.index import current_build
from docqa.service import create_app
from fakes import tiny_settings, use_fake_embedder

MAX_EXAMPLES = 50
CORPUS = """BRIDGES

The Forth bridge carries the railway across the Firth of Forth and opened in 1890.

The Tower bridge crosses the River Thames in the city of London and opened in 1894.
"""


def fuzzed_app() -> Any:
    """An app over a tiny index built with the fake embedder, in a folder kept for the run."""
    folder = Path(tempfile.mkdtemp(prefix="docqa-fuzz-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    # schemathesis and TestClient send `Host: testserver`.
    settings = tiny_settings(folder, {"bridges.txt": CORPUS}, allowed_hosts=["testserver"])
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_fake_embedder(monkeypatch)
        engine = Engine.load(settings)
    app = create_app(settings, engine)
    # Fuzzed uploads are stored but not indexed: the build would need the real model.
    app.state.service.library.rebuild = lambda settings: current_build(settings.index_dir)
    return app


# Loaded at import: schemathesis' lazy loader (`schemathesis.pytest.from_fixture`) fails under
# pytest 9 ("'Function' object has no attribute '_nodeid'", schemathesis 4.32).
schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=True,
    database="none",
)
# A well-formed document id that names no document is refused with 422, an uploaded file of a
# type docqa does not read with 415: the schema can list neither the library's ids nor the
# file types, so schema-valid requests may get these too.
schema.config.checks.positive_data_acceptance.expected_statuses = [
    "2xx",
    "3xx",
    "401",
    "403",
    "404",
    "409",
    "415",
    "422",
    "429",
]


@schema.parametrize()
def test_no_request_gets_a_server_error_or_an_error_without_a_message(case: Any) -> None:
    response = case.call()

    case.validate_response(response)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == ["application/json"]
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail.strip(), response.text
