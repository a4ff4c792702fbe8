"""What the tool host deals in: tool descriptions, results and the per-request selection.

These are plain frozen dataclasses so the agent loops in the HTTP APIs (Responses `mcp` /
`web_search` tools, Anthropic `mcp_servers` and server tools) and the MCP server that Kronk
itself exposes share one vocabulary, whatever the tool's origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BUILTIN = "builtin"
"""`ToolSpec.source` of the built-in tools (web_fetch, web_search)."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One callable tool as a model sees it."""

    name: str
    description: str
    input_schema: dict[str, Any]
    """A JSON Schema object for the arguments."""
    source: str = BUILTIN
    """`"builtin"`, a configured MCP server's name, or the key `ToolHost.connect_url` returned."""

    def as_openai_function(self) -> dict[str, Any]:
        """The chat-completions `tools` entry for this tool."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.input_schema}}


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a call gave back, already size-capped (`truncated` says it was cut)."""

    text: str
    """The content as text (text blocks joined; other blocks described), ready for a prompt."""
    is_error: bool = False
    """The tool ran but reported a failure (MCP `isError`); the text says what went wrong."""
    truncated: bool = False
    structured: dict[str, Any] | None = None
    """MCP `structuredContent`, when the tool returned any."""


@dataclass(frozen=True, slots=True)
class ToolSelection:
    """Which tools one request turns on.

    `builtins`: names of built-in tools (`web_fetch`, `web_search`); a name whose tool is not
    offered (e.g. web_search with no backend configured) is simply left out by `list_tools`.
    `servers`: MCP server keys (configured names or `connect_url` keys), all of each one's tools.
    `allowed_tools`: when set, only tools with these names (applies to MCP tools; built-ins are
    already chosen by name).
    """

    builtins: frozenset[str] = frozenset()
    servers: frozenset[str] = frozenset()
    allowed_tools: frozenset[str] | None = None

    @classmethod
    def of(cls, builtins: tuple[str, ...] | list[str] = (), servers: tuple[str, ...] | list[str] = (),
           allowed_tools: tuple[str, ...] | list[str] | None = None) -> ToolSelection:
        return cls(frozenset(builtins), frozenset(servers),
                   None if allowed_tools is None else frozenset(allowed_tools))


@dataclass(frozen=True, slots=True)
class McpServerConfig:
    """One entry of the MCP config file's `mcpServers` (stdio command or streamable-HTTP URL).

    `env` and `headers` may hold secrets: they are left out of repr() and never logged.
    """

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict, repr=False)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    timeout: float | None = None
    """Per-call timeout for this server's tools (None: the host's default)."""

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "http"
