"""Uploads are stored and answered at once; their readers run in the build, in child
processes within the reading limits; a file over a limit is listed as skipped with why, the
others are indexed; the service builds in a child process and keeps none of its memory; and
SIGTERM stops reading at once.

The first tests use the fake embedder and a test client (the build runs in-process, the
readers in children); those marked `server` start `docqa serve` with the real model.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import test_library
from bombs import PARAGRAPH, docx_of_paragraphs, pdf_of_pages
from docqa import isolation
from test_library import (
    VOLCANOES,
    MakeClient,
    cited_documents,
    documents,
    upload,
    wait_until_indexed,
)
from test_server import ROOT, Server, docqa_command, server_env, spawned_server, wait_until_ready

GB = 1 << 30
make_client = test_library.make_client  # the fixtures of the library's tests
client = test_library.client


def test_binary_data_named_txt_is_stored_and_listed_as_skipped_with_why(
    client: TestClient,
) -> None:
    response = upload(client, ("image.txt", bytes(range(256)) * 4))

    assert response.status_code == 202, response.text
    wait_until_indexed(client)
    record = documents(client)["image.txt"]
    assert (record["status"], record["reason"]) == ("skipped", "binary data, not text")


def test_a_pdf_of_50000_empty_pages_is_accepted_then_skipped_for_its_pages(
    client: TestClient,
) -> None:
    response = upload(client, ("empty.pdf", pdf_of_pages(50_000)))

    assert response.status_code == 202, response.text
    wait_until_indexed(client)
    record = documents(client)["empty.pdf"]
    assert record["status"] == "skipped"
    assert "50,000 pages are over the limit of 5,000 (DOCQA_MAX_PAGES)" in record["reason"]
    assert cited_documents(client, "When did the Fastnet lighthouse open?") == {"lighthouses.txt"}


def test_a_file_over_the_reading_time_limit_is_skipped_and_the_others_indexed(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(isolation, "READ_SECONDS_PER_MB", 0.0)  # 0.5 s whatever the size
    client = make_client(read_timeout_s=0.5)

    response = upload(
        client, ("slow.pdf", pdf_of_pages(400, 40)), ("volcanoes.txt", VOLCANOES.encode())
    )

    assert response.status_code == 202, response.text
    wait_until_indexed(client)
    listed = documents(client)
    assert (listed["slow.pdf"]["status"], listed["slow.pdf"]["reason"]) == (
        "skipped",
        "reading took over 0.5 s (DOCQA_READ_TIMEOUT_S: 0.5 s + 0 s per MB)",
    )
    assert listed["volcanoes.txt"]["status"] == "indexed"
    assert "volcanoes.txt" in cited_documents(client, "When did Hekla last erupt?")


def test_an_upload_once_shutdown_began_is_a_json_503_and_not_stored(client: TestClient) -> None:
    client.app.state.service.library.close()  # type: ignore[attr-defined]

    response = upload(client, ("volcanoes.txt", VOLCANOES.encode()))

    assert response.status_code == 503
    assert "shutting down" in response.json()["detail"]
    assert "volcanoes.txt" not in documents(client)


# ---------------------------------------------------------------- a real `docqa serve`


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def descendants(pid: int) -> set[int]:
    """Every living process under `pid`, at any depth."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def living(pids: set[int]) -> set[int]:
    """Those of `pids` still running (not gone, not zombies)."""
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1]
        except OSError:
            continue
        if state.split()[0] != "Z":
            alive.add(pid)
    return alive


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return f"{pid} (gone)"


@pytest.fixture
def library_copy(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A corpus and index of the repository's brief, the index brought up to date by
    `docqa index` (so the server starts without building): the env of a server over them."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(ROOT / "corpus", corpus)
    if (ROOT / "index").is_dir():  # its encoders: linked, a build never rewrites a file
        shutil.copytree(ROOT / "index", index, copy_function=_link)
    env = server_env(DOCQA_CORPUS_DIR=str(corpus), DOCQA_INDEX_DIR=str(index), HF_HUB_OFFLINE="1")
    subprocess.run([*docqa_command(), "index"], env=env, check=True, capture_output=True)
    yield env


def _link(source: str, target: str) -> None:
    Path(target).hardlink_to(source)


@pytest.fixture
def library_server(library_copy: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    with spawned_server(tmp_path / "server.log", **library_copy) as server:
        wait_until_ready(server)
        yield server


def status_of(server: Server, name: str) -> dict[str, Any]:
    listed = httpx.get(f"{server.url}/documents", timeout=10).json()
    return next(record for record in listed if record["name"] == name)


def wait_for_status(server: Server, name: str, timeout_s: float = 120.0) -> dict[str, Any]:
    """The document's record once it is no longer queued or indexing."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = status_of(server, name)
        if record["status"] not in ("queued", "indexing"):
            return record
        time.sleep(0.2)
    pytest.fail(f"{name} still {record['status']} after {timeout_s:.0f} s:\n{server.log()}")


def post_files(server: Server, *files: tuple[str, bytes]) -> httpx.Response:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    return httpx.post(f"{server.url}/documents", files=parts, timeout=60)


def settled_rss(server: Server) -> int:
    """The server's RSS once it has answered a question and idled a second."""
    question = {"message": "When did cooperation begin?"}
    assert httpx.post(f"{server.url}/chat", json=question, timeout=30).status_code == 200
    time.sleep(1.0)
    return rss_bytes(server.process.pid)


def index_upload(server: Server, name: str, data: bytes) -> None:
    assert post_files(server, (name, data)).status_code == 202
    record = wait_for_status(server, name, timeout_s=300)
    assert record["status"] == "indexed", json.dumps(record)


def started_rss(log: Path, env: dict[str, str]) -> int:
    """The settled RSS of a service once it is ready (its index loaded, or built first)."""
    with spawned_server(log, **env) as server:
        wait_until_ready(server)
        return settled_rss(server)


@pytest.mark.server
def test_the_service_keeps_no_memory_of_an_index_build(tmp_path: Path) -> None:
    """A service started on an empty library in a fresh index folder: the first upload's
    build also exports the encoder (with torch). After it, the service holds no more than
    1.3x what a service started on the index it built holds; a second upload's build
    leaves it within 1.3x of that again. With DOCQA_BUILD_IN_CHILD=false in the
    environment it measures the build in the serving process, as before."""
    (tmp_path / "corpus").mkdir()
    env = server_env(
        DOCQA_CORPUS_DIR=str(tmp_path / "corpus"),
        DOCQA_INDEX_DIR=str(tmp_path / "index"),
        HF_HUB_OFFLINE="1",
    )
    note = VOLCANOES + "\nThe volcano Etna on Sicily is the most active in Europe.\n"
    with spawned_server(tmp_path / "server.log", **env) as server:
        wait_until_ready(server)
        idle = rss_bytes(server.process.pid)
        index_upload(
            server, "brief.txt", (ROOT / "corpus" / "eu-nato-cooperation.txt").read_bytes()
        )
        built = settled_rss(server)
        index_upload(server, "volcanoes.txt", note.encode())
        again = settled_rss(server)
    started = started_rss(tmp_path / "fresh.log", env)

    print(
        f"\nserver RSS: empty library {idle / 1e6:.1f} MB; after the first upload's build "
        f"{built / 1e6:.1f} MB; after a second {again / 1e6:.1f} MB; a service started on "
        f"that index {started / 1e6:.1f} MB"
    )
    assert built <= 1.3 * started
    assert again <= 1.3 * built


@pytest.mark.server
def test_a_service_that_builds_its_index_at_start_up_keeps_none_of_its_memory(
    tmp_path: Path,
) -> None:
    """A service started on a corpus without an index builds it before answering, in a child
    process: it then holds no more than 1.3x what a service started on that index holds."""
    (tmp_path / "corpus").mkdir()
    shutil.copy(ROOT / "corpus" / "eu-nato-cooperation.txt", tmp_path / "corpus" / "brief.txt")
    env = server_env(
        DOCQA_CORPUS_DIR=str(tmp_path / "corpus"),
        DOCQA_INDEX_DIR=str(tmp_path / "index"),
        HF_HUB_OFFLINE="1",
    )
    built = started_rss(tmp_path / "server.log", env)  # the index is built at start-up
    started = started_rss(tmp_path / "fresh.log", env)
    print(
        f"\nserver RSS: after building its index at start-up {built / 1e6:.1f} MB; "
        f"a service started on that index {started / 1e6:.1f} MB"
    )
    assert built <= 1.3 * started


def slow_upload(url: str, name: str, data: bytes) -> tuple[socket.socket, bytes]:
    """Start POST /documents on a raw socket, sending all but the body's last part; the
    socket and the part still to send."""
    boundary = "docqa-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=20)
    sock.sendall(
        (
            f"POST /documents HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body[:-10]
    )
    return sock, body[-10:]


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        headers = dict(
            line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if ": " in line
        )
        length = int({k.lower(): v for k, v in headers.items()}.get("content-length", -1))
        if length >= 0 and len(body) >= length:
            break
    status = int(data.split(b" ", 2)[1])
    return status, {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.server
def test_sigterm_while_an_upload_is_read_stops_the_service_within_5_s(
    library_server: Server,
) -> None:
    server = library_server
    slow = pdf_of_pages(1500, 40)  # ~45 s of layout analysis
    assert post_files(server, ("slow.pdf", slow)).status_code == 202
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(descendants(server.process.pid)) < 4:
        time.sleep(0.2)  # the build's child, its fork server, the reader (and ours)
    assert status_of(server, "slow.pdf")["status"] == "indexing"
    started = descendants(server.process.pid)
    sock, rest = slow_upload(server.url, "late.txt", VOLCANOES.encode())

    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    sock.sendall(rest)
    status, headers, body = read_response(sock)
    code = server.process.wait(timeout=5)

    assert (status, headers.get("content-type")) == (503, "application/json"), body
    assert "shutting down" in json.loads(body)["detail"]
    assert code == 0, server.log()
    deadline = time.monotonic() + 2.0  # the fork servers see their callers gone
    while living(started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [command_line(pid) for pid in living(started)] == [], server.log()


@pytest.mark.server
def test_the_probes_files_are_accepted_at_once_and_judged_in_bounds(
    library_copy: dict[str, str], tmp_path: Path
) -> None:
    """The DOCX of 50,000 empty paragraphs, the DOCX of 50,000 paragraphs of text (its
    text read, then over a lowered length limit: embedding it would take minutes), the PDF
    of 50,000 empty pages; the service's memory meanwhile, and the brief still answered."""
    env = {**library_copy, "DOCQA_MAX_DOCUMENT_CHARS": "1000000"}
    with spawned_server(tmp_path / "server.log", **env) as server:
        wait_until_ready(server)
        check_the_probes_files(server)


def check_the_probes_files(server: Server) -> None:
    """Upload each file, wait for its verdict; print the times and the RSS peak."""
    files = {
        "empty-paragraphs.docx": docx_of_paragraphs(50_000),
        "paragraphs.docx": docx_of_paragraphs(50_000, PARAGRAPH),
        "empty-pages.pdf": pdf_of_pages(50_000),
    }
    peak = [rss_bytes(server.process.pid)]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.1):
            peak[0] = max(peak[0], rss_bytes(server.process.pid))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        records, times = {}, {}
        for name, data in files.items():
            started = time.monotonic()
            response = post_files(server, (name, data))
            accepted = time.monotonic() - started
            assert response.status_code == 202, response.text
            records[name] = wait_for_status(server, name)
            times[name] = (accepted, time.monotonic() - started, len(data))
    finally:
        done.set()
        watcher.join()

    for name, (accepted, judged, size) in times.items():
        print(
            f"\n{name} ({size / 1e3:.0f} KB): 202 in {accepted:.2f} s, {records[name]['status']}"
            f" in {judged:.1f} s: {records[name]['reason']}"
        )
    print(f"server RSS peak {peak[0] / 1e6:.1f} MB")
    assert records["empty-paragraphs.docx"]["reason"] == "no text in it"
    assert (
        "over the limit of 1,000,000 (DOCQA_MAX_DOCUMENT_CHARS)"
        in (records["paragraphs.docx"]["reason"])
    )
    assert "50,000 pages are over the limit" in records["empty-pages.pdf"]["reason"]
    assert peak[0] < GB
    answer = httpx.post(
        f"{server.url}/chat", json={"message": "When did cooperation begin?"}, timeout=30
    ).json()
    assert {s["document"] for s in answer["sources"]} == {"eu-nato-cooperation.txt"}
