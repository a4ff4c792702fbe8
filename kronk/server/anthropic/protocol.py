"""An Anthropic Messages (or count_tokens) body → a ChatRequest, through one builder.

Both routes build the request here, so count_tokens counts exactly the prompt
/v1/messages would evaluate (system text, tools, thinking switch and all).

- thinking: `enabled` turns the model's thinking on (enable_thinking, as the OpenAI
  routes' switch) and `disabled` off. `adaptive` ("the model decides"; what Claude
  Code 2.1 sends by default), `between_tools` and an absent `thinking` keep the
  model's own default: a thinking model thinks, any other answers plainly (forcing
  thinking on a model without it makes it write a thinking block and nothing else).
  `budget_tokens` is accepted, not enforced. `display: "omitted"` sends thinking
  blocks without their text.
- output_config.effort → the chat template's `reasoning_effort` (xhigh/max as
  high); output_config.format (or the beta's `output_format`) → a JSON-schema
  constrained reply.
- max_tokens above the server's max_tokens_limit is lowered to it: Anthropic
  clients send a generous ceiling (Claude Code: 32000 or more), not a target.
- Server tools Kronk runs (web_search_20250305 with a search backend, web_fetch_20250910:
  `runnable`) and `mcp_servers` (Anthropic's MCP connector) are kept on the call for the
  agent loop (kronk.server.anthropic.server_run); other server tools are skipped.
- Everything else Kronk has no use for is ignored with a debug log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from kronk.sdk.requests import ChatRequest
from kronk.server.anthropic import schema as s
from kronk.server.anthropic.content import chat_messages
from kronk.server.anthropic.tools import plan_tools
from kronk.server.openai.protocol import Limits, sampling_params
from kronk.server.validate import Body
from kronk.wire import extras, parse

log = logging.getLogger("kronk.server.anthropic")

_EFFORT = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


@dataclass(slots=True)
class MessagesCall:
    request: ChatRequest
    stream: bool
    explicit: set[str]
    """Sampling fields the request set (model defaults fill the rest)."""
    ignored_tools: list[str] = field(default_factory=list)
    """Server tools that were skipped (the X-Kronk-Tools-Ignored header)."""
    show_thinking: bool = True
    """False for `thinking.display: "omitted"`: thinking blocks go out without their text."""
    server_tools: list[s.ToolDefinition] = field(default_factory=list)
    """Server tools Kronk runs for this request (web_search, web_fetch)."""
    mcp_servers: list[s.McpServerDefinition] = field(default_factory=list)
    mcp_toolsets: list[s.ToolDefinition] = field(default_factory=list)
    """`mcp_toolset` tools: which of an `mcp_servers` entry's tools are offered."""

    @property
    def agent(self) -> bool:
        """The request turns on server-side tools: the agent loop answers it."""
        return bool(self.server_tools or self.mcp_servers)


def parse_request(data: object, limits: Limits, *, count_only: bool = False,
                  ignored: list[str] | None = None, runnable: frozenset[str] = frozenset()) -> MessagesCall:
    """A /v1/messages body (or, with count_only, a count_tokens body) as a ChatRequest.

    `ignored` receives the names of skipped server tools as soon as they are known,
    so an error about the rest of the body can still name them. `runnable`: the server
    tool types this server runs (kronk.server.anthropic.server_tools.runnable_types).
    """
    if isinstance(data, Body):
        data = data.data
    body: s.CountTokensRequest = parse(s.CountTokensRequest if count_only else s.MessagesRequest, data)
    servers = list(body.mcp_servers or [])
    tools = plan_tools(body.tools, body.tool_choice, ignored if ignored is not None else [], runnable=runnable,
                       mcp_servers=tuple(server.name for server in servers))
    sampling, explicit = sampling_params(body)
    enable_thinking, show_thinking = _thinking(body.thinking)
    kwargs: dict[str, Any] = {}
    if body.output_config is not None and body.output_config.effort is not None:
        kwargs["reasoning_effort"] = _EFFORT[body.output_config.effort]
    max_tokens = None if body.max_tokens is None else min(body.max_tokens, limits.max_tokens)
    request = ChatRequest(
        messages=chat_messages(body.system, body.messages),
        model=body.model or None,
        tools=tools.tools,
        tool_choice=tools.tool_choice,
        parallel_tool_calls=tools.parallel,
        response_format=_response_format(body),
        sampling=sampling,
        max_tokens=max_tokens,
        stop=[stop for stop in body.stop_sequences or [] if stop],
        enable_thinking=enable_thinking,
        chat_template_kwargs=kwargs,
    )
    _log_ignored(body)
    return MessagesCall(request, body.stream and not count_only, explicit, tools.ignored, show_thinking,
                        tools.server, servers, tools.toolsets)


def _thinking(thinking: Any) -> tuple[bool | None, bool]:
    """(enable_thinking, show the thinking text)."""
    if thinking is None:
        return None, True
    if isinstance(thinking, s.ThinkingDisabled):
        return False, True
    enable = True if isinstance(thinking, s.ThinkingEnabled) else None
    return enable, thinking.display != "omitted"


def _response_format(body: s.CountTokensRequest) -> dict[str, Any] | None:
    fmt = body.output_config.format if body.output_config is not None else None
    fmt = fmt or body.output_format
    if fmt is None:
        return None
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt.schema_}}


def _log_ignored(body: s.CountTokensRequest) -> None:
    names = sorted(extras(body))
    if body.metadata is not None:
        names.append("metadata")
    if names:
        log.debug("ignoring Anthropic request fields Kronk has no use for: %s", ", ".join(names))
