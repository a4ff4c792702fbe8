"""One MCP server connection on the official `mcp` SDK: stdio or streamable HTTP.

The SDK's `Client` is an async context manager built on anyio task groups, which must be
entered and left by the same task; so each connection runs in an owner task of its own that
holds the context open until asked to stop, and callers from any task use the session through
it. Started on first use, the tool list cached for `list_ttl` seconds, a server that died
(crashed process, dropped HTTP session) is started again on the next use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import httpx2
import mcp_types
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CONNECTION_CLOSED

from kronk.errors import ToolError, ToolNotFoundError, ToolTimeoutError, ToolUnavailableError
from kronk.tools.netguard import NetGuard
from kronk.tools.output import cap_text
from kronk.tools.types import McpServerConfig, ToolResult, ToolSpec

log = logging.getLogger("kronk.tools.mcp")

MAX_PAGES = 50
"""tools/list pages read at most: a server that paginates forever cannot hang a listing."""


class GuardedTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport that sends every request to an address the SSRF guard checked.

    The URL's host is swapped for the checked IP (Host header and TLS SNI keep the name, so
    certificates are still verified against it); nothing resolves the name a second time.
    """

    def __init__(self, guard: NetGuard) -> None:
        self._guard = guard
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        target = await self._guard.check(str(request.url))
        request.extensions = {**request.extensions, "sni_hostname": target.host}
        request.url = request.url.copy_with(host=target.addresses[0])
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _block_text(block: Any) -> str:
    """A content block as prompt text; non-text blocks are described, not inlined."""
    kind = getattr(block, "type", "")
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        return f"[{kind} content: {getattr(block, 'mime_type', None) or 'unknown type'}]"
    if kind == "resource_link":
        return f"[resource: {getattr(block, 'uri', '')}]"
    if kind == "resource":
        resource = getattr(block, "resource", None)
        text = getattr(resource, "text", None)
        return str(text) if text is not None else f"[resource: {getattr(resource, 'uri', '')}]"
    return f"[{kind or 'unknown'} content]"


def to_result(result: mcp_types.CallToolResult, max_output: int) -> ToolResult:
    text = "\n".join(_block_text(block) for block in result.content)
    if not text and result.structured_content is not None:
        text = json.dumps(result.structured_content, ensure_ascii=False)
    text, truncated = cap_text(text, max_output)
    structured = result.structured_content if isinstance(result.structured_content, dict) else None
    return ToolResult(text=text, is_error=bool(result.is_error), truncated=truncated, structured=structured)


def _connection_closed(client: Client | None) -> bool:
    """True when the connection already saw its peer go away (so a request was never sent).

    Reads the SDK dispatcher's `_closed` flag; if a future SDK renames it this says False and
    the connection is still replaced, only on the use after the failing one.
    """
    if client is None:
        return True
    dispatcher = getattr(getattr(client, "_session", None), "_dispatcher", None)
    return bool(getattr(dispatcher, "_closed", False))


class McpConnection:
    """A lazily started, restartable connection to one MCP server."""

    def __init__(self, config: McpServerConfig, *, key: str | None = None, default_timeout: float = 30.0,
                 list_ttl: float = 300.0, max_output: int = 100_000, guard: NetGuard | None = None) -> None:
        self.config = config
        self.key = key or config.name
        """The `source` of this server's tools (its configured name, or an ad-hoc key)."""
        self.timeout = config.timeout or default_timeout
        self._list_ttl = list_ttl
        self._max_output = max_output
        self._guard = guard
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock = asyncio.Lock()
        self._tools: list[ToolSpec] | None = None
        self._listed_at = 0.0
        self._broken = False
        """A transport failure was seen: the next use starts the server (or HTTP session) afresh."""
        self.starts = 0
        """How many times the server was (re)started."""
        self.last_used = time.monotonic()

    # -- lifecycle -------------------------------------------------------------------------

    async def _run(self, ready: asyncio.Future[None], stop: asyncio.Event) -> None:
        """The owner task: enter the SDK client, publish it, hold it until told to stop."""
        cfg = self.config
        http: httpx2.AsyncClient | None = None
        try:
            if cfg.command is not None:
                target: Any = StdioServerParameters(command=cfg.command, args=list(cfg.args),
                                                    env=dict(cfg.env) or None, cwd=cfg.cwd)
            else:
                assert cfg.url is not None
                http = httpx2.AsyncClient(
                    headers=dict(cfg.headers), timeout=httpx2.Timeout(30.0, read=300.0),
                    transport=GuardedTransport(self._guard) if self._guard is not None else None)
                target = streamable_http_client(cfg.url, http_client=http)
            async with Client(target, cache=None) as client:
                self._client = client
                if not ready.done():
                    ready.set_result(None)
                await stop.wait()
        except BaseException as exc:  # noqa: BLE001 - reported to the starter or logged, never lost
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else ConnectionError(_describe(exc)))
            elif not isinstance(exc, asyncio.CancelledError):
                log.warning("MCP server %s stopped: %s", self.key, _describe(exc))
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self._client = None
            if http is not None:
                with contextlib.suppress(Exception):
                    await http.aclose()

    async def _ensure(self) -> Client:
        """The live client, starting (or restarting) the server first when needed."""
        async with self._lock:
            if self._client is not None and not self._broken and not _connection_closed(self._client) \
                    and self._task is not None and not self._task.done():
                return self._client
            self._broken = False
            await self._shutdown()
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[None] = loop.create_future()
            stop = asyncio.Event()
            self._stop = stop
            self._task = asyncio.create_task(self._run(ready, stop), name=f"mcp-server-{self.key}")
            self.starts += 1
            log.info("starting MCP server %s (%s)", self.key, self.config.transport)
            try:
                async with asyncio.timeout(self.timeout):
                    await asyncio.shield(ready)
            except TimeoutError:
                await self._shutdown()
                raise ToolUnavailableError(f"MCP server {self.key!r} did not start within {self.timeout:g}s") from None
            except Exception as exc:
                await self._shutdown()
                raise ToolUnavailableError(f"MCP server {self.key!r} could not be started: {_describe(exc)}") from None
            assert self._client is not None
            return self._client

    async def _shutdown(self) -> None:
        task, stop = self._task, self._stop
        self._task = self._stop = None
        self._tools = None
        if task is None:
            return
        if stop is not None:
            stop.set()
        try:
            async with asyncio.timeout(10):
                await asyncio.shield(task)
        except BaseException:  # noqa: BLE001 - a stuck or failing server is cancelled and forgotten
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def aclose(self) -> None:
        async with self._lock:
            await self._shutdown()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._broken \
            and not _connection_closed(self._client)

    # -- tools -----------------------------------------------------------------------------

    async def list_tools(self, *, refresh: bool = False) -> list[ToolSpec]:
        """The server's tools, from the cache unless it is older than `list_ttl` (or a refresh is asked)."""
        self.last_used = time.monotonic()
        if not refresh and self._tools is not None and self.running \
                and time.monotonic() - self._listed_at < self._list_ttl:
            return self._tools
        for attempt in (1, 2):
            client = await self._ensure()
            try:
                async with asyncio.timeout(self.timeout):
                    tools = await self._read_tools(client)
            except TimeoutError:
                raise ToolTimeoutError(f"MCP server {self.key!r} did not list its tools within {self.timeout:g}s") \
                    from None
            except MCPError as exc:
                if exc.code == CONNECTION_CLOSED and attempt == 1:
                    self._broken = True
                    continue  # listing is safe to repeat on a fresh start
                raise ToolUnavailableError(f"MCP server {self.key!r} failed to list tools: {exc}") from None
            except Exception as exc:
                self._broken = True
                raise ToolUnavailableError(f"MCP server {self.key!r} failed to list tools: {_describe(exc)}") \
                    from None
            self._tools, self._listed_at = tools, time.monotonic()
            return tools
        raise ToolUnavailableError(f"MCP server {self.key!r} closed the connection")

    async def _read_tools(self, client: Client) -> list[ToolSpec]:
        specs: list[ToolSpec] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            specs.extend(ToolSpec(name=t.name, description=t.description or t.title or "",
                                  input_schema=dict(t.input_schema or {"type": "object"}), source=self.key)
                         for t in page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return specs

    async def call(self, name: str, arguments: dict[str, Any], *, timeout: float | None = None) -> ToolResult:
        """Call one tool. A connection found dead before sending is restarted and the call sent once."""
        self.last_used = time.monotonic()
        limit = timeout if timeout is not None else self.timeout
        tools = await self.list_tools()
        if not any(tool.name == name for tool in tools):
            raise ToolNotFoundError(f"MCP server {self.key!r} has no tool {name!r}")
        client = await self._ensure()  # a connection seen dead is replaced here, before anything is sent
        try:
            async with asyncio.timeout(limit):
                result = await client.call_tool(name, arguments)
        except TimeoutError:
            raise ToolTimeoutError(f"tool {name!r} on MCP server {self.key!r} took longer than {limit:g}s") from None
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                # Never re-sent: the call may have had effects. The next use starts the server again.
                self._broken = True
                raise ToolUnavailableError(f"MCP server {self.key!r} went away during {name!r}") from None
            return ToolResult(text=f"MCP error {exc.code}: {exc}", is_error=True)
        except ToolError:
            raise
        except Exception as exc:
            self._broken = True
            raise ToolUnavailableError(f"calling {name!r} on MCP server {self.key!r} failed: {_describe(exc)}") \
                from None
        return to_result(result, self._max_output)


def _describe(exc: BaseException) -> str:
    """A one-line cause for an error, looking inside exception groups (anyio task groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc)
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__

