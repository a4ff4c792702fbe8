"""The agent loop, API-neutral: model turn → server tool calls run here → results back → next turn.

The HTTP handlers (chat completions `kronk_tools`, ...) build the request's server tools from the
ToolHost, then call `AgentLoop.run` with a function that runs one model turn. The loop ends when
a turn has no server tool call (the model answered, or called a client tool: that goes back to
the client as usual), or at a limit: `max_iterations` tool turns (then one last turn with
tool_choice "none", so the model answers from what it got) or `max_time` (the last finished
turn is the answer). Either way the request finishes cleanly; `AgentOutcome.stopped` says why.

A tool that fails (timeout, refusal, bad arguments, MCP error) becomes a tool result with
`is_error` set that the model sees — never a failed request. Results are already size-capped by
the ToolHost. Usage is summed over every model turn.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from kronk.chat.request import ChatRequest
from kronk.engine.types import Usage
from kronk.errors import InvalidRequestError, KronkError
from kronk.sdk.requests import ChatChoice, ChatResult, ToolCall
from kronk.tools import ToolHost
from kronk.tools.types import ToolResult, ToolSpec

Turn = Callable[[ChatRequest], Awaitable[ChatResult]]
"""Runs one model turn (e.g. `lambda r: kronk.chat(r, explicit=...)`)."""
Stopped = Literal["max_iterations", "max_time"]


@dataclass(frozen=True, slots=True)
class AgentLimits:
    """Bounds of one request's loop (server settings `agent_max_iterations`, `agent_max_time`)."""

    max_iterations: int = 8
    """Model turns whose server tool calls are run."""
    max_time: float = 120.0
    """Seconds for the whole loop, model turns and tool calls together."""
    tool_timeout: float | None = None
    """Per-call limit (None: the ToolHost's); never more than the time left."""


@dataclass(slots=True)
class ServerCall:
    """One server tool call the loop ran, for the APIs' progress items/blocks."""

    id: str
    name: str
    arguments: str
    source: str
    result: ToolResult
    turn: int
    """Which model turn (0-based) made the call."""


@dataclass(slots=True)
class AgentOutcome:
    result: ChatResult
    """The last model turn (the answer, or client tool calls), with usage summed over every turn."""
    calls: list[ServerCall] = field(default_factory=list)
    turns: int = 0
    stopped: Stopped | None = None


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


class AgentLoop:
    """Runs one request's server tools between model turns."""

    def __init__(self, host: ToolHost, tools: list[ToolSpec], limits: AgentLimits | None = None) -> None:
        self.host = host
        self.tools = {tool.name: tool for tool in tools}
        self.limits = limits or AgentLimits()

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

    async def run(self, turn: Turn, request: ChatRequest) -> AgentOutcome:
        """Model turns until an answer, a client tool call or a limit."""
        request = self.offer(request)
        deadline = time.monotonic() + self.limits.max_time
        messages = list(request.messages)
        outcome = AgentOutcome(result=ChatResult(model=request.model or "", choices=[], usage=Usage()))
        usages: list[Usage] = []
        last: ChatResult | None = None
        while True:
            final = outcome.turns >= self.limits.max_iterations
            step = dataclasses.replace(request, messages=messages,
                                       tool_choice="none" if final else (request.tool_choice if outcome.turns == 0
                                                                         else "auto"))
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                    result = await turn(step)
            except TimeoutError:
                outcome.stopped = "max_time"
                break
            usages.append(result.usage)
            last = result
            choice = result.choices[0]
            server = [call for call in choice.tool_calls if call.name in self.tools]
            if final:
                outcome.stopped = "max_iterations"
            if final or not server or len(server) < len(choice.tool_calls):
                # An answer, or client tool calls: those go back to the client (server calls made in
                # the same turn are dropped — the client could not send their results back).
                if server:
                    choice.tool_calls = [call for call in choice.tool_calls if call.name not in self.tools]
                    if not choice.tool_calls:
                        choice.finish_reason = "stop"
                break
            outcome.turns += 1
            messages.append({"role": "assistant", "content": choice.content or "",
                             "tool_calls": [call.to_openai() for call in server]})
            for call in server:
                outcome.calls.append(done := await self._call(call, deadline, outcome.turns - 1))
                messages.append({"role": "tool", "tool_call_id": call.id, "name": call.name,
                                 "content": done.result.text})
            if time.monotonic() >= deadline:
                outcome.stopped = "max_time"
                break
        outcome.result = self._final(last, request, usages, outcome.stopped == "max_time")
        return outcome

    async def _call(self, call: ToolCall, deadline: float, turn: int) -> ServerCall:
        spec = self.tools[call.name]
        try:
            arguments = json.loads(call.arguments or "{}")
            if not isinstance(arguments, dict):
                raise ValueError("not an object")
        except ValueError:
            result = ToolResult(text=f"error: the arguments of {call.name} must be a JSON object", is_error=True)
        else:
            left = max(deadline - time.monotonic(), 0.001)
            timeout = min(self.limits.tool_timeout or left, left)
            try:
                result = await self.host.call(call.name, arguments, source=spec.source, timeout=timeout)
            except KronkError as exc:
                result = ToolResult(text=f"error: {exc}", is_error=True)
        return ServerCall(call.id, call.name, call.arguments, spec.source, result, turn)

    def _final(self, last: ChatResult | None, request: ChatRequest, usages: list[Usage], cut: bool) -> ChatResult:
        if last is None:
            last = ChatResult(model=request.model or "", choices=[ChatChoice(0, "", "stop")], usage=Usage())
        elif cut:
            # Out of time after tool calls: the last turn's text is the answer, its server calls are done.
            choice = last.choices[0]
            choice.tool_calls = [call for call in choice.tool_calls if call.name not in self.tools]
            if not choice.tool_calls:
                choice.finish_reason = "stop"
        last.usage = sum_usage(usages)
        return last
