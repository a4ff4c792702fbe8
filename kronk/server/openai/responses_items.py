"""The Responses output items Kronk produces, shared by the JSON answer and the stream.

message, reasoning, function_call, custom_tool_call and local_shell_call items in the
shapes the `openai` SDK's types and Codex CLI's parser read. A tool call's kind comes
from the ToolCatalog: the model calls functions; the catalog knows which of them the
client declared as a custom tool or local_shell, and under which namespace.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from kronk.engine.types import TokenLogprob
from kronk.sdk.requests import new_id
from kronk.server.openai.responses_tools import ToolCatalog, custom_input, shell_action

OPAQUE_PREFIX = "kronk.v1:"
"""Kronk's `encrypted_content`: the reasoning text, base64 — opaque to clients, not secret."""


def encode_opaque(text: str) -> str:
    return OPAQUE_PREFIX + base64.urlsafe_b64encode(text.encode()).decode()


def decode_opaque(value: str | None) -> str | None:
    """The text of Kronk's own encrypted_content; None for anyone else's (OpenAI's cannot be read)."""
    if not value or not value.startswith(OPAQUE_PREFIX):
        return None
    try:
        return base64.urlsafe_b64decode(value[len(OPAQUE_PREFIX):].encode()).decode()
    except (binascii.Error, ValueError):
        return None


def encode_logprobs(items: list[TokenLogprob] | None) -> list[dict[str, Any]]:
    return [{"token": lp.token, "logprob": lp.logprob, "bytes": lp.bytes,
             "top_logprobs": [{"token": t.token, "logprob": t.logprob, "bytes": t.bytes}
                              for t in lp.top_logprobs]} for lp in items or []]


def text_part(text: str, logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def message_item(item_id: str, text: str, status: str = "completed",
                 logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    content = [] if status == "in_progress" else [text_part(text, logprobs)]
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def reasoning_item(item_id: str, text: str, *, as_summary: bool, opaque: bool,
                   status: str = "completed") -> dict[str, Any]:
    """The thinking text as `content` (reasoning_text), or as the `summary` when the client asked for one."""
    item: dict[str, Any] = {"type": "reasoning", "id": item_id, "summary": [], "content": [], "status": status}
    if status != "in_progress":
        if as_summary:
            item["summary"] = [{"type": "summary_text", "text": text}]
        else:
            item["content"] = [{"type": "reasoning_text", "text": text}]
        if opaque:
            item["encrypted_content"] = encode_opaque(text)
    return item


class CallItems:
    """Output items for the model's tool calls, in the client's terms."""

    def __init__(self, catalog: ToolCatalog) -> None:
        self.catalog = catalog

    def kind(self, model_name: str) -> str:
        tool = self.catalog.by_model_name(model_name)
        return "function" if tool is None else tool.kind

    @staticmethod
    def item_id(kind: str) -> str:
        return new_id({"custom": "ctc", "local_shell": "lsh"}.get(kind, "fc"))

    def item(self, item_id: str, call_id: str, model_name: str, arguments: str,
             status: str = "completed") -> dict[str, Any]:
        """The finished (or, with status in_progress, just opened) item of one call."""
        tool = self.catalog.by_model_name(model_name)
        opened = status == "in_progress"
        if tool is not None and tool.kind == "local_shell":
            action = {"type": "exec", "command": [], "env": {}} if opened else shell_action(arguments)
            if action is not None:
                return {"type": "local_shell_call", "id": item_id, "call_id": call_id, "status": status,
                        "action": action}
        if tool is not None and tool.kind == "custom":
            item = {"type": "custom_tool_call", "id": item_id, "call_id": call_id, "name": tool.name,
                    "input": "" if opened else custom_input(arguments), "status": status}
        else:
            item = {"type": "function_call", "id": item_id, "call_id": call_id,
                    "name": model_name if tool is None else tool.name, "arguments": arguments, "status": status}
        if tool is not None and tool.namespace:
            item["namespace"] = tool.namespace
        return item
