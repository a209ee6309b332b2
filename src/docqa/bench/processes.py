"""Child processes: fresh interpreters for heavy work, `docqa` commands with their peak memory."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from docqa.bench.plan import BenchmarkError
from docqa.config import Settings


def in_child(function: Callable[..., Any], *args: Any) -> Any:
    """Run function(*args) in a fresh process, so its imports and memory go with it."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def peak_rss_mb() -> float:
    """This process's peak resident memory since its program started, in MB."""
    # VmHWM, not ru_maxrss: a spawned child's ru_maxrss includes its parent's size at fork.
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def docqa_command(*args: str) -> list[str]:
    """The `docqa` console script of this environment (or `python -m docqa.cli`)."""
    script = Path(sys.executable).with_name("docqa")
    if script.is_file():
        return [str(script), *args]
    return [sys.executable, "-m", "docqa.cli", *args]


def settings_env(settings: Settings, **overrides: Any) -> dict[str, str]:
    """The environment that gives a child process these settings."""
    env = dict(os.environ)
    values = {
        "corpus_dir": settings.corpus_dir.resolve(),
        "index_dir": settings.index_dir.resolve(),
        "model": settings.model,
        "encoder_threads": settings.encoder_threads,
        "chunk_target_chars": settings.chunk_target_chars,
        "chunk_max_chars": settings.chunk_max_chars,
        "chunk_min_chars": settings.chunk_min_chars,
        **overrides,
    }
    env.update({f"DOCQA_{name.upper()}": str(value) for name, value in values.items()})
    return env


# Peak memory of a child comes from a small stand-in parent: a process forked from this
# (large) one would report this one's size as its own peak (Linux folds the pre-exec
# memory into ru_maxrss), so the stand-in spawns the command, forwards SIGINT and SIGTERM
# to it, and writes its ru_maxrss and the moment it was spawned to a file.
SPAWN_PROBE = """
import os, signal, sys, time
child = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
spawned = time.monotonic()
def forward(number, frame):
    os.kill(child, number)
signal.signal(signal.SIGINT, forward)
signal.signal(signal.SIGTERM, forward)
_, status, usage = os.wait4(child, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_maxrss} {spawned}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass
class Child:
    """A command running under the spawn probe."""

    process: subprocess.Popen[bytes]
    report: Path
    command: list[str]

    @classmethod
    def start(cls, command: list[str], env: dict[str, str], report: Path, **popen: Any) -> Child:
        """Start `command` under the probe (in its own session, so it can be killed whole)."""
        probe = [sys.executable, "-S", "-c", SPAWN_PROBE, str(report), *command]
        return cls(
            subprocess.Popen(probe, env=env, start_new_session=True, **popen), report, command
        )

    def finish(self, timeout: float) -> tuple[int, float, float]:
        """Wait for the command: its exit code, peak RSS (MB) and when it was spawned."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise BenchmarkError(f"`{self.name}` did not finish within {timeout:.0f} s") from None
        maxrss_kb, spawned = self.report.read_text().split()
        return code, round(int(maxrss_kb) / 1024, 1), float(spawned)

    def stop(self, timeout: float = 15.0) -> tuple[int, float, float]:
        """Ask the command to stop (SIGINT, as Ctrl-C would) and wait for it."""
        self.process.send_signal(signal.SIGINT)
        return self.finish(timeout)

    @property
    def name(self) -> str:
        return " ".join(Path(self.command[0]).name.split() + self.command[1:2])


def run_timed(command: list[str], env: dict[str, str], work: Path, name: str) -> dict[str, float]:
    """Run a command to completion: wall seconds and peak memory; raises if it fails."""
    log = work / f"{name}.log"
    with open(log, "wb") as output:
        child = Child.start(command, env, work / f"{name}.rss", stdout=output, stderr=output)
        code, rss, spawned = child.finish(timeout=3600)
    seconds = time.monotonic() - spawned
    if code != 0:
        tail = log.read_text(errors="replace")[-800:]
        raise BenchmarkError(f"`{child.name}` failed with exit code {code}: {tail}")
    return {"seconds": round(seconds, 3), "peak_rss_mb": rss}
