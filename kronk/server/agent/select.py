"""What a request turns on → the ToolSpecs the agent loop offers, through the app's ToolHost.

Each API's handler maps its own request shape (chat `kronk_tools`, Responses `mcp` tools,
Anthropic `mcp_servers`) to `McpRequest`s and built-in names; this resolves them: a label
without a URL must be a configured server, a URL is connected (SSRF-checked) under its label.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from kronk.errors import (
    InvalidRequestError,
    KronkError,
    ToolNotFoundError,
    ToolRefusedError,
    ToolTimeoutError,
    ToolUnavailableError,
)
from kronk.server.agent.loop import AgentLimits
from kronk.server.keys import SETTINGS
from kronk.server.tools_host import TOOLS
from kronk.tools.types import ToolSelection, ToolSpec

SERVER_TOOL_ERRORS: tuple[type[KronkError], ...] = (ToolNotFoundError, ToolUnavailableError, ToolTimeoutError)
"""What a route running server tools may answer besides its own errors (an unknown MCP label 404,
a server that cannot start or list its tools 502/504), for its `Operation(errors=...)`."""


@dataclass(frozen=True, slots=True)
class McpRequest:
    label: str
    url: str | None = None
    headers: dict[str, str] | None = None
    allowed_tools: tuple[str, ...] | None = None
    param: str = "mcp"
    """Where the request named the server (errors point there)."""


@dataclass(frozen=True, slots=True)
class Listing:
    """One requested MCP server and the tools it offers this request (Responses `mcp_list_tools`)."""

    request: McpRequest
    key: str
    tools: list[ToolSpec]


async def list_servers(app: web.Application, mcp: list[McpRequest]) -> list[Listing]:
    """Each server's tools. An unknown label is ToolNotFoundError (404); a `server_url` the SSRF guard
    refuses is a 400 naming the field — checked before any connection is made."""
    host = app[TOOLS]
    listings = []
    for server in mcp:
        if server.url is None:
            key = server.label
        else:
            try:
                key = await host.connect_url(server.label, server.url, server.headers)
            except ToolRefusedError as exc:
                raise InvalidRequestError(f"{server.param}.server_url: refused ({exc}); an operator can allow the "
                                          "address with --tools-allow", param=f"{server.param}.server_url") from None
        tools = await host.list_tools(ToolSelection.of(servers=[key], allowed_tools=server.allowed_tools))
        listings.append(Listing(server, key, tools))
    return listings


async def builtin_tools(app: web.Application, builtins: list[str]) -> list[ToolSpec]:
    """The named built-ins that are offered (web_search only with a backend)."""
    return await app[TOOLS].list_tools(ToolSelection.of(builtins=builtins)) if builtins else []


async def server_tools(app: web.Application, mcp: list[McpRequest], builtins: list[str]) -> list[ToolSpec]:
    """The tools to offer; ToolNotFoundError (unknown label) and the SSRF refusal pass up as 4xx."""
    specs = await builtin_tools(app, builtins)
    for listing in await list_servers(app, mcp):
        specs.extend(listing.tools)
    return specs


def limits_of(app: web.Application) -> AgentLimits:
    """The loop's bounds from the server settings."""
    settings = app[SETTINGS]
    return AgentLimits(max_iterations=settings.agent_max_iterations, max_time=settings.agent_max_time,
                       tool_timeout=settings.tool_timeout)
