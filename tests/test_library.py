"""The document library over HTTP: upload, list, delete, filter, reindex, an empty start.

Each test has its own corpus folder and index, built with the fake embedder (fakes.py); the
service's background worker rebuilds the index after each change, as it does in production.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from docqa.library import UploadError, safe_filename
from docqa.service import create_app
from documents import write_pdf
from fakes import tiny_settings, use_fake_embedder
from test_api_hardening import STALL, exchange

LIGHTHOUSES = """LIGHTHOUSES

The Fastnet lighthouse on a rock off the south coast of Ireland opened in 1904.

The Bell Rock lighthouse in the North Sea off the coast of Scotland opened in 1810.
"""
VOLCANOES = """VOLCANOES

The volcano Hekla in the south of Iceland last erupted in the year 2000.
"""
BRIDGES = """BRIDGES

The Forth bridge carries the railway across the Firth of Forth and opened in 1890.
"""
KEY = "library-key"
IDLE_TIMEOUT_S = 30.0

MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeClient]:
    """Clients of a service over its own corpus (lighthouses.txt unless told otherwise)."""
    use_fake_embedder(monkeypatch)
    clients: list[TestClient] = []

    def make(corpus: dict[str, str] | None = None, **overrides: Any) -> TestClient:
        folder = tmp_path / f"library-{len(clients)}"
        corpus = {"lighthouses.txt": LIGHTHOUSES} if corpus is None else corpus
        settings = tiny_settings(folder, corpus, **overrides)
        client = TestClient(create_app(settings))
        client.__enter__()  # runs the lifespan: the service loads (or finds the corpus empty)
        assert client.app.state.service.loaded.wait(IDLE_TIMEOUT_S)  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield make
    for client in clients:  # builds end before the fake embedder is unpatched
        wait_until_indexed(client)
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


def upload(client: TestClient, *files: tuple[str, bytes], **kwargs: Any) -> Any:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    return client.post("/documents", files=parts, **kwargs)


def wait_until_indexed(client: TestClient) -> None:
    service = client.app.state.service  # type: ignore[attr-defined]
    assert service.library.wait_until_idle(IDLE_TIMEOUT_S), "indexing did not finish"


def documents(client: TestClient) -> dict[str, dict[str, Any]]:
    response = client.get("/documents")
    assert response.status_code == 200, response.text
    return {record["name"]: record for record in response.json()}


def cited_documents(client: TestClient, question: str, **body: Any) -> set[str]:
    response = client.post("/chat", json={"message": question, **body})
    assert response.status_code == 200, response.text
    return {source["document"] for source in response.json()["sources"]}


def corpus_dir(client: TestClient) -> Path:
    path: Path = client.app.state.service.settings.corpus_dir  # type: ignore[attr-defined]
    return path


# ---------------------------------------------------------------------------- upload


def test_an_uploaded_file_is_indexed_in_the_background_and_answered_from(
    client: TestClient,
) -> None:
    response = upload(client, ("volcanoes.txt", VOLCANOES.encode()))

    assert response.status_code == 202, response.text
    [record] = response.json()["documents"]
    assert record["name"] == "volcanoes.txt"
    assert record["status"] in {"queued", "indexing"}
    wait_until_indexed(client)
    status = client.get(record["status_url"]).json()
    assert status["status"] == "indexed"
    assert status["chunks"] == 1
    assert status["sections"] == [{"title": "VOLCANOES", "chunks": 1}]
    assert "volcanoes.txt" in cited_documents(client, "When did Hekla erupt?")


def test_an_uploaded_pdf_is_listed_with_its_pages_and_cited_with_its_page(
    client: TestClient, tmp_path: Path
) -> None:
    pdf = write_pdf(tmp_path / "report.pdf").read_bytes()

    response = upload(client, ("report.pdf", pdf))
    wait_until_indexed(client)

    assert response.status_code == 202, response.text
    record = documents(client)["report.pdf"]
    assert (record["type"], record["pages"], record["status"]) == ("pdf", 2, "indexed")
    body = client.post("/chat", json={"message": "When was the astronomy club founded?"}).json()
    assert "1987" in body["answer"]
    assert (body["sources"][0]["document"], body["sources"][0]["page"]) == ("report.pdf", 2)


def test_a_file_in_the_folder_that_cannot_be_read_is_listed_as_skipped_with_why(
    client: TestClient,
) -> None:
    (corpus_dir(client) / "image.txt").write_bytes(bytes(range(256)) * 8)

    client.post("/reindex")
    wait_until_indexed(client)

    record = documents(client)["image.txt"]
    assert (record["status"], record["reason"]) == ("skipped", "binary data, not text")
    assert record["chunks"] == 0


def test_several_files_in_one_upload_are_all_listed(client: TestClient) -> None:
    response = upload(
        client, ("volcanoes.txt", VOLCANOES.encode()), ("bridges.md", BRIDGES.encode())
    )

    assert response.status_code == 202
    wait_until_indexed(client)
    listed = documents(client)
    assert set(listed) == {"lighthouses.txt", "volcanoes.txt", "bridges.md"}
    assert {r["status"] for r in listed.values()} == {"indexed"}
    assert listed["bridges.md"]["type"] == "markdown"


@pytest.mark.parametrize(
    ("files", "status", "detail"),
    [
        ((("photo.png", b"\x89PNG data"),), 415, "files of type .png are not supported"),
        ((("notes", b"no suffix"),), 422, "no usable name or no suffix"),
        ((("empty.txt", b"  \n"),), 422, "empty.txt is empty"),
        # Binary data named .txt is stored and listed as skipped: test_upload_worker.py.
        ((("..", b"text"),), 422, "no usable name"),
        # One refused file refuses the whole upload: the good one is not stored either.
        ((("good.txt", b"Fine text here."), ("bad.exe", b"MZ")), 415, "bad.exe"),
    ],
)
def test_a_bad_upload_is_refused_with_a_clear_error_and_nothing_is_stored(
    client: TestClient, files: tuple[tuple[str, bytes], ...], status: int, detail: str
) -> None:
    before = sorted(p.name for p in corpus_dir(client).iterdir())

    response = upload(client, *files)

    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]
    assert sorted(p.name for p in corpus_dir(client).iterdir()) == before


def test_upload_types_from_the_settings_narrow_what_is_accepted(make_client: MakeClient) -> None:
    client = make_client(upload_types=[".pdf", ".MD"])

    refused = upload(client, ("volcanoes.txt", VOLCANOES.encode()))
    accepted = upload(client, ("volcanoes.md", VOLCANOES.encode()))

    assert refused.status_code == 415
    assert "docqa reads .pdf, .md" in refused.json()["detail"]
    assert accepted.status_code == 202


def test_an_upload_over_the_size_limit_is_413(make_client: MakeClient) -> None:
    client = make_client(max_upload_bytes=4096)

    response = upload(client, ("big.txt", b"word " * 2000))

    assert response.status_code == 413
    assert "DOCQA_MAX_UPLOAD_BYTES" in response.json()["detail"]
    assert not (corpus_dir(client) / "big.txt").exists()


def test_an_upload_may_be_larger_than_a_question_body(client: TestClient) -> None:
    text = "The harbour of Cobh was rebuilt. " * 4000  # ~130 KB: twice the JSON body limit

    response = upload(client, ("harbours.txt", text.encode()))

    assert response.status_code == 202, response.text


def test_an_endless_upload_is_cut_off_at_the_upload_limit(make_client: MakeClient) -> None:
    client = make_client(max_upload_bytes=200_000)
    headers = {"Content-Type": "multipart/form-data; boundary=x"}

    head = b'--x\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n\r\n'
    body = itertools.chain([head], itertools.repeat(b"a" * 8192))

    response = exchange(client.app, "POST", "/documents", headers, body)

    assert response.status == 413
    assert "the upload is over 200,000 bytes" in response.detail()
    assert response.chunks_read == 1 + 200_000 // 8192 + 1  # the head, then up to the limit
    assert not any(corpus_dir(client).glob("big*"))


def test_a_stalled_upload_gets_408_after_the_upload_timeout(make_client: MakeClient) -> None:
    client = make_client(client_timeout_s=30.0, upload_timeout_s=0.3)
    headers = {"Content-Type": "multipart/form-data; boundary=x"}

    response = exchange(client.app, "POST", "/documents", headers, [b"--x\r\n", STALL])

    assert response.status == 408
    assert "within 0.3 s" in response.detail()


def test_an_upload_that_is_not_multipart_is_415(client: TestClient) -> None:
    response = client.post("/documents", json={"files": ["volcanoes.txt"]})

    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["detail"]


def test_a_multipart_body_without_a_file_is_422(client: TestClient) -> None:
    response = client.post("/documents", data={"note": "no file"}, files={})

    assert response.status_code in (415, 422)
    assert response.json()["detail"]


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("../../outside.txt", "outside.txt"),
        ("..\\..\\windows.txt", "windows.txt"),
        ("/etc/absolute.txt", "absolute.txt"),
        (".hidden.txt", "hidden.txt"),
        ("  spaced   name .txt", "spaced name.txt"),
        ("we<ir>d:na|me?.txt", "we_ir_d_na_me_.txt"),
    ],
)
def test_path_like_names_are_stored_inside_the_corpus_folder(
    client: TestClient, raw: str, stored: str
) -> None:
    response = upload(client, (raw, VOLCANOES.encode()))

    assert response.status_code == 202, response.text
    assert response.json()["documents"][0]["name"] == stored
    assert (corpus_dir(client) / stored).read_text(encoding="utf-8") == VOLCANOES
    outside = corpus_dir(client).parent
    assert sorted(p.name for p in outside.iterdir()) == ["corpus", "index"]


@pytest.mark.parametrize(
    ("raw", "stored"),
    [("con\x00trol\n.txt", "control.txt"), ("a" * 300 + ".md", "a" * 117 + ".md")],
)
def test_safe_filename_drops_control_characters_and_cuts_long_names(raw: str, stored: str) -> None:
    assert safe_filename(raw) == stored


@pytest.mark.parametrize("raw", ["", "..", "/", ".txt", "...", "folder/"])
def test_safe_filename_refuses_names_with_nothing_left(raw: str) -> None:
    with pytest.raises(UploadError, match="no usable name"):
        safe_filename(raw)


def test_a_name_already_taken_keeps_both_files(client: TestClient) -> None:
    response = upload(client, ("lighthouses.txt", VOLCANOES.encode()))

    assert response.status_code == 202
    assert response.json()["documents"][0]["name"] == "lighthouses (2).txt"
    assert (corpus_dir(client) / "lighthouses.txt").read_text(encoding="utf-8") == LIGHTHOUSES
    wait_until_indexed(client)
    assert set(documents(client)) == {"lighthouses.txt", "lighthouses (2).txt"}


def test_concurrent_uploads_of_the_same_name_are_all_kept(client: TestClient) -> None:
    texts = [f"Report number {i}: the harbour of town {i} was rebuilt.\n" for i in range(6)]

    with ThreadPoolExecutor(6) as pool:
        responses = list(
            pool.map(lambda text: upload(client, ("report.txt", text.encode())), texts)
        )

    assert [r.status_code for r in responses] == [202] * 6
    names = [r.json()["documents"][0]["name"] for r in responses]
    assert len(set(names)) == 6
    stored = {(corpus_dir(client) / n).read_text(encoding="utf-8") for n in names}
    assert stored == set(texts)
    wait_until_indexed(client)
    assert {r["status"] for r in documents(client).values()} == {"indexed"}


def stored_files(client: TestClient) -> list[str]:
    return sorted(p.name for p in corpus_dir(client).iterdir() if not p.name.startswith("."))


def test_an_upload_of_bytes_the_library_holds_answers_200_already_in_the_library(
    make_client: MakeClient,
) -> None:
    client = make_client(corpus={})  # starts without loading an index
    assert upload(client, ("volcanoes.txt", VOLCANOES.encode())).status_code == 202
    wait_until_indexed(client)

    response = upload(client, ("hekla.txt", VOLCANOES.encode()))

    assert response.status_code == 200, response.text
    [record] = response.json()["documents"]
    assert (record["name"], record["stored"]) == ("volcanoes.txt", False)
    assert record["detail"] == "already in the library as volcanoes.txt"
    assert stored_files(client) == ["volcanoes.txt"]


def test_an_upload_of_a_new_file_and_a_copy_stores_the_new_one_only(
    make_client: MakeClient,
) -> None:
    client = make_client(corpus={})
    upload(client, ("volcanoes.txt", VOLCANOES.encode()))
    wait_until_indexed(client)

    response = upload(
        client,
        ("bridges.txt", BRIDGES.encode()),
        ("volcanoes.txt", VOLCANOES.encode()),
        ("forth.txt", BRIDGES.encode()),
    )

    assert response.status_code == 202, response.text
    assert [(d["name"], d["stored"], d["detail"]) for d in response.json()["documents"]] == [
        ("bridges.txt", True, "added"),
        ("volcanoes.txt", False, "already in the library as volcanoes.txt"),
        ("bridges.txt", False, "already in the library as bridges.txt"),
    ]
    assert stored_files(client) == ["bridges.txt", "volcanoes.txt"]


# ---------------------------------------------------------------------------- delete


def test_a_deleted_document_is_never_cited_again(client: TestClient) -> None:
    upload(client, ("volcanoes.txt", VOLCANOES.encode()))
    wait_until_indexed(client)
    doc_id = documents(client)["volcanoes.txt"]["id"]
    assert "volcanoes.txt" in cited_documents(client, "When did Hekla erupt?")

    library = client.app.state.service.library  # type: ignore[attr-defined]
    release = threading.Event()
    rebuild = library.rebuild
    library.rebuild = lambda settings: release.wait(IDLE_TIMEOUT_S) and rebuild(settings)

    response = client.delete(f"/documents/{doc_id}")

    assert response.status_code == 200
    assert response.json()["name"] == "volcanoes.txt"
    assert not (corpus_dir(client) / "volcanoes.txt").exists()
    # At once, while the index in use still holds it (its rebuild is held back), and after.
    engine = client.app.state.service.engine  # type: ignore[attr-defined]
    assert "volcanoes.txt" in engine.index.document_rows
    assert "volcanoes.txt" not in cited_documents(client, "When did Hekla erupt?")
    assert "volcanoes.txt" not in documents(client)
    release.set()
    wait_until_indexed(client)
    assert "volcanoes.txt" not in cited_documents(client, "When did Hekla erupt?")
    assert set(documents(client)) == {"lighthouses.txt"}
    assert client.get(f"/documents/{doc_id}").status_code == 404


def test_a_file_removed_from_the_folder_by_another_process_is_not_cited(
    client: TestClient,
) -> None:
    upload(client, ("volcanoes.txt", VOLCANOES.encode()))
    wait_until_indexed(client)

    (corpus_dir(client) / "volcanoes.txt").unlink()  # e.g. a DELETE served by another worker

    assert "volcanoes.txt" not in cited_documents(client, "When did Hekla erupt?")
    assert "volcanoes.txt" not in documents(client)


def test_a_file_put_in_the_folder_by_hand_is_listed_until_reindexed(client: TestClient) -> None:
    (corpus_dir(client) / "volcanoes.txt").write_text(VOLCANOES, encoding="utf-8")

    listed = documents(client)["volcanoes.txt"]

    assert listed["status"] == "queued"
    assert "POST /reindex" in listed["reason"]
    client.post("/reindex")
    wait_until_indexed(client)
    assert documents(client)["volcanoes.txt"]["status"] == "indexed"


def test_deleting_an_unknown_id_is_404(client: TestClient) -> None:
    response = client.delete("/documents/no-such-document-00000000")

    assert response.status_code == 404
    assert "GET /documents lists them" in response.json()["detail"]


def test_deleting_the_last_document_leaves_an_empty_library_ready_for_uploads(
    client: TestClient,
) -> None:
    doc_id = documents(client)["lighthouses.txt"]["id"]

    assert client.delete(f"/documents/{doc_id}").status_code == 200
    wait_until_indexed(client)

    assert documents(client) == {}
    assert client.get("/health").json()["documents"] == 0
    assert client.post("/chat", json={"message": "When did Fastnet open?"}).status_code == 409


# ---------------------------------------------------------------------------- filter


def test_chat_and_search_answer_only_from_the_chosen_documents(client: TestClient) -> None:
    upload(client, ("volcanoes.txt", VOLCANOES.encode()))
    wait_until_indexed(client)
    volcano_id = documents(client)["volcanoes.txt"]["id"]

    chosen = cited_documents(client, "When did Fastnet open?", documents=[volcano_id])
    search = client.get("/search", params={"q": "Fastnet lighthouse", "documents": volcano_id})

    assert chosen == {"volcanoes.txt"}
    assert search.status_code == 200
    assert {s["document"] for s in search.json()["sources"]} == {"volcanoes.txt"}
    assert "lighthouses.txt" in cited_documents(client, "When did Fastnet open?")


def test_a_follow_up_keeps_the_conversations_choice_of_documents(client: TestClient) -> None:
    upload(client, ("volcanoes.txt", VOLCANOES.encode()))
    wait_until_indexed(client)
    lighthouse_id = documents(client)["lighthouses.txt"]["id"]
    first = client.post(
        "/chat", json={"message": "When did Fastnet open?", "documents": [lighthouse_id]}
    ).json()

    follow_up = client.post(
        "/chat",
        json={"message": "And Hekla the volcano?", "conversation_id": first["conversation_id"]},
    ).json()
    widened = client.post(
        "/chat",
        json={
            "message": "When did the volcano Hekla erupt?",
            "conversation_id": first["conversation_id"],
            "documents": [],
        },
    ).json()

    assert {s["document"] for s in follow_up["sources"]} == {"lighthouses.txt"}
    assert "volcanoes.txt" in {s["document"] for s in widened["sources"]}


def test_an_unknown_document_id_is_422(client: TestClient) -> None:
    response = client.post(
        "/chat", json={"message": "When did Fastnet open?", "documents": ["nope-12345678"]}
    )
    search = client.get("/search", params={"q": "Fastnet", "documents": "nope-12345678"})

    assert response.status_code == 422
    assert "unknown document id 'nope-12345678'" in response.json()["detail"]
    assert search.status_code == 422


# ---------------------------------------------------------------------------- reindex, empty


def test_reindex_picks_up_files_changed_on_disk(client: TestClient) -> None:
    (corpus_dir(client) / "bridges.txt").write_text(BRIDGES, encoding="utf-8")
    old = client.get("/health").json()["index_version"]

    response = client.post("/reindex")

    assert response.status_code == 202
    wait_until_indexed(client)
    health = client.get("/health").json()
    assert health["index_version"] != old
    assert health["stale"] is False
    assert "bridges.txt" in cited_documents(client, "When did the Forth bridge open?")


def test_an_empty_corpus_starts_ready_for_an_upload(make_client: MakeClient) -> None:
    client = make_client(corpus={})

    health = client.get("/health")
    chat = client.post("/chat", json={"message": "When did Hekla erupt?"})
    listed = client.get("/documents")
    response = upload(client, ("volcanoes.txt", VOLCANOES.encode()))
    wait_until_indexed(client)

    assert health.status_code == 200
    assert health.json()["documents"] == 0
    assert health.json()["index_version"] is None
    assert chat.status_code == 409
    assert "upload one" in chat.json()["detail"]
    assert listed.json() == []
    assert response.status_code == 202
    assert client.get("/health").json()["documents"] == 1
    assert cited_documents(client, "When did Hekla erupt?") == {"volcanoes.txt"}


# ---------------------------------------------------------------------------- key, load


def test_upload_and_delete_need_the_api_key_when_one_is_set(make_client: MakeClient) -> None:
    client = make_client(api_key=KEY)
    doc_id = documents_with_key(client)["lighthouses.txt"]["id"]

    refused_upload = upload(client, ("volcanoes.txt", VOLCANOES.encode()))
    refused_delete = client.delete(f"/documents/{doc_id}")
    refused_reindex = client.post("/reindex")
    accepted = upload(
        client, ("volcanoes.txt", VOLCANOES.encode()), headers={"Authorization": f"Bearer {KEY}"}
    )

    assert [r.status_code for r in (refused_upload, refused_delete, refused_reindex)] == [401] * 3
    assert not (corpus_dir(client) / "volcanoes (2).txt").exists()
    assert accepted.status_code == 202
    wait_until_indexed(client)


def documents_with_key(client: TestClient) -> dict[str, dict[str, Any]]:
    response = client.get("/documents", headers={"Authorization": f"Bearer {KEY}"})
    return {record["name"]: record for record in response.json()}


def test_no_question_fails_while_uploads_are_indexed(client: TestClient) -> None:
    """Questions keep being answered, from the old index then the new, while uploads are
    indexed and switched in (bounded: 4 threads until the indexing is done, at most 30 s)."""
    statuses: list[int] = []
    done = threading.Event()

    def ask_until_done() -> None:
        while not done.is_set() and len(statuses) < 2000:
            response = client.post("/chat", json={"message": "When did Fastnet open?"})
            statuses.append(response.status_code)

    askers = [threading.Thread(target=ask_until_done) for _ in range(4)]
    for asker in askers:
        asker.start()
    for i in range(3):  # three contents: the same bytes would be stored once
        upload(client, (f"volcanoes-{i}.txt", f"{VOLCANOES}\nCopy {i}.\n".encode()))
    wait_until_indexed(client)
    done.set()
    for asker in askers:
        asker.join(IDLE_TIMEOUT_S)

    assert statuses, "no question was asked"
    assert set(statuses) == {200}
    assert "volcanoes-2.txt" in cited_documents(client, "When did Hekla erupt?")


def test_the_list_carries_the_index_report_for_skipped_files_and_pages(
    make_client: MakeClient,
) -> None:
    from documents import write_pdf

    client = make_client()
    write_pdf(corpus_dir(client) / "report.pdf")
    (corpus_dir(client) / "image.txt").write_bytes(bytes(range(256)) * 4)
    assert client.post("/reindex").status_code in (200, 202)
    wait_until_indexed(client)
    listed = documents(client)
    assert (listed["image.txt"]["status"], listed["image.txt"]["reason"]) == (
        "skipped",
        "binary data, not text",
    )
    assert (listed["report.pdf"]["status"], listed["report.pdf"]["pages"]) == ("indexed", 2)
    assert listed["lighthouses.txt"]["encoding"] == "utf-8"
