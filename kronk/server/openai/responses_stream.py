"""The Responses stream: named SSE events, one output item per reasoning block, message or tool call.

Event order and fields follow the Responses API as the `openai` SDK's stream
accumulator and Codex CLI read it: response.created, response.in_progress, then per
item output_item.added → (content_part.added → deltas → done events) →
output_item.done, and last response.completed (or response.incomplete at the token
limit). Every event has a sequence_number; item events carry item_id/output_index
(and content_index or summary_index). Function-call arguments stream as generated, a
custom tool's input as it is decoded from them; a local_shell action is sent whole
when the call ends.
An error after the stream began ends it with an `error` event (the `openai` SDK
raises it) and response.failed (Codex reads its error.code, e.g. context_length_exceeded).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kronk.engine.types import Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from kronk.http_errors import openai_error_body, spec_for
from kronk.sdk.requests import new_id
from kronk.server.openai.responses_items import (
    CallItems,
    encode_logprobs,
    message_item,
    reasoning_item,
    text_part,
)
from kronk.server.openai.responses_tools import ToolCatalog, partial_input
from kronk.server.streaming import Frame


def encode_usage(usage: Usage) -> dict[str, Any]:
    """Responses usage; cache_write_tokens is always 0 (the prefix cache fills itself, nothing is billed)."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


@dataclass(slots=True)
class ResponseShell:
    """The Response object around the output items."""

    model: str
    echo: dict[str, Any]
    """Request fields the Response repeats (instructions, tools, tool_choice, text, reasoning ...)."""
    id: str = field(default_factory=lambda: new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))

    def build(self, status: str, output: list[dict[str, Any]], usage: Usage | None,
              incomplete: str | None = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
        texts = [part["text"] for item in output if item["type"] == "message"
                 for part in item.get("content", []) if part.get("type") == "output_text"]
        return {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "model": self.model, "output": output, "output_text": "".join(texts),
            "previous_response_id": None, "store": False, "background": False,
            **self.echo,
            "usage": encode_usage(usage) if usage is not None else None,
        }


@dataclass(slots=True)
class _Open:
    kind: str
    """message, reasoning, or a call kind: function, custom, local_shell."""
    item_id: str
    index: int
    text: str = ""
    call_id: str = ""
    name: str = ""
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    sent: str = ""
    """A custom tool call's input sent so far in deltas."""


class ResponsesStreamEncoder:
    """Neutral chat events → Responses stream events (the StreamEncoder protocol)."""

    def __init__(self, shell: ResponseShell, calls: CallItems | None = None, *, reasoning_summary: bool = False,
                 opaque_reasoning: bool = False) -> None:
        self.shell = shell
        self.calls = calls or CallItems(ToolCatalog())
        self.summary = reasoning_summary
        self.opaque = opaque_reasoning
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.open: _Open | None = None
        self.usage: Usage | None = None
        self.reason = "stop"

    def _event(self, kind: str, **payload: Any) -> Frame:
        data = {"type": kind, "sequence_number": self.sequence, **payload}
        self.sequence += 1
        return kind, data

    def start(self) -> list[Frame]:
        response = self.shell.build("in_progress", [], None)
        return [self._event("response.created", response=response),
                self._event("response.in_progress", response=response)]

    # --- items ---------------------------------------------------------------------

    def _added(self, item: _Open) -> list[Frame]:
        ids = {"item_id": item.item_id, "output_index": item.index}
        if item.kind == "message":
            added = self._event("response.output_item.added", output_index=item.index,
                                item=message_item(item.item_id, "", status="in_progress"))
            return [added, self._event("response.content_part.added", **ids, content_index=0, part=text_part(""))]
        if item.kind == "reasoning":
            added = self._event("response.output_item.added", output_index=item.index, item=reasoning_item(
                item.item_id, "", as_summary=self.summary, opaque=False, status="in_progress"))
            if self.summary:
                return [added, self._event("response.reasoning_summary_part.added", **ids, summary_index=0,
                                           part={"type": "summary_text", "text": ""})]
            return [added, self._event("response.content_part.added", **ids, content_index=0,
                                       part={"type": "reasoning_text", "text": ""})]
        return [self._event("response.output_item.added", output_index=item.index,
                            item=self.calls.item(item.item_id, item.call_id, item.name, "", status="in_progress"))]

    def _open(self, kind: str, call_id: str = "", name: str = "") -> list[Frame]:
        frames = self._close()
        if kind in ("message", "reasoning"):
            item_id = new_id("msg" if kind == "message" else "rs")
        else:
            item_id = self.calls.item_id(kind)
        item = _Open(kind, item_id, len(self.output), call_id=call_id, name=name)
        self.open = item
        self.output.append({})
        if kind == "local_shell":
            return frames  # its action is known only at the end: added and done go out together
        return [*frames, *self._added(item)]

    def _close(self, status: str = "completed") -> list[Frame]:
        item, self.open = self.open, None
        if item is None:
            return []
        ids = {"item_id": item.item_id, "output_index": item.index}
        frames: list[Frame] = []
        if item.kind == "message":
            done = message_item(item.item_id, item.text, status=status, logprobs=item.logprobs)
            part = text_part(item.text, item.logprobs)
            frames = [self._event("response.output_text.done", **ids, content_index=0, text=item.text,
                                  logprobs=item.logprobs),
                      self._event("response.content_part.done", **ids, content_index=0, part=part)]
        elif item.kind == "reasoning":
            done = reasoning_item(item.item_id, item.text, as_summary=self.summary, opaque=self.opaque, status=status)
            if self.summary:
                part = {"type": "summary_text", "text": item.text}
                frames = [self._event("response.reasoning_summary_text.done", **ids, summary_index=0, text=item.text),
                          self._event("response.reasoning_summary_part.done", **ids, summary_index=0, part=part)]
            else:
                part = {"type": "reasoning_text", "text": item.text}
                frames = [self._event("response.reasoning_text.done", **ids, content_index=0, text=item.text),
                          self._event("response.content_part.done", **ids, content_index=0, part=part)]
        else:
            done = self.calls.item(item.item_id, item.call_id, item.name, item.text, status=status)
            if item.kind == "local_shell":
                frames.append(self._event("response.output_item.added", output_index=item.index,
                                          item={**done, "status": "in_progress"}))
            if done["type"] == "function_call":
                if item.kind != "function":  # a custom/shell call whose arguments were unusable: sent raw
                    frames.append(self._event("response.function_call_arguments.delta", **ids, delta=item.text))
                frames.append(self._event("response.function_call_arguments.done", **ids, name=done["name"],
                                          arguments=item.text))
            elif done["type"] == "custom_tool_call":
                if done["input"].startswith(item.sent) and len(done["input"]) > len(item.sent):
                    frames.append(self._event("response.custom_tool_call_input.delta", **ids,
                                              delta=done["input"][len(item.sent):]))
                frames.append(self._event("response.custom_tool_call_input.done", **ids, input=done["input"]))
        self.output[item.index] = done
        return [*frames, self._event("response.output_item.done", output_index=item.index, item=done)]

    # --- events ---------------------------------------------------------------------

    def encode(self, event: Any) -> list[Frame]:
        if getattr(event, "choice", 0) != 0:
            return []
        frames: list[Frame] = []
        if isinstance(event, TextDelta):
            if self.open is None or self.open.kind != "message":
                frames += self._open("message")
            assert self.open is not None
            self.open.text += event.text
            logprobs = encode_logprobs(event.logprobs)
            self.open.logprobs.extend(logprobs)
            frames.append(self._event("response.output_text.delta", item_id=self.open.item_id,
                                      output_index=self.open.index, content_index=0, delta=event.text,
                                      logprobs=logprobs))
        elif isinstance(event, ReasoningDelta):
            if self.open is None or self.open.kind != "reasoning":
                frames += self._open("reasoning")
            assert self.open is not None
            self.open.text += event.text
            ids = {"item_id": self.open.item_id, "output_index": self.open.index}
            frames.append(self._event("response.reasoning_summary_text.delta", **ids, summary_index=0,
                                      delta=event.text) if self.summary else
                          self._event("response.reasoning_text.delta", **ids, content_index=0, delta=event.text))
        elif isinstance(event, ToolCallDelta):
            frames += self._tool_call(event)
        elif isinstance(event, Finish):
            frames += self._close("incomplete" if event.reason == "length" else "completed")
            self.usage, self.reason = event.usage, event.reason
        return frames

    def _tool_call(self, event: ToolCallDelta) -> list[Frame]:
        frames: list[Frame] = []
        if event.id is not None or self.open is None or self.open.kind in ("message", "reasoning"):
            name = event.name or ""
            frames += self._open(self.calls.kind(name), call_id=event.id or new_id("call"), name=name)
        item = self.open
        assert item is not None
        if event.arguments:
            item.text += event.arguments
            ids = {"item_id": item.item_id, "output_index": item.index}
            if item.kind == "function":
                frames.append(self._event("response.function_call_arguments.delta", **ids, delta=event.arguments))
            elif item.kind == "custom":
                known = partial_input(item.text)
                if known is not None and len(known) > len(item.sent):
                    frames.append(self._event("response.custom_tool_call_input.delta", **ids,
                                              delta=known[len(item.sent):]))
                    item.sent = known
        return frames

    def finish(self) -> list[Frame]:
        frames = self._close("incomplete" if self.reason == "length" else "completed")
        incomplete = "max_output_tokens" if self.reason == "length" else None
        response = self.shell.build("incomplete" if incomplete else "completed",
                                    [o for o in self.output if o], self.usage, incomplete)
        kind = "response.incomplete" if incomplete else "response.completed"
        return [*frames, self._event(kind, response=response)]

    def error(self, exc: BaseException) -> list[Frame]:
        body = openai_error_body(exc)["error"]
        if body["param"] == "messages":  # the chat layer's name of what is `input` here
            body["param"] = "input"
        code = spec_for(exc).code or body["type"]
        if self.open is not None:
            self.output[self.open.index] = {**self._partial(self.open), "status": "incomplete"}
            self.open = None
        failed = self.shell.build("failed", [o for o in self.output if o], self.usage,
                                  error={"code": code, "message": body["message"]})
        return [self._event("error", code=code, message=body["message"], param=body["param"], error=body),
                self._event("response.failed", response=failed)]

    def _partial(self, item: _Open) -> dict[str, Any]:
        if item.kind == "message":
            return message_item(item.item_id, item.text, status="incomplete", logprobs=item.logprobs)
        if item.kind == "reasoning":
            return reasoning_item(item.item_id, item.text, as_summary=self.summary, opaque=False, status="incomplete")
        return self.calls.item(item.item_id, item.call_id, item.name, item.text, status="incomplete")
