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
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.config import OperationConfig, OperationsConfig

from docqa.engine import Engine
from docqa.indexing.store import current_build
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
    # schemathesis ends the app's lifespan after each operation's test while the same app
    # serves the next one: a lifespan's end closes the library (uploads then get 503).
    app.state.service.library.close = lambda: None
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
# A well-formed document id that names no document is refused with 422: the schema cannot list
# the library's ids, so schema-valid requests may get it too.
schema.config.checks.positive_data_acceptance.expected_statuses = [
    "2xx",
    "3xx",
    "401",
    "403",
    "404",
    "409",
    "422",
    "429",
]
# An upload the schema calls valid is stored: no 415 (a type docqa does not read) and no 422
# (no file, a field that is not a file, another field). What JSON Schema cannot say of a file,
# that its bytes read as its type, the fuzzed files are made to be: short texts, which the
# schema's Content-Disposition example names report.txt.
schema.config.operations = OperationsConfig(
    operations=[
        OperationConfig.from_dict(
            {
                "include-name": "POST /documents",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "401", "403", "409", "429"]
                    }
                },
            }
        )
    ]
)
schemathesis.openapi.format(
    "binary", st.from_regex(r"[A-Za-z][A-Za-z ,.]{0,80}", fullmatch=True).map(str.encode)
)


@schema.parametrize()
def test_no_request_gets_a_server_error_or_an_error_without_a_message(case: Any) -> None:
    response = case.call()

    case.validate_response(response)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == ["application/json"]
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail.strip(), response.text


def test_an_upload_with_a_field_besides_files_is_refused_and_the_field_named() -> None:
    from fastapi.testclient import TestClient

    client = TestClient(fuzzed_app())
    files = {"files": ("bridges-2.txt", b"The Severn bridge opened in 1966.")}

    response = client.post("/documents", files=files, data={"folder": "x"})

    assert response.status_code == 422
    assert "fields other than `files` ('folder')" in response.json()["detail"]
