#!/usr/bin/env python
"""Load test of a running `docqa serve`: many concurrent clients, each holding conversations.

    docqa serve --port 8000 &
    python scripts/loadtest.py --url http://127.0.0.1:8000 --clients 50 --requests 3000 \
        --warmup 1000 --pid $! --json loadtest.json

Each client keeps one connection and asks a first question, then a chain of follow-ups in
the same conversation (mostly none or one, some 10 to 25 long), then starts a new one; 8 %
of its requests are /search and 2 % /health. The run has two phases: a warm-up (fills the
server's conversation store when --warmup starts more conversations than
DOCQA_MAX_CONVERSATIONS) and the measured run. With --pid, the server's resident memory
(VmRSS) is read before, after the warm-up and at the end.

Any answer but 200 (a 404 for a conversation dropped mid-chain included) and any transport
error count as errors; the exit code is 1 when there was one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

FIRST_QUESTIONS = [
    "When was the Joint Declaration of Warsaw signed?",
    "How many joint measures do the EU and NATO share?",
    "How do the EU and NATO work together against hybrid threats?",
    "Tell me about EUPOL",
    "What is Operation Sophia?",
    "What was Operation Althea?",
    "What is the Berlin Plus agreement?",
    "Which countries are members of both organisations?",
    "What is military mobility?",
    "Why did EU-NATO coordination slow down?",
    "What role does Turkey play in EU-NATO relations?",
    "What is PESCO?",
    "What did the 2018 joint declaration add?",
    "How does the brief describe cyber defence cooperation?",
    "What is the capital of Australia?",
    "Who won the football world cup in 1998?",
]
FOLLOW_UPS = [
    "When did it start?",
    "Who leads it?",
    "Where is it based?",
    "How was it received?",
    "What happened next?",
    "Tell me more about that.",
    "And what about its budget?",
    "Why does it matter?",
    "Which countries take part?",
    "How long did it last?",
]
SEARCHES = ["hybrid threats", "Warsaw declaration", "Berlin Plus", "EUPOL Afghanistan", "Cyprus"]


def chain_length(rng: random.Random) -> int:
    """Follow-ups after a first question: mostly none or one, some long chains."""
    roll = rng.random()
    if roll < 0.80:
        return rng.randint(0, 1)
    if roll < 0.95:
        return rng.randint(2, 6)
    return rng.randint(10, 25)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank q-th percentile (0 < q <= 100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100.0 * len(ordered)) - 1)]


def read_rss_mb(pid: int) -> float:
    """Resident memory of a process in MB, from /proc/<pid>/status (VmRSS, in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise ValueError(f"no VmRSS in /proc/{pid}/status")


@dataclass
class Tally:
    """What one phase saw."""

    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    conversations: int = 0
    follow_ups: int = 0
    longest_chain: int = 0

    def record(self, kind: str, started: float, outcome: str, error: str | None) -> None:
        self.latencies_ms.setdefault(kind, []).append((time.perf_counter() - started) * 1000.0)
        self.statuses[outcome] += 1
        if error is not None:
            self.errors.append(error)


@dataclass
class Budget:
    """Requests left in a phase, and when it must stop."""

    left: int
    deadline: float = math.inf

    def take(self) -> bool:
        if self.left <= 0 or time.monotonic() >= self.deadline:
            return False
        self.left -= 1
        return True


class Client:
    """One user: one connection, one conversation at a time."""

    def __init__(self, http: httpx.AsyncClient, rng: random.Random) -> None:
        self.http = http
        self.rng = rng
        self.conversation_id: str | None = None
        self.follow_ups_left = 0
        self.chain = 0

    async def run(self, budget: Budget, tally: Tally) -> None:
        while budget.take():
            roll = self.rng.random()
            if roll < 0.08:
                await self.search(tally)
            elif roll < 0.10:
                await self.send(tally, "health", "GET", "/health")
            else:
                await self.chat(tally)

    async def search(self, tally: Tally) -> None:
        params = {"q": self.rng.choice(SEARCHES), "k": self.rng.randint(1, 10)}
        await self.send(tally, "search", "GET", "/search", params=params)

    async def chat(self, tally: Tally) -> None:
        if self.conversation_id is None or self.follow_ups_left == 0:
            self.conversation_id, self.chain = None, 0
            self.follow_ups_left = chain_length(self.rng)
            message, kind = self.rng.choice(FIRST_QUESTIONS), "chat_first"
            tally.conversations += 1
        else:
            self.follow_ups_left -= 1
            message, kind = self.rng.choice(FOLLOW_UPS), "chat_follow_up"
            tally.follow_ups += 1
        body = {"message": message, "conversation_id": self.conversation_id}
        answer = await self.send(tally, kind, "POST", "/chat", json=body)
        if answer is None:  # start over after an error
            self.conversation_id, self.follow_ups_left = None, 0
            return
        self.conversation_id = answer["conversation_id"]
        self.chain += 1
        tally.longest_chain = max(tally.longest_chain, self.chain)

    async def send(
        self, tally: Tally, kind: str, method: str, path: str, **kwargs: Any
    ) -> dict[str, Any] | None:
        """One request, timed and recorded; the JSON answer, or None after an error."""
        started = time.perf_counter()
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            tally.record(kind, started, type(error).__name__, f"{kind}: {error!r}")
            return None
        if response.status_code != 200:
            problem = f"{kind} {response.status_code}: {response.text[:200]}"
            tally.record(kind, started, str(response.status_code), problem)
            return None
        tally.record(kind, started, "200", None)
        body: dict[str, Any] = response.json()
        return body


def phase_summary(tally: Tally, seconds: float) -> dict[str, Any]:
    """Counts, throughput and latency percentiles of a phase."""
    every = [ms for values in tally.latencies_ms.values() for ms in values]
    chats = tally.latencies_ms.get("chat_first", []) + tally.latencies_ms.get("chat_follow_up", [])

    def latency(values: list[float]) -> dict[str, float]:
        return {f"p{q}_ms": round(percentile(values, q), 1) for q in (50, 90, 99)} | {
            "max_ms": round(max(values, default=math.nan), 1)
        }

    return {
        "requests": len(every),
        "errors": len(tally.errors),
        "statuses": dict(tally.statuses),
        "seconds": round(seconds, 2),
        "throughput_rps": round(len(every) / seconds, 1) if seconds else math.nan,
        "latency": latency(every),
        "chat_latency": latency(chats),
        "requests_by_kind": {kind: len(v) for kind, v in sorted(tally.latencies_ms.items())},
        "conversations_started": tally.conversations,
        "follow_ups": tally.follow_ups,
        "longest_chain": tally.longest_chain,
        "first_errors": tally.errors[:10],
    }


async def run_phase(clients: list[Client], budget: Budget) -> tuple[Tally, float]:
    tally = Tally()
    started = time.perf_counter()
    await asyncio.gather(*(client.run(budget, tally) for client in clients))
    return tally, time.perf_counter() - started


async def load_test(options: argparse.Namespace) -> dict[str, Any]:
    """Run the warm-up and the measured phase; the summary of both."""
    rng = random.Random(options.seed)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    https = [
        httpx.AsyncClient(base_url=options.url, timeout=options.timeout, limits=limits)
        for _ in range(options.clients)
    ]
    clients = [Client(http, random.Random(rng.random())) for http in https]
    rss: dict[str, float] = {}
    try:
        if options.pid:
            rss["start_mb"] = read_rss_mb(options.pid)
        warmup, warmup_s = await run_phase(clients, Budget(options.warmup))
        if options.pid:
            rss["after_warmup_mb"] = read_rss_mb(options.pid)
        deadline = time.monotonic() + options.duration if options.duration else math.inf
        measured, measured_s = await run_phase(clients, Budget(options.requests, deadline))
        if options.pid:
            rss["end_mb"] = read_rss_mb(options.pid)
    finally:
        await asyncio.gather(*(http.aclose() for http in https))
    summary: dict[str, Any] = {
        "url": options.url,
        "clients": options.clients,
        "warmup": phase_summary(warmup, warmup_s),
        "measured": phase_summary(measured, measured_s),
    }
    if rss:
        rss = {name: round(mb, 1) for name, mb in rss.items()}
        rss["growth_after_warmup_mb"] = round(rss["end_mb"] - rss["after_warmup_mb"], 1)
        summary["server_rss"] = rss
    summary["errors"] = summary["warmup"]["errors"] + summary["measured"]["errors"]
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    for name in ("warmup", "measured"):
        phase = summary[name]
        latency, chat = phase["latency"], phase["chat_latency"]
        print(
            f"{name:>8}: {phase['requests']} requests, {phase['errors']} errors, "
            f"{phase['seconds']} s, {phase['throughput_rps']} req/s; latency p50 "
            f"{latency['p50_ms']} ms, p90 {latency['p90_ms']} ms, p99 {latency['p99_ms']} ms, "
            f"max {latency['max_ms']} ms (chat p50 {chat['p50_ms']} / p99 {chat['p99_ms']} ms); "
            f"{phase['conversations_started']} conversations, {phase['follow_ups']} follow-ups, "
            f"longest chain {phase['longest_chain']}"
        )
        for error in phase["first_errors"]:
            print(f"          error: {error}")
    if "server_rss" in summary:
        rss = summary["server_rss"]
        print(
            f"server RSS: {rss['start_mb']} MB at start, {rss['after_warmup_mb']} MB after the "
            f"warm-up, {rss['end_mb']} MB at the end "
            f"({rss['growth_after_warmup_mb']:+} MB after the warm-up)"
        )


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=3000, help="measured requests")
    parser.add_argument("--duration", type=float, help="stop the measured run after S seconds")
    parser.add_argument("--warmup", type=int, default=1000, help="requests before measuring")
    parser.add_argument("--pid", type=int, help="server process to sample VmRSS from")
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the workload")
    parser.add_argument("--json", dest="json_path", help="also write the summary here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_arguments(argv)
    summary = asyncio.run(load_test(options))
    print_summary(summary)
    if options.json_path:
        Path(options.json_path).write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
