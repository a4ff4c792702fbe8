"""The agent loop, API-neutral: model turn → server tool calls run here → results back → next turn.

The HTTP handlers (chat completions `kronk_tools`, Responses `mcp` tools, ...) build the
request's server tools from the ToolHost, then either consume `AgentLoop.stream` (typed events,
kronk.server.agent.events) or await `AgentLoop.run` (the same loop, only its outcome), giving a
function that streams one model turn (`lambda r: kronk.chat_stream(r, explicit=...)`).

The loop ends when a turn has no server tool call (the model answered, or called a client tool:
that goes back to the client as usual), or at a limit: `max_iterations` tool turns (then one last
turn without the server tools, tool_choice "none", so the model answers from what it got) or `max_time` (a turn cut
mid-way is the answer as far as it got, without tool calls). Either way the request finishes
cleanly; `AgentOutcome.stopped` says why.

A tool that fails (timeout, refusal, bad arguments, MCP error, a policy denial) becomes a tool
result with `is_error` set that the model sees — never a failed request. Results are already
size-capped by the ToolHost. Usage is summed over every model turn.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Protocol

from kronk.chat.request import ChatRequest
from kronk.engine.types import Event, Finish, ToolCallDelta, Usage
from kronk.errors import InvalidRequestError, KronkError
from kronk.sdk.collect import Choices
from kronk.sdk.requests import ChatChoice, ChatResult, ToolCall, ToolsDropped
from kronk.server.agent.events import (
    AgentEvent,
    AgentOutcome,
    CallFinished,
    CallStarted,
    LoopFinished,
    ModelDelta,
    ServerCall,
    Stopped,
    TurnFinished,
)
from kronk.tools.host import ToolHost
from kronk.tools.types import ToolResult, ToolSpec

__all__ = ["AgentLimits", "AgentLoop", "AgentOutcome", "Gate", "ServerCall", "Stopped", "StreamTurn", "ToolCaller",
           "sum_usage"]

StreamTurn = Callable[[ChatRequest], AsyncIterator[Event | ToolsDropped]]
"""Streams one model turn (e.g. `lambda r: kronk.chat_stream(r, explicit=...)`)."""
Gate = Callable[[ServerCall], Awaitable[ToolResult | None]]
"""Asked before each call runs (the security policy): a result to use instead (a denial), or None."""


class ToolCaller(Protocol):
    """What the loop calls tools through: the ToolHost, or a per-request wrapper around it."""

    async def call(self, name: str, arguments: dict[str, Any], *, source: str | None = None,
                   timeout: float | None = None) -> ToolResult: ...


@dataclass(frozen=True, slots=True)
class AgentLimits:
    """Bounds of one request's loop (server settings `agent_max_iterations`, `agent_max_time`)."""

    max_iterations: int = 8
    """Model turns whose server tool calls are run."""
    max_time: float = 120.0
    """Seconds for the whole loop, model turns and tool calls together."""
    tool_timeout: float | None = None
    """Per-call limit (None: the ToolHost's); never more than the time left."""


def sum_usage(usages: list[Usage]) -> Usage:
    """Usage of several sequential turns: every prompt and completion counted."""
    if not usages:
        return Usage()
    return Usage(
        prompt_tokens=sum(u.prompt_tokens for u in usages),
        completion_tokens=sum(u.completion_tokens for u in usages),
        cached_tokens=sum(u.cached_tokens for u in usages),
        reasoning_tokens=sum(u.reasoning_tokens for u in usages),
        time_to_first_token_ms=usages[0].time_to_first_token_ms,
        tokens_per_second=sum(u.tokens_per_second for u in usages) / len(usages),
        queue_wait_ms=sum(u.queue_wait_ms for u in usages),
    )


def _client_names(request: ChatRequest) -> set[str]:
    return {tool["function"]["name"] for tool in request.tools or [] if isinstance(tool.get("function"), dict)}


async def _next(events: AsyncIterator[Any], deadline: float) -> Any:
    """The next event, or TimeoutError past `deadline` (the scope holds no yield of the caller)."""
    async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
        return await anext(events)


class AgentLoop:
    """Runs one request's server tools between model turns."""

    def __init__(self, host: ToolCaller, tools: list[ToolSpec], limits: AgentLimits | None = None, *,
                 gate: Gate | None = None) -> None:
        self.host = host
        self.tools = {tool.name: tool for tool in tools}
        self.limits = limits or AgentLimits()
        self.gate = gate

    def offer(self, request: ChatRequest) -> ChatRequest:
        """The request with the server tools next to the client's; a name clash is a 400."""
        if request.n != 1:
            raise InvalidRequestError("server-side tools need n=1", param="n")
        clash = _client_names(request) & set(self.tools)
        if clash:
            raise InvalidRequestError(f"a client tool and a server-side tool share the name {sorted(clash)[0]!r}",
                                      param="tools")
        tools = [*(request.tools or []), *(spec.as_openai_function() for spec in self.tools.values())]
        choice = request.tool_choice
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
            if name not in _client_names(request) | set(self.tools):
                raise InvalidRequestError(f"tool_choice: names tool {name!r}, which is neither a client nor an "
                                          "offered server-side tool", param="tool_choice")
        return dataclasses.replace(request, tools=tools or None)

    async def run(self, turn: StreamTurn, request: ChatRequest) -> AgentOutcome:
        """The loop without its progress: model turns until an answer, a client tool call or a limit."""
        async with aclosing(self.stream(turn, request)) as events:
            async for event in events:
                if isinstance(event, LoopFinished):
                    return event.outcome
        raise AssertionError("the agent loop ended without LoopFinished")

    async def stream(self, turn: StreamTurn, request: ChatRequest) -> AsyncIterator[AgentEvent]:
        """The loop's events (kronk.server.agent.events), LoopFinished last."""
        client_tools = request.tools or None
        request = self.offer(request)
        deadline = time.monotonic() + self.limits.max_time
        messages = list(request.messages)
        outcome = AgentOutcome(result=ChatResult(model=request.model or "", choices=[], usage=Usage()))
        usages: list[Usage] = []
        dropped: list[str] = []
        index = 0
        while True:
            final = outcome.turns >= self.limits.max_iterations
            if final:
                # The last turn answers from what it got: no tools offered, so nothing is read as a call.
                step = dataclasses.replace(request, messages=messages, tool_choice="none", tools=client_tools)
            else:
                step = dataclasses.replace(request, messages=messages,
                                           tool_choice=request.tool_choice if index == 0 else "auto")
            choices, names, cut = Choices(), dict[int, str](), False
            async with aclosing(turn(step)) as events:
                while True:
                    try:
                        event = await _next(events, deadline)
                    except StopAsyncIteration:
                        break
                    except TimeoutError:
                        cut = True
                        break
                    if isinstance(event, ToolsDropped):
                        if index == 0:
                            dropped = event.names
                            yield event
                        continue
                    choices.add(event)
                    if isinstance(event, Finish):
                        continue
                    server = False
                    if isinstance(event, ToolCallDelta):
                        if event.name:
                            names[event.index] = event.name
                        server = names.get(event.index) in self.tools
                    yield ModelDelta(index, event, server)
            usage = Usage() if cut else choices.usage
            usages.append(usage)
            last = ChatResult(model=request.model or "", choices=choices.chat(logprobs=request.logprobs) or
                              [ChatChoice(0, "", "stop")], usage=usage, tools_dropped=dropped)
            choice = last.choices[0]
            if cut:
                outcome.stopped = "max_time"
                choice.tool_calls, choice.finish_reason = [], "stop"
            server_calls = [call for call in choice.tool_calls if call.name in self.tools]
            if final:
                outcome.stopped = "max_iterations"
            ends = cut or final or not server_calls or len(server_calls) < len(choice.tool_calls)
            if ends:
                # An answer, or client tool calls: those go back to the client (server calls made in
                # the same turn are dropped — the client could not send their results back).
                _drop_server_calls(choice, self.tools)
            yield TurnFinished(index, choice.finish_reason, usage, () if ends else tuple(server_calls), cut)
            if ends:
                break
            outcome.turns += 1
            messages.append({"role": "assistant", "content": choice.content or "",
                             "tool_calls": [call.to_openai() for call in server_calls]})
            for call in server_calls:
                spec = self.tools[call.name]
                yield CallStarted(index, call.id, call.name, call.arguments, spec.source, ToolHost.label_of(spec.source))
                done = await self._call(call, deadline, index)
                outcome.calls.append(done)
                yield CallFinished(done)
                messages.append({"role": "tool", "tool_call_id": call.id, "name": call.name,
                                 "content": done.result.text})
            index += 1
            if time.monotonic() >= deadline:
                # Out of time after tool calls: the last turn's text is the answer, its server calls are done.
                outcome.stopped = "max_time"
                _drop_server_calls(choice, self.tools)
                break
        last.usage = sum_usage(usages)
        outcome.result = last
        yield LoopFinished(outcome)

    async def _call(self, call: ToolCall, deadline: float, turn: int) -> ServerCall:
        spec = self.tools[call.name]
        done = ServerCall(call.id, call.name, call.arguments, spec.source, ToolResult(text=""), turn)
        try:
            arguments = json.loads(call.arguments or "{}")
            if not isinstance(arguments, dict):
                raise ValueError("not an object")
        except ValueError:
            done.result = ToolResult(text=f"error: the arguments of {call.name} must be a JSON object", is_error=True)
            return done
        denied = await self.gate(done) if self.gate is not None else None
        if denied is not None:
            done.result = denied
            return done
        left = max(deadline - time.monotonic(), 0.001)
        timeout = min(self.limits.tool_timeout or left, left)
        try:
            done.result = await self.host.call(call.name, arguments, source=spec.source, timeout=timeout)
        except KronkError as exc:
            done.result = ToolResult(text=f"error: {exc}", is_error=True)
        return done


def _drop_server_calls(choice: ChatChoice, tools: dict[str, ToolSpec]) -> None:
    """The choice as the client sees it: only its own tool calls; "stop" when none are left."""
    if any(call.name in tools for call in choice.tool_calls):
        choice.tool_calls = [call for call in choice.tool_calls if call.name not in tools]
        if not choice.tool_calls:
            choice.finish_reason = "stop"
