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


class MessageUsage(DocModel):
    input_tokens: int
    """Prompt tokens evaluated for this request (those not read from the prefix cache)."""
    output_tokens: int
    cache_read_input_tokens: int
    """Prompt tokens the prefix cache already held."""
    cache_creation_input_tokens: int
    """Always 0: the cache fills itself, nothing is billed for it."""


class AnthropicMessage(DocModel):
    """A message; with `"stream": true`, SSE events message_start … message_stop as Anthropic documents them."""

    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[AnswerThinking | AnswerText | AnswerToolUse]
    stop_reason: Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]
    stop_sequence: str | None
    usage: MessageUsage


class TokenCount(DocModel):
    input_tokens: int
