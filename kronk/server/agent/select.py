"""What a request turns on → the ToolSpecs the agent loop offers, through the app's ToolHost.

Each API's handler maps its own request shape (chat `kronk_tools`, Responses `mcp` tools,
Anthropic `mcp_servers`) to `McpRequest`s and built-in names; this resolves them: a label
without a URL must be a configured server, a URL is connected (SSRF-checked) under its label.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from kronk.server.agent.loop import AgentLimits
from kronk.server.keys import SETTINGS
from kronk.server.tools_host import TOOLS
from kronk.tools.types import ToolSelection, ToolSpec


@dataclass(frozen=True, slots=True)
class McpRequest:
    label: str
    url: str | None = None
    headers: dict[str, str] | None = None
    allowed_tools: tuple[str, ...] | None = None


async def server_tools(app: web.Application, mcp: list[McpRequest], builtins: list[str]) -> list[ToolSpec]:
    """The tools to offer; ToolNotFoundError (unknown label) and ToolRefusedError (SSRF) pass up as 4xx."""
    host = app[TOOLS]
    specs: list[ToolSpec] = []
    if builtins:
        specs.extend(await host.list_tools(ToolSelection.of(builtins=builtins)))
    for server in mcp:
        key = server.label if server.url is None else await host.connect_url(server.label, server.url, server.headers)
        specs.extend(await host.list_tools(ToolSelection.of(servers=[key], allowed_tools=server.allowed_tools)))
    return specs


def limits_of(app: web.Application) -> AgentLimits:
    """The loop's bounds from the server settings."""
    settings = app[SETTINGS]
    return AgentLimits(max_iterations=settings.agent_max_iterations, max_time=settings.agent_max_time,
                       tool_timeout=settings.tool_timeout)
