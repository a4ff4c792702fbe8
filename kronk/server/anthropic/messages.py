"""POST /v1/messages and /v1/messages/count_tokens (Anthropic Messages API).

The stream follows Anthropic's event sequence exactly: message_start,
content_block_start, ping, content_block_delta…, content_block_stop (one block per
thinking run, text run or tool call), message_delta (stop_reason + usage),
message_stop; an error after the stream began is an `error` event.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kronk.engine.types import Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from kronk.sdk.requests import new_id
from kronk.server.anthropic import protocol as ap
from kronk.server.errors import anthropic_error_body
from kronk.server.keys import KRONK, METRICS, SETTINGS
from kronk.server.meter import RequestMeter
from kronk.server.openai.protocol import Limits
from kronk.server.respond import json_response, tools_dropped_headers
from kronk.server.streaming import Frame, stream_response
from kronk.server.validate import Body, read_json


class MessagesStreamEncoder:
    """Neutral events → Anthropic stream events (choice 0 only; Messages has no `n`)."""

    def __init__(self, model: str, input_tokens: int) -> None:
        self.id = new_id("msg")
        self.model = model
        self.input_tokens = input_tokens
        self.index = -1
        self.block: str | None = None
        """Type of the open content block: text, thinking or tool_use."""
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
        self.block = None
        return [self._event("content_block_stop", index=self.index)]

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
        usage = ap.encode_usage(self.usage or Usage(prompt_tokens=self.input_tokens))
        frames.append(self._event(
            "message_delta",
            delta={"stop_reason": ap.stop_reason(self.reason, self.stop_sequence),
                   "stop_sequence": self.stop_sequence},
            usage=usage,
        ))
        frames.append(self._event("message_stop"))
        return frames

    def error(self, exc: BaseException) -> list[Frame]:
        return [("error", anthropic_error_body(exc))]


async def messages(request: web.Request) -> web.StreamResponse:
    settings, kronk = request.app[SETTINGS], request.app[KRONK]
    body = Body(await read_json(request, settings.max_body_size))
    call = ap.parse_request(body, Limits.from_settings(settings))
    model = call.request.model or settings.default_model
    meter = RequestMeter(request.app[METRICS], model, "messages")
    if call.stream:
        input_tokens = len(await kronk.tokenize_chat(call.request))
        encoder = MessagesStreamEncoder(model, input_tokens)
        return await stream_response(request, kronk.chat_stream(call.request, explicit=call.explicit), encoder, meter)
    result = await kronk.chat(call.request, explicit=call.explicit)
    meter.on_usage(result.usage)
    return json_response(ap.encode_message(result), headers=tools_dropped_headers(result.tools_dropped))


async def count_tokens(request: web.Request) -> web.Response:
    settings, kronk = request.app[SETTINGS], request.app[KRONK]
    body = Body(await read_json(request, settings.max_body_size))
    call = ap.parse_request(body, Limits.from_settings(settings), require_max_tokens=False)
    tokens = await kronk.tokenize_chat(call.request)
    return json_response({"input_tokens": len(tokens)})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
