"""A small streamable-HTTP MCP server for the tool tests, written with the official SDK.

Run as `python -m tests.tools.mcp_http_server PORT`; it listens on 127.0.0.1 only. Its tools
cover the cases the client must handle: a result, structured output, a tool that fails, a
tool slower than any test's time limit, and a header the client sends (`whoami`).
"""

from __future__ import annotations

import sys

import anyio
import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("kronk-test-http")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def fail(reason: str) -> str:
    """Always fails with `reason` (a deliberate tool error, reported to the client)."""
    raise ToolError(reason)


@server.tool()
async def slow(seconds: float) -> str:
    """Sleeps `seconds`, then answers."""
    await anyio.sleep(seconds)
    return "finally"


@server.tool()
def shout(text: str) -> str:
    """Upper-cases text (a long text makes a long result)."""
    return text.upper()


@server.tool()
def whoami(ctx: Context) -> str:
    """The Authorization header the client sent."""
    request = ctx.request_context.request
    return request.headers.get("authorization", "none") if request is not None else "none"


def main() -> None:
    port = int(sys.argv[1])
    app = server.streamable_http_app(stateless_http=True, json_response=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
