"""The server tools and MCP servers a Messages request turns on → the tools the agent loop offers.

Anthropic's server tools `web_search_20250305` and `web_fetch_20250910` map to Kronk's built-ins
of the same name (web_search only when a search backend is configured: without one it is
skipped like any other server tool, and refused where the request requires it). Each
`mcp_servers` entry is an MCP server Kronk connects to: a `name` that is a configured server
(the MCP config file) uses that server and its own settings; any other entry's `url` is
connected under the SSRF guard, `authorization_token` sent as a bearer token. Which of a
server's tools are offered: its `tool_configuration` (`enabled`, `allowed_tools`; the
mcp-client-2025-04-04 beta) and, when the request has one for it, its `mcp_toolset` tool entry
(`default_config` / `configs[tool]` `enabled`; the mcp-client-2025-11-20 beta).

A refused URL is a 400 naming the entry (`mcp_servers[i].url`) before any connection is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from kronk.errors import InvalidRequestError, ToolRefusedError
from kronk.server.anthropic import schema as s
from kronk.tools import ToolHost
from kronk.tools.types import ToolSelection, ToolSpec

SERVER_TOOL_TYPES = {"web_search_20250305": "web_search", "web_fetch_20250910": "web_fetch"}
"""Anthropic server tool types Kronk runs → the built-in that runs them (its `name` must be the same)."""
SEARCH_BACKEND_HINT = ("web_search needs a search backend: start the server with --searxng-url or --brave-api-key "
                       "(KRONK_SEARXNG_URL / KRONK_BRAVE_API_KEY)")


def runnable_types(host: ToolHost) -> frozenset[str]:
    """The server tool types this server can run now (web_search only with a backend)."""
    return frozenset(kind for kind, name in SERVER_TOOL_TYPES.items() if name in host.builtin_names)


@dataclass(frozen=True, slots=True)
class OfferedTool:
    """How one offered server-side tool shows in the answer, and the request's limits on it."""

    kind: Literal["server", "mcp"]
    """`server`: a server_tool_use block (web_search, web_fetch); `mcp`: an mcp_tool_use block."""
    server_name: str | None = None
    """The `mcp_servers` entry's name (mcp tools)."""
    max_uses: int | None = None
    allowed_domains: tuple[str, ...] | None = None
    blocked_domains: tuple[str, ...] = ()
    max_length: int | None = None
    """web_fetch: characters of page text kept (from max_content_tokens)."""


@dataclass(slots=True)
class Offered:
    specs: list[ToolSpec] = field(default_factory=list)
    tools: dict[str, OfferedTool] = field(default_factory=dict)

    def add(self, spec: ToolSpec, tool: OfferedTool, where: str) -> None:
        if spec.name in self.tools:
            raise InvalidRequestError(f"{where}: two server-side tools are named {spec.name!r} (use "
                                      "tool_configuration.allowed_tools to pick one)", param=where)
        self.specs.append(spec)
        self.tools[spec.name] = tool


def check_definition(definition: s.ToolDefinition, where: str) -> None:
    """A runnable server tool definition's name and domain lists, as Anthropic requires them."""
    expected = SERVER_TOOL_TYPES[str(definition.type)]
    if definition.name != expected:
        raise InvalidRequestError(f"{where}.name: a {definition.type} tool must be named {expected!r}",
                                  param=f"{where}.name")
    if definition.allowed_domains is not None and definition.blocked_domains:
        raise InvalidRequestError(f"{where}: allowed_domains and blocked_domains cannot be used together",
                                  param=f"{where}.allowed_domains")


def _domains(values: list[str] | None) -> tuple[str, ...] | None:
    if values is None:
        return None
    return tuple(value.strip().lower().rstrip(".") for value in values if value.strip())


def _enabled(toolset: s.ToolDefinition | None, tool: str) -> bool:
    """An `mcp_toolset`'s verdict on one tool: its per-tool config, else its default (enabled)."""
    if toolset is None:
        return True
    config = (toolset.configs or {}).get(tool)
    if config is not None and config.enabled is not None:
        return config.enabled
    default = toolset.default_config
    return default is None or default.enabled is not False


async def offered_tools(host: ToolHost, definitions: list[s.ToolDefinition],
                        servers: list[s.McpServerDefinition], toolsets: list[s.ToolDefinition] | None = None
                        ) -> Offered:
    """The built-ins and MCP tools to offer, each with how it shows in the answer."""
    offered = Offered()
    by_name = {SERVER_TOOL_TYPES[str(d.type)]: d for d in definitions}
    if by_name:
        for spec in await host.list_tools(ToolSelection.of(builtins=list(by_name))):
            d = by_name[spec.name]
            offered.add(spec, OfferedTool(
                "server", max_uses=d.max_uses, allowed_domains=_domains(d.allowed_domains),
                blocked_domains=_domains(d.blocked_domains) or (),
                max_length=None if d.max_content_tokens is None else d.max_content_tokens * 4), "tools")
    names = [server.name for server in servers]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise InvalidRequestError(f"mcp_servers[{i}].name: {name!r} names two MCP servers",
                                      param=f"mcp_servers[{i}].name")
    configured = {str(toolset.mcp_server_name): toolset for toolset in toolsets or []}
    for i, server in enumerate(servers):
        where = f"mcp_servers[{i}]"
        config = server.tool_configuration
        if config is not None and config.enabled is False:
            continue
        key = await _connect(host, server, where)
        allowed = None if config is None or config.allowed_tools is None else config.allowed_tools
        for spec in await host.list_tools(ToolSelection.of(servers=[key], allowed_tools=allowed)):
            if _enabled(configured.get(server.name), spec.name):
                offered.add(spec, OfferedTool("mcp", server_name=server.name), where)
    return offered


async def _connect(host: ToolHost, server: s.McpServerDefinition, where: str) -> str:
    """The ToolHost key of the entry's server: a configured one by name, else its URL (SSRF-checked)."""
    if server.name in host.server_names:
        return server.name
    headers = {"Authorization": f"Bearer {server.authorization_token}"} if server.authorization_token else None
    try:
        return await host.connect_url(server.name, server.url, headers)
    except ToolRefusedError as exc:
        raise InvalidRequestError(f"{where}.url: {exc} (the server's --tools-allow can open it)",
                                  param=f"{where}.url") from None
    except InvalidRequestError as exc:
        field = "name" if exc.param == "server_label" else "url"
        raise InvalidRequestError(f"{where}.{field}: {exc}", param=f"{where}.{field}") from None
