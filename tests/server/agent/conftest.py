"""Fixtures of the agent-loop tests: a real streamable-HTTP MCP server from the tool tests."""

from tests.tools.conftest import http_mcp  # noqa: F401  (fixture)
