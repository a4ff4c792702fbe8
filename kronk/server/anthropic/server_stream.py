"""The agent loop's events → Anthropic stream events: the model's blocks and the server's, in order.

`AgentStreamEncoder` is MessagesStreamEncoder fed the loop's events (kronk.server.agent.events):

- the model's deltas go out as usual (text, thinking, the custom tools' tool_use), except the
  deltas of a server tool call, which the loop runs itself;
- `CallStarted` → the call's use block (`server_tool_use` or `mcp_tool_use`): content_block_start
  with an empty `input`, one input_json_delta with the arguments, content_block_stop — as
  Anthropic streams them;
- `CallFinished` → its result block: content_block_start carrying the whole result, then stop;
- `LoopFinished` → the message_delta: the last turn's stop reason, usage summed over every turn
  with `server_tool_use` (the web_search / web_fetch requests made).

Indexes run on across the model turns. `collect` folds the same frames into the non-streamed
message, so both answers hold the same blocks.
"""

from __future__ import annotations

import json
from typing import Any

from kronk.engine.types import Usage
from kronk.server.agent import CallFinished, CallStarted, LoopFinished, ModelDelta, ServerCall
from kronk.server.anthropic.response import encode_usage, tool_input
from kronk.server.anthropic.server_blocks_out import result_block, use_block
from kronk.server.anthropic.server_tools import OfferedTool
from kronk.server.anthropic.stream import MessagesStreamEncoder
from kronk.server.meter import RequestMeter
from kronk.server.streaming import Frame
from kronk.tools.types import ToolResult


def server_usage(usage: Usage, requests: dict[str, int]) -> dict[str, Any]:
    """Anthropic's usage of a request with server tools: every model turn, and the tool requests made."""
    return {**encode_usage(usage), "server_tool_use": {"web_search_requests": requests.get("web_search", 0),
                                                       "web_fetch_requests": requests.get("web_fetch", 0)}}


class AgentStreamEncoder(MessagesStreamEncoder):
    def __init__(self, model: str, input_tokens: int, tools: dict[str, OfferedTool], requests: dict[str, int], *,
                 show_thinking: bool = True, meter: RequestMeter | None = None, streamed: bool = True) -> None:
        super().__init__(model, input_tokens, show_thinking=show_thinking)
        self.tools = tools
        self.requests = requests
        """The request's live web_search / web_fetch counts (RequestTools.requests)."""
        self.meter = meter
        """Counts the summed usage once the loop ends (the loop forwards no engine Finish)."""
        self.streamed = streamed

    def encode(self, event: Any) -> list[Frame]:
        if isinstance(event, ModelDelta):
            return [] if event.server else super().encode(event.delta)
        if isinstance(event, CallStarted):
            call = ServerCall(event.id, event.name, event.arguments, event.source, ToolResult(text=""), event.turn)
            use = use_block(call, self.tools[event.name])
            frames = self._open({**use, "input": {}})
            if use["input"]:
                # The parsed input, re-encoded: what the client accumulates must be valid JSON, as in the message.
                frames.append(self._delta({"type": "input_json_delta",
                                           "partial_json": json.dumps(use["input"], ensure_ascii=False)}))
            return frames + self._close()
        if isinstance(event, CallFinished):
            return self._open(result_block(event.call, self.tools[event.call.name])) + self._close()
        if isinstance(event, LoopFinished):
            frames = self._close()
            choice = event.outcome.result.choices[0]
            self.usage, self.reason, self.stop_sequence = (event.outcome.result.usage, choice.finish_reason,
                                                           choice.stop_sequence)
            if self.meter is not None:
                self.meter.on_usage(self.usage, streamed=self.streamed)
            return frames
        return []  # TurnFinished: the turn's open block closes when the next one opens

    def _final_usage(self) -> dict[str, Any]:
        """Every model turn's usage, with the server tool requests counted."""
        return server_usage(self.usage or Usage(prompt_tokens=self.input_tokens), self.requests)


def collect(frames: list[Frame]) -> dict[str, Any]:
    """The message the stream events describe (what a client's accumulator builds from them)."""
    message: dict[str, Any] = {}
    inputs: dict[int, str] = {}
    for _name, event in frames:
        kind = event["type"]
        if kind == "message_start":
            message = dict(event["message"])
            message["content"] = []
        elif kind == "content_block_start":
            message["content"].append(dict(event["content_block"]))
        elif kind == "content_block_delta":
            block, delta = message["content"][event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                inputs[event["index"]] = inputs.get(event["index"], "") + delta["partial_json"]
        elif kind == "message_delta":
            message.update(event["delta"])
            message["usage"] = event["usage"]
    for index, text in inputs.items():
        message["content"][index]["input"] = tool_input(text)
    return message
