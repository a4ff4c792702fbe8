"""POST /v1/responses: the OpenAI Responses API, stateless, on top of chat — as the SDKs and Codex CLI use it.

The body (kronk.server.openai.responses_schema) becomes a ChatRequest: tools through
responses_tools (function, namespace, custom, local_shell offered; `mcp` and
`web_search` run by Kronk through the agent loop, responses_agent; other hosted tools
skipped), input items through responses_input. The answer is a Response object, or
its named event stream (responses_stream).

- Stateless: `store` is accepted and nothing is stored (the answer says store:
  false); previous_response_id, conversation, prompt and background are refused.
- reasoning.effort: `none` turns thinking off, other values on (the chat template
  gets reasoning_effort low/medium/high). reasoning.summary auto/concise/detailed:
  the thinking goes out as the reasoning item's summary (the full text — Kronk does
  not summarise), else as its reasoning_text content.
- include `reasoning.encrypted_content`: reasoning items carry Kronk's encoding of
  their text, which comes back readable in later input (opaque, not secret).
- max_output_tokens above the server's max_tokens_limit is lowered to it.
- text.verbosity, truncation, service_tier, prompt_cache_key, user,
  safety_identifier, metadata: accepted and echoed; they change nothing here.

Headers: X-Kronk-Tools-Ignored names skipped tools, X-Kronk-Input-Ignored the types of
dropped input items — on every answer to the request, errors included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kronk.errors import CapabilityError, ContextOverflowError
from kronk.sdk.requests import ChatRequest, ChatResult, new_id
from kronk.server.agent.defaults import ModelTools, model_tools
from kronk.server.agent.select import SERVER_TOOL_ERRORS
from kronk.server.keys import KRONK, METRICS, SETTINGS
from kronk.server.meter import RequestMeter
from kronk.server.openai import responses_schema as s
from kronk.server.openai.protocol import Limits, sampling_params
from kronk.server.openai.responses_agent import answer_with_server_tools
from kronk.server.openai.responses_input import chat_messages
from kronk.server.openai.responses_items import (
    CallItems,
    encode_logprobs,
    message_item,
    reasoning_item,
)
from kronk.server.openai.responses_stream import (
    ResponseShell,
    ResponsesStreamEncoder,
    encode_usage,
)
from kronk.server.openai.responses_tools import ToolCatalog, plan_choice
from kronk.server.respond import json_response, tools_dropped_headers
from kronk.server.streaming import stream_response
from kronk.server.tools_host import TOOLS
from kronk.server.validate import Body, read_json
from kronk.wire import BODY_ERRORS, MODEL_ERRORS, Operation, operation, parse

__all__ = ["ResponseShell", "ResponsesCall", "ResponsesStreamEncoder", "add_routes", "encode_response",
           "encode_usage", "parse_responses", "responses"]

TOOLS_IGNORED_HEADER = "X-Kronk-Tools-Ignored"
INPUT_IGNORED_HEADER = "X-Kronk-Input-Ignored"
_SUMMARY = ("auto", "concise", "detailed")
_EFFORT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")
"""Names in headers are client input: anything else is masked."""


@dataclass(slots=True)
class Skipped:
    """What the request had to leave out, for the response headers."""

    tools: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)


_SKIPPED_KEY = web.RequestKey("responses_skipped", Skipped)


@dataclass(slots=True)
class ResponsesCall:
    request: ChatRequest
    stream: bool
    explicit: set[str]
    """Sampling fields the request set (model defaults fill the rest)."""
    echo: dict[str, Any]
    """Request fields the Response object repeats back."""
    catalog: ToolCatalog
    reasoning_summary: bool = False
    opaque_reasoning: bool = False
    search_sources: bool = False
    """include `web_search_call.action.sources`: a search call's item lists the result URLs."""
    skipped: Skipped = field(default_factory=Skipped)


def parse_responses(data: object, limits: Limits, skipped: Skipped | None = None, *,
                    search_backend: bool = False, defaults: ModelTools | None = None) -> ResponsesCall:
    """A /v1/responses body as a ChatRequest; `skipped` gets the skipped tools and items as soon as they are known.

    `search_backend`: the server can run web_search (else `web_search*` tools are skipped);
    `defaults`: the server tools the model's config turns on (a tool_choice may name them)."""
    if isinstance(data, Body):
        data = data.data
    body = parse(s.ResponsesRequest, data)
    skipped = skipped if skipped is not None else Skipped()
    defaults = defaults or ModelTools()
    catalog = ToolCatalog(ignored=skipped.tools, search_backend=search_backend, default_servers=defaults.mcp,
                          default_tools=bool(defaults))
    catalog.add(body.tools or [], "tools")
    if isinstance(body.input, list):
        for i, item in enumerate(body.input):
            if isinstance(item, s.AdditionalToolsItem):
                catalog.add(item.tools, f"input[{i}].tools")
    choice = plan_choice(body.tool_choice, catalog, body.max_tool_calls)
    messages = chat_messages(body.instructions, body.input, catalog, skipped.items)
    reasoning = body.reasoning or s.ResponsesReasoning()
    effort = reasoning.effort
    kwargs = dict(body.chat_template_kwargs or {})
    if effort is not None and effort != "none":
        kwargs.setdefault("reasoning_effort", _EFFORT[effort])
    include = set(body.include or [])
    top_logprobs = body.top_logprobs or 0
    sampling, explicit = sampling_params(body)
    max_tokens = None if body.max_output_tokens is None else min(body.max_output_tokens, limits.max_tokens)
    request = ChatRequest(
        messages=messages,
        model=body.model or None,
        tools=catalog.chat_tools(choice.allowed),
        tool_choice=choice.tool_choice,
        parallel_tool_calls=body.parallel_tool_calls and body.max_tool_calls != 1,
        response_format=_response_format(body.text),
        sampling=sampling,
        max_tokens=max_tokens,
        logprobs=top_logprobs > 0 or "message.output_text.logprobs" in include,
        top_logprobs=top_logprobs,
        enable_thinking=None if effort is None else effort != "none",
        chat_template_kwargs=kwargs,
    )
    summary = reasoning.summary or reasoning.generate_summary
    return ResponsesCall(request, body.stream, explicit, _echo(body, data, max_tokens), catalog,
                         reasoning_summary=summary in _SUMMARY,
                         opaque_reasoning="reasoning.encrypted_content" in include,
                         search_sources="web_search_call.action.sources" in include, skipped=skipped)


def _response_format(text: s.ResponsesTextConfig | None) -> dict[str, Any] | None:
    fmt = text.format if text is not None else None
    if isinstance(fmt, s.ResponsesJsonObject):
        return {"type": "json_object"}
    if isinstance(fmt, s.ResponsesJsonSchema):
        spec: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema_}
        if fmt.strict is not None:
            spec["strict"] = fmt.strict
        return {"type": "json_schema", "json_schema": spec}
    return None


def _echo(body: s.ResponsesRequest, data: dict[str, Any], max_tokens: int | None) -> dict[str, Any]:
    reasoning = body.reasoning or s.ResponsesReasoning()
    text = data.get("text") if isinstance(data.get("text"), dict) else {}
    return {
        "instructions": body.instructions,
        "max_output_tokens": max_tokens,
        "max_tool_calls": body.max_tool_calls,
        "parallel_tool_calls": body.parallel_tool_calls,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "top_logprobs": body.top_logprobs,
        "tool_choice": data.get("tool_choice") or "auto",
        "tools": data.get("tools") or [],
        "text": {"format": text.get("format") or {"type": "text"}, "verbosity": text.get("verbosity") or "medium"},
        "reasoning": {"effort": reasoning.effort, "summary": reasoning.summary or reasoning.generate_summary},
        "truncation": body.truncation or "disabled",
        "service_tier": "default",
        "prompt_cache_key": body.prompt_cache_key,
        "safety_identifier": body.safety_identifier,
        "metadata": body.metadata or {},
        "user": body.user,
    }


def encode_response(result: ChatResult, shell: ResponseShell, call: ResponsesCall | None = None) -> dict[str, Any]:
    """The Response object of a finished (non-streamed) generation."""
    calls = CallItems(call.catalog if call is not None else ToolCatalog())
    choice = result.choices[0]
    incomplete = "max_output_tokens" if choice.finish_reason == "length" else None
    output: list[dict[str, Any]] = []
    if choice.reasoning_content:
        output.append(reasoning_item(new_id("rs"), choice.reasoning_content,
                                     as_summary=bool(call and call.reasoning_summary),
                                     opaque=bool(call and call.opaque_reasoning)))
    if choice.content:
        output.append(message_item(new_id("msg"), choice.content, logprobs=encode_logprobs(choice.logprobs)))
    for tool_call in choice.tool_calls:
        kind = calls.kind(tool_call.name)
        output.append(calls.item(calls.item_id(kind), tool_call.id, tool_call.name, tool_call.arguments))
    if incomplete and output:
        output[-1]["status"] = "incomplete"
    return shell.build("incomplete" if incomplete else "completed", output, result.usage, incomplete)


@operation(Operation(
    summary="OpenAI Responses API (stateless): function, namespace, custom and local_shell tools; mcp and web_search "
            "run by Kronk; other hosted tools skipped", tag="OpenAI", request=s.ResponsesRequest, response=s.ResponseObject, stream=True,
    errors=BODY_ERRORS + MODEL_ERRORS + (CapabilityError, ContextOverflowError) + SERVER_TOOL_ERRORS))
async def responses(request: web.Request) -> web.StreamResponse:
    settings, kronk = request.app[SETTINGS], request.app[KRONK]
    skipped = Skipped()
    request[_SKIPPED_KEY] = skipped
    data = await read_json(request, settings.max_body_size)
    named = data.get("model") if isinstance(data, dict) else None
    defaults = model_tools(settings, named if isinstance(named, str) else None)
    call = parse_responses(data, Limits.from_settings(settings), skipped,
                           search_backend="web_search" in request.app[TOOLS].builtin_names, defaults=defaults)
    model = call.request.model or settings.default_model
    meter = RequestMeter(request.app[METRICS], model, "responses")
    shell = ResponseShell(model, call.echo)
    try:
        if call.catalog.server_tools or defaults:
            return await answer_with_server_tools(request, call, shell, meter, defaults)
        if call.stream:
            encoder = ResponsesStreamEncoder(shell, CallItems(call.catalog), reasoning_summary=call.reasoning_summary,
                                             opaque_reasoning=call.opaque_reasoning)
            return await stream_response(request, kronk.chat_stream(call.request, explicit=call.explicit), encoder,
                                         meter)
        result = await kronk.chat(call.request, explicit=call.explicit)
    except ContextOverflowError as exc:
        raise input_overflow(exc) from None
    meter.on_usage(result.usage)
    shell.model = result.model
    return json_response(encode_response(result, shell, call), headers=tools_dropped_headers(result.tools_dropped))


def input_overflow(exc: ContextOverflowError) -> ContextOverflowError:
    """The chat layer names `messages`; here the conversation is `input`."""
    return ContextOverflowError(str(exc), param="input") if exc.param == "messages" else exc


async def _skipped_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Name what was skipped on every answer to the request: streamed, JSON or error."""
    skipped = request.get(_SKIPPED_KEY)
    if skipped is None:
        return
    for header, names in ((TOOLS_IGNORED_HEADER, skipped.tools), (INPUT_IGNORED_HEADER, skipped.items)):
        if names:
            response.headers[header] = ",".join(dict.fromkeys(_UNSAFE.sub("?", n) for n in names))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/responses", responses)
    app.on_response_prepare.append(_skipped_headers)
