"""OpenAI wire format: the request pieces every endpoint shares, and their encoders.

Request bodies are WireModels (kronk.server.openai.bodies); the functions here turn
their validated pieces into kronk.sdk.requests shapes and check what depends on the
server's settings (Limits). Encoders turn SDK results and neutral events into
OpenAI's JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kronk.engine.types import FinishReason, SamplingParams, TokenLogprob, Usage
from kronk.errors import InvalidRequestError, RequestTooLargeError
from kronk.server.openai import bodies as b
from kronk.server.openai.bodies import MAX_TOP_LOGPROBS  # noqa: F401 (read as p.MAX_TOP_LOGPROBS)
from kronk.settings import ServerSettings

SYSTEM_FINGERPRINT = "fp_kronk"


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-request limits the operator configured."""

    max_tokens: int = 32768
    max_inputs: int = 2048

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> Limits:
        return cls(max_tokens=settings.max_tokens_limit, max_inputs=settings.max_inputs)


# --- request bodies (WireModels) into SDK pieces --------------------------------------


def sampling_params(request: b.Sampling) -> tuple[SamplingParams, set[str]]:
    """Every sampler option the request sets, and their names.

    The names go to the SDK as `explicit`, so a model's default sampling options
    apply to exactly the fields the request left out.
    """
    values: dict[str, Any] = {}
    for name in b.SAMPLING_FIELDS:
        value = getattr(request, name)
        if value is not None:
            values[name] = value
    if values.get("seed", 0) < 0:
        del values["seed"]
    if "dry_sequence_breakers" in values:
        values["dry_sequence_breakers"] = strings(values["dry_sequence_breakers"])
    if not values.get("grammar", True):
        del values["grammar"]
    return SamplingParams(**values), set(values)


def strings(value: str | list[str] | None) -> list[str]:
    """A string-or-strings field (`stop`) as a list, empty strings dropped."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [v for v in value if v]


def model_of(name: str | None) -> str | None:
    """The requested model; absent or "" means the server's default model."""
    return name or None


def check_max_tokens(request: object, limits: Limits, names: tuple[str, ...]) -> int | None:
    """The first of `names` the request sets, checked against the server's max_tokens_limit."""
    for name in names:
        value = getattr(request, name)
        if value is not None:
            if value > limits.max_tokens:
                raise InvalidRequestError(f"{name}: must be <= {limits.max_tokens} (the server's max_tokens_limit)",
                                          param=name)
            return int(value)
    return None


def check_inputs(name: str, count: int, limits: Limits) -> None:
    if count > limits.max_inputs:
        raise RequestTooLargeError(f"{name} has {count} entries; the limit is {limits.max_inputs}")


def _text(content: str | list[Any]) -> str:
    return content if isinstance(content, str) else "".join(part.text for part in content)


def _part(part: Any) -> dict[str, Any]:
    if isinstance(part, b.TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, b.ImagePart):
        image = part.image_url
        entry: dict[str, Any] = {"url": image} if isinstance(image, str) else {"url": image.url}
        if isinstance(image, b.ImageURL) and image.detail is not None:
            entry["detail"] = image.detail
        return {"type": "image_url", "image_url": entry}
    return {"type": "input_audio", "input_audio": {"data": part.input_audio.data, "format": part.input_audio.format}}


def _content(content: str | list[Any]) -> str | list[dict[str, Any]]:
    return content if isinstance(content, str) else [_part(p) for p in content]


def _tool_call(call: b.ToolCall) -> dict[str, Any]:
    arguments = call.function.arguments
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return {"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": arguments}}


def message_dict(msg: Any) -> dict[str, Any]:
    """A validated message in the SDK's shape (developer is system; tool/system content is text)."""
    out: dict[str, Any] = {"role": "system" if msg.role == "developer" else msg.role}
    if msg.name is not None:
        out["name"] = msg.name
    if isinstance(msg, b.AssistantMessage):
        out["content"] = None if msg.content is None else _content(msg.content)
        calls = [_tool_call(c) for c in msg.tool_calls or []]
        if calls:
            out["tool_calls"] = calls
        reasoning = msg.reasoning_content or msg.reasoning
        if reasoning:
            out["reasoning_content"] = reasoning
    elif isinstance(msg, b.ToolMessage):
        out["tool_call_id"] = msg.tool_call_id
        out["content"] = _text(msg.content)
    elif isinstance(msg, b.SystemMessage):
        out["content"] = _text(msg.content)
    else:
        out["content"] = _content(msg.content)
    return out


def tool_dict(fn: b.FunctionDef) -> dict[str, Any]:
    """An OpenAI chat function tool in the SDK's shape."""
    function: dict[str, Any] = {"name": fn.name, "parameters": fn.parameters or {"type": "object", "properties": {}}}
    if fn.description:
        function["description"] = fn.description
    if fn.strict is not None:
        function["strict"] = fn.strict
    return {"type": "function", "function": function}


def tools_of(tools: list[b.Tool] | None) -> list[dict[str, Any]] | None:
    return [tool_dict(t.function) for t in tools] if tools else None


def tool_choice_of(choice: str | b.NamedToolChoice | None) -> str | dict[str, Any]:
    if choice is None:
        return "auto"
    if isinstance(choice, str):
        return choice
    return {"type": "function", "function": {"name": choice.function.name}}


def _schema_format(spec: b.JsonSchemaSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": spec.name, "schema": spec.schema_}
    if spec.strict is not None:
        out["strict"] = spec.strict
    return {"type": "json_schema", "json_schema": out}


def response_format_of(fmt: Any, json_schema: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """`response_format` (or llama.cpp's top-level `json_schema`) in ChatRequest's shape."""
    if fmt is None:
        if not json_schema:
            return None
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": json_schema}}
    if isinstance(fmt, b.TextFormat):
        return None
    if isinstance(fmt, b.JsonObjectFormat):
        if fmt.schema_:
            return {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt.schema_}}
        return {"type": "json_object"}
    return _schema_format(fmt.json_schema)


def thinking_of(request: b.ChatCompletionRequest) -> tuple[bool | None, dict[str, Any]]:
    """(enable_thinking, chat_template_kwargs) from enable_thinking / reasoning_effort / kwargs."""
    kwargs = dict(request.chat_template_kwargs or {})
    enable = request.enable_thinking
    effort = request.reasoning_effort
    if effort is not None:
        kwargs.setdefault("reasoning_effort", effort)
        if enable is None:
            enable = effort != "none"
    if enable is None and isinstance(kwargs.get("enable_thinking"), bool):
        enable = kwargs["enable_thinking"]
    return enable, kwargs


def logprobs_of(request: b.ChatCompletionRequest) -> tuple[bool, int]:
    """Chat's (logprobs, top_logprobs); llama.cpp's `n_probs` is accepted as top_logprobs."""
    top = request.top_logprobs or 0
    if request.n_probs:
        return True, max(top, request.n_probs)
    return request.logprobs, top


def include_usage(options: b.StreamOptions | None) -> bool:
    return options is not None and options.include_usage


# --- encoders -----------------------------------------------------------------


def finish_reason(reason: FinishReason) -> str:
    """OpenAI has no 'cancelled'/'error' finish reasons; a cancelled choice simply stopped."""
    return reason if reason in ("stop", "length", "tool_calls") else "stop"


def encode_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "time_to_first_token_ms": round(usage.time_to_first_token_ms, 3),
        "tokens_per_second": round(usage.tokens_per_second, 3),
    }


def merge_usage(usages: list[Usage], *, shared_prompt: bool = True) -> Usage:
    """One usage for several generations, the completions summed: n choices of one prompt count
    it once (`shared_prompt`); the answers to several prompts count each."""
    if not usages:
        return Usage()
    prompt = max if shared_prompt else sum
    return Usage(
        prompt_tokens=prompt(u.prompt_tokens for u in usages),
        completion_tokens=sum(u.completion_tokens for u in usages),
        cached_tokens=prompt(u.cached_tokens for u in usages),
        reasoning_tokens=sum(u.reasoning_tokens for u in usages),
        time_to_first_token_ms=min(u.time_to_first_token_ms for u in usages),
        tokens_per_second=sum(u.tokens_per_second for u in usages) / len(usages),
    )


def encode_chat_logprobs(items: list[TokenLogprob] | None) -> dict[str, Any] | None:
    if items is None:
        return None
    return {
        "content": [
            {
                "token": lp.token,
                "logprob": lp.logprob,
                "bytes": lp.bytes,
                "top_logprobs": [{"token": t.token, "logprob": t.logprob, "bytes": t.bytes}
                                 for t in lp.top_logprobs],
            }
            for lp in items
        ],
        "refusal": None,
    }
