"""Kronk as an MCP server: the ToolHost's tools behind the official SDK's low-level `Server`.

One definition serves both transports: `kronk mcp` (stdio, kronk/cli/mcp.py) and `/mcp`
(streamable HTTP inside the aiohttp server, kronk/server/mcp_endpoint.py). Tools: web_fetch,
web_search (when a backend is configured) and every configured MCP server's tools; a name two
sources share is offered once per source, the later ones as `<source>__<name>`.
"""

from __future__ import annotations

import logging
from typing import Any

import mcp_types as types
from mcp import MCPError
from mcp.server import Server
from mcp_types import INVALID_PARAMS

from kronk import __version__
from kronk.errors import KronkError, ToolNotFoundError
from kronk.tools.host import ToolHost
from kronk.tools.types import ToolSpec

log = logging.getLogger("kronk.tools.mcp_server")


class _Catalog:
    """The names the MCP server offers, mapped back to (source, tool name)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[str, str]] = {}

    def build(self, specs: list[ToolSpec]) -> list[types.Tool]:
        routes: dict[str, tuple[str, str]] = {}
        tools: list[types.Tool] = []
        for spec in specs:
            name = spec.name if spec.name not in routes else f"{spec.source}__{spec.name}"
            if name in routes:
                continue
            routes[name] = (spec.source, spec.name)
            tools.append(types.Tool(name=name, description=spec.description, input_schema=spec.input_schema))
        self.routes = routes
        return tools


def build_server(host: ToolHost) -> Server[Any]:
    """An MCP `Server` whose tools are the host's (listing errors surface as MCP errors)."""
    catalog = _Catalog()

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        try:
            specs = await host.list_tools(None)
        except KronkError as exc:
            log.warning("listing tools for an MCP client failed: %s", exc)
            raise MCPError(code=-32603, message=str(exc)) from None
        return types.ListToolsResult(tools=catalog.build(specs))

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        route = catalog.routes.get(params.name)
        if route is None:
            catalog.build(await host.list_tools(None))
            route = catalog.routes.get(params.name)
        if route is None:
            raise MCPError(code=INVALID_PARAMS, message=f"unknown tool {params.name!r}")
        source, name = route
        try:
            result = await host.call(name, dict(params.arguments or {}), source=source)
        except ToolNotFoundError as exc:
            raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None
        except KronkError as exc:
            # Tool failures go back as results the model can read, as MCP asks (isError).
            return types.CallToolResult(content=[types.TextContent(type="text", text=str(exc))], is_error=True)
        return types.CallToolResult(content=[types.TextContent(type="text", text=result.text)],
                                    structured_content=result.structured, is_error=result.is_error)

    return Server("kronk", version=__version__, instructions="Web fetch, web search and the MCP tools "
                  "configured on this Kronk server.", on_list_tools=list_tools, on_call_tool=call_tool)
