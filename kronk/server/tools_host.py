"""The server's ToolHost: built from the settings, stopped with the app.

`install(app, settings)` puts one ToolHost under the `TOOLS` AppKey, mounts `/mcp` and appends
`tools_context`, which closes every MCP server (stdio children, HTTP sessions) at shutdown.
Handlers get the host with `request.app[TOOLS]`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from kronk.server import mcp_endpoint
from kronk.settings import ServerSettings
from kronk.tools import ToolHost, ToolsConfig, read_mcp_config

TOOLS = web.AppKey("tools", ToolHost)


def tools_config(settings: ServerSettings) -> ToolsConfig:
    """The ToolsConfig the server settings describe (reads the MCP config file; ConfigError if bad)."""
    servers = read_mcp_config(Path(settings.mcp_config).expanduser()) if settings.mcp_config else ()
    return ToolsConfig(
        mcp_servers=servers,
        allow=settings.tools_allow,
        searxng_url=settings.searxng_url,
        brave_api_key=settings.brave_api_key,
        timeout=settings.tool_timeout,
        max_output=settings.tool_max_output,
        fetch_max_bytes=settings.web_fetch_max_bytes,
    )


async def tools_context(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: nothing starts up front (MCP servers start on first use); all stop at the end."""
    try:
        yield
    finally:
        await app[TOOLS].aclose()


def install(app: web.Application, settings: ServerSettings) -> None:
    """Create the app's ToolHost, mount `/mcp`, and stop the tools with the app."""
    host = ToolHost(tools_config(settings))
    app[TOOLS] = host
    app.cleanup_ctx.append(tools_context)
    mcp_endpoint.add_routes(app, host)
