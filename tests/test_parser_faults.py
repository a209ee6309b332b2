"""Files that break a parser (issue 18, item 9, from an outside probe).

A file a parser cannot read fails alone, with its reason in the per-file report; HTML and
Markdown of any nesting depth keep their text; a text over DOCQA_MAX_DOCUMENT_CHARS is
refused at upload. Full disks: test_disk_full.py. Builds use the fake embedder (fakes.py).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import docqa.ingest
from docqa.cli import main
from docqa.config import Settings
from docqa.indexing.build import update_index
from docqa.indexing.corpus import kept_verdict, list_corpus, read_file
from docqa.indexing.store import current_build, load_build
from docqa.ingest import ExtractionError, Format, extract
from docqa.library import TooLongError, add_files, check_content
from docqa.service import create_app
from fakes import tiny_settings, use_fake_embedder

BRIEF = """SUMMIT

The summit took place in Vilnius in July 2023. Leaders signed a joint declaration.
"""
IDLE_TIMEOUT_S = 30.0


def nested_divs(depth: int) -> bytes:
    """An HTML page whose text sits `depth` <div> elements deep, then a paragraph after."""
    return (
        "<html><body>" + "<div>" * depth + "Deep text survives." + "</div>" * depth
        + "<p>The paragraph after.</p></body></html>"
    ).encode()  # fmt: skip


def xref_loop_pdf() -> bytes:
    """A one-page PDF whose trailer's /Prev points at its own cross-reference table."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(text="A page that is never reached.")
    data = bytes(pdf.output())
    found = re.search(rb"startxref\s+(\d+)", data)
    assert found is not None
    xref = int(found.group(1))
    assert data[xref : xref + 4] == b"xref"  # a classic table, before the trailer
    looped = data.replace(b"trailer\n<<", b"trailer\n<<\n/Prev %d" % xref, 1)
    assert looped != data
    return looped


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    use_fake_embedder(monkeypatch)
    return tiny_settings(tmp_path, {"brief.txt": BRIEF})


def records_by_name(settings: Settings) -> dict[str, Any]:
    return {r.name: r for r in update_index(settings).documents}


def fail_with(error: BaseException) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    return fail


@contextlib.contextmanager
def running_service(settings: Settings) -> Iterator[TestClient]:
    """A TestClient over a service of these settings, its lifespan run, builds awaited."""
    client = TestClient(create_app(settings))
    with client:
        assert client.app.state.service.loaded.wait(IDLE_TIMEOUT_S)  # type: ignore[attr-defined]
        yield client
        wait_until_idle(client)


def wait_until_idle(client: TestClient) -> None:
    library = client.app.state.service.library  # type: ignore[attr-defined]
    assert library.wait_until_idle(IDLE_TIMEOUT_S), "indexing did not finish"


def post_files(client: TestClient, *files: tuple[str, bytes]) -> Any:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    return client.post("/documents", files=parts)


# ---------------------------------------------------------------- HTML and Markdown depth


def test_html_nested_5000_divs_deep_keeps_its_text() -> None:
    _, extracted = extract("deep.html", nested_divs(5000))

    assert extracted.text == "Deep text survives.\n\nThe paragraph after."


def test_html_doctype_internal_subset_does_not_leak_into_the_text() -> None:
    page = b'<!DOCTYPE html [ <!ENTITY x "y"> ]><html><body><p>Hello.</p></body></html>'

    assert extract("page.html", page)[1].text == "Hello."


def test_xhtml_prolog_and_multiline_internal_subset_do_not_leak() -> None:
    page = (
        b'<?xml version="1.0"?>\n<!-- saved -->\n'
        b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN" "x.dtd" [\n'
        b'  <!ENTITY a "b">\n  <!ENTITY c "d">\n]>\n<html><body><p>Hi.</p></body></html>'
    )

    assert extract("page.xhtml", page)[1].text == "Hi."


def test_markdown_quote_of_100000_markers_keeps_its_text() -> None:
    source = ">" * 100_000 + " The quoted words."

    assert extract("quote.md", source.encode())[1].text == "The quoted words."


def test_markdown_list_3000_deep_keeps_every_item_as_its_own_paragraph() -> None:
    source = "".join("  " * depth + f"- item {depth}\n" for depth in range(3000))

    extracted = extract("list.md", source.encode())[1]

    assert [block.text for block in extracted.blocks] == [f"item {d}" for d in range(3000)]


def test_markdown_beyond_the_nesting_limit_keeps_headings_and_drops_inline_markup() -> None:
    deep = "> " * 150
    source = f"{deep}# Deep title\n{deep}Some *emphasised* words\n{deep}on two lines.\n\nAfter."

    blocks = extract("deep.md", source.encode())[1].blocks

    assert [(b.kind, b.text) for b in blocks] == [
        ("heading", "Deep title"),
        ("paragraph", "Some emphasised words on two lines."),
        ("paragraph", "After."),
    ]


def test_markdown_beyond_the_limit_counts_lines_as_markdown_does() -> None:
    deep = "> " * 150  # a form feed or U+2028 inside a line is no line break for markdown-it
    source = f"Intro.\n\n{deep}One\x0cline\r\n{deep}and\u2028more.\n\nAfter."

    assert extract("deep.md", source.encode())[1].text == ("Intro.\n\nOne line and more.\n\nAfter.")


def test_markdown_nested_50_deep_is_parsed_as_markdown() -> None:
    source = "> " * 50 + "Fifty levels down.\n\n- a\n  - b\n"

    assert extract("ok.md", source.encode())[1].text == "Fifty levels down.\n\na\n\nb"


# ---------------------------------------------------------------- a parser that breaks


def test_pdf_whose_trailer_prev_points_at_its_own_xref_fails_with_its_reason() -> None:
    with pytest.raises(
        ExtractionError, match=r"could not be read: the pdf reader .*RecursionError"
    ):
        extract("loop.pdf", xref_loop_pdf())


def breaking_reader(error: BaseException) -> Callable[[bytes], Any]:
    def read(data: bytes) -> Any:
        raise error

    return read


def with_text_reader(monkeypatch: pytest.MonkeyPatch, read: Callable[[bytes], Any]) -> None:
    """Replace the plain-text reader (FORMATS holds the function, not the module's name)."""
    formats = tuple(
        Format(f.name, f.suffixes, read) if f.name == "text" else f for f in docqa.ingest.FORMATS
    )
    monkeypatch.setattr(docqa.ingest, "FORMATS", formats)
    by_suffix = {suffix: f for f in formats for suffix in f.suffixes}
    monkeypatch.setattr(docqa.ingest, "_BY_SUFFIX", by_suffix)


def test_any_exception_of_a_reader_becomes_the_files_extraction_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_text_reader(monkeypatch, breaking_reader(KeyError("/Root")))

    with pytest.raises(
        ExtractionError, match=r"the text reader failed on it \(KeyError: '/Root'\)"
    ):
        extract("notes.txt", b"some text")


@pytest.mark.parametrize("error", [KeyboardInterrupt(), MemoryError(), SystemExit(1)])
def test_interrupts_and_memory_errors_of_a_reader_are_not_a_files_verdict(
    monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    with_text_reader(monkeypatch, breaking_reader(error))

    with pytest.raises(type(error)):
        extract("notes.txt", b"some text")


def test_a_file_that_breaks_its_parser_fails_alone_in_the_build(settings: Settings) -> None:
    corpus = settings.corpus_dir
    (corpus / "loop.pdf").write_bytes(xref_loop_pdf())
    (corpus / "deep.html").write_bytes(nested_divs(5000))

    records = records_by_name(settings)

    assert records["brief.txt"].status == records["deep.html"].status == "indexed"
    assert records["loop.pdf"].status == "failed"
    assert records["loop.pdf"].reason.startswith("could not be read: the pdf reader")
    folder = current_build(settings.index_dir)
    assert folder is not None
    index = load_build(folder)
    assert {chunk.document for chunk in index.chunks} == {"brief.txt", "deep.html"}


def test_index_command_with_a_file_that_breaks_its_parser_reports_it_and_exits_0(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (settings.corpus_dir / "loop.pdf").write_bytes(xref_loop_pdf())
    for name in ("chunk_target_chars", "chunk_max_chars", "chunk_min_chars"):
        monkeypatch.setenv(f"DOCQA_{name.upper()}", str(getattr(settings, name)))
    folders = ["--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir)]

    code = main(["index", *folders])

    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in out + err
    assert re.search(r"failed +loop\.pdf: could not be read: the pdf reader", out), out
    assert re.search(r"indexed +brief\.txt", out), out


def test_an_uploaded_file_that_breaks_its_parser_is_listed_as_failed_with_why(
    settings: Settings,
) -> None:
    with running_service(settings) as client:
        response = post_files(client, ("loop.pdf", xref_loop_pdf()))
        wait_until_idle(client)

        assert response.status_code == 202, response.text
        records = {r["name"]: r for r in client.get("/documents").json()}
        assert records["loop.pdf"]["status"] == "failed"
        assert records["loop.pdf"]["reason"].startswith("could not be read: the pdf reader")
        assert records["brief.txt"]["status"] == "indexed"


def test_an_extractor_that_fails_itself_fails_the_file_alone_and_it_is_read_again(
    tmp_path: Path,
) -> None:
    (tmp_path / "notes.txt").write_text("Some notes.", encoding="utf-8")
    [file] = list_corpus(tmp_path)

    document, record = read_file(file, 10**6, 10**6, fail_with(RuntimeError("child died")))

    assert document is None and record.status == "failed"
    assert record.reason == (
        "could not be read: reading failed on it (RuntimeError: child died); "
        "it is tried again by the next run"
    )
    assert kept_verdict(record, Settings()) is None  # not kept: read again next time


# ---------------------------------------------------------------- text length at upload


def test_a_text_over_the_length_limit_is_refused_naming_limit_and_setting() -> None:
    text = "é" * 1001  # 2,002 bytes: characters are counted, not bytes

    check_content("notes.txt", text.encode(), max_chars=1001)
    limit = r"1,001 characters is over the limit of 1,000 \(DOCQA_MAX_DOCUMENT_CHARS\)"
    with pytest.raises(TooLongError, match=limit):
        check_content("notes.txt", text.encode(), max_chars=1000)


def test_a_markdown_file_over_the_limit_is_refused_before_it_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import docqa.ingest.markdown

    monkeypatch.setattr(docqa.ingest.markdown, "markdown_parts", fail_with(AssertionError()))

    with pytest.raises(TooLongError, match=r"of 2,000 characters is over the limit of 1,999"):
        check_content("notes.md", b"# " + b"a" * 1998, max_chars=1999)


def test_an_html_page_is_measured_by_its_text_not_its_markup() -> None:
    markup = '<div class="wrapper">' * 200 + "<p>" + "a" * 900 + "</p>" + "</div>" * 200

    check_content("page.html", markup.encode(), max_chars=900)  # 5,000+ bytes of markup
    with pytest.raises(TooLongError, match=r"its text of 900 characters"):
        check_content("page.html", markup.encode(), max_chars=899)


def test_add_files_refuses_a_text_over_the_limit_and_copies_nothing(tmp_path: Path) -> None:
    source = tmp_path / "long.txt"
    source.write_text("word " * 400, encoding="utf-8")
    corpus = tmp_path / "corpus"

    with pytest.raises(TooLongError, match="DOCQA_MAX_DOCUMENT_CHARS"):
        add_files(corpus, [source], max_chars=1999)

    assert not corpus.exists() or os.listdir(corpus) == []


def test_upload_over_the_length_limit_is_a_413_and_stores_nothing(settings: Settings) -> None:
    limited = settings.model_copy(update={"max_document_chars": 500})
    with running_service(limited) as client:
        response = post_files(client, ("long.txt", b"word " * 101))

        assert response.status_code == 413, response.text
        assert response.json()["detail"] == (
            "long.txt: its text of 505 characters is over the limit of 500 "
            "(DOCQA_MAX_DOCUMENT_CHARS): split it, or raise the limit"
        )
        assert sorted(os.listdir(settings.corpus_dir)) == ["brief.txt"]
