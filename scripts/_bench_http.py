"""The HTTP side the server benchmarks share: starting and stopping our server and
llama-server on free loopback ports, and one streaming chat request as a client sees it.

Every request goes to 127.0.0.1 only. Servers run as subprocesses logging to a file in
the run's temporary folder, so a failure can show the tail of the log.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import aiohttp
import requests
from _bench_common import tool_env

READY_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 900.0


class BenchError(Exception):
    """A server failed to start or answered a request with an error."""


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


@contextlib.contextmanager
def running(specs: Sequence[ServerSpec], log_dir: Path) -> Iterator[list[RunningServer]]:
    """All `specs` started and ready (idle until driven), all stopped on exit."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(RunningServer(spec, log_dir)) for spec in specs]


def our_server(model: Path, libs: Path, home: Path, slots: int, threads: int, ctx: int,
               name: str = "kronk", extra: Sequence[str] = ()) -> ServerSpec:
    """`python -m kronk server start` with a private KRONK_HOME (no clash with the user's server,
    nothing written to ~/.kronk) and the same libs as the reference."""
    env = dict(os.environ)
    env.update({"KRONK_HOME": str(home), "KRONK_LIB_PATH": str(libs)})
    return ServerSpec(
        name,
        lambda port: [sys.executable, "-m", "kronk", "server", "start", "--model", str(model),
                      "--host", "127.0.0.1", "--port", str(port), "--slots", str(slots),
                      "--threads", str(threads), "--ctx-size", str(ctx), "--flash-attn", "auto", *extra],
        env,
        "/v1/readiness",
    )


def llama_server(tool: Path, model: Path, libs: Path, slots: int, threads: int, ctx: int,
                 name: str = "llama-server", extra: Sequence[str] = ()) -> ServerSpec:
    """llama-server with the same model, libs, slots, threads, context (unified KV) and flash attention."""
    return ServerSpec(
        name,
        lambda port: [str(tool), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-np", str(slots),
                      "-c", str(ctx), "-t", str(threads), "-tb", str(threads), "-kvu", "-fa", "auto",
                      "--no-webui", *extra],
        tool_env(libs),
        "/health",
    )


def kronk_server_flags() -> str:
    """The help text of `kronk server start` in this build: which flags it has."""
    done = subprocess.run([sys.executable, "-m", "kronk", "server", "start", "--help"],
                          capture_output=True, text=True, timeout=120, check=False)
    return done.stdout


# --- one streamed chat completion ------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """What a streaming client saw: seconds to the first content and to the end, the
    completion tokens (from the usage chunk, else the content chunks), the text, and
    llama-server's `timings` object when it sent one."""

    ttft_s: float
    total_s: float
    tokens: int
    content_chunks: int
    text: str
    timings: dict[str, Any] = field(default_factory=dict)

    @property
    def gen_tps(self) -> float:
        """Generation rate after the first token: prefill and queueing left out."""
        span = self.total_s - self.ttft_s
        return (self.tokens - 1) / span if self.tokens > 1 and span > 0 else math.nan


def client_session(limit: int = 0) -> aiohttp.ClientSession:
    """A session with a fresh connection per request: llama-server may close a keep-alive
    connection after a stream, and a reused dead one would fail the request. Same for both."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
                                 connector=aiohttp.TCPConnector(limit=limit, force_close=True))


async def stream_chat(session: aiohttp.ClientSession, url: str, messages: list[dict[str, str]],
                      max_tokens: int, **extra: Any) -> Outcome:
    """POST a streaming, greedy /v1/chat/completions (`extra` joins the body) and read it to the end."""
    body = {
        "messages": messages, "stream": True, "stream_options": {"include_usage": True},
        "max_tokens": max_tokens, "temperature": 0, "seed": 42, **extra,
    }
    start = time.perf_counter()
    ttft = math.nan
    parts: list[str] = []
    usage_tokens: int | None = None
    timings: dict[str, Any] = {}
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
            timings = chunk.get("timings") or timings
            for choice in chunk.get("choices") or ():
                content = (choice.get("delta") or {}).get("content")
                if content:
                    parts.append(content)
                    if math.isnan(ttft):
                        ttft = time.perf_counter() - start
    total = time.perf_counter() - start
    tokens = usage_tokens if usage_tokens is not None else len(parts)
    return Outcome(ttft, total, tokens, len(parts), "".join(parts), timings)


async def warm_up(servers: Sequence[RunningServer]) -> None:
    """One short request each, so no measurement pays for a first-request cost."""
    async with client_session() as session:
        for server in servers:
            await stream_chat(session, server.url, [{"role": "user", "content": "Say hello."}], 8)
