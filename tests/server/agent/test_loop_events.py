"""AgentLoop.stream's event order and AgentLoop.run's outcome, with scripted model turns.

The model turns here are scripted engine events (the loop's logic is what is under test; the
end-to-end tests drive it with SmolLM2); tools run through a recording caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from kronk.chat.request import ChatRequest
from kronk.engine.types import Event, Finish, TextDelta, ToolCallDelta, Usage
from kronk.sdk.requests import ToolsDropped
from kronk.server.agent import (
    AgentLimits,
    AgentLoop,
    CallFinished,
    CallStarted,
    LoopFinished,
    ModelDelta,
    ServerCall,
    TurnFinished,
)
from kronk.tools.types import ToolResult, ToolSpec

LOOKUP = ToolSpec("lookup", "Look a word up.", {"type": "object", "properties": {"word": {"type": "string"}}},
                  source="dict#0123456789ab")
CLIENT = {"type": "function", "function": {"name": "client_fn", "parameters": {"type": "object"}}}


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], str | None]] = []

    async def call(self, name: str, arguments: dict[str, Any], *, source: str | None = None,
                   timeout: float | None = None) -> ToolResult:
        self.calls.append((name, arguments, source))
        return ToolResult(text=f"{arguments.get('word')} means llama")


def call_turn(name: str, arguments: str, prompt: int = 10) -> list[Event | ToolsDropped]:
    return [ToolCallDelta(0, id=f"call_{name}", name=name), ToolCallDelta(0, arguments=arguments),
            Finish("tool_calls", Usage(prompt_tokens=prompt, completion_tokens=5))]


def text_turn(text: str, prompt: int = 30) -> list[Event | ToolsDropped]:
    return [TextDelta(text), Finish("stop", Usage(prompt_tokens=prompt, completion_tokens=3))]


class Script:
    """Model turns from a list; records each turn's request."""

    def __init__(self, *turns: list[Event | ToolsDropped], delay: float = 0.0) -> None:
        self.turns = list(turns)
        self.requests: list[ChatRequest] = []
        self.delay = delay

    def __call__(self, request: ChatRequest) -> AsyncIterator[Event | ToolsDropped]:
        self.requests.append(request)
        events = self.turns.pop(0)

        async def gen() -> AsyncIterator[Event | ToolsDropped]:
            for event in events:
                if self.delay:
                    await asyncio.sleep(self.delay)
                yield event
        return gen()


def ask(**kwargs: Any) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": "what is a lama?"}], **kwargs)


async def collect(loop: AgentLoop, script: Script, request: ChatRequest) -> list[Any]:
    return [event async for event in loop.stream(script, request)]


async def test_a_server_call_then_an_answer_in_order() -> None:
    host = Recorder()
    script = Script(call_turn("lookup", '{"word": "lama"}'), text_turn("A llama."))
    events = await collect(AgentLoop(host, [LOOKUP]), script, ask())
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["ModelDelta", "ModelDelta", "TurnFinished", "CallStarted", "CallFinished", "ModelDelta",
                     "TurnFinished", "LoopFinished"]
    assert all(e.server for e in events[:2]) and not events[5].server
    first = events[2]
    assert isinstance(first, TurnFinished) and first.turn == 0 and [c.name for c in first.server_calls] == ["lookup"]
    started = events[3]
    assert isinstance(started, CallStarted)
    assert (started.id, started.name, started.arguments, started.source, started.label) == (
        "call_lookup", "lookup", '{"word": "lama"}', "dict#0123456789ab", "dict")
    finished = events[4]
    assert isinstance(finished, CallFinished) and finished.result.text == "lama means llama" and not finished.is_error
    assert host.calls == [("lookup", {"word": "lama"}, "dict#0123456789ab")]
    # the second turn saw the call and its result
    second = script.requests[1].messages
    assert second[-2]["tool_calls"][0]["function"]["name"] == "lookup"
    assert second[-1] == {"role": "tool", "tool_call_id": "call_lookup", "name": "lookup", "content": "lama means llama"}
    done = events[-1]
    assert isinstance(done, LoopFinished)
    outcome = done.outcome
    assert outcome.turns == 1 and outcome.stopped is None and outcome.result.choices[0].content == "A llama."
    assert outcome.result.usage.prompt_tokens == 40 and outcome.result.usage.completion_tokens == 8
    assert [c.label for c in outcome.calls] == ["dict"]


async def test_run_is_the_same_loop() -> None:
    script = Script(call_turn("lookup", '{"word": "x"}'), text_turn("done"))
    outcome = await AgentLoop(Recorder(), [LOOKUP]).run(script, ask())
    assert outcome.turns == 1 and outcome.result.choices[0].content == "done"
    assert isinstance(outcome.calls[0], ServerCall) and outcome.calls[0].result.text == "x means llama"


async def test_bad_arguments_and_gate_denials_are_error_results() -> None:
    host = Recorder()

    async def deny(call: ServerCall) -> ToolResult | None:
        return ToolResult(text=f"denied: {call.name}", is_error=True) if call.arguments == '{"word": "no"}' else None

    script = Script(call_turn("lookup", "[1]"), call_turn("lookup", '{"word": "no"}'), text_turn("ok"))
    outcome = await AgentLoop(host, [LOOKUP], gate=deny).run(script, ask())
    assert [(c.result.is_error, c.result.text) for c in outcome.calls] == [
        (True, "error: the arguments of lookup must be a JSON object"), (True, "denied: lookup")]
    assert host.calls == []


async def test_client_calls_go_back_and_server_calls_of_that_turn_are_dropped() -> None:
    turn = [ToolCallDelta(0, id="c1", name="client_fn"), ToolCallDelta(0, arguments="{}"),
            ToolCallDelta(1, id="c2", name="lookup"), ToolCallDelta(1, arguments="{}"),
            Finish("tool_calls", Usage(prompt_tokens=5))]
    events = await collect(AgentLoop(Recorder(), [LOOKUP]), Script(turn), ask(tools=[CLIENT]))
    deltas = [e for e in events if isinstance(e, ModelDelta)]
    assert [d.server for d in deltas] == [False, False, True, True]
    outcome = events[-1].outcome
    assert [c.name for c in outcome.result.choices[0].tool_calls] == ["client_fn"]
    assert outcome.result.choices[0].finish_reason == "tool_calls" and outcome.calls == []


async def test_iteration_limit_makes_a_last_turn_without_tools() -> None:
    script = Script(call_turn("lookup", "{}"), text_turn("answer"))
    outcome = await AgentLoop(Recorder(), [LOOKUP], AgentLimits(max_iterations=1)).run(script, ask())
    assert outcome.stopped == "max_iterations" and outcome.turns == 1
    assert script.requests[1].tool_choice == "none" and script.requests[1].tools is None
    assert [t["function"]["name"] for t in script.requests[0].tools] == ["lookup"]
    assert outcome.result.choices[0].content == "answer"


async def test_time_limit_cuts_a_turn_and_ends_cleanly() -> None:
    script = Script(text_turn("never finished " * 5), delay=0.2)
    events = await collect(AgentLoop(Recorder(), [LOOKUP], AgentLimits(max_time=0.05)), script, ask())
    finished = [e for e in events if isinstance(e, TurnFinished)]
    assert len(finished) == 1 and finished[0].cut and finished[0].reason == "stop"
    outcome = events[-1].outcome
    assert outcome.stopped == "max_time" and outcome.result.choices[0].finish_reason == "stop"


async def test_tools_dropped_passes_first() -> None:
    script = Script([ToolsDropped(["client_fn"]), *text_turn("hi")])
    events = await collect(AgentLoop(Recorder(), [LOOKUP]), script, ask())
    assert isinstance(events[0], ToolsDropped)
    assert events[-1].outcome.result.tools_dropped == ["client_fn"]
