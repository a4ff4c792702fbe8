"""OpenAI wire format: the request pieces every endpoint shares, and their encoders.

Parsers read JSON through `Body` and build kronk.sdk.requests objects; a bad field
raises InvalidRequestError naming it in `param`. Encoders turn SDK results and
neutral events into OpenAI's JSON. Endpoint modules add their own top-level
fields on top of these.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from kronk.engine.types import FinishReason, SamplingParams, TokenLogprob, Usage
from kronk.errors import InvalidRequestError
from kronk.server.validate import Body
from kronk.settings import ServerSettings

SYSTEM_FINGERPRINT = "fp_kronk"
MAX_TOP_LOGPROBS = 20
MAX_STOP = 16
MAX_N = 16
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_ROLES = ("system", "developer", "user", "assistant", "tool")
_PART_TYPES = ("text", "image_url", "input_audio", "input_text", "input_image", "file")


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-request limits the operator configured."""

    max_tokens: int = 32768
    max_inputs: int = 2048

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> Limits:
        return cls(max_tokens=settings.max_tokens_limit, max_inputs=settings.max_inputs)


# --- sampling -----------------------------------------------------------------

# request field -> (SamplingParams field, kind, min, max); kind "f" float, "i" int.
_SAMPLING: dict[str, tuple[str, str, float | None, float | None]] = {
    "temperature": ("temperature", "f", 0.0, None),
    "top_p": ("top_p", "f", 0.0, 1.0),
    "top_k": ("top_k", "i", 0, None),
    "min_p": ("min_p", "f", 0.0, 1.0),
    "typical_p": ("typical_p", "f", 0.0, 1.0),
    "dynatemp_range": ("dynatemp_range", "f", 0.0, None),
    "dynatemp_exponent": ("dynatemp_exponent", "f", 0.0, None),
    "top_n_sigma": ("top_n_sigma", "f", -1.0, None),
    "xtc_probability": ("xtc_probability", "f", 0.0, 1.0),
    "xtc_threshold": ("xtc_threshold", "f", 0.0, 1.0),
    "repeat_penalty": ("repeat_penalty", "f", 0.0, None),
    "repeat_last_n": ("repeat_last_n", "i", -1, None),
    "presence_penalty": ("presence_penalty", "f", -2.0, 2.0),
    "frequency_penalty": ("frequency_penalty", "f", -2.0, 2.0),
    "dry_multiplier": ("dry_multiplier", "f", 0.0, None),
    "dry_base": ("dry_base", "f", 0.0, None),
    "dry_allowed_length": ("dry_allowed_length", "i", 0, None),
    "dry_penalty_last_n": ("dry_penalty_last_n", "i", -1, None),
    "mirostat": ("mirostat", "i", 0, 2),
    "mirostat_tau": ("mirostat_tau", "f", 0.0, None),
    "mirostat_eta": ("mirostat_eta", "f", 0.0, None),
}


def parse_sampling(body: Body) -> tuple[SamplingParams, set[str]]:
    """Every sampler option the request sets, and their names.

    The names go to the SDK as `explicit`, so a model's default sampling options
    apply to exactly the fields the request left out.
    """
    values: dict[str, Any] = {}
    for name, (target, kind, lo, hi) in _SAMPLING.items():
        if not body.has(name):
            continue
        if kind == "i":
            values[target] = body.integer(name, min=None if lo is None else int(lo),
                                          max=None if hi is None else int(hi))
        else:
            values[target] = body.number(name, min=lo, max=hi)
    seed = body.integer("seed")
    if seed is not None and seed >= 0:
        values["seed"] = seed
    if body.has("logit_bias"):
        values["logit_bias"] = parse_logit_bias(body)
    if body.has("dry_sequence_breakers"):
        breakers = body.strings("dry_sequence_breakers", max_items=64)
        values["dry_sequence_breakers"] = breakers
    grammar = body.string("grammar")
    if grammar:
        values["grammar"] = grammar
    return SamplingParams(**values), set(values)


def parse_logit_bias(body: Body) -> dict[int, float]:
    """OpenAI's `{"<token id>": bias}` (bias in -100..100); llama.cpp's `[[id, bias], ...]` too."""
    raw = body.raw("logit_bias")
    pairs: list[tuple[object, object]]
    if isinstance(raw, dict):
        pairs = list(raw.items())
    elif isinstance(raw, list) and all(isinstance(p, list) and len(p) == 2 for p in raw):
        pairs = [(p[0], p[1]) for p in raw]
    else:
        raise body.error("logit_bias", "must be an object mapping token ids to biases")
    out: dict[int, float] = {}
    for key, bias in pairs:
        try:
            token = int(key)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise body.error("logit_bias", f"keys must be token ids (integers), got {key!r}") from None
        if token < 0:
            raise body.error("logit_bias", f"token id {token} is negative")
        if isinstance(bias, bool) and bias is False:
            out[token] = float("-inf")
            continue
        if isinstance(bias, bool) or not isinstance(bias, (int, float)):
            raise body.error("logit_bias", f"bias for token {token} must be a number")
        if not -100 <= bias <= 100:
            raise body.error("logit_bias", f"bias for token {token} must be between -100 and 100")
        out[token] = float(bias)
    return out


# --- common fields ------------------------------------------------------------


def parse_model(body: Body) -> str | None:
    """The requested model; absent or "" means the server's default model."""
    return body.string("model") or None


def parse_stream(body: Body) -> tuple[bool, bool]:
    """(stream, include_usage)."""
    stream = bool(body.boolean("stream", default=False))
    include_usage = False
    options = body.child("stream_options")
    if options is not None:
        include_usage = bool(options.boolean("include_usage", default=False))
    return stream, include_usage


def parse_max_tokens(body: Body, limits: Limits, names: tuple[str, ...] = ("max_completion_tokens", "max_tokens"),
                     default: int | None = None) -> int | None:
    """The first of `names` that is set, within 1..limit."""
    for name in names:
        if body.has(name):
            value = body.integer(name, min=1)
            if value > limits.max_tokens:
                raise body.error(name, f"must be <= {limits.max_tokens} (the server's max_tokens_limit)")
            return int(value)
    return default


def parse_stop(body: Body, name: str = "stop") -> list[str]:
    return body.strings(name, max_items=MAX_STOP)


def parse_n(body: Body) -> int:
    return int(body.integer("n", default=1, min=1, max=MAX_N))


def parse_logprobs(body: Body) -> tuple[bool, int]:
    """Chat's (logprobs, top_logprobs); llama.cpp's `n_probs` is accepted as top_logprobs."""
    logprobs = bool(body.boolean("logprobs", default=False))
    top = body.integer("top_logprobs", min=0, max=MAX_TOP_LOGPROBS)
    if top is not None and top > 0 and not logprobs:
        raise body.error("top_logprobs", "requires logprobs to be true")
    n_probs = body.integer("n_probs", min=0, max=MAX_TOP_LOGPROBS)
    if n_probs:
        return True, max(int(top or 0), int(n_probs))
    return logprobs, int(top or 0)


# --- messages -----------------------------------------------------------------


def _text_of_parts(body: Body, name: str) -> str:
    """Content that must be text: a string or an array of text parts."""
    raw = body.raw(name)
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        texts = []
        for part in body.children(name):
            kind = part.string("type", required=True)
            if kind not in ("text", "input_text", "output_text"):
                raise part.error("type", f"only text parts are allowed here, got {kind!r}")
            texts.append(part.string("text", required=True))
        return "".join(texts)
    raise body.error(name, "must be a string or an array of text parts")


def parse_content_parts(body: Body, name: str = "content") -> str | list[dict[str, Any]]:
    """A message's content: a string, or an array of parts (text, image_url, input_audio)."""
    raw = body.raw(name)
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, list):
        raise body.error(name, "must be a string or an array of content parts")
    parts: list[dict[str, Any]] = []
    for part in body.children(name):
        kind = part.string("type", required=True, choices=_PART_TYPES)
        if kind in ("text", "input_text"):
            parts.append({"type": "text", "text": part.string("text", required=True)})
        elif kind in ("image_url", "input_image"):
            image = part.raw("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise part.error("image_url", "must be an object with a url (or a data: URI)")
            entry: dict[str, Any] = {"url": url}
            if isinstance(image, dict) and isinstance(image.get("detail"), str):
                entry["detail"] = image["detail"]
            parts.append({"type": "image_url", "image_url": entry})
        elif kind == "input_audio":
            audio = part.child("input_audio", required=True)
            assert audio is not None
            parts.append({"type": "input_audio", "input_audio": {
                "data": audio.string("data", required=True, nonempty=True),
                "format": audio.string("format", default="wav"),
            }})
        else:
            parts.append(dict(part.data))
    return parts


def parse_tool_call(call: Body) -> dict[str, Any]:
    fn = call.child("function", required=True)
    assert fn is not None
    name = fn.string("name", required=True, nonempty=True)
    arguments = fn.raw("arguments", "")
    if isinstance(arguments, (dict, list)):
        arguments = json.dumps(arguments, ensure_ascii=False)
    elif not isinstance(arguments, str):
        raise fn.error("arguments", "must be a JSON string")
    return {"id": call.string("id", required=True), "type": "function",
            "function": {"name": name, "arguments": arguments}}


def parse_message(msg: Body) -> dict[str, Any]:
    role = msg.string("role", required=True, choices=_ROLES)
    out: dict[str, Any] = {"role": "system" if role == "developer" else role}
    if msg.has("name"):
        out["name"] = msg.string("name")
    if role == "assistant":
        out["content"] = parse_content_parts(msg) if msg.has("content") else None
        calls = [parse_tool_call(c) for c in msg.children("tool_calls")]
        if calls:
            out["tool_calls"] = calls
        reasoning = msg.string("reasoning_content") or msg.string("reasoning")
        if reasoning:
            out["reasoning_content"] = reasoning
        if out["content"] is None and not calls and not reasoning:
            raise msg.error("content", "an assistant message needs content or tool_calls")
        return out
    if not msg.has("content"):
        raise msg.error("content", "is required")
    if role == "tool":
        out["tool_call_id"] = msg.string("tool_call_id", required=True)
        out["content"] = _text_of_parts(msg, "content")
    elif role in ("system", "developer"):
        out["content"] = _text_of_parts(msg, "content")
    else:
        out["content"] = parse_content_parts(msg)
    return out


def parse_messages(body: Body, name: str = "messages") -> list[dict[str, Any]]:
    return [parse_message(m) for m in body.children(name, required=True, nonempty=True)]


# --- tools and structured output --------------------------------------------------


def parse_tool(tool: Body) -> dict[str, Any]:
    tool.string("type", required=True, choices=("function",))
    fn = tool.child("function", required=True)
    assert fn is not None
    return function_tool(fn)


def function_tool(where: Body) -> dict[str, Any]:
    """A validated OpenAI chat function tool from a `{name, description, parameters}` object."""
    name = where.string("name", required=True)
    if not _TOOL_NAME.match(name):
        raise where.error("name", "must be 1-128 letters, digits, '_', '-', '.' or ':'")
    parameters = where.mapping("parameters") or {"type": "object", "properties": {}}
    function: dict[str, Any] = {"name": name, "parameters": parameters}
    description = where.string("description")
    if description:
        function["description"] = description
    if where.has("strict"):
        function["strict"] = where.boolean("strict")
    return {"type": "function", "function": function}


def parse_tools(body: Body) -> list[dict[str, Any]] | None:
    tools = [parse_tool(t) for t in body.children("tools")]
    names = [t["function"]["name"] for t in tools]
    if len(set(names)) != len(names):
        raise body.error("tools", "function names must be unique")
    return tools or None


def parse_tool_choice(body: Body, tools: list[dict[str, Any]] | None) -> str | dict[str, Any]:
    raw = body.raw("tool_choice")
    if raw is None:
        return "auto"
    if isinstance(raw, str):
        choice = body.string("tool_choice", choices=("none", "auto", "required"))
        if choice == "required" and not tools:
            raise body.error("tool_choice", "'required' needs at least one tool in tools")
        return str(choice)
    obj = body.child("tool_choice")
    assert obj is not None
    obj.string("type", required=True, choices=("function",))
    fn = obj.child("function", required=True)
    assert fn is not None
    return named_tool_choice(body, str(fn.string("name", required=True)), tools)


def named_tool_choice(body: Body, name: str, tools: list[dict[str, Any]] | None) -> dict[str, Any]:
    if name not in {t["function"]["name"] for t in tools or []}:
        raise body.error("tool_choice", f"names function {name!r}, which is not in tools")
    return {"type": "function", "function": {"name": name}}


def parse_response_format(body: Body) -> dict[str, Any] | None:
    """`response_format` (and llama.cpp's top-level `json_schema`) in ChatRequest's shape."""
    fmt = body.child("response_format")
    if fmt is None:
        schema = body.mapping("json_schema")
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}} if schema else None
    kind = fmt.string("type", required=True, choices=("text", "json_object", "json_schema"))
    if kind == "text":
        return None
    if kind == "json_object":
        schema = fmt.mapping("schema")
        if schema:
            return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
        return {"type": "json_object"}
    spec = fmt.child("json_schema", required=True)
    assert spec is not None
    return json_schema_format(spec)


def json_schema_format(spec: Body) -> dict[str, Any]:
    schema = spec.mapping("schema")
    if schema is None:
        raise spec.error("schema", "is required")
    out: dict[str, Any] = {"name": spec.string("name", default="response"), "schema": schema}
    if spec.has("strict"):
        out["strict"] = spec.boolean("strict")
    return {"type": "json_schema", "json_schema": out}


def parse_thinking(body: Body) -> tuple[bool | None, dict[str, Any]]:
    """(enable_thinking, chat_template_kwargs) from enable_thinking / reasoning_effort / kwargs."""
    kwargs = dict(body.mapping("chat_template_kwargs") or {})
    enable = body.boolean("enable_thinking")
    effort = body.string("reasoning_effort", choices=("none", "minimal", "low", "medium", "high"))
    if effort is not None:
        kwargs.setdefault("reasoning_effort", effort)
        if enable is None:
            enable = effort != "none"
    if enable is None and isinstance(kwargs.get("enable_thinking"), bool):
        enable = kwargs["enable_thinking"]
    return enable, kwargs


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


def merge_usage(usages: list[Usage]) -> Usage:
    """One usage for n choices: the prompt once, the completions summed."""
    if not usages:
        return Usage()
    return Usage(
        prompt_tokens=max(u.prompt_tokens for u in usages),
        completion_tokens=sum(u.completion_tokens for u in usages),
        cached_tokens=max(u.cached_tokens for u in usages),
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


def reject_unsupported(body: Body, fields: dict[str, str]) -> None:
    """Fail clearly on fields we cannot honour instead of silently ignoring them."""
    for name, why in fields.items():
        if body.has(name):
            raise InvalidRequestError(f"{name}: {why}", param=name)
