"""POST /v1/messages and /v1/messages/count_tokens (Anthropic Messages API).

Claude Code calls `/v1/messages?beta=true` with `anthropic-beta` headers: query and
headers are accepted and change nothing. A request with server tools Kronk runs
(web_search, web_fetch) or `mcp_servers` is answered by the agent loop
(kronk.server.anthropic.server_run). Server tools the request had to skip are
named in the response's X-Kronk-Tools-Ignored header (errors included). An unknown
model is a 404 whose message says how to point Claude Code at a Kronk model: Claude
Code asks for `claude-*` names unless ANTHROPIC_MODEL (and, for its background
calls, ANTHROPIC_DEFAULT_HAIKU_MODEL) name one; no other model is served in their place.
"""

from __future__ import annotations

import re

from aiohttp import web

from kronk.errors import (
    CapabilityError,
    ContextOverflowError,
    KronkError,
    ModelNotFoundError,
    ToolUnavailableError,
)
from kronk.sdk import AsyncKronk
from kronk.sdk.requests import ChatRequest
from kronk.server.anthropic import server_run
from kronk.server.anthropic.answers import AnthropicMessage, TokenCount
from kronk.server.anthropic.protocol import MessagesCall, parse_request
from kronk.server.anthropic.response import encode_message
from kronk.server.anthropic.schema import CountTokensRequest, MessagesRequest
from kronk.server.anthropic.server_tools import runnable_types
from kronk.server.anthropic.stream import MessagesStreamEncoder
from kronk.server.keys import KRONK, METRICS, SETTINGS
from kronk.server.meter import RequestMeter
from kronk.server.openai.protocol import Limits
from kronk.server.respond import json_response, tools_dropped_headers
from kronk.server.streaming import stream_response
from kronk.server.tools_host import TOOLS
from kronk.server.validate import read_json
from kronk.wire import BODY_ERRORS, MODEL_ERRORS, Operation, operation

__all__ = ["MessagesStreamEncoder", "add_routes", "count_tokens", "messages"]

TOOLS_IGNORED_HEADER = "X-Kronk-Tools-Ignored"
_TOOLS_IGNORED_KEY = web.RequestKey("anthropic_tools_ignored", list[str])
"""Where a request keeps the names of its skipped server tools until its response is prepared."""
_QUERY = {"beta": "Accepted and ignored (Claude Code sends beta=true); so are anthropic-beta and anthropic-version headers."}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")
"""Tool names are client input: anything else is masked in the header."""
_ERRORS = BODY_ERRORS + MODEL_ERRORS + (CapabilityError, ContextOverflowError, ToolUnavailableError)


async def _parse(request: web.Request, *, count_only: bool) -> MessagesCall:
    settings = request.app[SETTINGS]
    ignored: list[str] = []
    request[_TOOLS_IGNORED_KEY] = ignored
    return parse_request(await read_json(request, settings.max_body_size), Limits.from_settings(settings),
                         count_only=count_only, ignored=ignored, runnable=runnable_types(request.app[TOOLS]))


def _model_hint(exc: ModelNotFoundError) -> ModelNotFoundError:
    """The 404 for a Claude model name, saying how to pick a Kronk model instead."""
    if not exc.model.lower().startswith("claude"):
        return exc
    return ModelNotFoundError(exc.model, (
        f"{exc}. Kronk serves local models only, under their Kronk ids (see GET /v1/models); "
        "for Claude Code set ANTHROPIC_MODEL (and ANTHROPIC_DEFAULT_HAIKU_MODEL for its background "
        "requests) to one of them"))


async def _prompt_too_long(kronk: AsyncKronk, request: ChatRequest, exc: ContextOverflowError) -> ContextOverflowError:
    """A prompt longer than the context, in Anthropic's words: "prompt is too long: N tokens > M maximum".

    Claude Code reads exactly that to tell the user and compact the conversation. Any
    other overflow (the KV cache filled up mid-generation) keeps its own message.
    """
    try:
        info = await kronk.model_info(request.model)
        context = next(status.context_size for status in kronk.ps() if status.id == info.id)
        tokens = len(await kronk.tokenize_chat(request))
    except (KronkError, StopIteration):
        return exc
    if tokens < context:
        return exc
    return ContextOverflowError(f"prompt is too long: {tokens} tokens > {context - 1} maximum", param="messages")


@operation(Operation(
    summary="Anthropic Messages (tools, thinking, images, system messages anywhere)", tag="Anthropic",
    request=MessagesRequest, response=AnthropicMessage, stream=True, errors=_ERRORS, error_style="anthropic",
    query=_QUERY))
async def messages(request: web.Request) -> web.StreamResponse:
    settings, kronk = request.app[SETTINGS], request.app[KRONK]
    call = await _parse(request, count_only=False)
    model = call.request.model or settings.default_model
    try:
        if call.agent:
            return await server_run.answer(request, call, model)
        if call.stream:
            input_tokens = len(await kronk.tokenize_chat(call.request))
            meter = RequestMeter(request.app[METRICS], model, "messages")
            encoder = MessagesStreamEncoder(model, input_tokens, show_thinking=call.show_thinking)
            return await stream_response(request, kronk.chat_stream(call.request, explicit=call.explicit),
                                         encoder, meter)
        meter = RequestMeter(request.app[METRICS], model, "messages")
        result = await kronk.chat(call.request, explicit=call.explicit)
    except ModelNotFoundError as exc:
        raise _model_hint(exc) from None
    except ContextOverflowError as exc:
        raise await _prompt_too_long(kronk, call.request, exc) from None
    meter.on_usage(result.usage)
    return json_response(encode_message(result, show_thinking=call.show_thinking),
                         headers=tools_dropped_headers(result.tools_dropped))


@operation(Operation(
    summary="Anthropic token count: the prompt /v1/messages would evaluate for the same body", tag="Anthropic",
    request=CountTokensRequest, response=TokenCount, errors=_ERRORS, error_style="anthropic", query=_QUERY))
async def count_tokens(request: web.Request) -> web.Response:
    kronk = request.app[KRONK]
    call = await _parse(request, count_only=True)
    try:
        tokens = await kronk.tokenize_chat(await server_run.offered_request(request, call) if call.agent
                                           else call.request)
    except ModelNotFoundError as exc:
        raise _model_hint(exc) from None
    return json_response({"input_tokens": len(tokens)})


async def _tools_ignored_header(request: web.Request, response: web.StreamResponse) -> None:
    """Name the skipped server tools on every answer to the request, streamed, JSON or error."""
    ignored = request.get(_TOOLS_IGNORED_KEY)
    if ignored:
        response.headers[TOOLS_IGNORED_HEADER] = ",".join(_UNSAFE.sub("?", name) for name in ignored)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.on_response_prepare.append(_tools_ignored_header)
