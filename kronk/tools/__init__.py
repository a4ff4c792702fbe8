"""Server-side tools: built-ins (web_fetch, web_search), MCP servers, the SSRF guard.

`ToolHost` (kronk.tools.host) is the one entry point; see docs/tools.md.
"""

from kronk.tools.config import ToolsConfig, read_mcp_config
from kronk.tools.host import ToolHost
from kronk.tools.types import BUILTIN, McpServerConfig, ToolResult, ToolSelection, ToolSpec

__all__ = ["BUILTIN", "McpServerConfig", "ToolHost", "ToolResult", "ToolSelection", "ToolSpec", "ToolsConfig",
           "read_mcp_config"]
