"""What a chat request asks for: the input the chat layer plans a prompt from.

Declared here, below the SDK, because planning (templates, tools, grammars) needs it;
`kronk.sdk` exports the same class for callers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kronk.engine.types import SamplingParams, Speculation


@dataclass(slots=True)
class ChatRequest:
    messages: list[dict[str, Any]]
    """OpenAI-shaped: role, content (str or parts), tool_calls, tool_call_id, reasoning_content."""
    model: str | None = None
    tools: list[dict[str, Any]] | None = None
    """OpenAI function tools: [{"type": "function", "function": {name, description, parameters}}]."""
    tool_choice: str | dict[str, Any] = "auto"
    """"none" | "auto" | "required" | {"type": "function", "function": {"name": ...}}."""
    parallel_tool_calls: bool = True
    response_format: dict[str, Any] | None = None
    """{"type": "text"|"json_object"} or {"type": "json_schema", "json_schema": {"schema": {...}}}."""
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    logprobs: bool = False
    top_logprobs: int = 0
    ignore_eos: bool = False
    enable_thinking: bool | None = None
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    template: str | None = None
    """Per-request Jinja chat template override."""
    speculation: Speculation | None = None
    """Speculative decoding for this request (None: the model's setting)."""
