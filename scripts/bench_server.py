#!/usr/bin/env python3
"""Kronk's HTTP server against `llama-server` under the same streaming load, in one run.

Each round starts our server (`python -m kronk server start`) and llama-server, then runs
every concurrency level on one and right after on the other, who goes first alternating
from level to level and round to round. Only one server is driven at a time (the other
sits idle), so they never compete for the cores, and each pair of measurements is taken
seconds apart, so the drift of a shared machine hits both alike. Both get the same model,
libs, slots (8), threads, context (8192 cells, unified KV) and flash-attention setting. At every concurrency level C (default 1, 4, 8) the
client sends `requests-per-slot x C` streaming POST /v1/chat/completions requests, C at a
time; request i at level C has the same messages on both servers, greedy
(temperature 0), max_tokens 128, ignore_eos, stream_options.include_usage, so both
generate the same number of tokens. Measured per level:

  tokens/s   completion tokens (from the usage chunk) / wall time of the level
  TTFT       request sent -> first non-empty content delta; mean and p95

Targets: ours >= 1.0 x llama-server tokens/s and ours p95 TTFT <= 1.1 x llama-server's,
at every level (medians of the per-round ratios).

    python scripts/bench_server.py [--model PATH] [--threads 2] [--rounds 5] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import aiohttp
import requests
from _bench_common import (
    Check,
    check_model,
    default_model,
    find_tool,
    int_list,
    lib_dir,
    median,
    percentile,
    positive_int,
    print_checks,
    print_table,
    ratio,
    tool_env,
    tools_dir,
    write_json,
)

TPS_TARGET = 1.0
TTFT_TARGET = 1.1
READY_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 900.0
TOPICS = (
    "a lighthouse keeper", "a lost robot", "the first city on Mars", "a river that flows uphill",
    "a chess game between two ghosts", "a baker who can taste colours", "a library with no exits",
    "the last tree in a desert", "a cat that runs a railway", "a storm that keeps a diary",
)


class BenchError(Exception):
    """A server failed to start or answered a request with an error."""


@dataclass(slots=True)
class Load:
    levels: list[int]
    per_slot: int
    max_tokens: int


@dataclass(slots=True)
class ServerSpec:
    """How to start one server and how to tell it is ready."""

    name: str
    argv: Callable[[int], list[str]]
    env: dict[str, str]
    ready_path: str


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def messages_for(level: int, index: int) -> list[dict[str, str]]:
    """The same messages for request `index` at `level` on both servers."""
    topic = TOPICS[(index + level) % len(TOPICS)]
    return [{"role": "user", "content": f"Story {level}.{index}: write a long, detailed story about {topic}."}]


# --- server processes (synchronous; never on the event loop) ---------------------------------


class RunningServer:
    """A server subprocess on a free port, logging to a file; stopped on exit."""

    def __init__(self, spec: ServerSpec, log_dir: Path) -> None:
        self.spec = spec
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{spec.name}-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(spec.argv(self.port), stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=spec.env)

    def __enter__(self) -> Self:
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.spec.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(self.url + self.spec.ready_path, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise BenchError(f"{self.spec.name} not ready after {READY_TIMEOUT_S:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._log.close()


def our_server(model: Path, libs: Path, home: Path, slots: int, threads: int, ctx: int) -> ServerSpec:
    env = dict(os.environ)
    # A private home: no clash with a server the user runs, nothing written to ~/.kronk.
    env.update({"KRONK_HOME": str(home), "KRONK_LIB_PATH": str(libs)})
    return ServerSpec(
        "kronk",
        lambda port: [sys.executable, "-m", "kronk", "server", "start", "--model", str(model),
                      "--host", "127.0.0.1", "--port", str(port), "--slots", str(slots),
                      "--threads", str(threads), "--ctx-size", str(ctx), "--flash-attn", "auto"],
        env,
        "/v1/readiness",
    )


def llama_server(tool: Path, model: Path, libs: Path, slots: int, threads: int, ctx: int) -> ServerSpec:
    return ServerSpec(
        "llama-server",
        lambda port: [str(tool), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-np", str(slots),
                      "-c", str(ctx), "-t", str(threads), "-tb", str(threads), "-kvu", "-fa", "auto",
                      "--no-webui"],
        tool_env(libs),
        "/health",
    )


# --- the load (asyncio client) ----------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    ttft_s: float
    tokens: int
    content_chunks: int


async def stream_chat(session: aiohttp.ClientSession, url: str, messages: list[dict[str, str]],
                      max_tokens: int) -> Outcome:
    body = {
        "messages": messages, "stream": True, "stream_options": {"include_usage": True},
        "max_tokens": max_tokens, "temperature": 0, "seed": 42, "ignore_eos": True,
    }
    start = time.perf_counter()
    ttft = math.nan
    chunks = 0
    usage_tokens: int | None = None
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        if resp.status != 200:
            raise BenchError(f"{url} answered {resp.status}: {(await resp.text())[:500]}")
        async for raw in resp.content:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                raise BenchError(f"{url} sent an error event: {chunk['error']}")
            if chunk.get("usage"):
                usage_tokens = int(chunk["usage"]["completion_tokens"])
            for choice in chunk.get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    chunks += 1
                    if math.isnan(ttft):
                        ttft = time.perf_counter() - start
    return Outcome(ttft, usage_tokens if usage_tokens is not None else chunks, chunks)


async def run_level(url: str, level: int, load: Load) -> dict[str, Any]:
    """`per_slot x level` requests, `level` at a time; aggregate t/s and TTFT stats."""
    total = load.per_slot * level
    indices = iter(range(total))
    outcomes: list[Outcome] = []
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    # A fresh connection per request: llama-server may close a keep-alive connection after a
    # stream, and a reused dead connection would fail the request. Same for both servers.
    connector = aiohttp.TCPConnector(limit=level, force_close=True)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def worker() -> None:
            for index in indices:
                outcomes.append(await stream_chat(session, url, messages_for(level, index), load.max_tokens))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(level)))
        wall = time.perf_counter() - start
    tokens = sum(o.tokens for o in outcomes)
    ttfts = [o.ttft_s * 1000.0 for o in outcomes if not math.isnan(o.ttft_s)]
    return {
        "requests": total,
        "tokens": tokens,
        "short_requests": sum(1 for o in outcomes if o.tokens != load.max_tokens),
        "wall_s": wall,
        "tps": tokens / wall,
        "ttft_mean_ms": statistics.fmean(ttfts) if ttfts else math.nan,
        "ttft_p95_ms": percentile(ttfts, 95),
    }


async def drive(servers: list[RunningServer], load: Load, first: int) -> dict[str, dict[int, dict[str, Any]]]:
    """Every level on both servers back to back, who goes first alternating per level."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as session:
        for server in servers:
            await stream_chat(session, server.url, [{"role": "user", "content": "Say hello."}], 8)  # warm-up
    results: dict[str, dict[int, dict[str, Any]]] = {server.spec.name: {} for server in servers}
    for position, level in enumerate(load.levels):
        order = servers if (first + position) % 2 == 0 else servers[::-1]
        for server in order:
            try:
                results[server.spec.name][level] = await run_level(server.url, level, load)
            except (BenchError, aiohttp.ClientError, TimeoutError) as exc:
                raise BenchError(f"{server.spec.name}: {exc!r}\n--- log tail ---\n{server.log_tail()}") from None
    return results


def bench_round(specs: tuple[ServerSpec, ...], load: Load, log_dir: Path, first: int) -> dict[str, Any]:
    """Both servers started (each idle while the other is driven), then driven level by level."""
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(RunningServer(spec, log_dir)) for spec in specs]
        return asyncio.run(drive(servers, load, first))


# --- the run -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model(), help="GGUF model (default: SmolLM2-135M)")
    parser.add_argument("--tools-dir", type=Path, help="folder with llama-server (default: <lib dir>/bin)")
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--rounds", type=positive_int, default=5)
    parser.add_argument("--slots", type=positive_int, default=8)
    parser.add_argument("--ctx-size", type=positive_int, default=8192)
    parser.add_argument("--concurrency", type=int_list, default=[1, 4, 8], help="levels, e.g. 1,4,8")
    parser.add_argument("--requests-per-slot", type=positive_int, default=3,
                        help="requests per level = this x the concurrency")
    parser.add_argument("--max-tokens", type=positive_int, default=128)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--quick", action="store_true", help="1 round, 32 tokens, 1 request per slot")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.max_tokens, args.requests_per_slot = 1, 32, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = check_model(args.model)
    libs = lib_dir()
    tool = find_tool(tools_dir(args.tools_dir), "llama-server")
    load = Load(sorted(set(args.concurrency)), args.requests_per_slot, args.max_tokens)
    print(f"model {model.name}, libs {libs}, threads {args.threads}, slots {args.slots}, ctx {args.ctx_size}, "
          f"levels {load.levels}, {load.per_slot}xC requests of {load.max_tokens} tokens, {args.rounds} round(s)",
          flush=True)
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kronk-bench-") as tmp:
        home = Path(tmp) / "home"
        specs = (our_server(model, libs, home, args.slots, args.threads, args.ctx_size),
                 llama_server(tool, model, libs, args.slots, args.threads, args.ctx_size))
        try:
            for index in range(args.rounds):
                row = bench_round(specs, load, Path(tmp), first=index)
                rounds.append(row)
                print(f"round {index + 1}: " + " | ".join(
                    f"C{c} t/s {row['kronk'][c]['tps']:.1f}/{row['llama-server'][c]['tps']:.1f} "
                    f"p95 TTFT ms {row['kronk'][c]['ttft_p95_ms']:.0f}/{row['llama-server'][c]['ttft_p95_ms']:.0f}"
                    for c in load.levels) + "  (kronk/llama-server)", flush=True)
        except BenchError as exc:
            raise SystemExit(f"benchmark failed: {exc}") from None
    checks, summary = report(rounds, load)
    ok = print_checks(checks, theirs_label="llama-server", ours_label="kronk")
    if args.json:
        write_json(args.json, {
            "model": model, "libs": libs, "threads": args.threads, "slots": args.slots, "ctx_size": args.ctx_size,
            "levels": load.levels, "requests_per_slot": load.per_slot, "max_tokens": load.max_tokens,
            "rounds": rounds, "summary": summary, "checks": [c.as_dict() for c in checks], "passed": ok,
        })
    return 0 if ok else 1


def report(rounds: list[dict[str, Any]], load: Load) -> tuple[list[Check], dict[int, Any]]:
    """Print the per-round table and build the checks (medians of per-round ratios)."""
    rows = []
    for i, r in enumerate(rounds, 1):
        for c in load.levels:
            o, t = r["kronk"][c], r["llama-server"][c]
            rows.append([f"{i}", c, t["tps"], o["tps"], ratio(o["tps"], t["tps"]),
                         t["ttft_mean_ms"], o["ttft_mean_ms"], t["ttft_p95_ms"], o["ttft_p95_ms"],
                         ratio(o["ttft_p95_ms"], t["ttft_p95_ms"]), f"{o['short_requests']}/{t['short_requests']}"])
    print_table(["round", "C", "llama t/s", "kronk t/s", "ratio", "llama TTFT", "kronk TTFT",
                 "llama p95", "kronk p95", "p95 ratio", "short k/l"], rows,
                title="Per round (TTFT in ms; 'short' = requests that generated fewer than max_tokens)")
    checks: list[Check] = []
    summary: dict[int, Any] = {}
    for c in load.levels:
        ours_tps = median(r["kronk"][c]["tps"] for r in rounds)
        ref_tps = median(r["llama-server"][c]["tps"] for r in rounds)
        tps_ratio = median(ratio(r["kronk"][c]["tps"], r["llama-server"][c]["tps"]) for r in rounds)
        ours_p95 = median(r["kronk"][c]["ttft_p95_ms"] for r in rounds)
        ref_p95 = median(r["llama-server"][c]["ttft_p95_ms"] for r in rounds)
        p95_ratio = median(ratio(r["kronk"][c]["ttft_p95_ms"], r["llama-server"][c]["ttft_p95_ms"]) for r in rounds)
        checks.append(Check(f"tokens/s C={c}", ours_tps, ref_tps, tps_ratio, ">=", TPS_TARGET))
        checks.append(Check(f"p95 TTFT ms C={c}", ours_p95, ref_p95, p95_ratio, "<=", TTFT_TARGET))
        summary[c] = {"tps": {"ours": ours_tps, "ref": ref_tps, "ratio": tps_ratio},
                      "ttft_p95_ms": {"ours": ours_p95, "ref": ref_p95, "ratio": p95_ratio}}
    return checks, summary


if __name__ == "__main__":
    sys.exit(main())
