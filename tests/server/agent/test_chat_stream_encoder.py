"""The chat-completions chunks of a scripted agent run: plain chunks for the model's text and the
client's calls, server tool progress only in the `kronk` field, one finish_reason."""

from __future__ import annotations

import json
from typing import Any

from kronk.engine.types import TextDelta, ToolCallDelta, Usage
from kronk.sdk.requests import ChatChoice, ChatResult, ToolCall
from kronk.server.agent import CallFinished, CallStarted, LoopFinished, ModelDelta, ServerCall, TurnFinished
from kronk.server.agent.events import AgentOutcome
from kronk.server.meter import RequestMeter
from kronk.server.metrics import ServerMetrics
from kronk.server.openai.chat import ChatStreamEncoder
from kronk.server.openai.chat_server_tools import AgentChatStreamEncoder
from kronk.server.sse import encode_json
from kronk.tools.types import ToolResult


def chunks(events: list[Any]) -> list[dict[str, Any]]:
    encoder = AgentChatStreamEncoder(ChatStreamEncoder("m", include_usage=True), RequestMeter(ServerMetrics(), "m", "t"))
    frames = [*encoder.start()]
    for event in events:
        frames += encoder.encode(event)
    frames += encoder.finish()
    return [json.loads(data if isinstance(data, str) else encode_json(data)) for _, data in frames if data != "[DONE]"]


def test_server_progress_is_in_the_kronk_field_and_client_calls_are_renumbered() -> None:
    usage = Usage(prompt_tokens=50, completion_tokens=9)
    out = chunks([
        ModelDelta(0, TextDelta("Let me look. ")),
        ModelDelta(0, ToolCallDelta(0, id="s1", name="whoami"), True),
        ModelDelta(0, ToolCallDelta(0, arguments="{}"), True),
        TurnFinished(0, "tool_calls", Usage(prompt_tokens=20, completion_tokens=5), (ToolCall("s1", "whoami", "{}"),)),
        CallStarted(0, "s1", "whoami", "{}", "test#0123456789ab", "test"),
        CallFinished(ServerCall("s1", "whoami", "{}", "test#0123456789ab", ToolResult("Bob"), 0)),
        ModelDelta(1, ToolCallDelta(1, id="c1", name="client_fn")),
        ModelDelta(1, ToolCallDelta(1, arguments='{"x": 1}')),
        TurnFinished(1, "tool_calls", Usage(prompt_tokens=30, completion_tokens=4)),
        LoopFinished(AgentOutcome(ChatResult("m", [ChatChoice(0, None, "tool_calls")], usage), turns=1)),
    ])
    assert len({c["id"] for c in out}) == 1
    body = [c for c in out if c["choices"]]
    assert all(c["choices"][0]["index"] == 0 for c in body)
    progress = [c["kronk"] for c in out if "kronk" in c]
    assert [p["event"] for p in progress] == ["call_arguments.delta", "call_arguments.delta", "turn.finished",
                                              "call.started", "call.finished", "turn.finished", "done"]
    assert progress[0] == {"event": "call_arguments.delta", "turn": 0, "index": 0, "id": "s1", "name": "whoami",
                           "delta": ""}
    assert progress[4]["output"] == "Bob" and progress[4]["server"] == "test" and not progress[4]["is_error"]
    for c in out:  # progress chunks carry an empty delta, nothing a plain client would show
        if "kronk" in c:
            assert c["choices"][0]["delta"] == {}
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in body if "tool_calls" in c["choices"][0]["delta"]]
    assert [call["index"] for call in calls] == [0, 0] and calls[0]["function"]["name"] == "client_fn"
    finishes = [c["choices"][0]["finish_reason"] for c in body if c["choices"][0]["finish_reason"]]
    assert finishes == ["tool_calls"]
    assert out[-1]["choices"] == [] and out[-1]["usage"]["prompt_tokens"] == 50
