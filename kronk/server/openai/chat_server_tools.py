"""Chat completions with `kronk_tools`: how the agent loop's answer is encoded (docs/tools.md).

Non-streamed, the answer carries the server tool turns in a `kronk_tools` field. Streamed, the
model's text (every turn's) and the client's own tool calls are ordinary chunks, so a plain
OpenAI client reads the stream as usual; server tool progress rides in a `kronk` field on
chunks whose choice delta is empty:

    {"kronk": {"event": "call_arguments.delta", "turn": 0, "index": 0, "id": "...", "name": "...",
               "delta": "{\\"url\\""}}
    {"kronk": {"event": "call.started", "turn": 0, "id": "...", "name": "web_fetch", "server": "builtin",
               "arguments": "{...}"}}
    {"kronk": {"event": "call.finished", "turn": 0, "id": "...", "name": "web_fetch", "server": "builtin",
               "output": "...", "is_error": false, "truncated": false}}
    {"kronk": {"event": "turn.finished", "turn": 0, "usage": {...}}}
    {"kronk": {"event": "done", "turns": 1, "stopped": null}}   (on the chunk with the finish_reason)
"""

from __future__ import annotations

from typing import Any

from kronk.engine.types import ToolCallDelta
from kronk.server import agent
from kronk.server.meter import RequestMeter
from kronk.server.openai import protocol as p
from kronk.server.streaming import Frame


def encode_server_turns(outcome: agent.AgentOutcome) -> dict[str, Any]:
    """The chat completion's `kronk_tools` field: each server tool call and why the loop ended."""
    return {
        "calls": [{"id": c.id, "turn": c.turn, "name": c.name, "server": c.label,
                   "arguments": c.arguments, "output": c.result.text, "is_error": c.result.is_error,
                   "truncated": c.result.truncated} for c in outcome.calls],
        "turns": outcome.turns,
        "stopped": outcome.stopped,
    }


class AgentChatStreamEncoder:
    """Agent events as `chat.completion.chunk`s: the model's deltas through the plain chat encoder,
    server tool progress in the `kronk` field, one finish_reason (the loop's) at the end."""

    def __init__(self, chat: Any, meter: RequestMeter) -> None:
        self.chat = chat
        """The plain ChatStreamEncoder (one id and `created` across every turn)."""
        self.meter = meter
        self._client_index: dict[tuple[int, int], int] = {}
        self._server_calls: dict[tuple[int, int], tuple[str | None, str | None]] = {}

    def start(self) -> list[Frame]:
        return self.chat.start()

    def _progress(self, extension: dict[str, Any], finish: str | None = None) -> Frame:
        frame = self.chat._chunk(0, {}, finish=finish)
        frame[1]["kronk"] = extension
        return frame

    def encode(self, event: agent.AgentEvent) -> list[Frame]:
        if isinstance(event, agent.ModelDelta):
            delta = event.delta
            if not isinstance(delta, ToolCallDelta):
                return self.chat.encode(delta)
            key = (event.turn, delta.index)
            if event.server:
                known = self._server_calls.setdefault(key, (delta.id, delta.name))
                return [self._progress({"event": "call_arguments.delta", "turn": event.turn, "index": delta.index,
                                        "id": known[0], "name": known[1], "delta": delta.arguments})]
            # A client call: numbered among the client's calls (server calls of the turn left out).
            index = self._client_index.setdefault(key, len(self._client_index))
            return self.chat.encode(ToolCallDelta(index, delta.arguments, delta.id, delta.name, delta.choice))
        if isinstance(event, agent.CallStarted):
            return [self._progress({"event": "call.started", "turn": event.turn, "id": event.id, "name": event.name,
                                    "server": event.label, "arguments": event.arguments})]
        if isinstance(event, agent.CallFinished):
            call = event.call
            return [self._progress({"event": "call.finished", "turn": call.turn, "id": call.id, "name": call.name,
                                    "server": call.label, "output": call.result.text,
                                    "is_error": call.result.is_error, "truncated": call.result.truncated})]
        if isinstance(event, agent.TurnFinished):
            self.meter.on_usage(event.usage, streamed=True)
            return [self._progress({"event": "turn.finished", "turn": event.turn, "cut": event.cut,
                                    "usage": p.encode_usage(event.usage)})]
        if isinstance(event, agent.LoopFinished):
            outcome = event.outcome
            self.chat.usages[0] = outcome.result.usage
            finish = p.finish_reason(outcome.result.choices[0].finish_reason)
            return [self._progress({"event": "done", "turns": outcome.turns, "stopped": outcome.stopped}, finish)]
        return []

    def finish(self) -> list[Frame]:
        return self.chat.finish()

    def error(self, exc: BaseException) -> list[Frame]:
        return self.chat.error(exc)
