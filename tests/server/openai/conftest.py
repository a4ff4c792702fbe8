"""Fixtures of the Responses server-tool tests: the real streamable-HTTP MCP server of the tool tests."""

from tests.tools.conftest import http_mcp  # noqa: F401  (fixture)
