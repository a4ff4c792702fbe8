"""POST /v1/chat/completions: parse → AsyncKronk.chat / chat_stream → encode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kronk.engine.types import Finish, ReasoningDelta, TextDelta, ToolCallDelta
from kronk.sdk.requests import ChatRequest, ChatResult
from kronk.security.endpoints import Endpoint
from kronk.security.middleware import require_grant
from kronk.server.agent import AgentLoop
from kronk.server.agent.defaults import model_tools
from kronk.server.agent.policy import policy_gate
from kronk.server.agent.select import SERVER_TOOL_ERRORS, McpRequest, limits_of, server_tools
from kronk.server.keys import KRONK, METRICS, SETTINGS
from kronk.server.meter import RequestMeter
from kronk.server.openai import protocol as p
from kronk.server.openai.answers import ChatCompletion
from kronk.server.openai.bodies import ChatCompletionRequest, KronkTools
from kronk.server.openai.chat_server_tools import AgentChatStreamEncoder, encode_server_turns
from kronk.server.openai.chunks import ChunkStreamEncoder
from kronk.server.respond import json_response, tools_dropped_headers
from kronk.server.sse import encode_json
from kronk.server.streaming import Frame, stream_response
from kronk.server.tools_host import TOOLS
from kronk.server.validate import read_json
from kronk.wire import BODY_ERRORS, MODEL_ERRORS, Operation, operation, parse


@dataclass(slots=True)
class ChatCall:
    request: ChatRequest
    stream: bool
    include_usage: bool
    explicit: set[str]
    """Sampling fields the request set (model defaults fill the rest)."""
    tools: KronkTools | None = None
    """The `kronk_tools` extension: server-side tools to run between model turns."""


def parse_chat(data: object, limits: p.Limits) -> ChatCall:
    """A chat completion request body as a ChatRequest; raises InvalidRequestError(param=...)."""
    body = parse(ChatCompletionRequest, data)
    sampling, explicit = p.sampling_params(body)
    logprobs, top_logprobs = p.logprobs_of(body)
    enable_thinking, template_kwargs = p.thinking_of(body)
    request = ChatRequest(
        messages=[p.message_dict(m) for m in body.messages],
        model=p.model_of(body.model),
        tools=p.tools_of(body.tools),
        tool_choice=p.tool_choice_of(body.tool_choice),
        parallel_tool_calls=body.parallel_tool_calls,
        response_format=p.response_format_of(body.response_format, body.json_schema),
        sampling=sampling,
        max_tokens=p.check_max_tokens(body, limits, ("max_completion_tokens", "max_tokens")),
        stop=p.strings(body.stop),
        n=body.n,
        logprobs=logprobs,
        top_logprobs=top_logprobs,
        ignore_eos=body.ignore_eos,
        enable_thinking=enable_thinking,
        chat_template_kwargs=template_kwargs,
        template=body.chat_template or None,
        speculation=body.kronk_speculation.engine() if body.kronk_speculation else None,
    )
    return ChatCall(request, body.stream, p.include_usage(body.stream_options), explicit, body.kronk_tools)


def encode_chat_result(result: ChatResult) -> dict[str, Any]:
    choices = []
    for choice in result.choices:
        message: dict[str, Any] = {"role": "assistant", "content": choice.content, "refusal": None}
        if choice.reasoning_content:
            message["reasoning_content"] = choice.reasoning_content
        if choice.tool_calls:
            message["tool_calls"] = [call.to_openai() for call in choice.tool_calls]
        choices.append({
            "index": choice.index,
            "message": message,
            "logprobs": p.encode_chat_logprobs(choice.logprobs),
            "finish_reason": p.finish_reason(choice.finish_reason),
        })
    return {
        "id": result.id,
        "object": "chat.completion",
        "created": result.created,
        "model": result.model,
        "system_fingerprint": p.SYSTEM_FINGERPRINT,
        "choices": choices,
        "usage": p.encode_usage(result.usage),
    }


class ChatStreamEncoder(ChunkStreamEncoder):
    """`chat.completion.chunk` frames, a final usage chunk if asked, then `[DONE]`."""

    object = "chat.completion.chunk"
    id_prefix = "chatcmpl"

    def __init__(self, model: str, *, n: int = 1, include_usage: bool = False, logprobs: bool = False) -> None:
        super().__init__(model, include_usage=include_usage, logprobs=logprobs)
        self.n = n
        self._content_frames: dict[int, tuple[str, str]] = {}

    def _chunk(self, choice: int, delta: dict[str, Any], finish: str | None = None,
               logprobs: dict[str, Any] | None = None) -> Frame:
        return self._frame({"index": choice, "delta": delta, "logprobs": logprobs, "finish_reason": finish})

    def start(self) -> list[Frame]:
        return [self._chunk(i, {"role": "assistant", "content": ""}) for i in range(self.n)]

    def _content(self, choice: int, text: str) -> Frame:
        """A content chunk, the hot path: the chunk's JSON around the text is built once per choice."""
        frame = self._content_frames.get(choice)
        if frame is None:
            marker = '"content":""'
            head, _, tail = encode_json(self._chunk(choice, {"content": ""})[1]).partition(marker)
            frame = self._content_frames[choice] = (head + '"content":', tail)
        return None, frame[0] + encode_json(text) + frame[1]

    def encode(self, event: Any) -> list[Frame]:
        if isinstance(event, TextDelta):
            if not self.logprobs:
                return [self._content(event.choice, event.text)]
            logprobs = p.encode_chat_logprobs(event.logprobs)
            return [self._chunk(event.choice, {"content": event.text}, logprobs=logprobs)]
        if isinstance(event, ReasoningDelta):
            return [self._chunk(event.choice, {"reasoning_content": event.text})]
        if isinstance(event, ToolCallDelta):
            call: dict[str, Any] = {"index": event.index}
            function: dict[str, Any] = {}
            if event.id is not None:
                call["id"] = event.id
                call["type"] = "function"
            if event.name is not None:
                function["name"] = event.name
            function["arguments"] = event.arguments
            call["function"] = function
            return [self._chunk(event.choice, {"tool_calls": [call]})]
        if isinstance(event, Finish):
            self.usages[event.choice] = event.usage
            return [self._chunk(event.choice, {}, finish=p.finish_reason(event.reason))]
        return []


@operation(Operation(
    summary="Chat completion (tools, JSON schema, logprobs, reasoning)", tag="OpenAI",
    request=ChatCompletionRequest, response=ChatCompletion, stream=True,
    errors=BODY_ERRORS + MODEL_ERRORS + SERVER_TOOL_ERRORS))
async def chat_completions(request: web.Request) -> web.StreamResponse:
    settings, kronk = request.app[SETTINGS], request.app[KRONK]
    call = parse_chat(await read_json(request, settings.max_body_size), p.Limits.from_settings(settings))
    model = call.request.model or settings.default_model
    meter = RequestMeter(request.app[METRICS], model, "chat")
    if call.tools is not None:
        if call.tools.mcp or call.tools.builtin:
            await require_grant(request, Endpoint.TOOLS)
            mcp = [McpRequest(server.server_label, server.server_url, server.headers,
                              None if server.allowed_tools is None else tuple(server.allowed_tools),
                              param=f"kronk_tools.mcp[{i}]")
                   for i, server in enumerate(call.tools.mcp)]
            return await _with_server_tools(request, call, meter, mcp, list(call.tools.builtin))
    elif defaults := model_tools(settings, call.request.model):
        mcp = [McpRequest(label, param="tools") for label in defaults.mcp]
        return await _with_server_tools(request, call, meter, mcp, list(defaults.builtins))
    if call.stream:
        encoder = ChatStreamEncoder(model, n=call.request.n, include_usage=call.include_usage,
                                    logprobs=call.request.logprobs)
        return await stream_response(request, kronk.chat_stream(call.request, explicit=call.explicit), encoder, meter)
    result = await kronk.chat(call.request, explicit=call.explicit)
    meter.on_usage(result.usage)
    return json_response(encode_chat_result(result), headers=tools_dropped_headers(result.tools_dropped))


async def _with_server_tools(request: web.Request, call: ChatCall, meter: RequestMeter, mcp: list[McpRequest],
                             builtins: list[str]) -> web.StreamResponse:
    """`kronk_tools` or the model's default tools: the agent loop runs them between model turns (streamed or not)."""
    specs = await server_tools(request.app, mcp, builtins)
    kronk = request.app[KRONK]
    loop = AgentLoop(request.app[TOOLS], specs, limits_of(request.app), gate=policy_gate(request))

    def turn(step: ChatRequest) -> AsyncIterator[Any]:
        return kronk.chat_stream(step, explicit=call.explicit)

    if call.stream:
        chat = ChatStreamEncoder(meter.model, include_usage=call.include_usage, logprobs=call.request.logprobs)
        return await stream_response(request, loop.stream(turn, call.request), AgentChatStreamEncoder(chat, meter),
                                     meter)
    outcome = await loop.run(turn, call.request)
    outcome.result.model = meter.model
    meter.on_usage(outcome.result.usage)
    body = encode_chat_result(outcome.result)
    body["kronk_tools"] = encode_server_turns(outcome)
    return json_response(body, headers=tools_dropped_headers(outcome.result.tools_dropped))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
