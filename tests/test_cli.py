"""The `docqa` command line.

Fast tests call `docqa.cli.main` in-process for bad command lines (no model is loaded).
Tests marked `model` run the real `docqa` script in a subprocess over the EU-NATO brief, with
an index built once per session in a temporary folder (15-40 s). Expected answers were read
off corpus/eu-nato-cooperation.txt by hand.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

import docqa.isolation
from bombs import pdf_of_pages
from docqa.cli import main

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
BRIEF = (CORPUS / "eu-nato-cooperation.txt").read_text(encoding="utf-8")
TIMEOUT_S = 300
ANSWER_KEYS = {
    "question",
    "short_answer",
    "answer",
    "answered",
    "confidence",
    "sources",
    "citations",
    "timings_ms",
}
SOURCE_KEYS = {
    "rank",
    "chunk_id",
    "document",
    "document_id",
    "section",
    "text",
    "score",
    "start",
    "end",
    "page",
    "weak",
}


def run_main(argv: Sequence[str]) -> int:
    """main's exit code, whether it returns it or argparse exits with it."""
    try:
        return main(list(argv))
    except SystemExit as exit_:
        return int(exit_.code or 0)


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


# --- fast: bad command lines ------------------------------------------------------------------


@pytest.mark.parametrize("question", ["", "   \t  "])
def test_empty_question_exits_2_with_one_line_saying_empty(
    question: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(["ask", question]) == 2
    [line] = stderr_lines(capsys)
    assert line == "docqa: error: the question is empty: type a question about the document"


def test_unknown_option_exits_2_with_one_line_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_main(["ask", "--bogus", "When?"]) == 2
    [line] = stderr_lines(capsys)
    assert line == "docqa: error: unrecognized arguments: --bogus (see `docqa --help`)"


def test_unknown_command_exits_2_with_one_line_listing_the_commands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_main(["frobnicate"]) == 2
    [line] = stderr_lines(capsys)
    assert "invalid choice: 'frobnicate'" in line
    assert "'index', 'add', 'remove', 'documents', 'ask', 'chat', 'serve', 'eval'" in line


def test_missing_question_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(["ask"]) == 2
    [line] = stderr_lines(capsys)
    assert "the following arguments are required: question" in line


@pytest.mark.parametrize("k", ["0", "51", "-3"])
def test_k_out_of_range_exits_2_with_the_range(k: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(["ask", "--k", k, "When?"]) == 2
    [line] = stderr_lines(capsys)
    assert line == (
        f"docqa: error: argument --k: --k must be between 1 and 50, got {k} "
        "(see `docqa ask --help`)"
    )


def test_k_not_a_number_exits_2_saying_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(["chat", "--k", "abc"]) == 2
    [line] = stderr_lines(capsys)
    assert line == (
        "docqa: error: argument --k: --k must be a whole number, got 'abc' "
        "(see `docqa chat --help`)"
    )


@pytest.mark.parametrize(
    ("port", "problem"),
    [
        ("99999", "must be between 1 and 65535, got 99999"),
        ("0", "must be between 1 and 65535, got 0"),
        ("-1", "must be between 1 and 65535, got -1"),
        ("http", "must be a whole number, got 'http'"),
    ],
)
def test_port_out_of_range_exits_2_with_one_line(
    port: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(["serve", "--port", port]) == 2
    [line] = stderr_lines(capsys)
    assert line == f"docqa: error: argument --port: --port {problem} (see `docqa serve --help`)"


def test_bad_setting_in_the_environment_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCQA_K", "zero")
    assert run_main(["ask", "When?"]) == 2
    [line] = stderr_lines(capsys)
    assert line.startswith("docqa: error: bad setting: DOCQA_K: ")


def test_ask_over_a_missing_corpus_fails_without_creating_the_index_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus, index = tmp_path / "missing", tmp_path / "index"
    assert run_main(["--corpus", str(corpus), "--index", str(index), "ask", "When?"]) == 1
    assert stderr_lines(capsys)[-1] == (
        f"docqa: error: corpus folder {corpus} does not exist: create it and add documents to it"
    )
    assert list(tmp_path.iterdir()) == []


def test_add_reads_a_file_within_the_reading_limits_and_copies_nothing_over_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docqa.isolation, "READ_SECONDS_PER_MB", 0.0)
    monkeypatch.setenv("DOCQA_READ_TIMEOUT_S", "0.5")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    slow = tmp_path / "slow.pdf"
    slow.write_bytes(pdf_of_pages(400, 40))  # ~10 s of layout analysis
    argv = ["--corpus", str(corpus), "--index", str(tmp_path / "index"), "add", str(slow)]

    assert run_main(argv) == 2
    assert "slow.pdf cannot be indexed: reading took over 0.5 s" in stderr_lines(capsys)[-1]
    assert list(corpus.iterdir()) == []


@pytest.mark.parametrize("argv", [["--help"], ["ask", "--help"], ["chat", "--help"]])
def test_help_does_not_import_the_heavy_libraries(argv: list[str]) -> None:
    program = (
        "import sys\n"
        "import docqa.cli\n"
        "try:\n"
        f"    docqa.cli.main({argv!r})\n"
        "except SystemExit as exit_:\n"
        "    assert exit_.code == 0, exit_.code\n"
        "heavy = ('torch', 'faiss', 'onnxruntime', 'sentence_transformers', 'numpy')\n"
        "print('loaded:', sorted(name for name in heavy if name in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "usage: docqa" in done.stdout
    assert done.stdout.splitlines()[-1] == "loaded: []"


# --- the real `docqa` script with the real model ----------------------------------------------


def docqa_command() -> list[str]:
    """The venv's `docqa` script (the one that runs these tests)."""
    script = Path(sys.executable).with_name("docqa")
    return [str(script)] if script.exists() else [sys.executable, "-m", "docqa.cli"]


def run_docqa(
    args: Sequence[str], index_dir: Path, corpus_dir: Path = CORPUS, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("DOCQA_")}
    env.update(DOCQA_CORPUS_DIR=str(corpus_dir), DOCQA_INDEX_DIR=str(index_dir))
    return subprocess.run(
        [*docqa_command(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of the brief, built once with `docqa index`."""
    folder = tmp_path_factory.mktemp("cli-index")
    done = run_docqa(["index"], folder)
    assert done.returncode == 0, done.stderr
    assert re.search(
        r"^1 document\(s\) indexed, 0 skipped, 0 failed; \d+ chunks", done.stdout, re.M
    )
    # Progress bars and the report only: no library's log lines, hints or internal folders.
    noise = re.compile(r"DEBUG|WARNING|Please consider|Loading weights|build-\d|\.tmp-")
    assert not noise.search(done.stdout + done.stderr), done.stdout + done.stderr
    return folder


def ask_json(question: str, index_dir: Path) -> dict:
    done = run_docqa(["ask", "--json", question], index_dir)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def collapse(text: str) -> str:
    """Whitespace runs made one space, and a line-end hyphen joined ("EU- NATO" -> "EU-NATO")."""
    return re.sub(r"(?<=\w-) (?=\w)", "", " ".join(text.split()))


@pytest.mark.model
def test_ask_prints_the_sfor_handover_sentence_with_a_cited_regional_source(
    index_dir: Path,
) -> None:
    done = run_docqa(["ask", "When did EUFOR Althea take over from SFOR?"], index_dir)
    assert done.returncode == 0, done.stderr
    answer, _, sources = done.stdout.partition("\n\nSources:\n")
    assert (
        "EUFOR Althea took over the operations in Bosnia and Herzegovina from NATO's "
        "Stabilization Force (SFOR) in 2004."
    ) in answer
    cited = re.findall(r"^\*\[\d+\] (.+?) - eu-nato-cooperation\.txt ", sources, re.MULTILINE)
    assert "REGIONAL COOPERATION" in cited, done.stdout


@pytest.mark.model
def test_ask_json_has_the_documented_keys(index_dir: Path) -> None:
    reply = ask_json("When did EUFOR Althea take over from SFOR?", index_dir)
    assert set(reply) == ANSWER_KEYS
    assert reply["question"] == "When did EUFOR Althea take over from SFOR?"
    assert reply["answered"] is True
    assert [source["rank"] for source in reply["sources"]] == [1, 2, 3, 4, 5]
    for source in reply["sources"]:
        assert set(source) == SOURCE_KEYS
        assert source["document"] == "eu-nato-cooperation.txt"


@pytest.mark.model
def test_ask_json_source_spans_hold_the_source_text_in_the_file(index_dir: Path) -> None:
    reply = ask_json("When did EUPOL operate in Afghanistan?", index_dir)
    assert reply["sources"]
    for source in reply["sources"]:
        span = BRIEF[source["start"] : source["end"]]
        assert collapse(span) == collapse(source["text"]), source["chunk_id"]


@pytest.mark.model
@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("When did EUPOL operate in Afghanistan?", "from June 2007 to December 2016"),
        (
            "Where was the EU Cell at NATO's Strategic Operations Command established?",
            "Monse, Belgium",
        ),
        ("What does TADIC stand for?", "Transatlantic Defence, Technological and Industrial"),
        (
            "Where is the operational headquarters of EUFOR Althea?",
            "Supreme Headquarters Allied Powers Europe",
        ),
        ("Where did NATO Foreign Ministers meet in June 1992?", "Oslo"),
    ],
)
def test_ask_answers_from_the_brief(question: str, expected: str, index_dir: Path) -> None:
    reply = ask_json(question, index_dir)
    assert reply["answered"] is True, reply["answer"]
    assert expected in reply["answer"], f"{question!r} got {reply['answer']!r}"


@pytest.mark.model
def test_off_topic_question_is_not_answered(index_dir: Path) -> None:
    reply = ask_json("What is the capital of Peru?", index_dir)
    assert reply["answered"] is False, reply["answer"]
    assert reply["answer"].startswith("The documents do not say.")


@pytest.mark.model
def test_chat_answers_a_follow_up_about_the_previous_subject(index_dir: Path) -> None:
    done = run_docqa(["chat"], index_dir, stdin="Tell me about EUPOL\nWhen did it operate?\n")
    assert done.returncode == 0, done.stderr
    # Each answer follows the "> " prompt that input() writes to stdout.
    replies = done.stdout.split("> ")
    assert len(replies) == 4, done.stdout  # intro, two answers, the prompt that met EOF
    second_answer = replies[2].partition("\n\nSources:")[0]
    assert "June 2007" in second_answer, done.stdout


@pytest.mark.model
def test_ask_builds_a_missing_index_and_says_so(tmp_path: Path) -> None:
    done = run_docqa(["ask", "--json", "When did EUPOL operate in Afghanistan?"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"docqa: no index in {tmp_path} yet" in done.stderr
    assert "building it now" in done.stderr
    assert "June 2007" in json.loads(done.stdout)["answer"]


@pytest.fixture
def latin1_corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "notes.txt").write_bytes("Café résumé: a note.\n".encode("latin-1"))
    return corpus


@pytest.mark.model
def test_index_of_a_latin1_file_names_its_encoding_and_exits_0(
    tmp_path: Path, latin1_corpus: Path
) -> None:
    done = run_docqa(["index"], tmp_path / "index", corpus_dir=latin1_corpus)
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stdout.splitlines() if "notes.txt" in line]
    assert line.split()[0] == "indexed" and "text, " in line
    assert "Traceback" not in done.stderr


@pytest.mark.model
def test_ask_over_a_latin1_file_answers_with_its_accented_words(
    tmp_path: Path, latin1_corpus: Path
) -> None:
    done = run_docqa(
        ["ask", "--json", "What is the note?"], tmp_path / "index", corpus_dir=latin1_corpus
    )
    assert done.returncode == 0, done.stderr
    assert "Café résumé" in json.loads(done.stdout)["sources"][0]["text"]


def test_the_short_answer_is_printed_first_with_the_evidence_under_it() -> None:
    from docqa.display import format_answer
    from docqa.models import Answer

    answer = Answer(
        "When did EUFOR Althea take over?",
        "EUFOR Althea took over from SFOR in 2004.",
        True,
        0.9,
        (),
        (),
        {},
        short_answer="2004",
    )
    lines = format_answer(answer).splitlines()
    assert lines[:3] == ["Answer: 2004", "", "EUFOR Althea took over from SFOR in 2004."]


def test_without_a_short_answer_the_evidence_comes_first() -> None:
    from docqa.display import format_answer
    from docqa.models import Answer

    answer = Answer("Why?", "Because it matters.", True, 0.9, (), (), {})
    assert format_answer(answer).splitlines()[0] == "Because it matters."
