"""Anthropic messages → the SDK's OpenAI-shaped chat messages.

System text. The top-level `system` and every `system` message before the first
user or assistant message become one leading system message. A later `system`
message (Anthropic's mid-conversation system message; Claude Code sends them for
MCP server instructions and reminders) stays where it stands, as a system message:
it applies from that point on, and everything before it renders the same as in the
previous request, so the prefix cache keeps it. Chat templates that refuse or drop
a system message there get its text folded into the user turn before it
(kronk.chat.template).

Claude Code's `x-anthropic-billing-header: ...` system block is dropped (see _BILLING).

Turns. Consecutive messages of one role are one turn, as Anthropic combines them.
Blocks map as: text → text; image → an image part (the model needs a projector);
text documents and search results → text; tool_result → a `tool` message (before
the rest of its user turn); tool_use → assistant tool_calls; thinking →
reasoning_content; redacted_thinking → dropped; server-tool blocks → text or
dropped (kronk.server.anthropic.server_blocks). Text blocks of one turn are joined
with a blank line. `cache_control` is ignored everywhere.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from kronk.errors import CapabilityError, InvalidRequestError
from kronk.server.anthropic import schema as s
from kronk.server.anthropic.server_blocks import server_block_text

log = logging.getLogger("kronk.server.anthropic")

_JOIN = "\n\n"
_BILLING = "x-anthropic-billing-header:"
"""Claude Code's attribution line, sent as the first system block. It is billing metadata for
Anthropic, not an instruction, and it carries a hash of the session's first message: kept,
it would make every session's prompt differ from its first token, so the prefix cache could
never share the system prompt and tools between sessions. It is dropped."""


@dataclass(slots=True)
class _Turn:
    """One chat message being built; text pieces are joined at the end."""

    role: str
    parts: list[dict[str, Any]] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    tool_call_id: str | None = None

    def text(self, text: str) -> None:
        self.parts.append({"type": "text", "text": text})

    def absorb(self, other: _Turn) -> None:
        self.parts += other.parts
        self.reasoning += other.reasoning
        self.calls += other.calls

    @property
    def empty(self) -> bool:
        return not (self.parts or self.reasoning or self.calls)

    def message(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": _content(self.parts)}
        if self.role == "tool":
            out["tool_call_id"] = self.tool_call_id
        if self.role == "assistant":
            if self.calls and not out["content"]:
                out["content"] = None
            if self.reasoning:
                out["reasoning_content"] = "".join(self.reasoning)
            if self.calls:
                out["tool_calls"] = self.calls
        return out


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text alone as one string; with images, a list of parts (adjacent texts joined)."""
    if all(p["type"] == "text" for p in parts):
        return _JOIN.join(p["text"] for p in parts)
    merged: list[dict[str, Any]] = []
    for part in parts:
        if part["type"] == "text" and merged and merged[-1]["type"] == "text":
            merged[-1] = {"type": "text", "text": merged[-1]["text"] + _JOIN + part["text"]}
        else:
            merged.append(part)
    return merged


def chat_messages(system: str | list[s.TextBlock] | None, messages: list[Any]) -> list[dict[str, Any]]:
    """The request's system text and messages as the SDK's chat messages."""
    leading: list[str] = [] if system is None else [_system_text(system)]
    turns: list[_Turn] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if isinstance(msg, s.AnthropicSystemMessage):
            text = _system_text(msg.content)
            if turns:
                _append(turns, _Turn("system", [{"type": "text", "text": text}]))
            else:
                leading.append(text)
        elif isinstance(msg, s.AnthropicUserMessage):
            for turn in _user_turns(msg.content, where):
                _append(turns, turn)
        else:
            _append(turns, _assistant_turn(msg.content, where))
    if not any(t.role != "system" for t in turns):
        raise InvalidRequestError("messages: must contain a user or assistant message, not only system messages",
                                  param="messages")
    out = [t.message() for t in turns]
    leading = [text for text in leading if text]
    if leading:
        out.insert(0, {"role": "system", "content": _JOIN.join(leading)})
    return out


def _append(turns: list[_Turn], turn: _Turn) -> None:
    """Add a turn, merging it into the last one when both have the same role (tool results never merge)."""
    if turn.empty:
        return
    if turns and turns[-1].role == turn.role and turn.role != "tool":
        turns[-1].absorb(turn)
    else:
        turns.append(turn)


def _system_text(content: str | list[s.TextBlock]) -> str:
    if isinstance(content, str):
        return "" if content.startswith(_BILLING) else content
    return _JOIN.join(block.text for block in content if not block.text.startswith(_BILLING))


# --- user turns -------------------------------------------------------------------------


def _user_turns(content: str | list[Any], where: str) -> list[_Turn]:
    """A user message: its tool results (as tool messages) first, then the rest as one user turn."""
    user = _Turn("user")
    if isinstance(content, str):
        user.text(content)
        return [user]
    results: list[_Turn] = []
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        if isinstance(block, s.ToolResultBlock):
            results.append(_tool_result(block, at))
        elif isinstance(block, s.ToolUseBlock):
            raise InvalidRequestError(f"{at}: tool_use blocks belong in assistant messages", param=at)
        elif isinstance(block, (s.ThinkingBlock, s.RedactedThinkingBlock)):
            log.debug("dropping a %s block from a user message", block.type)
        else:
            user.parts += _parts(block, at)
    return [*results, user]


def _tool_result(block: s.ToolResultBlock, at: str) -> _Turn:
    turn = _Turn("tool", tool_call_id=block.tool_use_id)
    content = block.content
    if isinstance(content, str):
        turn.text(content)
    else:
        for k, part in enumerate(content or []):
            if isinstance(part, s.ToolReferenceBlock):
                turn.text(f"[tool available: {part.tool_name}]")
            else:
                turn.parts += _parts(part, f"{at}.content[{k}]")
    if block.is_error:
        if turn.parts and turn.parts[0]["type"] == "text":
            turn.parts[0] = {"type": "text", "text": "Error: " + turn.parts[0]["text"]}
        else:
            turn.parts.insert(0, {"type": "text", "text": "Error:"})
    if not turn.parts:
        turn.text("")
    return turn


def _parts(block: Any, at: str) -> list[dict[str, Any]]:
    """Text, image, document, search-result and server blocks as content parts."""
    if isinstance(block, s.TextBlock):
        return [{"type": "text", "text": block.text}]
    if isinstance(block, s.ImageBlock):
        return [{"type": "image_url", "image_url": {"url": _image_url(block.source, f"{at}.source")}}]
    if isinstance(block, s.DocumentBlock):
        return _document(block, at)
    if isinstance(block, s.SearchResultBlock):
        body = _JOIN.join(part.text for part in block.content)
        return [{"type": "text", "text": f"{block.title} ({block.source})\n{body}"}]
    if isinstance(block, s.ServerBlock):
        text = server_block_text(block)
        return [] if text is None else [{"type": "text", "text": text}]
    raise InvalidRequestError(f"{at}: a {block.type} block cannot stand here", param=f"{at}.type")


def _image_url(source: Any, at: str) -> str:
    if isinstance(source, s.Base64Source):
        return f"data:{source.media_type};base64,{source.data}"
    if isinstance(source, s.URLSource):
        return source.url
    raise CapabilityError(f"{at}: file sources need Anthropic's Files API, which Kronk does not have; "
                          "send the image as base64", param=at)


def _document(block: s.DocumentBlock, at: str) -> list[dict[str, Any]]:
    source, where = block.source, f"{at}.source"
    parts: list[dict[str, Any]]
    if isinstance(source, s.PlainTextSource):
        parts = [{"type": "text", "text": source.data}]
    elif isinstance(source, s.ContentSource):
        if isinstance(source.content, str):
            parts = [{"type": "text", "text": source.content}]
        else:
            parts = [p for k, item in enumerate(source.content) for p in _parts(item, f"{where}.content[{k}]")]
    elif isinstance(source, s.Base64Source) and source.media_type.startswith("text/"):
        parts = [{"type": "text", "text": _decode_text(source.data, f"{where}.data")}]
    elif isinstance(source, s.FileSource):
        raise CapabilityError(f"{where}: file sources need Anthropic's Files API, which Kronk does not have; "
                              "send the document's text", param=where)
    else:
        kind = source.media_type if isinstance(source, s.Base64Source) else "a URL"
        raise CapabilityError(f"{where}: documents of type {kind} (PDF) are not supported; "
                              "send the text as a text/plain document or a text block", param=where)
    header = [text for text in (block.title, block.context) if text]
    if header:
        parts.insert(0, {"type": "text", "text": "\n".join(header)})
    return parts


def _decode_text(data: str, at: str) -> str:
    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"{at}: must be base64 of UTF-8 text", param=at) from None


# --- assistant turns ------------------------------------------------------------------------


def _assistant_turn(content: str | list[Any], where: str) -> _Turn:
    turn = _Turn("assistant")
    if isinstance(content, str):
        turn.text(content)
        return turn
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        if isinstance(block, s.TextBlock):
            if block.text:
                turn.text(block.text)
        elif isinstance(block, s.ThinkingBlock):
            turn.reasoning.append(block.thinking)
        elif isinstance(block, s.RedactedThinkingBlock):
            log.debug("dropping a redacted_thinking block (Anthropic's encrypted reasoning)")
        elif isinstance(block, s.ToolUseBlock):
            turn.calls.append({"id": block.id, "type": "function", "function": {
                "name": block.name, "arguments": json.dumps(block.input, ensure_ascii=False)}})
        elif isinstance(block, s.ToolResultBlock):
            raise InvalidRequestError(f"{at}: tool_result blocks belong in user messages", param=at)
        elif isinstance(block, s.ImageBlock):
            raise CapabilityError(f"{at}: image blocks are only supported in user messages", param=at)
        else:
            turn.parts += _parts(block, at)
    if turn.empty:
        turn.text("")
    return turn
