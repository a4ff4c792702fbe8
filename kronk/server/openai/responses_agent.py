"""Responses with `mcp` / `web_search` tools: Kronk runs them between model turns (docs/tools.md).

The agent loop (kronk.server.agent) answers the request; its events become Responses output
items in OpenAI's shapes, streamed or in the final Response object (the non-streamed answer is
the same encoder's result, so both carry the same items):

- `mcp_list_tools` first, one per `mcp` tool: the server's tools as offered (after allowed_tools);
- `mcp_call` per MCP tool call: `arguments`, `output`, `error` (an `mcp_tool_execution_error`
  holding the message when the call failed), status completed / failed / incomplete;
- `web_search_call` per web_search call (action `search` with the query) or web_fetch call
  (action `open_page` with the URL), status completed / failed;
- the model's messages, reasoning and client tool calls as usual, every turn's, in order.

Stream events, each with its sequence number: `response.mcp_list_tools.in_progress` /
`.completed`; `response.mcp_call.in_progress`, `response.mcp_call_arguments.delta` / `.done`,
`response.mcp_call.completed` / `.failed`; `response.web_search_call.in_progress` /
`.searching` / `.completed`; each item between `response.output_item.added` and `.done`.
Usage sums every model turn.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kronk.engine.types import ToolCallDelta
from kronk.errors import InvalidRequestError
from kronk.sdk.requests import ChatRequest, new_id
from kronk.security.endpoints import Endpoint
from kronk.security.middleware import require_grant
from kronk.server.agent import (
    AgentEvent,
    AgentLoop,
    CallFinished,
    CallStarted,
    LoopFinished,
    ModelDelta,
    TurnFinished,
)
from kronk.server.agent.defaults import ModelTools
from kronk.server.agent.policy import policy_gate
from kronk.server.agent.select import Listing, McpRequest, builtin_tools, limits_of, list_servers
from kronk.server.keys import KRONK
from kronk.server.meter import RequestMeter
from kronk.server.openai import responses_schema as s
from kronk.server.openai.responses_items import CallItems
from kronk.server.openai.responses_stream import ResponsesStreamEncoder
from kronk.server.respond import json_response, tools_dropped_headers
from kronk.server.streaming import Frame, stream_response
from kronk.server.tools_host import TOOLS
from kronk.tools.host import ToolHost
from kronk.tools.types import BUILTIN, ToolSpec

WEB_BUILTINS = ["web_search", "web_fetch"]
"""What a `web_search` tool offers: search (with a backend) and open_page (web_fetch)."""


def mcp_requests(servers: list[tuple[s.McpTool, str]]) -> list[McpRequest]:
    out = []
    for tool, where in servers:
        headers = dict(tool.headers or {})
        if tool.authorization and not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = f"Bearer {tool.authorization}"
        allowed = tool.allowed_tools
        names = allowed.tool_names if isinstance(allowed, s.McpToolFilter) else allowed
        out.append(McpRequest(tool.server_label, tool.server_url, headers or None,
                              None if names is None else tuple(names), param=where))
    return out


def check_approvals(servers: list[tuple[s.McpTool, str]], listings: list[Listing]) -> None:
    """A `never` filter must name every tool the server offers: approvals are not supported."""
    for (tool, where), listing in zip(servers, listings, strict=True):
        approval = tool.require_approval
        if not isinstance(approval, s.McpApprovalFilter):
            continue  # "never" or absent ("always" was refused with the body)
        never = set(approval.never.tool_names or []) if approval.never is not None else set()
        missing = sorted(spec.name for spec in listing.tools if spec.name not in never)
        if missing:
            raise InvalidRequestError(
                f"{where}.require_approval: approvals are not supported, and {', '.join(missing)} would need one; "
                "send \"never\" or name every tool under never.tool_names", param=f"{where}.require_approval")


async def answer_with_server_tools(request: web.Request, call: Any, shell: Any, meter: RequestMeter,
                                   defaults: ModelTools) -> web.StreamResponse:
    """The Responses answer when server tools are on (`call` is a ResponsesCall): the request's
    (which need the `tools` grant) and the model's defaults (the operator's choice)."""
    catalog = call.catalog
    if catalog.server_tools:
        await require_grant(request, Endpoint.TOOLS)
    listings = await list_servers(request.app, mcp_requests(catalog.servers))
    check_approvals(catalog.servers, listings)
    named = {tool.server_label for tool, _ in catalog.servers}
    listings += await list_servers(request.app, [McpRequest(label, param="tools") for label in defaults.mcp
                                                 if label not in named])
    builtins = list(dict.fromkeys([*(WEB_BUILTINS if catalog.web_search else []), *defaults.builtins]))
    specs = await builtin_tools(request.app, builtins)
    for listing in listings:
        specs.extend(listing.tools)
    kronk = request.app[KRONK]
    limits = limits_of(request.app)
    most = call.echo.get("max_tool_calls")
    if most is not None:  # bounds the tool turns (0: the model answers without the server tools)
        limits = dataclasses.replace(limits, max_iterations=min(limits.max_iterations, most))
    loop = AgentLoop(request.app[TOOLS], specs, limits, gate=policy_gate(request))

    def turn(step: ChatRequest) -> AsyncIterator[Any]:
        return kronk.chat_stream(step, explicit=call.explicit)

    encoder = ResponsesAgentEncoder(
        ResponsesStreamEncoder(shell, CallItems(catalog), reasoning_summary=call.reasoning_summary,
                               opaque_reasoning=call.opaque_reasoning),
        loop.tools, listings, meter, search_sources=call.search_sources)
    if call.stream:
        return await stream_response(request, loop.stream(turn, call.request), encoder, meter)
    dropped: list[str] = []
    async with aclosing(loop.stream(turn, call.request)) as events:
        encoder.start()
        async for event in events:
            encoder.encode(event)
            if isinstance(event, LoopFinished):
                dropped = event.outcome.result.tools_dropped
        encoder.finish()
    assert encoder.response is not None
    return json_response(encoder.response, headers=tools_dropped_headers(dropped))


@dataclass(slots=True)
class _ServerItem:
    kind: str
    """mcp_call or web_search_call."""
    item_id: str
    index: int
    call_id: str
    name: str
    label: str
    turn: int
    arguments: str = ""


class ResponsesAgentEncoder:
    """Agent events → Responses stream events; the model's own output through ResponsesStreamEncoder."""

    def __init__(self, inner: ResponsesStreamEncoder, tools: dict[str, ToolSpec], listings: list[Listing],
                 meter: RequestMeter, *, search_sources: bool = False) -> None:
        self.inner = inner
        self.search_sources = search_sources
        self.tools = tools
        self.listings = listings
        self.meter = meter
        self._pending: dict[tuple[int, int], _ServerItem] = {}
        """Server calls being written by the model, by (turn, call index)."""
        self._running: dict[str, _ServerItem] = {}
        self.response: dict[str, Any] | None = None
        """The final Response object, once `finish` ran."""

    def _event(self, kind: str, **payload: Any) -> Frame:
        return self.inner._event(kind, **payload)

    def _slot(self) -> int:
        self.inner.output.append({})
        return len(self.inner.output) - 1

    def _done(self, index: int, item: dict[str, Any]) -> Frame:
        self.inner.output[index] = item
        return self._event("response.output_item.done", output_index=index, item=item)

    def start(self) -> list[Frame]:
        frames = self.inner.start()
        for listing in self.listings:
            item_id, index = new_id("mcpl"), self._slot()
            item = {"type": "mcp_list_tools", "id": item_id, "server_label": listing.request.label, "tools": [],
                    "error": None}
            ids = {"item_id": item_id, "output_index": index}
            frames += [self._event("response.output_item.added", output_index=index, item=item),
                       self._event("response.mcp_list_tools.in_progress", **ids),
                       self._event("response.mcp_list_tools.completed", **ids),
                       self._done(index, {**item, "tools": [
                           {"name": t.name, "description": t.description, "input_schema": t.input_schema,
                            "annotations": None} for t in listing.tools]})]
        return frames

    def encode(self, event: AgentEvent) -> list[Frame]:
        if isinstance(event, ModelDelta):
            if event.server and isinstance(event.delta, ToolCallDelta):
                return self._server_delta(event.turn, event.delta)
            return self.inner.encode(event.delta)
        if isinstance(event, TurnFinished):
            self.meter.on_usage(event.usage, streamed=True)
            frames = self.inner._close("incomplete" if event.reason == "length" else "completed")
            run = {call.id for call in event.server_calls}
            for key, item in list(self._pending.items()):
                del self._pending[key]
                if item.call_id in run:
                    self._running[item.call_id] = item
                else:  # written, but not run: a client call came in the same turn, or the time ran out
                    frames.append(self._done(item.index, self._item(item, "incomplete")))
            return frames
        if isinstance(event, CallStarted):
            item = self._running.get(event.id)
            if item is None:
                return []
            item.arguments = event.arguments
            ids = {"item_id": item.item_id, "output_index": item.index}
            if item.kind == "mcp_call":
                return [self._event("response.mcp_call_arguments.done", **ids, arguments=event.arguments)]
            return [self._event("response.web_search_call.searching", **ids)]
        if isinstance(event, CallFinished):
            item = self._running.pop(event.call.id, None)
            if item is None:
                return []
            failed = event.is_error
            ids = {"item_id": item.item_id, "output_index": item.index}
            if item.kind == "mcp_call":
                progress = self._event("response.mcp_call.failed" if failed else "response.mcp_call.completed", **ids)
            else:
                progress = self._event("response.web_search_call.completed", **ids)
            done = self._item(item, "failed" if failed else "completed", event.result.text)
            results = (event.result.structured or {}).get("results")
            if self.search_sources and done.get("action", {}).get("type") == "search" and isinstance(results, list):
                done["action"]["sources"] = [{"type": "url", "url": r["url"]} for r in results
                                             if isinstance(r, dict) and isinstance(r.get("url"), str)]
            return [progress, self._done(item.index, done)]
        if isinstance(event, LoopFinished):
            result = event.outcome.result
            self.inner.usage, self.inner.reason = result.usage, result.choices[0].finish_reason
        return []

    def _server_delta(self, turn: int, delta: ToolCallDelta) -> list[Frame]:
        key = (turn, delta.index)
        item = self._pending.get(key)
        frames: list[Frame] = []
        if item is None:
            spec = self.tools[delta.name or ""]
            kind = "web_search_call" if spec.source == BUILTIN else "mcp_call"
            frames += self.inner._close()
            item = _ServerItem(kind, new_id("mcp" if kind == "mcp_call" else "ws"), self._slot(),
                               delta.id or new_id("call"), spec.name, spec_label(spec), turn)
            self._pending[key] = item
            ids = {"item_id": item.item_id, "output_index": item.index}
            frames += [self._event("response.output_item.added", output_index=item.index,
                                   item=self._item(item, "in_progress")),
                       self._event(f"response.{kind}.in_progress", **ids)]
        item.arguments += delta.arguments
        if item.kind == "mcp_call" and delta.arguments:
            frames.append(self._event("response.mcp_call_arguments.delta", item_id=item.item_id,
                                      output_index=item.index, delta=delta.arguments))
        return frames

    def _item(self, item: _ServerItem, status: str, output: str | None = None) -> dict[str, Any]:
        if item.kind == "mcp_call":
            failed = status == "failed"
            return {"type": "mcp_call", "id": item.item_id, "server_label": item.label, "name": item.name,
                    "arguments": item.arguments, "output": None if failed else output,
                    "error": {"type": "mcp_tool_execution_error", "content": [{"type": "text", "text": output}]}
                    if failed else None,
                    "status": status, "approval_request_id": None}
        return {"type": "web_search_call", "id": item.item_id, "status": status,
                "action": web_action(item.name, item.arguments)}

    def finish(self) -> list[Frame]:
        frames = self.inner.finish()
        self.response = frames[-1][1]["response"]
        return frames

    def error(self, exc: BaseException) -> list[Frame]:
        return self.inner.error(exc)


def spec_label(spec: ToolSpec) -> str:
    return ToolHost.label_of(spec.source)


def web_action(name: str, arguments: str) -> dict[str, Any]:
    """A web_search_call's action: `search` (web_search) or `open_page` (web_fetch)."""
    try:
        args = json.loads(arguments or "{}")
    except ValueError:
        args = {}
    args = args if isinstance(args, dict) else {}
    if name == "web_fetch":
        url = args.get("url")
        return {"type": "open_page", "url": url if isinstance(url, str) else None}
    query = args.get("query")
    query = query if isinstance(query, str) else ""
    return {"type": "search", "query": query, "queries": [query] if query else []}
