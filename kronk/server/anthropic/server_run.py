"""POST /v1/messages with server tools or `mcp_servers`: the agent loop answers, blocks in Anthropic's shapes.

The request's server tools (kronk.server.anthropic.server_tools) are offered next to its custom
tools; the agent loop (kronk.server.agent) runs each server tool call through RequestTools
(max_uses, domain lists, error codes), feeds the result back and lets the model go on until it
answers or calls a custom tool (that comes back as `tool_use`, stop_reason "tool_use"). The
message holds every model turn's blocks in order — thinking, text, then each server call as its
use block and result block — and usage sums every turn, with `server_tool_use` counting the
web_search / web_fetch requests made. Streamed, the same blocks go out as they happen
(kronk.server.anthropic.server_stream); not streamed, the same events are folded into the
message. Under `--security full` the request also needs the `tools` grant, as chat completions'
`kronk_tools` and `/mcp` do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from kronk.sdk.requests import ChatRequest, ToolsDropped
from kronk.security.endpoints import Endpoint
from kronk.security.middleware import require_grant
from kronk.server.agent import AgentLoop
from kronk.server.agent.select import limits_of
from kronk.server.anthropic.protocol import MessagesCall
from kronk.server.anthropic.server_stream import AgentStreamEncoder, collect
from kronk.server.anthropic.server_tools import offered_tools
from kronk.server.anthropic.tool_policy import RequestTools
from kronk.server.keys import KRONK, METRICS
from kronk.server.meter import RequestMeter
from kronk.server.respond import json_response, tools_dropped_headers
from kronk.server.streaming import Frame, stream_response
from kronk.server.tools_host import TOOLS


async def answer(request: web.Request, call: MessagesCall, model: str) -> web.StreamResponse:
    """The message (or its stream) for a request that turns on server-side tools."""
    await require_grant(request, Endpoint.TOOLS)
    host, kronk = request.app[TOOLS], request.app[KRONK]
    offered = await offered_tools(host, call.server_tools, call.mcp_servers, call.mcp_toolsets)
    tools = RequestTools(host, offered.tools)
    loop = AgentLoop(tools, offered.specs, limits_of(request.app))
    first = loop.offer(call.request)  # a bad tool_choice or a name clash is a JSON 400, before any stream
    meter = RequestMeter(request.app[METRICS], model, "messages")
    encoder = AgentStreamEncoder(model, len(await kronk.tokenize_chat(first)), offered.tools, tools.requests,
                                 show_thinking=call.show_thinking, meter=meter, streamed=call.stream)
    events = loop.stream(lambda step: kronk.chat_stream(step, explicit=call.explicit), call.request)
    if call.stream:
        return await stream_response(request, events, encoder, meter)
    frames, dropped = await _run(events, encoder)
    return json_response(collect(frames), headers=tools_dropped_headers(dropped))


async def _run(events: AsyncIterator[Any], encoder: AgentStreamEncoder) -> tuple[list[Frame], list[str]]:
    """Every frame of the answer, as the stream would send them; and the tools dropped for the context."""
    frames: list[Frame] = list(encoder.start())
    dropped: list[str] = []
    try:
        async for event in events:
            if isinstance(event, ToolsDropped):
                dropped = event.names
                continue
            frames += encoder.encode(event)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    return frames + encoder.finish(), dropped


async def offered_request(request: web.Request, call: MessagesCall) -> ChatRequest:
    """The first model turn's request, server tools offered (what count_tokens counts)."""
    await require_grant(request, Endpoint.TOOLS)
    host = request.app[TOOLS]
    offered = await offered_tools(host, call.server_tools, call.mcp_servers, call.mcp_toolsets)
    return AgentLoop(host, offered.specs).offer(call.request)
