"""The service follows index/CURRENT: a new build is answered from without a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from docqa.engine import Engine
from docqa.indexing.build import build_index
from docqa.service import create_app
from fakes import segment_of, tiny_settings, use_fake_embedder

LIGHTHOUSE = "The Fastnet lighthouse on a rock off the south coast of Ireland opened in 1904.\n"
VOLCANO = "The volcano Hekla in the south of Iceland last erupted in the year 2000.\n"


def wait_for_version(client: TestClient, old: str, timeout_s: float = 10.0) -> str:
    """The index version /health reports once it differs from `old` (the switch is async)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        client.get("/search", params={"q": "anything"})  # a request makes the service look
        version: str = client.get("/health").json()["index_version"]
        if version != old:
            return version
        time.sleep(0.05)
    raise AssertionError(f"the service still answers from {old} after {timeout_s} s")


def sources_of(client: TestClient, question: str) -> list[str]:
    body = client.post("/chat", json={"message": question}).json()
    return [source["text"] for source in body["sources"]]


def test_a_new_build_is_answered_from_without_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake_embedder(monkeypatch)
    settings = tiny_settings(tmp_path, {"lighthouses.txt": LIGHTHOUSE})
    client = TestClient(create_app(settings, Engine.load(settings)))
    old = client.get("/health").json()["index_version"]
    assert not any("Hekla" in text for text in sources_of(client, "When did Hekla erupt?"))

    (settings.corpus_dir / "volcanoes.txt").write_text(VOLCANO, encoding="utf-8")
    build_index(settings)

    assert wait_for_version(client, old) != old
    assert any("Hekla" in text for text in sources_of(client, "When did Hekla erupt?"))
    assert client.get("/health").json()["stale"] is False


def test_a_damaged_new_build_keeps_the_old_index_answering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake_embedder(monkeypatch)
    settings = tiny_settings(tmp_path, {"lighthouses.txt": LIGHTHOUSE})
    client = TestClient(create_app(settings, Engine.load(settings)))
    old = client.get("/health").json()["index_version"]
    (settings.corpus_dir / "volcanoes.txt").write_text(VOLCANO, encoding="utf-8")
    new = build_index(settings)
    (segment_of(new) / "chunks.jsonl").write_text("not json\n", encoding="utf-8")

    for _ in range(20):  # give the switch thread time to try, and fail, to load it
        assert client.post("/chat", json={"message": "When did Fastnet open?"}).status_code == 200
        time.sleep(0.02)
    assert client.get("/health").json()["index_version"] == old
    assert any("Fastnet" in text for text in sources_of(client, "When did Fastnet open?"))
