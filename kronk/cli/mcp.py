"""`kronk mcp`: Kronk's server-side tools as an MCP server on stdin/stdout.

For editors and agents that launch MCP servers as commands. The same tools as the HTTP
server's `/mcp` (web_fetch, web_search with a backend, the MCP config file's servers), from
the same settings (flags, KRONK_* env vars, the YAML config file). Logs go to stderr; stdout
carries only the protocol.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import click

from kronk.settings import CONFIG_ENV, OPTIONS_BY_NAME

F = TypeVar("F", bound=Callable[..., Any])
TOOL_OPTIONS = ("mcp_config", "tools_allow", "searxng_url", "brave_api_key", "tool_timeout", "tool_max_output",
                "web_fetch_max_bytes", "log_level")


def _tool_options(func: F) -> F:
    for name in reversed(TOOL_OPTIONS):
        option = OPTIONS_BY_NAME[name]
        kind = click.Choice(option.choices) if option.choices else None
        func = click.option(option.flag, option.name, default=None, type=kind, metavar=option.metavar,
                            help=f"{option.help} [env {option.env}]")(func)
    return click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
                        help=f"YAML config file of settings. [env {CONFIG_ENV}]")(func)


async def serve_stdio(settings: Any) -> None:
    """Run the MCP server on this process's stdin/stdout until the client closes them."""
    from mcp.server.stdio import stdio_server

    from kronk.server.tools_host import tools_config
    from kronk.tools import ToolHost
    from kronk.tools.mcp_server import build_server

    host = ToolHost(tools_config(settings))
    server = build_server(host)
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        await host.aclose()


@click.command("mcp")
@_tool_options
def mcp(**flags: Any) -> None:
    """Serve web_fetch, web_search and the configured MCP servers' tools over MCP (stdio)."""
    from kronk.settings import load_settings

    settings = load_settings(flags)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve_stdio(settings))
    except KeyboardInterrupt:
        pass
