"""The library against a real `docqa serve` with the real model: questions keep being answered
while an upload is indexed and switched in, and a deleted document is not cited from the
moment the DELETE returns. Bounded: 4 clients, until the upload is indexed (at most 180 s)."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from test_server import ROOT, Server, spawned_server, wait_until_ready

pytestmark = pytest.mark.server

INDEX_TIMEOUT_S = 180.0
CLIENTS = 4
QUESTION = "When did EUFOR Althea start?"
VOLCANOES = """# Volcanoes of Iceland

The volcano Hekla in the south of Iceland last erupted in the year 2000.
"""


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A server over a copy of the repository's corpus, with its own index folder."""
    with tempfile.TemporaryDirectory(prefix="docqa-library-server-") as folder:
        root = Path(folder)
        shutil.copytree(ROOT / "corpus", root / "corpus")
        env = {"DOCQA_CORPUS_DIR": str(root / "corpus"), "DOCQA_INDEX_DIR": str(root / "index")}
        with spawned_server(root / "server.log", **env) as server:
            wait_until_ready(server)
            yield server


def cited(server: Server, question: str) -> set[str]:
    response = httpx.post(f"{server.url}/chat", json={"message": question}, timeout=30.0)
    assert response.status_code == 200, response.text
    return {source["document"] for source in response.json()["sources"]}


def test_no_question_fails_while_an_upload_is_indexed(server: Server) -> None:
    outcomes: list[str] = []
    stop = threading.Event()

    def ask_until_stopped() -> None:
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            while not stop.is_set():
                try:
                    response = client.post(
                        "/chat", json={"message": "When did EUFOR Althea start?"}
                    )
                    outcomes.append(str(response.status_code))
                except httpx.HTTPError as error:
                    outcomes.append(type(error).__name__)

    askers = [threading.Thread(target=ask_until_stopped) for _ in range(CLIENTS)]
    for asker in askers:
        asker.start()
    try:
        files = {"files": ("volcanoes.md", VOLCANOES.encode(), "text/markdown")}
        upload = httpx.post(f"{server.url}/documents", files=files, timeout=30.0)
        assert upload.status_code == 202, upload.text
        status_url = server.url + upload.json()["documents"][0]["status_url"]
        deadline = time.monotonic() + INDEX_TIMEOUT_S
        while httpx.get(status_url, timeout=10.0).json()["status"] != "indexed":
            assert time.monotonic() < deadline, f"not indexed after {INDEX_TIMEOUT_S} s"
            time.sleep(0.2)
        during = len(outcomes)
        time.sleep(0.5)  # a few questions answered from the new index too
    finally:
        stop.set()
        for asker in askers:
            asker.join(30.0)

    print(f"{len(outcomes)} questions, {during} of them while the upload was indexed")
    assert during > 0
    assert set(outcomes) == {"200"}, {o: outcomes.count(o) for o in set(outcomes)}
    assert "volcanoes.md" in cited(server, "When did Hekla last erupt?")


def test_a_deleted_document_is_not_cited_once_delete_returns(server: Server) -> None:
    listed = httpx.get(f"{server.url}/documents", timeout=10.0).json()
    brief = next(d for d in listed if d["name"] == "eu-nato-cooperation.txt")
    assert "eu-nato-cooperation.txt" in cited(server, "When did EUFOR Althea take over from SFOR?")

    response = httpx.delete(f"{server.url}/documents/{brief['id']}", timeout=10.0)

    assert response.status_code == 200
    assert "eu-nato-cooperation.txt" not in cited(
        server, "When did EUFOR Althea take over from SFOR?"
    )
