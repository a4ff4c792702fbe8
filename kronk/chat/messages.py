"""OpenAI-shaped messages → the shapes chat templates expect.

Templates are written against Hugging Face conventions: `content` is a string,
tool-call `arguments` is a dict (most templates `tojson` it or iterate `.items()`),
tool results carry the tool's `name`, the system role is called "system". Clients
send OpenAI shapes: content may be a list of parts, `arguments` is a JSON string,
and newer clients say "developer" for "system". Normalising is idempotent, so it is safe
to run twice. The caller's messages are never modified.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kronk.errors import CapabilityError, InvalidRequestError

_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})
MEDIA_KINDS: dict[str, str] = {
    "image_url": "image", "input_image": "image", "image": "image", "input_audio": "audio", "audio": "audio",
}
"""Content part types that carry media (OpenAI chat, Responses and Anthropic names), and which kind."""
_MEDIA_PARTS = frozenset(MEDIA_KINDS)


@dataclass(slots=True)
class NormalizedMessages:
    messages: list[dict[str, Any]]
    media: list[dict[str, Any]] = field(default_factory=list)
    """Media parts in prompt order; each left a `media_marker` in the text."""


def normalize_messages(
    messages: Any,
    *,
    object_arguments: bool = True,
    media_marker: str | None = None,
) -> NormalizedMessages:
    """Copy `messages` into template-ready form.

    `media_marker`: text that stands in for each image/audio part (the multimodal
    projector finds it later); without one, media parts raise `CapabilityError`.
    """
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("messages must be a non-empty list", param="messages")
    out: list[dict[str, Any]] = []
    media: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for i, raw in enumerate(messages):
        if not isinstance(raw, dict):
            raise InvalidRequestError(f"messages[{i}] must be an object", param="messages")
        role = raw.get("role")
        if not isinstance(role, str) or not role:
            raise InvalidRequestError(f"messages[{i}].role must be a non-empty string", param="messages")
        msg = dict(raw)
        if role == "developer":  # OpenAI's newer name for the system role; templates know "system"
            msg["role"] = role = "system"
        if raw.get("content") is None and raw.get("tool_calls"):
            msg["content"] = None  # DeepSeek-style templates test `content is none` on tool-call turns
        else:
            msg["content"] = _content_text(raw.get("content"), i, media_marker, media)
        if raw.get("tool_calls"):
            msg["tool_calls"] = [_tool_call(c, i, j, object_arguments) for j, c in enumerate(raw["tool_calls"])]
            for call in msg["tool_calls"]:
                if call.get("id"):
                    call_names[call["id"]] = call["function"]["name"]
        elif "tool_calls" in msg:
            del msg["tool_calls"]
        if role == "tool" and not msg.get("name"):
            name = call_names.get(str(raw.get("tool_call_id", "")))
            if name:
                msg["name"] = name
        out.append(msg)
    return NormalizedMessages(out, media)


def media_parts(messages: Any) -> Iterator[tuple[int, str]]:
    """(message index, "image" or "audio") for each media part, in prompt order. Lenient:
    it only looks, so a malformed message is skipped (`normalize_messages` reports it)."""
    if not isinstance(messages, list):
        return
    for index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if isinstance(kind, str) and kind in MEDIA_KINDS:
                yield index, MEDIA_KINDS[kind]


def _content_text(content: Any, index: int, media_marker: str | None, media: list[dict[str, Any]]) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequestError(f"messages[{index}].content must be a string or a list of parts", param="messages")
    texts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
            continue
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind in _MEDIA_PARTS:
            if media_marker is None:
                raise CapabilityError(f"messages[{index}] has a {kind} part but this model reads text only", param="messages")
            texts.append(media_marker)
            media.append(part)
        else:
            raise InvalidRequestError(f"messages[{index}].content has an unknown part type {kind!r}", param="messages")
    return "\n".join(texts)


def _tool_call(call: Any, index: int, j: int, object_arguments: bool) -> dict[str, Any]:
    where = f"messages[{index}].tool_calls[{j}]"
    if not isinstance(call, dict):
        raise InvalidRequestError(f"{where} must be an object", param="messages")
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequestError(f"{where}.function.name is missing", param="messages")
    args = function.get("arguments", {})
    if isinstance(args, str):
        try:
            parsed = json.loads(args) if args.strip() else {}
        except ValueError:
            parsed = None
        if object_arguments and isinstance(parsed, dict):
            args = parsed
    elif isinstance(args, dict):
        if not object_arguments:
            args = json.dumps(args, ensure_ascii=False)
    else:
        raise InvalidRequestError(f"{where}.function.arguments must be a JSON string or an object", param="messages")
    out = dict(call)
    out.setdefault("type", "function")
    out["function"] = {**function, "arguments": args}
    return out
