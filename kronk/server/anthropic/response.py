"""SDK results → Anthropic's response JSON: the message, its content blocks, usage, stop reason.

Thinking blocks carry a `signature`, as Anthropic's do, because clients keep and
send back only signed thinking blocks. Kronk's signature is the SHA-256 of the
thinking text (base64): it marks the block as Kronk's and lets nothing be
verified; Kronk never checks signatures it receives.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from kronk.engine.types import FinishReason, Usage
from kronk.sdk.requests import ChatResult, new_id


def signature(thinking: str) -> str:
    return base64.b64encode(hashlib.sha256(thinking.encode("utf-8")).digest()).decode("ascii")


def stop_reason(reason: FinishReason, stop_sequence: str | None) -> str:
    if reason == "tool_calls":
        return "tool_use"
    if reason == "length":
        return "max_tokens"
    if stop_sequence:
        return "stop_sequence"
    return "end_turn"


def tool_input(arguments: str) -> dict[str, Any]:
    """Tool arguments as the `input` object Anthropic clients expect."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {"_raw_arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def encode_usage(usage: Usage) -> dict[str, Any]:
    """Anthropic splits the prompt: input_tokens are the uncached part, cache_read_input_tokens the rest."""
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": 0,
    }


def thinking_block(thinking: str, show: bool) -> dict[str, Any]:
    return {"type": "thinking", "thinking": thinking if show else "", "signature": signature(thinking)}


def encode_message(result: ChatResult, *, show_thinking: bool = True) -> dict[str, Any]:
    choice = result.choices[0]
    content: list[dict[str, Any]] = []
    if choice.reasoning_content:
        content.append(thinking_block(choice.reasoning_content, show_thinking))
    if choice.content:
        content.append({"type": "text", "text": choice.content})
    for call in choice.tool_calls:
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input(call.arguments)})
    return {
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": result.model,
        "content": content,
        "stop_reason": stop_reason(choice.finish_reason, choice.stop_sequence),
        "stop_sequence": choice.stop_sequence,
        "usage": encode_usage(result.usage),
    }

