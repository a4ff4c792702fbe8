"""`ToolHost`: every server-side tool behind one interface, one per server process.

The agent loops of the HTTP APIs, `/mcp` and `kronk mcp` all go through it: `list_tools`
for what a request turned on, `call` to run one, `connect_url` for an MCP server a request
names by URL (SSRF-guarded), `aclose` when the server stops. Tools come from the built-ins
(web_fetch; web_search when a backend is configured) and the MCP config file's servers,
which start on first use. Output is size-capped here, before it goes anywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kronk.errors import InvalidRequestError, KronkError, ToolNotFoundError, ToolTimeoutError, ToolUnavailableError
from kronk.tools.config import SERVER_NAME, ToolsConfig
from kronk.tools.mcp_client import McpConnection
from kronk.tools.netguard import NetGuard, Resolver
from kronk.tools.output import cap_text
from kronk.tools.types import BUILTIN, McpServerConfig, ToolResult, ToolSelection, ToolSpec
from kronk.tools.web_fetch import WebFetch
from kronk.tools.web_search import WebSearch, configured_backend

log = logging.getLogger("kronk.tools")

Builtin = Callable[[dict[str, Any]], Awaitable[ToolResult]]
MAX_ADHOC = 16
"""Ad-hoc (request-named) MCP servers kept connected at once; the least recently used goes first."""
ADHOC_SEP = "#"
"""Between label and digest in a `connect_url` key (labels cannot hold it: SERVER_NAME)."""


class ToolHost:
    """Built-in tools and MCP servers, listed and called by name."""

    def __init__(self, config: ToolsConfig, *, resolver: Resolver | None = None) -> None:
        self.config = config
        self.guard = NetGuard(config.allow, resolver=resolver)
        self._builtins: dict[str, tuple[ToolSpec, Builtin]] = {}
        fetch = WebFetch(config, self.guard)
        self._builtins[fetch.spec.name] = (fetch.spec, fetch)
        backend = configured_backend(config)
        if backend is not None:
            search = WebSearch(config, backend)
            self._builtins[search.spec.name] = (search.spec, search)
        self._servers: dict[str, McpConnection] = {
            server.name: self._connection(server) for server in config.mcp_servers}
        self._adhoc: dict[str, McpConnection] = {}
        self._adhoc_lock = asyncio.Lock()
        self._closed = False

    def _connection(self, server: McpServerConfig, key: str | None = None, guard: NetGuard | None = None
                    ) -> McpConnection:
        return McpConnection(server, key=key, default_timeout=self.config.timeout, list_ttl=self.config.list_ttl,
                             max_output=self.config.max_output, guard=guard)

    # -- what is there ---------------------------------------------------------------------

    @property
    def builtin_names(self) -> tuple[str, ...]:
        """The built-in tools offered (web_search only with a backend)."""
        return tuple(self._builtins)

    @property
    def server_names(self) -> tuple[str, ...]:
        """The configured MCP servers' names."""
        return tuple(self._servers)

    @staticmethod
    def label_of(key: str) -> str:
        """The label a server key shows to people: a configured name as is, a `connect_url` key's
        label (the key is `label#digest`), "builtin" for the built-ins."""
        return key.partition(ADHOC_SEP)[0]

    def has_server(self, key: str) -> bool:
        return key in self._servers or key in self._adhoc

    def _server(self, key: str) -> McpConnection:
        connection = self._servers.get(key) or self._adhoc.get(key)
        if connection is None:
            raise ToolNotFoundError(f"no MCP server {key!r} is configured (known: "
                                    f"{', '.join(self._servers) or 'none'})")
        return connection

    async def list_tools(self, selection: ToolSelection | None = None) -> list[ToolSpec]:
        """The tools a selection turns on; None means everything configured (for /mcp, `kronk mcp`).

        Built-ins named in the selection but not offered are left out; an unknown server key is
        ToolNotFoundError; a server that cannot start is ToolUnavailableError.
        """
        self._check_open()
        everything = selection is None
        if selection is None:
            selection = ToolSelection(frozenset(self._builtins), frozenset(self._servers))
        specs = [self._builtins[name][0] for name in self._builtins if name in selection.builtins]
        keys = sorted(selection.servers)
        for key in keys:
            self._server(key)
        listed = await asyncio.gather(*(self._server(key).list_tools() for key in keys), return_exceptions=everything)
        allowed = selection.allowed_tools
        for key, tools in zip(keys, listed, strict=True):
            if isinstance(tools, BaseException):
                # Listing everything (/mcp, `kronk mcp`): one broken server must not hide the others.
                log.warning("MCP server %s left out of the tool list: %s", key, tools)
                continue
            specs.extend(tool for tool in tools if allowed is None or tool.name in allowed)
        return specs

    def _check_open(self) -> None:
        if self._closed:
            raise ToolUnavailableError("the tool host is closed (the server is stopping)")

    # -- calling ---------------------------------------------------------------------------

    async def call(self, name: str, arguments: dict[str, Any], *, source: str | None = None,
                   timeout: float | None = None) -> ToolResult:
        """Run one tool and return its (size-capped) result.

        `source` picks the tool's origin (`ToolSpec.source`); without it a built-in of that
        name wins, else the one configured server offering it. Raises ToolNotFoundError,
        ToolTimeoutError (past `timeout`, default the config's), ToolRefusedError (the SSRF
        guard), ToolUnavailableError (an MCP server that cannot start/answer), ToolError
        (a fetch/search that failed) or InvalidRequestError (bad arguments). A tool that ran
        and reported a failure is a result with `is_error` set.
        """
        self._check_open()
        if not isinstance(arguments, dict):
            raise InvalidRequestError(f"arguments of tool {name!r} must be a JSON object", param="arguments")
        limit = timeout if timeout is not None else self.config.timeout
        started = time.monotonic()
        if source in (None, BUILTIN) and name in self._builtins:
            try:
                async with asyncio.timeout(limit):
                    result = await self._builtins[name][1](arguments)
            except TimeoutError:
                raise ToolTimeoutError(f"tool {name!r} took longer than {limit:g}s") from None
        elif source == BUILTIN:
            raise ToolNotFoundError(f"no built-in tool {name!r} is offered (built-ins: {', '.join(self._builtins)})")
        else:
            connection = self._server(source) if source is not None else await self._find(name)
            result = await connection.call(name, arguments, timeout=limit)
        log.debug("tool %s from %s took %.2fs", name, source or "auto", time.monotonic() - started)
        text, cut = cap_text(result.text, self.config.max_output)
        if cut:
            result = ToolResult(text=text, is_error=result.is_error, truncated=True, structured=result.structured)
        return result

    async def _find(self, name: str) -> McpConnection:
        """The first configured server offering `name` (servers that cannot list are passed over)."""
        for connection in self._servers.values():
            try:
                tools = await connection.list_tools()
            except KronkError as exc:
                log.warning("MCP server %s passed over looking for %s: %s", connection.key, name, exc)
                continue
            if any(tool.name == name for tool in tools):
                return connection
        raise ToolNotFoundError(f"no tool {name!r} is offered")

    # -- request-named servers ---------------------------------------------------------------

    async def connect_url(self, label: str, url: str, headers: dict[str, str] | None = None) -> str:
        """Register an MCP server a request names by URL; returns the key for selections and calls.

        The URL is checked by the SSRF guard now (ToolRefusedError before any connection) and
        on every request the connection makes. Connections are shared between requests naming
        the same URL and headers, and the least recently used is closed past MAX_ADHOC.
        """
        if not SERVER_NAME.fullmatch(label):
            raise InvalidRequestError("server_label must be letters, digits, '_', '.', '-' (max 64)",
                                      param="server_label")
        if not url.startswith(("http://", "https://")):
            raise InvalidRequestError("server_url must be an http(s) URL", param="server_url")
        self._check_open()
        await self.guard.check(url)
        headers = dict(headers or {})
        digest = hashlib.sha256(repr((url, sorted(headers.items()))).encode()).hexdigest()[:12]
        key = f"{label}{ADHOC_SEP}{digest}"
        async with self._adhoc_lock:
            if key not in self._adhoc:
                server = McpServerConfig(name=label, url=url, headers=headers)
                self._adhoc[key] = self._connection(server, key=key, guard=self.guard)
                while len(self._adhoc) > MAX_ADHOC:
                    oldest = min(self._adhoc, key=lambda k: self._adhoc[k].last_used)
                    await self._adhoc.pop(oldest).aclose()
        return key

    async def aclose(self) -> None:
        """Stop every MCP server (stdio processes end, HTTP sessions are deleted)."""
        self._closed = True
        connections = [*self._servers.values(), *self._adhoc.values()]
        self._adhoc.clear()
        await asyncio.gather(*(connection.aclose() for connection in connections), return_exceptions=True)
