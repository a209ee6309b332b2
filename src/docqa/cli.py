"""The `docqa` command: index | add | remove | documents | ask | chat | serve | eval | bench.
Parse, call the library, print.

Heavy libraries (numpy, faiss, onnxruntime, torch) are imported inside the commands that
use them, so `docqa --help` is instant and `docqa ask` never loads torch.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from docqa.models import DocqaError

if TYPE_CHECKING:
    from docqa.config import Settings
    from docqa.engine import Engine
    from docqa.indexing.build import IndexReport
    from docqa.models import Answer, DocumentRecord

EXIT_ERROR = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A command line that cannot be run as given (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"docqa: error: {message} (see `{self.prog} --help`)\n")


def _k(value: str) -> int:
    try:
        k = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k must be a whole number, got {value!r}") from None
    if not 1 <= k <= 50:
        raise argparse.ArgumentTypeError(f"--k must be between 1 and 50, got {k}")
    return k


def _workers(value: str) -> int:
    try:
        workers = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--workers must be a whole number, got {value!r}"
        ) from None
    if not 1 <= workers <= 64:
        raise argparse.ArgumentTypeError(f"--workers must be between 1 and 64, got {workers}")
    return workers


def _bench_parts(value: str) -> tuple[str, ...]:
    from docqa.bench.plan import PARTS

    parts = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [part for part in parts if part not in PARTS]
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"--parts takes some of {', '.join(PARTS)}; got {value!r}")
    return ("in_process", *parts)


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--port must be a whole number, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"--port must be between 1 and 65535, got {port}")
    return port


def _folders(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--corpus", metavar="DIR", default=default, help="corpus folder (default DOCQA_CORPUS_DIR)"
    )
    parser.add_argument(
        "--index", metavar="DIR", default=default, help="index folder (default DOCQA_INDEX_DIR)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    from docqa import __version__

    parser = _Parser(prog="docqa", description="Ask a document questions; get short cited answers.")
    parser.add_argument("--version", action="version", version=f"docqa {__version__}")
    _folders(parser, None)
    # The same options after the command name; SUPPRESS keeps one given before it.
    folders = _Parser(add_help=False)
    _folders(folders, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_command = functools.partial(commands.add_parser, parents=[folders])

    index = add_command("index", help="index the corpus folder (only what changed)")
    index.add_argument(
        "--force", action="store_true", help="read and embed every file again, from scratch"
    )

    add = add_command("add", help="copy files into the corpus and index them")
    add.add_argument("files", nargs="+", metavar="FILE", help="PDF, DOCX, HTML, Markdown or text")
    add.add_argument(
        "--replace", action="store_true", help="replace a corpus file of the same name"
    )

    remove = add_command("remove", help="remove documents from the corpus and the index")
    remove.add_argument("names", nargs="+", metavar="NAME", help="document name or id")

    add_command("documents", help="the per-file report of the index in use")

    ask = add_command("ask", help="answer one question")
    ask.add_argument("question", help="the question, in quotes")
    ask.add_argument("--k", type=_k, default=None, help="number of sources (1-50, default 5)")
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")

    chat = add_command("chat", help="ask several questions in a row (follow-ups understood)")
    chat.add_argument("--k", type=_k, default=None, help="number of sources (1-50, default 5)")

    serve = add_command("serve", help="start the HTTP chat service and web page")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="worker processes sharing the port (default 1; more need DOCQA_REDIS_URL)",
    )

    evaluate = add_command(
        "eval", help="score retrieval, answers and abstention on the brief's and public sets"
    )
    evaluate.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=None,
        help="brief, squad2, quac or a JSONL set in the brief's format; repeat for several "
        "(default: brief, squad2 and quac)",
    )
    evaluate.add_argument("--k", type=_k, default=10, help="passages retrieved per question")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument(
        "--report",
        metavar="DIR",
        nargs="?",
        const="eval/reports",
        help="write a Markdown report with charts (default folder eval/reports)",
    )
    evaluate.add_argument(
        "--compare", action="store_true", help="score the configurations side by side"
    )
    evaluate.add_argument(
        "--update-baseline", action="store_true", help="accept the scores as baseline"
    )

    bench = add_command("bench", help="measure latency, throughput, cold start and scaling")
    bench.add_argument("--quick", action="store_true", help="a short run (for CI)")
    bench.add_argument(
        "--parts",
        type=_bench_parts,
        default=None,
        help="comma-separated parts to measure (default all): encoder, http, workers, "
        "cold_start, scaling, ann, indexing; the in-process floor is always measured",
    )
    bench.add_argument(
        "--out", default="eval/reports", help="folder for the Markdown and JSON results"
    )
    return parser


def load_settings(options: argparse.Namespace | None = None) -> Settings:
    """Settings from the environment, with the folders given on the command line."""
    from docqa.config import Settings

    overrides = {}
    if options is not None and getattr(options, "corpus", None):
        overrides["corpus_dir"] = options.corpus
    if options is not None and getattr(options, "index", None):
        overrides["index_dir"] = options.index
    return Settings(**overrides)


def notify(message: str) -> None:
    """A one-line message on stderr."""
    print(f"docqa: {message}", file=sys.stderr)


def load_engine(settings: Settings) -> Engine:
    """The engine, updating the index first (with progress) when it is missing or stale."""
    from docqa.engine import Engine
    from docqa.progress import ProgressBars

    with ProgressBars() as bars:
        return Engine.load(settings, notify=notify, progress=bars)


def format_records(records: Sequence[DocumentRecord]) -> str:
    """One line per corpus file: status, name, what was found or why it was left out."""
    lines = []
    for record in records:
        if record.status == "indexed":
            ocr = f" ({record.ocr_pages} by OCR)" if record.ocr_pages else ""
            pages = f"{record.pages} pages{ocr}, " if record.pages is not None else ""
            encoding = f", {record.encoding}" if record.encoding and record.type != "pdf" else ""
            detail = f"{record.type}{encoding}, {pages}{record.chunks} chunks"
        else:
            detail = record.reason
        lines.append(f"  {record.status:<8} {record.name}: {detail}")
    return "\n".join(lines) if lines else "  (no document)"


def format_report(report: IndexReport) -> str:
    """The per-file report: one line per corpus file, then the totals."""
    indexed = report.count("indexed")
    action = f"read {report.embedded_documents} new or changed" if report.rebuilt else "up to date,"
    return (
        f"{format_records(report.documents)}\n"
        f"{indexed} document(s) indexed, {report.count('skipped')} skipped, "
        f"{report.count('failed')} failed; {report.chunks} chunks "
        f"({action} in {report.seconds:.1f} s)"
    )


def run_update(settings: Settings, force: bool = False) -> int:
    """Update the index with progress bars, print the report; exit 0 if anything is indexed."""
    from docqa.indexing.build import update_index
    from docqa.progress import ProgressBars

    with ProgressBars() as bars:
        report = update_index(settings, bars, force=force)
    print(format_report(report))
    return 0 if report.count("indexed") else EXIT_ERROR


def cmd_index(options: argparse.Namespace, settings: Settings) -> int:
    return run_update(settings, force=options.force)


def cmd_add(options: argparse.Namespace, settings: Settings) -> int:
    import functools
    from pathlib import Path

    from docqa.isolation import extract_bounded
    from docqa.library import UploadError, add_files

    paths = [Path(f) for f in options.files]
    bounded = functools.partial(extract_bounded, settings=settings)  # as the build reads it
    try:
        added = add_files(
            settings.corpus_dir, paths, options.replace, settings.max_document_chars, bounded
        )
    except UploadError as error:
        raise UsageError(str(error)) from error
    stored = [item.name for item in added if item.stored]
    if stored:
        print(f"added to {settings.corpus_dir}: {', '.join(stored)}")
    for path, item in zip(paths, added, strict=True):
        if not item.stored:
            print(f"{path}: {item.detail}")
    return run_update(settings)


def cmd_remove(options: argparse.Namespace, settings: Settings) -> int:
    from docqa.library import DocumentNotFoundError, remove_documents

    try:
        removed = remove_documents(settings.corpus_dir, options.names)
    except DocumentNotFoundError as error:
        raise UsageError(str(error)) from error
    print(f"removed from {settings.corpus_dir}: {', '.join(removed)}")
    return run_update(settings)


def cmd_documents(options: argparse.Namespace, settings: Settings) -> int:
    from docqa.library import library_report

    records, changes = library_report(settings)
    print(format_records(records))
    if changes:
        print(f"not yet indexed: {'; '.join(changes)} (run `docqa index`)")
    return 0


def cmd_ask(options: argparse.Namespace, settings: Settings) -> int:
    from docqa.engine import QuestionError

    question = readable_question(options.question)
    if not question.strip():
        raise UsageError("the question is empty: type a question about the document")
    engine = load_engine(settings)
    try:
        answer = engine.ask(question, k=options.k)
    except QuestionError as error:
        raise UsageError(str(error)) from error
    if options.json:
        from docqa.engine import answer_json

        print(json.dumps(answer_json(answer), ensure_ascii=False, indent=2))
    else:
        print(show_answer(answer))
    return 0


def cmd_chat(options: argparse.Namespace, settings: Settings) -> int:
    from docqa.answer.conversation import Turn
    from docqa.engine import QuestionError

    engine = load_engine(settings)
    history: list[Turn] = []
    enable_line_editing()
    print(
        "Ask about your documents; follow-up questions are understood. Empty line or Ctrl-D quits."
    )
    while True:
        try:
            question = readable_question(input("> "))
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        except UsageError as error:
            print(f"docqa: {error}", file=sys.stderr)
            continue
        if not question.strip() or question.strip().lower() in {"exit", "quit"}:
            return 0
        try:
            answer = engine.ask(question, k=options.k, history=history[-settings.max_turns :])
        except QuestionError as error:
            print(f"docqa: {error}", file=sys.stderr)
            continue
        history.append(Turn.from_answer(answer))
        print(show_answer(answer) + "\n")


def show_answer(answer: Answer) -> str:
    """The answer as printed: wrapped to the terminal, clearly unrelated sources marked."""
    from docqa.answer.retrieval import weak_hits
    from docqa.display import format_answer, terminal_columns

    return format_answer(answer, terminal_columns(), weak_hits(list(answer.hits)))


def readable_question(text: str) -> str:
    """The question, unless it holds bytes that are not UTF-8 (Python hands them over as lone
    surrogates, which the tokenizer cannot take): then a usage error naming the first one."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
        raise UsageError(
            f"the question is not UTF-8 text ({what} at character {error.start + 1}): "
            "set the terminal to UTF-8 or retype the question"
        ) from None
    return text


def enable_line_editing() -> None:
    """Arrow keys, line editing and history for input() on a terminal (GNU readline), and
    bytes that are not UTF-8 read as lone surrogates, so that readable_question refuses
    them in one line instead of input() raising."""
    if isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(errors="surrogateescape")
    if sys.stdin.isatty():
        import readline  # noqa: F401  (importing it is what gives input() line editing)


def cmd_serve(options: argparse.Namespace, settings: Settings) -> int:
    from docqa.service import serve
    from docqa.service.server import WorkersNeedRedisError

    try:
        serve(settings, options.host, options.port, options.workers)
    except WorkersNeedRedisError as error:
        raise UsageError(str(error)) from error
    return 0


def cmd_eval(options: argparse.Namespace, settings: Settings) -> int:
    from docqa.evaluation import run_command

    return run_command(options, settings)


def cmd_bench(options: argparse.Namespace, settings: Settings) -> int:
    from docqa.bench.run import run_command

    return run_command(options, settings)


COMMANDS = {
    "index": cmd_index,
    "add": cmd_add,
    "remove": cmd_remove,
    "documents": cmd_documents,
    "ask": cmd_ask,
    "chat": cmd_chat,
    "serve": cmd_serve,
    "eval": cmd_eval,
    "bench": cmd_bench,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; domain errors become one line on stderr and an exit code."""
    options = build_parser().parse_args(argv)
    from pydantic import ValidationError

    try:
        settings = load_settings(options)
        return COMMANDS[options.command](options, settings)
    except UsageError as error:
        print(f"docqa: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as error:
        problems = "; ".join(
            f"DOCQA_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors()
        )
        print(f"docqa: error: bad setting: {problems}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("docqa: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader stopped early (`docqa ask --json ... | head`): not an error of ours.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except DocqaError as error:
        print(f"docqa: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as error:
        # A file the command needs cannot be read or written (a read-only folder, a full
        # disk, a folder setting that names a file) and no stage said so in its own words.
        where = f" {error.filename}" if error.filename else ""
        print(f"docqa: error: cannot use{where}: {error.strerror or error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
