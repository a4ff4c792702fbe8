"""Responses `instructions` + `input` items → the SDK's OpenAI-shaped chat messages.

- instructions and the leading system/developer messages become one system message
  (Codex sends its base instructions, then developer messages, then the user turn).
- message: user parts may hold images and audio; assistant, system and developer
  messages are text. Later system/developer messages stay where they are.
- function_call / custom_tool_call / local_shell_call: assistant tool calls, under the
  name the model sees for that tool now (ToolCatalog); consecutive calls and the
  assistant text before them form one assistant turn. custom calls' input becomes
  `{"input": ...}` arguments, local_shell actions the local_shell function's arguments.
- *_call_output: tool messages; images in an output follow the tool results as a
  user message (a text-only model then answers with its usual 400). An output of no
  call (Codex's goal objective: `name`/`namespace`, no `call_id`) is a user message.
- reasoning: its text (content, else summary, else Kronk's own encrypted_content)
  becomes the next assistant turn's reasoning_content; unreadable ones are dropped.
- mcp_call (an MCP call Kronk, or OpenAI, ran): an assistant tool call and its result
  (`output`, else the error's text), so a client replaying a conversation keeps them.
- Anything else (web_search_call, mcp_list_tools, compaction, ...) records what the
  server side did without a result the model can use: dropped and named in
  X-Kronk-Input-Ignored.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from kronk.errors import InvalidRequestError
from kronk.server.openai import responses_schema as s
from kronk.server.openai.responses_items import decode_opaque
from kronk.server.openai.responses_tools import (
    LOCAL_SHELL,
    ToolCatalog,
    shell_arguments,
)

log = logging.getLogger("kronk.server.openai")


def _join(texts: list[str]) -> str:
    """Text parts in order; a newline between two that would otherwise run together."""
    out = ""
    for text in texts:
        if out and text and not out.endswith(("\n", " ")) and not text.startswith(("\n", " ")):
            out += "\n"
        out += text
    return out


def _parts(content: str | list[Any], where: str, text_only: bool) -> str | list[dict[str, Any]]:
    """Content as a string, or as chat parts when it holds images or audio."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        if isinstance(part, s.ResponsesText):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, s.ResponsesRefusal):
            parts.append({"type": "text", "text": part.refusal})
        elif text_only:
            raise InvalidRequestError(f"{where}[{i}]: this message may only contain text", param=f"{where}[{i}]")
        elif isinstance(part, s.ResponsesImage):
            image: dict[str, Any] = {"url": part.image_url}
            if part.detail:
                image["detail"] = part.detail
            parts.append({"type": "image_url", "image_url": image})
        else:
            parts.append({"type": "input_audio", "input_audio": {"data": part.input_audio.data,
                                                                 "format": part.input_audio.format}})
    if all(p["type"] == "text" for p in parts):
        return _join([p["text"] for p in parts])
    return parts


def _error_text(error: Any) -> str:
    """An mcp_call's `error`: a string, or an object with a message or text content."""
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        if isinstance(error.get("message"), str):
            return str(error["message"])
        content = error.get("content")
        if isinstance(content, list):
            return _join([p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)])
    return "the call failed"


class _Conversation:
    def __init__(self, catalog: ToolCatalog, ignored: list[str]) -> None:
        self.catalog = catalog
        self.ignored = ignored
        self.messages: list[dict[str, Any]] = []
        self.reasoning: str | None = None
        self.images: list[dict[str, Any]] = []
        """Images from tool outputs, sent as a user message after the tool results."""

    def item(self, item: Any, where: str) -> None:
        if not isinstance(item, (s.FunctionCallOutputItem, s.LocalShellCallOutputItem)):
            self._flush_images()
        if isinstance(item, s.MessageItem):
            self._message(item, where)
        elif isinstance(item, s.FunctionCallItem):
            arguments = item.arguments if isinstance(item.arguments, str) else json.dumps(item.arguments)
            self._call(item.call_id, self.catalog.model_name(item.name, item.namespace, "function"), arguments)
        elif isinstance(item, s.CustomToolCallItem):
            name = self.catalog.model_name(item.name, item.namespace, "custom")
            self._call(item.call_id, name, json.dumps({"input": item.input}, ensure_ascii=False))
        elif isinstance(item, s.LocalShellCallItem):
            name = self.catalog.model_name(LOCAL_SHELL, None, "local_shell")
            self._call(str(item.call_id or item.id), name, shell_arguments(item.action))
        elif isinstance(item, s.FunctionCallOutputItem) and item.call_id is None:
            self._flush_images()
            self._unanswered_output(item)
        elif isinstance(item, (s.FunctionCallOutputItem, s.LocalShellCallOutputItem)):
            call_id = item.call_id if isinstance(item, s.FunctionCallOutputItem) else (item.call_id or item.id)
            self._output(str(call_id), item.output)
        elif isinstance(item, s.ReasoningItem):
            self._reasoning(item)
        elif isinstance(item, s.McpCallItem):
            self._call(item.id, item.name, item.arguments or "{}")
            self._output(item.id, item.output if item.output is not None else f"error: {_error_text(item.error)}")
        elif isinstance(item, s.AdditionalToolsItem):
            pass  # its tools joined the catalog before the conversation was read
        else:
            self.ignored.append(item.type)

    def _message(self, item: s.MessageItem, where: str) -> None:
        role = "system" if item.role in ("system", "developer") else item.role
        content = _parts(item.content, f"{where}.content", text_only=role != "user")
        message: dict[str, Any] = {"role": role, "content": content}
        if role == "assistant":
            self._take_reasoning(message)
        self.messages.append(message)

    def _call(self, call_id: str, name: str, arguments: str) -> None:
        call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == "assistant" and self.reasoning is None:
            last.setdefault("tool_calls", []).append(call)
            return
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
        self._take_reasoning(message)
        self.messages.append(message)

    def _output(self, call_id: str, output: str | list[Any]) -> None:
        if isinstance(output, str):
            text = output
        else:
            texts = [p.text if isinstance(p, s.ResponsesText) else p.refusal for p in output
                     if isinstance(p, (s.ResponsesText, s.ResponsesRefusal))]
            images = [p for p in output if isinstance(p, s.ResponsesImage)]
            text = _join(texts) or ("(the result is the image below)" if images else "")
            self.images += [{"type": "image_url", "image_url": {"url": p.image_url}} for p in images]
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": text})

    def _unanswered_output(self, item: s.FunctionCallOutputItem) -> None:
        """An output no call asked for (Codex's goal objective): the harness telling the model something."""
        where = f"{item.namespace}.{item.name}" if item.namespace else str(item.name)
        self._output("", item.output)
        text = self.messages.pop()["content"]
        self.messages.append({"role": "user", "content": f"[{where}]\n{text}"})
        self._flush_images()

    def _flush_images(self) -> None:
        if self.images:
            self.messages.append({"role": "user", "content": [
                {"type": "text", "text": "Images returned by the tool calls above:"}, *self.images]})
            self.images = []

    def _reasoning(self, item: s.ReasoningItem) -> None:
        texts = [p.text for p in item.content or []] or [p.text for p in item.summary]
        text = _join(texts) or decode_opaque(item.encrypted_content)
        if text:
            self.reasoning = text if self.reasoning is None else f"{self.reasoning}\n\n{text}"
        elif item.encrypted_content:
            self.ignored.append("reasoning.encrypted_content")

    def _take_reasoning(self, message: dict[str, Any]) -> None:
        if self.reasoning is not None:
            message["reasoning_content"], self.reasoning = self.reasoning, None


def chat_messages(instructions: str | None, input_: str | list[Any], catalog: ToolCatalog,
                  ignored: list[str]) -> list[dict[str, Any]]:
    """The conversation as chat messages; the types of dropped items are appended to `ignored`."""
    conversation = _Conversation(catalog, ignored)
    if isinstance(input_, str):
        conversation.messages.append({"role": "user", "content": input_})
    else:
        for i, item in enumerate(input_):
            conversation.item(item, f"input[{i}]")
        conversation._flush_images()
    messages = _merge_leading_system(instructions, conversation.messages)
    if not any(m["role"] != "system" for m in messages):
        what = f" (dropped: {', '.join(ignored)})" if ignored else ""
        raise InvalidRequestError(f"input: has no message for the model to answer{what}", param="input")
    if ignored:
        log.debug("responses: dropped input items %s", ", ".join(ignored))
    return messages


def _merge_leading_system(instructions: str | None, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """instructions and the system messages before the first other message, as one system message."""
    head = [instructions] if instructions else []
    start = 0
    while start < len(messages) and messages[start]["role"] == "system":
        head.append(messages[start]["content"])
        start += 1
    texts = [t for t in head if t]
    system = [{"role": "system", "content": "\n\n".join(texts)}] if texts else []
    return system + messages[start:]
