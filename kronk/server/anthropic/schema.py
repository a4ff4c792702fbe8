"""The Anthropic Messages request bodies as WireModels: /v1/messages and count_tokens.

Shapes follow Anthropic's API as current clients (Claude Code, the `anthropic`
SDKs) send it: `system` messages inside `messages`, `cache_control` on any block,
thinking/redacted_thinking and server-tool blocks echoed back in history, server
tool definitions beside custom tools. Every block type Anthropic documents parses
here; what Kronk cannot use is converted or dropped by kronk.server.anthropic.content
and .tools, not refused. Fields Anthropic has that change nothing here
(`metadata`, `service_tier`, `container`, `context_management` ...) are kept as
extras and logged at debug level by the route.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from kronk.server.openai.bodies import MAX_STOP, Sampling
from kronk.wire import FieldError, Int, WireModel, by_json_type, tagged

CacheControl = dict[str, Any]
"""`{"type": "ephemeral", "ttl": "5m"}`: accepted anywhere and ignored (the prefix cache is automatic)."""


# --- content blocks -------------------------------------------------------------------


class TextBlock(WireModel):
    type: Literal["text"]
    text: str
    cache_control: CacheControl | None = None
    citations: list[Any] | None = None
    """Echoed citations are ignored."""


class Base64Source(WireModel):
    type: Literal["base64"]
    media_type: str
    data: str


class URLSource(WireModel):
    type: Literal["url"]
    url: Annotated[str, Field(min_length=1)]


class FileSource(WireModel):
    type: Literal["file"]
    file_id: str
    """Files API ids: refused (Kronk has no Files API)."""


class PlainTextSource(WireModel):
    type: Literal["text"]
    media_type: str = "text/plain"
    data: str


ImageSource = tagged("type", Base64Source, URLSource, FileSource)


class ImageBlock(WireModel):
    type: Literal["image"]
    source: ImageSource  # type: ignore[valid-type]
    cache_control: CacheControl | None = None


class ContentSource(WireModel):
    type: Literal["content"]
    content: by_json_type("a string or an array of text and image blocks",  # type: ignore[valid-type]
                          string=str, array=list[tagged("type", TextBlock, ImageBlock)])  # type: ignore[misc]


DocumentSource = tagged("type", Base64Source, PlainTextSource, ContentSource, URLSource, FileSource)


class DocumentBlock(WireModel):
    """A document: plain text (base64 `text/plain`, a `text` or `content` source) becomes text; PDFs are refused."""

    type: Literal["document"]
    source: DocumentSource  # type: ignore[valid-type]
    title: str | None = None
    context: str | None = None
    cache_control: CacheControl | None = None
    citations: dict[str, Any] | None = None


class SearchResultBlock(WireModel):
    type: Literal["search_result"]
    source: str
    title: str
    content: list[TextBlock]
    cache_control: CacheControl | None = None


class ThinkingBlock(WireModel):
    """Earlier reasoning, sent back: it becomes the turn's reasoning_content."""

    type: Literal["thinking"]
    thinking: str = ""
    signature: str | None = None
    """Not checked: Kronk's own signatures only mark the block as Kronk's."""


class RedactedThinkingBlock(WireModel):
    """Encrypted reasoning from Anthropic's models: unreadable here, dropped."""

    type: Literal["redacted_thinking"]
    data: str | None = None


class ToolUseBlock(WireModel):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)
    cache_control: CacheControl | None = None


class ToolReferenceBlock(WireModel):
    """A tool-search result pointing at a deferred tool (Kronk includes every custom tool anyway)."""

    type: Literal["tool_reference"]
    tool_name: str


ToolResultPart = tagged("type", TextBlock, ImageBlock, DocumentBlock, SearchResultBlock, ToolReferenceBlock)


class ToolResultBlock(WireModel):
    type: Literal["tool_result"]
    tool_use_id: str
    content: by_json_type("a string or an array of content blocks",  # type: ignore[valid-type]
                          string=str, array=list[ToolResultPart]) | None = None
    is_error: bool | None = None
    cache_control: CacheControl | None = None


SERVER_BLOCK_TYPES = (
    "server_tool_use", "mcp_tool_use", "web_search_tool_result", "web_fetch_tool_result", "mcp_tool_result",
    "code_execution_tool_result", "bash_code_execution_tool_result", "text_editor_code_execution_tool_result",
    "tool_search_tool_result", "advisor_tool_result", "container_upload", "compaction", "tool_addition",
    "tool_removal", "mcp_tool_listing", "fallback",
)
"""Blocks Anthropic's servers produce (server tools, MCP connector, context management) that clients echo back."""


class ServerBlock(WireModel):
    """A server-produced block in history; kronk.server.anthropic.server_blocks turns it into text or drops it."""

    type: Literal[SERVER_BLOCK_TYPES]  # type: ignore[valid-type]
    id: str | None = None
    name: str | None = None
    server_name: str | None = None
    input: Any = None
    tool_use_id: str | None = None
    content: Any = None
    is_error: bool | None = None


Block = tagged("type", TextBlock, ImageBlock, DocumentBlock, SearchResultBlock, ThinkingBlock,
               RedactedThinkingBlock, ToolUseBlock, ToolResultBlock, ServerBlock)
Blocks = Annotated[list[Block], Field(min_length=1)]  # type: ignore[valid-type]
BlockContent = by_json_type("a string or an array of content blocks", string=str, array=Blocks)
TextContent = by_json_type("a string or an array of text blocks", string=str,
                           array=list[tagged("type", TextBlock)])  # type: ignore[misc]


# --- messages ----------------------------------------------------------------------------


class AnthropicUserMessage(WireModel):
    role: Literal["user"]
    content: BlockContent  # type: ignore[valid-type]


class AnthropicAssistantMessage(WireModel):
    role: Literal["assistant"]
    content: BlockContent  # type: ignore[valid-type]


class AnthropicSystemMessage(WireModel):
    """A system message inside `messages` (Anthropic's mid-conversation system messages; Claude Code sends them)."""

    role: Literal["system"]
    content: TextContent  # type: ignore[valid-type]


Message = tagged("role", AnthropicUserMessage, AnthropicAssistantMessage, AnthropicSystemMessage)


# --- tools ---------------------------------------------------------------------------------


class McpToolsetConfig(WireModel):
    enabled: bool | None = None
    defer_loading: bool | None = None
    """Accepted; tool search is not implemented, so every enabled tool is offered."""


class ToolDefinition(WireModel):
    """A custom tool (no `type`, or `custom`) or a server tool (`web_search_20250305`, `bash_20250124` ...).

    Server tools and MCP toolsets are skipped (logged and named in the
    X-Kronk-Tools-Ignored header) unless tool_choice names one.
    """

    type: str | None = None
    name: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    strict: bool | None = None
    cache_control: CacheControl | None = None
    defer_loading: bool | None = None
    """Tool search is not implemented: deferred tools are offered like the others."""
    mcp_server_name: str | None = None
    """For `mcp_toolset` entries: the `mcp_servers` entry whose tools they configure."""
    default_config: McpToolsetConfig | None = None
    """`mcp_toolset`: applies to each of the server's tools (`enabled` defaults to true)."""
    configs: dict[str, McpToolsetConfig] | None = None
    """`mcp_toolset`: per-tool overrides, by tool name."""
    max_uses: Annotated[Int, Field(ge=1)] | None = None
    """Server tools (web_search, web_fetch): calls allowed in one request; more are `max_uses_exceeded` results."""
    allowed_domains: list[str] | None = None
    """Server tools: only these domains (and their subdomains) are fetched / kept in search results."""
    blocked_domains: list[str] | None = None
    """Server tools: these domains (and their subdomains) are never fetched / kept in search results."""
    max_content_tokens: Annotated[Int, Field(ge=1)] | None = None
    """web_fetch: about this many tokens of page text are kept (4 characters a token)."""

    @property
    def custom(self) -> bool:
        return self.type in (None, "custom")

    @model_validator(mode="after")
    def _custom_needs_schema(self) -> ToolDefinition:
        if self.custom:
            if not self.name:
                raise FieldError("name", "is required")
            if self.input_schema is None:
                raise FieldError("input_schema", "is required")
        return self


class ToolChoiceAuto(WireModel):
    type: Literal["auto"]
    disable_parallel_tool_use: bool = False


class ToolChoiceAny(WireModel):
    type: Literal["any"]
    disable_parallel_tool_use: bool = False


class ToolChoiceTool(WireModel):
    type: Literal["tool"]
    name: str
    disable_parallel_tool_use: bool = False


class ToolChoiceNone(WireModel):
    type: Literal["none"]


ToolChoice = tagged("type", ToolChoiceAuto, ToolChoiceAny, ToolChoiceTool, ToolChoiceNone)


class McpToolConfiguration(WireModel):
    enabled: bool | None = None
    """False: none of the server's tools is offered (and it is not connected)."""
    allowed_tools: list[str] | None = None
    """Only these of its tools are offered."""


class McpServerDefinition(WireModel):
    """An `mcp_servers` entry (the `mcp-client-2025-04-04` beta): an MCP server Kronk connects to and calls."""

    type: Literal["url"]
    url: Annotated[str, Field(min_length=1)]
    """A streamable-HTTP MCP endpoint, checked by the SSRF guard (a `name` that is a configured server uses that)."""
    name: Annotated[str, Field(min_length=1)]
    authorization_token: str | None = None
    """Sent as `Authorization: Bearer <token>`; never logged."""
    tool_configuration: McpToolConfiguration | None = None


# --- thinking and output ----------------------------------------------------------------------

Display = Literal["summarized", "omitted"]


class ThinkingEnabled(WireModel):
    type: Literal["enabled"]
    budget_tokens: Annotated[Int, Field(ge=1)]
    """Accepted, not enforced: the model thinks until it closes its thinking block."""
    display: Display | None = None


class ThinkingAdaptive(WireModel):
    """The model decides: its own default (thinking models think, others do not)."""

    type: Literal["adaptive", "between_tools"]
    display: Display | None = None


class ThinkingDisabled(WireModel):
    type: Literal["disabled"]


Thinking = tagged("type", ThinkingEnabled, ThinkingAdaptive, ThinkingDisabled)


class JsonOutputFormat(WireModel):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(WireModel):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    """Passed to the chat template as reasoning_effort (xhigh and max as high)."""
    format: JsonOutputFormat | None = None
    """Structured output: the reply follows this JSON Schema."""


# --- request bodies --------------------------------------------------------------------------------


class CountTokensRequest(Sampling):
    """POST /v1/messages/count_tokens: the Messages body; max_tokens is optional."""

    max_tokens: Annotated[Int, Field(ge=0)] | None = None
    model: str | None = None
    """Absent or empty: the server's default model. Unknown names (claude-*) are 404: set ANTHROPIC_MODEL."""
    messages: Annotated[list[Message], Field(min_length=1)]  # type: ignore[valid-type]
    system: TextContent | None = None  # type: ignore[valid-type]
    tools: list[ToolDefinition] | None = None
    tool_choice: ToolChoice | None = None  # type: ignore[valid-type]
    thinking: Thinking | None = None  # type: ignore[valid-type]
    output_config: OutputConfig | None = None
    output_format: JsonOutputFormat | None = None
    """The structured-outputs beta's spelling of output_config.format."""
    stop_sequences: Annotated[list[str], Field(max_length=MAX_STOP)] | None = None
    stream: bool = False
    metadata: dict[str, Any] | None = None
    """`{"user_id": ...}`: accepted and ignored, whatever it holds."""
    mcp_servers: list[McpServerDefinition] | None = None
    """Anthropic's MCP connector: MCP servers whose tools Kronk runs for the model (docs/tools.md)."""

    @model_validator(mode="after")
    def _consistent(self) -> CountTokensRequest:
        if isinstance(self.thinking, ThinkingEnabled) and self.max_tokens and \
                self.thinking.budget_tokens >= self.max_tokens:
            raise FieldError("thinking.budget_tokens", "must be less than max_tokens")
        return self


class MessagesRequest(CountTokensRequest):
    """POST /v1/messages."""

    max_tokens: Annotated[Int, Field(ge=0)]
    """Required; above the server's max_tokens_limit it is lowered to that limit (clients send a generous
    ceiling, not a target). 0 answers an empty message."""
