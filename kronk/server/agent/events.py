"""What the agent loop reports while it runs (`AgentLoop.stream`), in no API's wire shape.

Each API's handler turns these into its own progress (chat chunks' `kronk` field, Responses
`mcp_call` / `web_search_call` items, Anthropic `server_tool_use` blocks). In stream order:

- `ToolsDropped` (kronk.sdk.requests): at most once, first, when the first turn's tools did not
  all fit the context (so a handler can still put the header on the response).
- `ModelDelta(turn, delta, server)`: one engine delta of model turn `turn` (0-based): a
  `TextDelta`, `ReasoningDelta` or `ToolCallDelta`. `server` is True for the tool-call deltas of
  a call the loop will run itself (its name is a server tool's): a handler shows those as
  progress, not as the client's tool calls. The engine's `Finish` is not forwarded; see below.
- `TurnFinished(turn, reason, usage, server_calls, cut)`: the turn is over. `server_calls` are
  the calls the loop runs next (empty: this was the last turn). `reason` is the turn's finish
  reason as the client should see it ("stop" when only server calls were dropped). `cut` is True
  when `max_time` ended the turn mid-generation (its usage is then unknown, zero here).
- `CallStarted(turn, id, name, arguments, source, label)`: a server tool call begins.
- `CallFinished(call)`: it ended; `call.result` (`text`, `is_error`, `truncated`) is what the
  model sees next. A tool that failed is a result with `is_error`, never an exception.
- `LoopFinished(outcome)`: always last; `outcome.result` is the final turn with usage summed over
  every turn, `outcome.calls` every call, `outcome.stopped` None / "max_iterations" / "max_time".

Errors of a model turn (a bad request, the model unloading) propagate out of the generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

from kronk.engine.types import FinishReason, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from kronk.sdk.requests import ChatResult, ToolCall, ToolsDropped
from kronk.tools.host import ToolHost
from kronk.tools.types import ToolResult

Stopped = Literal["max_iterations", "max_time"]


@dataclass(slots=True)
class ServerCall:
    """One server tool call the loop ran, for the APIs' progress items/blocks."""

    id: str
    name: str
    arguments: str
    source: str
    """The tool's `ToolSpec.source`: "builtin", a configured server name, or a `connect_url` key."""
    result: ToolResult
    turn: int
    """Which model turn (0-based) made the call."""

    @property
    def label(self) -> str:
        """The server label people see (a `connect_url` key without its digest)."""
        return ToolHost.label_of(self.source)


@dataclass(slots=True)
class AgentOutcome:
    result: ChatResult
    """The last model turn (the answer, or client tool calls), with usage summed over every turn."""
    calls: list[ServerCall] = field(default_factory=list)
    turns: int = 0
    """Model turns whose server tool calls were run."""
    stopped: Stopped | None = None


@dataclass(frozen=True, slots=True)
class ModelDelta:
    turn: int
    delta: TextDelta | ReasoningDelta | ToolCallDelta
    server: bool = False
    """A tool-call delta of a server tool (the loop runs the call; not the client's)."""


@dataclass(frozen=True, slots=True)
class TurnFinished:
    turn: int
    reason: FinishReason
    usage: Usage
    server_calls: tuple[ToolCall, ...] = ()
    cut: bool = False


@dataclass(frozen=True, slots=True)
class CallStarted:
    turn: int
    id: str
    name: str
    arguments: str
    source: str
    label: str


@dataclass(frozen=True, slots=True)
class CallFinished:
    call: ServerCall

    @property
    def result(self) -> ToolResult:
        return self.call.result

    @property
    def is_error(self) -> bool:
        return self.call.result.is_error


@dataclass(frozen=True, slots=True)
class LoopFinished:
    outcome: AgentOutcome


AgentEvent = Union[ToolsDropped, ModelDelta, TurnFinished, CallStarted, CallFinished, LoopFinished]
