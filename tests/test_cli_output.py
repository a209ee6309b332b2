"""What `docqa ask` and `docqa chat` print, in process over a tiny index built with the fake
embedder (fakes.py): the passage around the cited sentence, wrapping at word boundaries,
weak matches, citations in `ask --json`, questions that are not UTF-8, line editing in
`chat` (under a pseudo-terminal), and folder problems in one line.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pexpect
import pytest

from docqa.answer.retrieval import weak_hits
from docqa.cli import main
from docqa.display import excerpt, format_answer, terminal_columns, wrap
from docqa.models import Answer, Chunk, Citation, Hit
from fakes import use_fake_embedder

TESTS = Path(__file__).resolve().parent
FILLER = (
    "Bridges of many kinds cross the rivers of Scotland. Some carry roads, some carry "
    "footpaths, and a few carry nothing but pipes and cables. Engineers in the nineteenth "
    "century argued at length about iron, steel and stone. Painters and poets visited the "
    "estuaries to watch the work. Trains and ferries competed for the traffic of the east "
    "coast for decades. "
)
ANSWER = "The Forth bridge carries the railway across the Firth of Forth and opened in 1890."
CORPUS = (
    f"BRIDGES\n\n{FILLER}{ANSWER}\n\n"
    "FERRIES\n\nThe ferries of the Clyde carried cattle and coal between the islands.\n"
)
QUESTION = "When did the Forth bridge open?"


@pytest.fixture
def corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings (in the environment, as `docqa` reads them) over a two-section corpus."""
    use_fake_embedder(monkeypatch)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "bridges.txt").write_text(CORPUS, encoding="utf-8")
    monkeypatch.setenv("DOCQA_CORPUS_DIR", str(tmp_path / "corpus"))
    monkeypatch.setenv("DOCQA_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("DOCQA_CHUNK_MIN_CHARS", "0")
    return tmp_path


def run_main(argv: Sequence[str]) -> int:
    try:
        return main(list(argv))
    except SystemExit as exit_:
        return int(exit_.code or 0)


def sources_of(output: str) -> list[str]:
    return output.partition("\nSources:\n")[2].splitlines()


# ---------------------------------------------------------------------------- sources


def test_cited_source_shows_the_passage_around_the_cited_sentence(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(["ask", QUESTION]) == 0
    heading, passage, *_ = sources_of(capsys.readouterr().out)

    assert heading.startswith("*[1] BRIDGES - bridges.txt")
    assert len(FILLER) > 240  # the cited sentence is past what the start of the chunk shows
    assert ANSWER in passage
    assert passage.startswith("     ...") and len(passage.strip()) <= 240 + 6


def test_source_without_citation_shows_its_start_cut_at_a_space() -> None:
    text = "word " * 100

    shown = excerpt(text, None, 42)

    assert shown == "word " * 7 + "word..."


def test_cited_sentence_longer_than_the_excerpt_is_shown_whole() -> None:
    text = "Before. " + "x" * 300 + " after."

    assert excerpt(text, (8, 308), 100) == "..." + "x" * 300 + "..."


def test_weak_sources_are_marked_and_shown_without_a_passage(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(["ask", "--k", "2", QUESTION]) == 0
    lines = sources_of(capsys.readouterr().out)

    assert re.match(r" \[2\] FERRIES - bridges\.txt \(score 0\.\d\d, weak match, chars", lines[-1])
    assert not any("cattle" in line for line in lines)


def hit(rank: int, score: float) -> Hit:
    chunk = Chunk(f"c{rank}", "d.txt", "S", rank, 0, 4, "text", ((0, 4),), ((0, 0),))
    return Hit(chunk, rank, score, score, 0.0)


def test_sources_under_half_the_best_score_are_weak() -> None:
    hits = [hit(1, 0.71), hit(2, 0.36), hit(3, 0.35), hit(4, 0.16)]

    assert weak_hits(hits) == {3, 4}
    assert weak_hits([]) == set()


# ---------------------------------------------------------------------------- wrapping


def long_answer() -> Answer:
    text = " ".join(f"word{n:03d}" for n in range(60))
    source = Hit(Chunk("c1", "d.txt", "SECTION", 0, 0, len(text), text, (), ()), 1, 0.9, 0.9, 0.0)
    citation = Citation(1, "c1", text[:40], 0, 40, 0, 40)
    return Answer("q", text, True, 0.9, (source,), (citation,), {})


def test_lines_wrap_at_word_boundaries_to_the_terminal_width() -> None:
    answer = long_answer()

    lines = format_answer(answer, columns=50).splitlines()

    assert max(len(line) for line in lines) <= 50
    words = [w for line in lines for w in line.split() if w.startswith(("word", "...word"))]
    assert all(re.fullmatch(r"(\.\.\.)?word\d{3}(\.\.\.)?", w) for w in words), words
    assert all(line.startswith("     ") for line in lines[lines.index("Sources:") + 2 :])


def test_output_to_a_pipe_is_not_wrapped() -> None:
    assert terminal_columns() is None  # pytest captures stdout
    assert wrap("a " * 100, None) == ["a " * 100]


# ---------------------------------------------------------------------------- ask --json


def test_ask_json_includes_the_citations(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(["ask", "--json", QUESTION]) == 0
    reply = json.loads(capsys.readouterr().out)

    assert ANSWER in [citation["text"] for citation in reply["citations"]]
    for citation in reply["citations"]:
        source = next(s for s in reply["sources"] if s["rank"] == citation["rank"])
        assert source["text"][citation["start"] : citation["end"]] == citation["text"]


# ---------------------------------------------------------------------------- not UTF-8


def test_ask_with_a_question_that_is_not_utf8_exits_2_with_one_line(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    question = b"caf\xe9 bridge".decode("utf-8", "surrogateescape")  # as Python gets argv

    assert run_main(["ask", question]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == (
        "docqa: error: the question is not UTF-8 text (byte 0xe9 at character 4): "
        "set the terminal to UTF-8 or retype the question"
    )


def test_chat_refuses_a_line_that_is_not_utf8_and_goes_on(
    corpus: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    typed = b"caf\xe9\n" + QUESTION.encode() + b"\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(typed), encoding="utf-8"))

    assert run_main(["chat"]) == 0
    captured = capsys.readouterr()

    assert captured.err.splitlines()[-1].startswith(
        "docqa: the question is not UTF-8 text (byte 0xe9 at character 4)"
    )
    assert ANSWER in captured.out


# ---------------------------------------------------------------------------- line editing

CHAT_PROGRAM = """
import sys
import pytest
sys.path.insert(0, {tests!r})
from fakes import use_fake_embedder
from docqa.cli import main
with pytest.MonkeyPatch.context() as monkeypatch:
    use_fake_embedder(monkeypatch)
    sys.exit(main(["chat"]))
"""


def test_chat_on_a_terminal_recalls_the_last_question_with_the_up_arrow(corpus: Path) -> None:
    program = CHAT_PROGRAM.format(tests=str(TESTS))
    chat = pexpect.spawn(sys.executable, ["-c", program], encoding="utf-8", timeout=30)
    try:
        chat.expect_exact("> ")
        chat.sendline(QUESTION)
        chat.expect_exact("> ")
        first = chat.before
        chat.send("\x1b[A\r")  # up arrow, Enter
        chat.expect_exact("> ")
        second = chat.before
        chat.sendline("")
        chat.expect(pexpect.EOF)
    finally:
        chat.close(force=True)

    assert "1890" in first
    assert "^[[A" not in second
    assert "1890" in second, second


# ---------------------------------------------------------------------------- folders


def test_index_folder_that_is_a_file_is_one_line_not_a_traceback(
    corpus: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_folder = corpus / "index-file"
    not_a_folder.write_text("not a folder")
    monkeypatch.setenv("DOCQA_INDEX_DIR", str(not_a_folder))

    assert run_main(["ask", QUESTION]) == 1
    [line] = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert line.startswith("docqa: error: ")
    assert str(not_a_folder) in line


def test_unwritable_index_folder_is_one_line_naming_it(
    corpus: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = str(corpus / "index" / ".lock")

    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", lock)

    monkeypatch.setattr("docqa.engine.Engine.load", refused)

    assert run_main(["ask", QUESTION]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line == f"docqa: error: cannot use {lock}: Permission denied"
