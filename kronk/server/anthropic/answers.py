"""The Anthropic response bodies, as models for /openapi.json (and for tests to check answers against).

kronk.server.anthropic.response builds these as plain dicts; this says what it builds.
"""

from __future__ import annotations

from typing import Any, Literal

from kronk.wire import DocModel


class AnswerText(DocModel):
    type: Literal["text"]
    text: str


class AnswerThinking(DocModel):
    type: Literal["thinking"]
    thinking: str
    """Empty with `thinking.display: "omitted"`."""
    signature: str
    """SHA-256 of the thinking text (base64); Kronk checks no signatures."""


class AnswerToolUse(DocModel):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class AnswerServerToolUse(DocModel):
    """A server tool call Kronk ran (web_search, web_fetch); its result block follows."""

    type: Literal["server_tool_use"]
    id: str
    name: Literal["web_search", "web_fetch"]
    input: dict[str, Any]


class AnswerMcpToolUse(DocModel):
    """A call of an `mcp_servers` tool Kronk ran; its mcp_tool_result follows."""

    type: Literal["mcp_tool_use"]
    id: str
    name: str
    server_name: str
    input: dict[str, Any]


class ToolResultError(DocModel):
    type: Literal["web_search_tool_result_error", "web_fetch_tool_result_error"]
    error_code: str
    """max_uses_exceeded, url_not_allowed, url_not_accessible, unsupported_content_type, invalid_tool_input,
    unavailable (docs/tools.md)."""


class WebSearchHit(DocModel):
    type: Literal["web_search_result"]
    title: str
    url: str
    encrypted_content: str
    """The hit's snippet, in plain text."""
    page_age: str | None


class AnswerWebSearchResult(DocModel):
    type: Literal["web_search_tool_result"]
    tool_use_id: str
    content: list[WebSearchHit] | ToolResultError


class FetchedDocument(DocModel):
    type: Literal["document"]
    source: dict[str, Any]
    """`{"type": "text", "media_type": "text/plain", "data": <the page as Markdown/text>}`."""
    title: str | None = None


class WebFetchResult(DocModel):
    type: Literal["web_fetch_result"]
    url: str
    retrieved_at: str | None
    content: FetchedDocument


class AnswerWebFetchResult(DocModel):
    type: Literal["web_fetch_tool_result"]
    tool_use_id: str
    content: WebFetchResult | ToolResultError


class AnswerMcpToolResult(DocModel):
    type: Literal["mcp_tool_result"]
    tool_use_id: str
    is_error: bool
    content: list[AnswerText]


class ServerToolUsage(DocModel):
    web_search_requests: int
    web_fetch_requests: int


class MessageUsage(DocModel):
    input_tokens: int
    """Prompt tokens evaluated for this request (those not read from the prefix cache)."""
    output_tokens: int
    cache_read_input_tokens: int
    """Prompt tokens the prefix cache already held."""
    cache_creation_input_tokens: int
    """Always 0: the cache fills itself, nothing is billed for it."""
    server_tool_use: ServerToolUsage | None = None
    """With server tools or mcp_servers: the built-in requests made (the token counts then sum every model turn)."""


class AnthropicMessage(DocModel):
    """A message; with `"stream": true`, SSE events message_start … message_stop as Anthropic documents them."""

    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[AnswerThinking | AnswerText | AnswerToolUse | AnswerServerToolUse | AnswerMcpToolUse
                  | AnswerWebSearchResult | AnswerWebFetchResult | AnswerMcpToolResult]
    """With server tools or mcp_servers, every model turn's blocks in order, each server call's use block
    followed by its result block (docs/tools.md)."""
    stop_reason: Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]
    stop_sequence: str | None
    usage: MessageUsage


class TokenCount(DocModel):
    input_tokens: int
