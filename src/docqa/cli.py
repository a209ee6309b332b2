"""The `docqa` command: index | ask | chat | serve | eval | bench. Parse, call the library, print.

Heavy libraries (numpy, faiss, onnxruntime, torch) are imported inside the commands that
use them, so `docqa --help` is instant and `docqa ask` never loads torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from docqa.models import DocqaError

if TYPE_CHECKING:
    from docqa.config import Settings
    from docqa.engine import Engine
    from docqa.models import Answer

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


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    parser = _Parser(prog="docqa", description="Ask a document questions; get short cited answers.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    index = commands.add_parser("index", help="build the index of the corpus folder")
    index.add_argument("--force", action="store_true", help="rebuild even if the index is fresh")

    ask = commands.add_parser("ask", help="answer one question")
    ask.add_argument("question", help="the question, in quotes")
    ask.add_argument("--k", type=_k, default=None, help="number of sources (1-50, default 5)")
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")

    chat = commands.add_parser(
        "chat", help="ask several questions in a row (follow-ups understood)"
    )
    chat.add_argument("--k", type=_k, default=None, help="number of sources (1-50, default 5)")

    serve = commands.add_parser("serve", help="start the HTTP chat service and web page")
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

    evaluate = commands.add_parser("eval", help="score retrieval and answers on the evaluation set")
    evaluate.add_argument(
        "--set", dest="set_path", default="eval/questions.jsonl", help="JSONL set"
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

    bench = commands.add_parser("bench", help="measure latency, throughput, cold start and scaling")
    bench.add_argument("--quick", action="store_true", help="a short run (for CI)")
    bench.add_argument(
        "--parts",
        type=_bench_parts,
        default=None,
        help="comma-separated parts to measure (default all): encoder, http, workers, "
        "cold_start, scaling, ann; the in-process floor is always measured",
    )
    bench.add_argument(
        "--out", default="eval/reports", help="folder for the Markdown and JSON results"
    )
    return parser


def load_settings() -> Settings:
    """Settings from the environment."""
    from docqa.config import Settings

    return Settings()


def load_engine(settings: Settings) -> Engine:
    """The engine, building the index first (with a message) when it is missing or stale."""
    from docqa.engine import Engine

    return Engine.load(settings, notify=lambda message: print(f"docqa: {message}", file=sys.stderr))


def format_answer(answer: Answer, width: int = 240) -> str:
    """The answer for a person: the text, then numbered sources with section and score."""
    cited = {c.rank for c in answer.citations}
    lines = [answer.text, "", "Sources:"]
    for hit in answer.hits:
        marker = "*" if hit.rank in cited else " "
        lines.append(
            f"{marker}[{hit.rank}] {hit.chunk.section} - {hit.chunk.document} "
            f"(score {hit.score:.2f}, chars {hit.chunk.start}-{hit.chunk.end})"
        )
        text = " ".join(hit.chunk.text.split())
        lines.append(f"     {text[:width]}{'...' if len(text) > width else ''}")
    return "\n".join(lines)


def cmd_index(options: argparse.Namespace, settings: Settings) -> int:
    from docqa.index import build_index, load_build

    started = time.perf_counter()
    folder = build_index(settings, progress=True, force=options.force)
    index = load_build(folder)
    print(
        f"indexed {len(index.manifest['documents'])} document(s), {len(index.chunks)} chunks "
        f"into {folder} in {time.perf_counter() - started:.1f} s"
    )
    return 0


def cmd_ask(options: argparse.Namespace, settings: Settings) -> int:
    from docqa.engine import QuestionError

    if not options.question.strip():
        raise UsageError("the question is empty: type a question about the document")
    engine = load_engine(settings)
    try:
        answer = engine.ask(options.question, k=options.k)
    except QuestionError as error:
        raise UsageError(str(error)) from error
    if options.json:
        from docqa.engine import answer_json

        print(json.dumps(answer_json(answer), ensure_ascii=False, indent=2))
    else:
        print(format_answer(answer))
    return 0


def cmd_chat(options: argparse.Namespace, settings: Settings) -> int:
    from docqa.conversation import Turn
    from docqa.engine import QuestionError

    engine = load_engine(settings)
    history: list[Turn] = []
    print("Ask about the document; follow-up questions are understood. Empty line or Ctrl-D quits.")
    while True:
        try:
            question = input("> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not question.strip() or question.strip().lower() in {"exit", "quit"}:
            return 0
        try:
            answer = engine.ask(question, k=options.k, history=history[-settings.max_turns :])
        except QuestionError as error:
            print(f"docqa: {error}", file=sys.stderr)
            continue
        history.append(Turn.from_answer(answer))
        print(format_answer(answer) + "\n")


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
        settings = load_settings()
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


if __name__ == "__main__":
    sys.exit(main())
