"""Neutral SDK events → Anthropic's stream events, in the order Anthropic documents.

message_start (usage with the prompt's input_tokens), then per content block
content_block_start / content_block_delta… / content_block_stop — one block per
thinking run (thinking_delta…, then a signature_delta just before its stop), text
run (text_delta) or tool call (input_json_delta) — a ping after the first block
starts, message_delta (stop_reason, stop_sequence, cumulative usage), message_stop.
An error after the stream began is an `error` event. The `anthropic` SDK's stream
accumulator and Claude Code build the final message from exactly these events.
"""

from __future__ import annotations

from typing import Any

from kronk.engine.types import Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from kronk.http_errors import anthropic_error_body
from kronk.sdk.requests import new_id
from kronk.server.anthropic.response import encode_usage, signature, stop_reason
from kronk.server.streaming import Frame


class MessagesStreamEncoder:
    """Choice 0 only: Messages has no `n`."""

    def __init__(self, model: str, input_tokens: int, *, show_thinking: bool = True) -> None:
        self.id = new_id("msg")
        self.model = model
        self.input_tokens = input_tokens
        self.show_thinking = show_thinking
        self.index = -1
        self.block: str | None = None
        """Type of the open content block: text, thinking or tool_use."""
        self.thinking: list[str] = []
        """The open thinking block's text, for its signature."""
        self.pinged = False
        self.usage: Usage | None = None
        self.reason: Any = "stop"
        self.stop_sequence: str | None = None

    @staticmethod
    def _event(kind: str, **payload: Any) -> Frame:
        return kind, {"type": kind, **payload}

    def start(self) -> list[Frame]:
        message: dict[str, Any] = {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0,
                      "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
        }
        return [self._event("message_start", message=message)]

    def _close(self) -> list[Frame]:
        if self.block is None:
            return []
        frames: list[Frame] = []
        if self.block == "thinking":
            frames.append(self._delta({"type": "signature_delta", "signature": signature("".join(self.thinking))}))
            self.thinking = []
        self.block = None
        frames.append(self._event("content_block_stop", index=self.index))
        return frames

    def _open(self, block: dict[str, Any]) -> list[Frame]:
        frames = self._close()
        self.index += 1
        self.block = block["type"]
        frames.append(self._event("content_block_start", index=self.index, content_block=block))
        if not self.pinged:
            self.pinged = True
            frames.append(self._event("ping"))
        return frames

    def _delta(self, delta: dict[str, Any]) -> Frame:
        return self._event("content_block_delta", index=self.index, delta=delta)

    def encode(self, event: Any) -> list[Frame]:
        if getattr(event, "choice", 0) != 0:
            return []
        frames: list[Frame] = []
        if isinstance(event, TextDelta):
            if not event.text:
                return []
            if self.block != "text":
                frames += self._open({"type": "text", "text": ""})
            frames.append(self._delta({"type": "text_delta", "text": event.text}))
        elif isinstance(event, ReasoningDelta):
            if self.block != "thinking":
                frames += self._open({"type": "thinking", "thinking": "", "signature": ""})
            self.thinking.append(event.text)
            if self.show_thinking and event.text:
                frames.append(self._delta({"type": "thinking_delta", "thinking": event.text}))
        elif isinstance(event, ToolCallDelta):
            if event.id is not None or self.block != "tool_use":
                frames += self._open({"type": "tool_use", "id": event.id or new_id("toolu"),
                                      "name": event.name or "", "input": {}})
            if event.arguments:
                frames.append(self._delta({"type": "input_json_delta", "partial_json": event.arguments}))
        elif isinstance(event, Finish):
            frames += self._close()
            self.usage, self.reason, self.stop_sequence = event.usage, event.reason, event.stop_sequence
        return frames

    def finish(self) -> list[Frame]:
        frames = self._close()
        if not self.pinged:
            frames.append(self._event("ping"))
        frames.append(self._event(
            "message_delta",
            delta={"stop_reason": stop_reason(self.reason, self.stop_sequence), "stop_sequence": self.stop_sequence},
            usage=self._final_usage(),
        ))
        frames.append(self._event("message_stop"))
        return frames

    def _final_usage(self) -> dict[str, Any]:
        """The usage the closing message_delta carries."""
        return encode_usage(self.usage or Usage(prompt_tokens=self.input_tokens))

    def error(self, exc: BaseException) -> list[Frame]:
        return [("error", anthropic_error_body(exc))]
