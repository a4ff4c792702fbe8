"""`kronk chat`: an interactive terminal chat, against a running server or in-process.

    kronk chat                      talk to the server at KRONK_URL (or the one `kronk server start` runs)
    kronk chat --local --model M    load the model in this process (no server needed)

Input is read line by line from stdin, so a conversation can be piped in. Commands:
`/exit` (or end of input) quits, `/reset` forgets the conversation, `/help` lists them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import click

from kronk.cli.client import error_from_body
from kronk.cli.sse import SSEDecoder
from kronk.errors import InvalidRequestError, KronkError, ServerNotRunningError

DEFAULT_URL = "http://127.0.0.1:11435"
HELP = "/exit quit · /reset forget the conversation · /help this text"


@dataclass(slots=True)
class Delta:
    """A piece of the assistant's turn: answer text, reasoning, or a tool call's text."""

    text: str
    kind: str = "content"


@dataclass(slots=True)
class Options:
    model: str | None
    temperature: float | None
    max_tokens: int | None


class Backend(Protocol):
    def stream(self, messages: list[dict[str, Any]]) -> AsyncIterator[Delta]: ...

    async def close(self) -> None: ...


# --- remote --------------------------------------------------------------------


class RemoteBackend:
    """Streams /v1/chat/completions from a running Kronk (or any OpenAI-compatible) server."""

    def __init__(self, url: str, token: str | None, options: Options) -> None:
        self.url = url.rstrip("/")
        if self.url.endswith("/v1"):
            self.url = self.url[:-3]
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.options = options
        self._session: Any = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _body(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": messages, "stream": True}
        if self.options.model:
            body["model"] = self.options.model
        if self.options.temperature is not None:
            body["temperature"] = self.options.temperature
        if self.options.max_tokens is not None:
            body["max_tokens"] = self.options.max_tokens
        return body

    async def stream(self, messages: list[dict[str, Any]]) -> AsyncIterator[Delta]:
        import aiohttp

        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
            self._session = aiohttp.ClientSession(headers=self.headers, timeout=timeout)
        try:
            async with self._session.post(self.url + "/v1/chat/completions", json=self._body(messages)) as response:
                if response.status != 200:
                    raise error_from_body(response.status, _json_or_text(await response.text()))
                decoder = SSEDecoder()
                async for raw in response.content:
                    event = decoder.feed(raw.decode("utf-8", "replace"))
                    if event is None:
                        continue
                    if event.data == "[DONE]":
                        return
                    for delta in _deltas(event.data):
                        yield delta
        except aiohttp.ClientConnectorError as exc:
            raise ServerNotRunningError(
                f"no Kronk server at {self.url} ({exc.os_error or exc}); start one with `kronk server start -d` "
                "or use --local"
            ) from None


def _json_or_text(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return {"error": {"message": body.strip()[:500]}}


def _deltas(chunk: Any) -> list[Delta]:
    if not isinstance(chunk, dict):
        raise InvalidRequestError(f"the server sent an event that is not a JSON object: {str(chunk)[:200]}")
    if "error" in chunk:
        message = chunk["error"].get("message") if isinstance(chunk["error"], dict) else chunk["error"]
        raise InvalidRequestError(f"server error: {message}")
    out: list[Delta] = []
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if delta.get("reasoning_content"):
            out.append(Delta(delta["reasoning_content"], "reasoning"))
        if delta.get("content"):
            out.append(Delta(delta["content"]))
        for call in delta.get("tool_calls") or []:
            function = call.get("function") or {}
            if function.get("name"):
                out.append(Delta(f"\n[tool call] {function['name']}(", "tool"))
            if function.get("arguments"):
                out.append(Delta(function["arguments"], "tool"))
    return out


# --- local ---------------------------------------------------------------------


class LocalBackend:
    """Runs the model in this process through AsyncKronk."""

    def __init__(self, flags: dict[str, Any], options: Options) -> None:
        from kronk.sdk import AsyncKronk
        from kronk.settings import load_settings

        self.settings = load_settings(flags)
        self.kronk = AsyncKronk(self.settings.pool_settings())
        self.options = options
        self._started = False

    async def close(self) -> None:
        if self._started:
            await self.kronk.close()

    async def stream(self, messages: list[dict[str, Any]]) -> AsyncIterator[Delta]:
        from kronk.engine.types import ReasoningDelta, TextDelta, ToolCallDelta
        from kronk.sdk.requests import ChatRequest

        if not self._started:
            await self.kronk.start()
            self._started = True
        request = ChatRequest(messages=list(messages), model=self.options.model, max_tokens=self.options.max_tokens)
        explicit: set[str] = set()
        if self.options.temperature is not None:
            request.sampling.temperature = self.options.temperature
            explicit.add("temperature")
        async for event in self.kronk.chat_stream(request, explicit=explicit):
            if isinstance(event, TextDelta) and event.text:
                yield Delta(event.text)
            elif isinstance(event, ReasoningDelta):
                yield Delta(event.text, "reasoning")
            elif isinstance(event, ToolCallDelta):
                if event.name:
                    yield Delta(f"\n[tool call] {event.name}(", "tool")
                if event.arguments:
                    yield Delta(event.arguments, "tool")


# --- the loop --------------------------------------------------------------------


async def run_chat(backend: Backend, system: str | None, read_line: Callable[[], str],
                   console: Any, interactive: bool) -> None:
    """Read a line, send the conversation, stream the answer; until /exit or end of input."""
    base = [{"role": "system", "content": system}] if system else []
    history = list(base)
    try:
        while True:
            if interactive:
                console.print("[bold cyan]>>> [/]", end="")
            line = await asyncio.to_thread(read_line)
            if not line:
                break
            text = line.rstrip("\r\n")
            command = text.strip()
            if not command:
                continue
            if command in ("/exit", "/quit", "/bye"):
                break
            if command == "/reset":
                history = list(base)
                console.print("[dim](conversation reset)[/]")
                continue
            if command in ("/help", "/?"):
                console.print(HELP, markup=False, highlight=False)
                continue
            history.append({"role": "user", "content": text})
            answer = await _answer(backend, history, console)
            if answer is None:
                history.pop()
            else:
                history.append({"role": "assistant", "content": answer})
    finally:
        await backend.close()


async def _answer(backend: Backend, history: list[dict[str, Any]], console: Any) -> str | None:
    parts: list[str] = []
    last_kind = "content"
    try:
        async for delta in backend.stream(history):
            if delta.kind != last_kind and delta.kind != "tool" and last_kind != "tool":
                console.print()
            last_kind = delta.kind
            if delta.kind == "reasoning":
                console.print(delta.text, end="", style="dim italic", markup=False, highlight=False)
            else:
                console.print(delta.text, end="", style="yellow" if delta.kind == "tool" else None,
                              markup=False, highlight=False)
            if delta.kind == "content":
                parts.append(delta.text)
    except ServerNotRunningError:
        raise
    except KronkError as exc:
        console.print(f"\n[red]error:[/] {exc}", highlight=False)
        return None
    console.print()
    return "".join(parts)


def _default_url() -> str:
    """KRONK_HOST/KRONK_PORT if set, else the server `kronk server start` runs, else the default address."""
    import os

    from kronk.cli.client import server_url
    from kronk.server.process import read_record

    if not (os.environ.get("KRONK_HOST") or os.environ.get("KRONK_PORT")):
        record = read_record()
        if record is not None:
            return record.url
    return server_url()


@click.command("chat")
@click.option("--url", envvar="KRONK_URL", default=None, help="Server URL [env KRONK_URL] (default: "
              "KRONK_HOST/KRONK_PORT, else the server `kronk server start` runs, else " + DEFAULT_URL + ").")
@click.option("--token", envvar="KRONK_TOKEN", default=None, help="Bearer token [env KRONK_TOKEN].")
@click.option("--local", is_flag=True, help="Run the model in this process instead of using a server.")
@click.option("--model", "-m", default=None, help="Model id, alias or GGUF path (default: the server's default).")
@click.option("--system", "-s", default=None, help="System prompt.")
@click.option("--temperature", type=click.FloatRange(min=0), default=None, help="Sampling temperature.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None, help="Longest answer in tokens.")
@click.option("--ctx-size", type=click.IntRange(min=0), default=None, help="With --local: context size.")
@click.option("--threads", type=click.IntRange(min=0), default=None, help="With --local: threads.")
def chat(url: str | None, token: str | None, local: bool, model: str | None, system: str | None,
         temperature: float | None, max_tokens: int | None, ctx_size: int | None, threads: int | None) -> None:
    """Chat with a model in the terminal (reads stdin line by line; /exit, /reset, /help)."""
    from rich.console import Console

    options = Options(model=model, temperature=temperature, max_tokens=max_tokens)
    backend: Backend
    if local:
        import logging

        for noisy in ("llama.cpp", "kronk.native", "gguf"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        flags = {"model": model, "ctx_size": ctx_size, "threads": threads, "slots": 1, "preload": False}
        backend = LocalBackend(flags, options)
    else:
        if ctx_size is not None or threads is not None:
            raise click.UsageError("--ctx-size and --threads apply only with --local")
        backend = RemoteBackend(url or _default_url(), token, options)
    interactive = sys.stdin.isatty()
    console = Console(soft_wrap=True)
    if interactive:
        console.print(f"[dim]Kronk chat — {HELP}[/]")
    asyncio.run(run_chat(backend, system, sys.stdin.readline, console, interactive))
