"""Anthropic Messages wire format: request parsing into ChatRequest, response encoding.

Content blocks map onto OpenAI-shaped chat messages (the SDK's lingua franca):
text → content, tool_use → assistant tool_calls, tool_result → tool messages,
thinking → reasoning_content, image → an image_url part (rejected by the SDK
unless the model has a projector). Errors name the offending field in `param`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kronk.engine.types import FinishReason, Usage
from kronk.errors import CapabilityError
from kronk.sdk.requests import ChatRequest, ChatResult, new_id
from kronk.server.openai import protocol as oai
from kronk.server.validate import Body

_UNSUPPORTED_BLOCKS = ("document", "search_result", "server_tool_use", "web_search_tool_result",
                       "container_upload", "mcp_tool_use", "mcp_tool_result")


@dataclass(slots=True)
class MessagesCall:
    request: ChatRequest
    stream: bool
    explicit: set[str]


# --- request -------------------------------------------------------------------


def _system(body: Body) -> str | None:
    raw = body.raw("system")
    if raw is None:
        return None
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        texts = []
        for block in body.children("system"):
            block.string("type", required=True, choices=("text",))
            texts.append(block.string("text", required=True))
        return "\n\n".join(texts)
    raise body.error("system", "must be a string or an array of text blocks")


def _image_part(block: Body) -> dict[str, Any]:
    source = block.child("source", required=True)
    assert source is not None
    kind = source.string("type", required=True, choices=("base64", "url"))
    if kind == "url":
        url = source.string("url", required=True)
    else:
        media = source.string("media_type", required=True)
        url = f"data:{media};base64,{source.string('data', required=True)}"
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result_text(block: Body) -> str:
    raw = block.raw("content")
    if raw is None:
        text = ""
    elif isinstance(raw, str):
        text = raw
    elif isinstance(raw, list):
        parts = []
        for part in block.children("content"):
            kind = part.string("type", required=True)
            if kind != "text":
                raise CapabilityError(f"{part.param('type')}: tool results may only contain text here, got {kind!r}",
                                      param=part.param("type"))
            parts.append(part.string("text", required=True))
        text = "".join(parts)
    else:
        raise block.error("content", "must be a string or an array of text blocks")
    if block.boolean("is_error", default=False):
        return f"Error: {text}"
    return text


def _user_message(msg: Body) -> list[dict[str, Any]]:
    """A user turn: tool results become tool messages, the rest one user message."""
    raw = msg.raw("content")
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in msg.children("content", required=True):
        kind = block.string("type", required=True)
        if kind == "text":
            parts.append({"type": "text", "text": block.string("text", required=True)})
        elif kind == "image":
            parts.append(_image_part(block))
        elif kind == "tool_result":
            out.append({"role": "tool", "tool_call_id": block.string("tool_use_id", required=True),
                        "content": _tool_result_text(block)})
        elif kind in _UNSUPPORTED_BLOCKS:
            raise CapabilityError(f"{block.param('type')}: {kind} blocks are not supported",
                                  param=block.param("type"))
        else:
            raise block.error("type", f"unknown content block type {kind!r} in a user message")
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        out.append({"role": "user", "content": "".join(p["text"] for p in parts) if only_text else parts})
    if not out:
        raise msg.error("content", "must not be empty")
    return out


def _assistant_message(msg: Body) -> dict[str, Any]:
    raw = msg.raw("content")
    if isinstance(raw, str):
        return {"role": "assistant", "content": raw}
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in msg.children("content", required=True):
        kind = block.string("type", required=True)
        if kind == "text":
            texts.append(block.string("text", required=True))
        elif kind == "thinking":
            reasoning.append(block.string("thinking", default=""))
        elif kind == "redacted_thinking":
            continue
        elif kind == "tool_use":
            tool_input = block.raw("input", {})
            if not isinstance(tool_input, dict):
                raise block.error("input", "must be an object")
            calls.append({"id": block.string("id", required=True), "type": "function",
                          "function": {"name": block.string("name", required=True),
                                       "arguments": json.dumps(tool_input, ensure_ascii=False)}})
        elif kind in _UNSUPPORTED_BLOCKS:
            raise CapabilityError(f"{block.param('type')}: {kind} blocks are not supported",
                                  param=block.param("type"))
        else:
            raise block.error("type", f"unknown content block type {kind!r} in an assistant message")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    return message


def parse_messages(body: Body) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    system = _system(body)
    if system:
        messages.append({"role": "system", "content": system})
    for msg in body.children("messages", required=True, nonempty=True):
        role = msg.string("role", required=True, choices=("user", "assistant"))
        if msg.raw("content") is None:
            raise msg.error("content", "is required")
        if role == "user":
            messages.extend(_user_message(msg))
        else:
            messages.append(_assistant_message(msg))
    return messages


def parse_tools(body: Body) -> list[dict[str, Any]] | None:
    tools: list[dict[str, Any]] = []
    for tool in body.children("tools"):
        kind = tool.string("type", default="custom")
        if kind != "custom":
            raise CapabilityError(f"{tool.param('type')}: server tool {kind!r} is not supported; "
                                  "define a custom tool with input_schema", param=tool.param("type"))
        name = tool.string("name", required=True)
        schema = tool.mapping("input_schema")
        if schema is None:
            raise tool.error("input_schema", "is required")
        function: dict[str, Any] = {"name": name, "parameters": schema}
        description = tool.string("description")
        if description:
            function["description"] = description
        tools.append({"type": "function", "function": function})
    names = [t["function"]["name"] for t in tools]
    if len(set(names)) != len(names):
        raise body.error("tools", "tool names must be unique")
    return tools or None


def parse_tool_choice(body: Body, tools: list[dict[str, Any]] | None) -> tuple[str | dict[str, Any], bool]:
    """(OpenAI-style tool_choice, parallel_tool_calls)."""
    choice = body.child("tool_choice")
    if choice is None:
        return "auto", True
    kind = choice.string("type", required=True, choices=("auto", "any", "tool", "none"))
    parallel = not choice.boolean("disable_parallel_tool_use", default=False)
    if kind in ("any", "tool") and not tools:
        raise body.error("tool_choice", f"{kind!r} needs at least one tool in tools")
    if kind == "any":
        return "required", parallel
    if kind == "tool":
        return oai.named_tool_choice(body, str(choice.string("name", required=True)), tools), parallel
    return kind, parallel


def parse_thinking(body: Body) -> bool | None:
    thinking = body.child("thinking")
    if thinking is None:
        return None
    kind: str = thinking.string("type", required=True, choices=("enabled", "disabled", "adaptive"))
    if kind == "enabled":
        budget = thinking.integer("budget_tokens", required=True, min=1)
        max_tokens = body.raw("max_tokens")
        if isinstance(max_tokens, int) and budget >= max_tokens:
            raise thinking.error("budget_tokens", "must be less than max_tokens")
    return kind != "disabled"


def parse_request(body: Body, limits: oai.Limits, *, require_max_tokens: bool = True) -> MessagesCall:
    """A Messages (or count_tokens) body as a ChatRequest."""
    if require_max_tokens:
        max_tokens = body.integer("max_tokens", required=True, min=1)
        if max_tokens > limits.max_tokens:
            raise body.error("max_tokens", f"must be <= {limits.max_tokens} (the server's max_tokens_limit)")
    else:
        max_tokens = None
    tools = parse_tools(body)
    tool_choice, parallel = parse_tool_choice(body, tools)
    sampling, explicit = oai.parse_sampling(body)
    request = ChatRequest(
        messages=parse_messages(body),
        model=oai.parse_model(body),
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        sampling=sampling,
        max_tokens=max_tokens,
        stop=oai.parse_stop(body, "stop_sequences"),
        enable_thinking=parse_thinking(body),
    )
    return MessagesCall(request, bool(body.boolean("stream", default=False)), explicit)


# --- response ------------------------------------------------------------------


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
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": 0,
    }


def encode_message(result: ChatResult) -> dict[str, Any]:
    choice = result.choices[0]
    content: list[dict[str, Any]] = []
    if choice.reasoning_content:
        content.append({"type": "thinking", "thinking": choice.reasoning_content, "signature": ""})
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
