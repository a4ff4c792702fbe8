"""Anthropic tool definitions and tool_choice → the SDK's OpenAI function tools.

Custom tools (no `type`, or `custom`) become function tools. The server tools Kronk
runs (`runnable`: web_search_20250305 with a search backend, web_fetch_20250910; see
kronk.server.anthropic.server_tools) and, in a request with `mcp_servers`, its
`mcp_toolset` entries are kept aside for the agent loop. Other server
tools (`bash_*`, `text_editor_*`, `computer_*`, `code_execution_*`, `memory_*`,
`tool_search_*`, `mcp_toolset`, web_search without a backend ...) are Anthropic running
code on its side; Kronk does not run them, so they are skipped — one warning per tool
name per process, their names in the response's X-Kronk-Tools-Ignored header — and the
rest of the request goes on. Only where the client requires a skipped tool (tool_choice
names it, or asks for `any` tool and only skipped ones exist) is the request refused,
naming the tool.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from kronk.errors import CapabilityError, InvalidRequestError
from kronk.server.anthropic import schema as s
from kronk.server.anthropic.server_tools import SEARCH_BACKEND_HINT, SERVER_TOOL_TYPES, check_definition

log = logging.getLogger("kronk.server.anthropic")

_warned: set[str] = set()
"""Skipped tool names already warned about (a client sends the same tools with every request)."""
_MAX_WARNED = 256
"""Names are client input: past this many, skips are logged at debug level only."""


@dataclass(slots=True)
class ToolPlan:
    tools: list[dict[str, Any]] | None
    """OpenAI function tools for the SDK; None when there are none."""
    tool_choice: str | dict[str, Any] = "auto"
    parallel: bool = True
    ignored: list[str] = field(default_factory=list)
    """Names of the server tools that were skipped."""
    server: list[s.ToolDefinition] = field(default_factory=list)
    """Server tools Kronk runs (the agent loop offers them)."""
    toolsets: list[s.ToolDefinition] = field(default_factory=list)
    """`mcp_toolset` entries configuring the request's `mcp_servers`."""


def plan_tools(definitions: list[s.ToolDefinition] | None, choice: Any, ignored: list[str], *,
               runnable: frozenset[str] = frozenset(), mcp_servers: tuple[str, ...] = ()) -> ToolPlan:
    """Function tools, the SDK's tool_choice and parallel flag; skipped tools' names go to `ignored` first.

    `runnable`: the server tool types Kronk runs here; `mcp_servers`: the names of the request's MCP
    servers, whose tools a named tool_choice may name (the agent loop checks those names once they
    are listed) and whose `mcp_toolset` entries are kept.
    """
    mcp = bool(mcp_servers)
    tools: list[dict[str, Any]] = []
    server: list[s.ToolDefinition] = []
    toolsets: list[s.ToolDefinition] = []
    for i, definition in enumerate(definitions or []):
        if definition.custom:
            tools.append(_function(definition))
        elif definition.type == "mcp_toolset" and mcp:
            where = f"tools[{i}].mcp_server_name"
            if definition.mcp_server_name not in mcp_servers:
                raise InvalidRequestError(f"{where}: {definition.mcp_server_name!r} is not the name of an "
                                          "mcp_servers entry", param=where)
            if any(t.mcp_server_name == definition.mcp_server_name for t in toolsets):
                raise InvalidRequestError(f"{where}: {definition.mcp_server_name!r} has two mcp_toolset entries",
                                          param=where)
            toolsets.append(definition)
        elif definition.type in runnable:
            check_definition(definition, f"tools[{i}]")
            server.append(definition)
        else:
            ignored.append(_skip(definition))
    names = [t["function"]["name"] for t in tools]
    server_names = [str(d.name) for d in server]
    if len(set(names + server_names)) != len(names) + len(server_names):
        raise InvalidRequestError("tools: tool names must be unique", param="tools")
    plan = ToolPlan(tools or None, ignored=ignored, server=server, toolsets=toolsets)
    if choice is None or isinstance(choice, s.ToolChoiceNone):
        plan.tool_choice = "auto" if choice is None else "none"
        return plan
    plan.parallel = not choice.disable_parallel_tool_use
    if isinstance(choice, s.ToolChoiceAuto):
        return plan
    if isinstance(choice, s.ToolChoiceAny):
        if not tools and not server and not mcp:
            if any(d.type in SERVER_TOOL_TYPES for d in definitions or []):
                raise CapabilityError(f"tool_choice: 'any' needs a tool Kronk can run; {SEARCH_BACKEND_HINT}",
                                      param="tool_choice")
            if ignored:
                raise CapabilityError(f"tool_choice: 'any' needs a tool Kronk can run; {', '.join(ignored)} "
                                      "are server tools, which Kronk does not run", param="tool_choice")
            raise InvalidRequestError("tool_choice: 'any' needs at least one tool in tools", param="tool_choice")
        plan.tool_choice = "required"
        return plan
    if choice.name in names or choice.name in server_names or (mcp and choice.name not in ignored):
        plan.tool_choice = {"type": "function", "function": {"name": choice.name}}
        return plan
    if choice.name == "web_search" and any(d.type == "web_search_20250305" for d in definitions or []):
        raise CapabilityError(f"tool_choice: names 'web_search'; {SEARCH_BACKEND_HINT}", param="tool_choice.name")
    if choice.name in ignored:
        raise CapabilityError(f"tool_choice: names {choice.name!r}, a server tool Kronk does not run yet; "
                              "define it as a custom tool with an input_schema and run it in the client",
                              param="tool_choice.name")
    raise InvalidRequestError(f"tool_choice: names tool {choice.name!r}, which is not in tools",
                              param="tool_choice.name")


def _function(definition: s.ToolDefinition) -> dict[str, Any]:
    function: dict[str, Any] = {"name": definition.name, "parameters": definition.input_schema}
    if definition.description:
        function["description"] = definition.description
    if definition.strict is not None:
        function["strict"] = definition.strict
    return {"type": "function", "function": function}


def _skip(definition: s.ToolDefinition) -> str:
    name = definition.name or definition.mcp_server_name or str(definition.type)
    if name not in _warned and len(_warned) < _MAX_WARNED:
        _warned.add(name)
        if definition.type in SERVER_TOOL_TYPES:
            log.warning("skipping tool %r: %s", name, SEARCH_BACKEND_HINT)
        else:
            log.warning("skipping tool %r: %s is a server tool, which Kronk does not run", name, definition.type)
    else:
        log.debug("skipping server tool %r (%s)", name, definition.type)
    return name
