"""POST /v1/responses: the OpenAI Responses API, stateless, on top of chat.

Input items (messages, function_call, function_call_output, reasoning) become chat
messages; the neutral events come back as Responses output items, streamed with
the named events (response.created … response.completed / response.incomplete).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kronk.engine.types import Finish, ReasoningDelta, TextDelta, TokenLogprob, ToolCallDelta, Usage
from kronk.sdk.requests import ChatRequest, ChatResult, new_id
from kronk.server.errors import openai_error_body, spec_for
from kronk.server.keys import KRONK, METRICS, SETTINGS
from kronk.server.meter import RequestMeter
from kronk.server.openai import protocol as p
from kronk.server.respond import json_response, tools_dropped_headers
from kronk.server.streaming import Frame, stream_response
from kronk.server.validate import Body, read_json

_MESSAGE_ROLES = ("user", "system", "developer", "assistant")


@dataclass(slots=True)
class ResponsesCall:
    request: ChatRequest
    stream: bool
    explicit: set[str]
    echo: dict[str, Any]
    """Request fields the Response object repeats back (instructions, tools, text ...)."""


# --- input -------------------------------------------------------------------


def _content(item: Body, role: str) -> str | list[dict[str, Any]]:
    raw = item.raw("content")
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, list):
        raise item.error("content", "must be a string or an array of content parts")
    parts: list[dict[str, Any]] = []
    for part in item.children("content"):
        kind = part.string("type", required=True)
        if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            parts.append({"type": "text", "text": part.string("text", required=True)})
        elif kind == "refusal":
            parts.append({"type": "text", "text": part.string("refusal", default="")})
        elif kind == "input_image":
            url = part.string("image_url")
            if not url:
                raise part.error("image_url", "is required (file_id references are not supported)")
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "input_audio":
            audio = part.child("input_audio", required=True)
            assert audio is not None
            parts.append({"type": "input_audio", "input_audio": {
                "data": audio.string("data", required=True), "format": audio.string("format", default="wav")}})
        else:
            raise part.error("type", f"unsupported content part type {kind!r}")
    if role != "user" and any(p_["type"] != "text" for p_ in parts):
        raise item.error("content", f"{role} messages may only contain text")
    if all(p_["type"] == "text" for p_ in parts):
        return "".join(p_["text"] for p_ in parts)
    return parts


def parse_input(body: Body, instructions: str | None) -> list[dict[str, Any]]:
    """Responses input (a string or items) as OpenAI chat messages."""
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    raw = body.raw("input")
    if isinstance(raw, str):
        messages.append({"role": "user", "content": raw})
        return messages
    if not isinstance(raw, list) or not raw:
        raise body.error("input", "must be a string or a non-empty array of input items")
    reasoning: str | None = None
    for item in body.children("input"):
        kind = item.string("type", default="message")
        if kind == "message":
            role = str(item.string("role", required=True, choices=_MESSAGE_ROLES))
            message: dict[str, Any] = {"role": "system" if role == "developer" else role,
                                       "content": _content(item, role)}
            if role == "assistant" and reasoning:
                message["reasoning_content"], reasoning = reasoning, None
            messages.append(message)
        elif kind == "function_call":
            arguments = item.raw("arguments", "")
            if not isinstance(arguments, str):
                raise item.error("arguments", "must be a JSON string")
            call = {"id": item.string("call_id", required=True), "type": "function",
                    "function": {"name": item.string("name", required=True), "arguments": arguments}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                message = {"role": "assistant", "content": None, "tool_calls": [call]}
                if reasoning:
                    message["reasoning_content"], reasoning = reasoning, None
                messages.append(message)
        elif kind == "function_call_output":
            output = item.raw("output")
            if isinstance(output, list):
                if not all(isinstance(part, dict) and isinstance(part.get("text"), str) for part in output):
                    raise item.error("output", "must be a string or an array of text parts")
                output = "".join(part["text"] for part in output)
            if not isinstance(output, str):
                raise item.error("output", "must be a string or an array of text parts")
            messages.append({"role": "tool", "tool_call_id": item.string("call_id", required=True),
                             "content": output})
        elif kind == "reasoning":
            texts = [str(part.get("text", "")) for key in ("content", "summary")
                     for part in (item.raw(key) or []) if isinstance(part, dict)]
            reasoning = "".join(texts) or None
        else:
            raise item.error("type", f"unsupported input item type {kind!r}")
    return messages


def parse_tools(body: Body) -> list[dict[str, Any]] | None:
    tools: list[dict[str, Any]] = []
    for tool in body.children("tools"):
        kind = tool.string("type", required=True)
        if kind != "function":
            raise tool.error("type", f"tool type {kind!r} is not supported (only function tools)")
        tools.append(p.function_tool(tool))
    return tools or None


def parse_tool_choice(body: Body, tools: list[dict[str, Any]] | None) -> str | dict[str, Any]:
    raw = body.raw("tool_choice")
    if raw is None:
        return "auto"
    if isinstance(raw, str):
        choice = str(body.string("tool_choice", choices=("none", "auto", "required")))
        if choice == "required" and not tools:
            raise body.error("tool_choice", "'required' needs at least one tool in tools")
        return choice
    obj = body.child("tool_choice")
    assert obj is not None
    obj.string("type", required=True, choices=("function",))
    return p.named_tool_choice(body, str(obj.string("name", required=True)), tools)


def parse_text_format(body: Body) -> dict[str, Any] | None:
    text = body.child("text")
    fmt = text.child("format") if text is not None else None
    if fmt is None:
        return None
    kind = fmt.string("type", required=True, choices=("text", "json_object", "json_schema"))
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    return p.json_schema_format(fmt)


def parse_responses(body: Body, limits: p.Limits) -> ResponsesCall:
    if body.has("previous_response_id") or body.has("conversation"):
        raise body.error("previous_response_id", "stored responses are not supported; send the full input")
    instructions = body.string("instructions")
    tools = parse_tools(body)
    tool_choice = parse_tool_choice(body, tools)
    reasoning = body.child("reasoning")
    effort = reasoning.string("effort", choices=("none", "minimal", "low", "medium", "high")) if reasoning else None
    kwargs = dict(body.mapping("chat_template_kwargs") or {})
    top_logprobs = int(body.integer("top_logprobs", default=0, min=0, max=p.MAX_TOP_LOGPROBS))
    include = body.strings("include", max_items=32)
    sampling, explicit = p.parse_sampling(body)
    if effort is not None:
        kwargs.setdefault("reasoning_effort", effort)
    request = ChatRequest(
        messages=parse_input(body, instructions),
        model=p.parse_model(body),
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=bool(body.boolean("parallel_tool_calls", default=True)),
        response_format=parse_text_format(body),
        sampling=sampling,
        max_tokens=p.parse_max_tokens(body, limits, names=("max_output_tokens",)),
        logprobs=top_logprobs > 0 or "message.output_text.logprobs" in include,
        top_logprobs=top_logprobs,
        enable_thinking=None if effort is None else effort != "none",
        chat_template_kwargs=kwargs,
    )
    echo = {
        "instructions": instructions,
        "max_output_tokens": request.max_tokens,
        "parallel_tool_calls": request.parallel_tool_calls,
        "temperature": body.number("temperature"),
        "top_p": body.number("top_p"),
        "tool_choice": body.raw("tool_choice", "auto"),
        "tools": [{"type": "function", **t["function"]} for t in tools or []],
        "text": {"format": (body.mapping("text") or {}).get("format") or {"type": "text"}},
        "reasoning": {"effort": effort, "summary": None},
        "metadata": body.mapping("metadata") or {},
        "user": body.string("user"),
    }
    return ResponsesCall(request, bool(body.boolean("stream", default=False)), explicit, echo)


# --- output ------------------------------------------------------------------


def encode_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def _logprobs(items: list[TokenLogprob] | None) -> list[dict[str, Any]]:
    return [{"token": lp.token, "logprob": lp.logprob, "bytes": lp.bytes,
             "top_logprobs": [{"token": t.token, "logprob": t.logprob, "bytes": t.bytes}
                              for t in lp.top_logprobs]} for lp in items or []]


def message_item(item_id: str, text: str, status: str = "completed",
                 logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [text_part(text, logprobs)] if status == "completed" else []}


def text_part(text: str, logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def reasoning_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "reasoning_text", "text": text}] if status == "completed" else []
    return {"type": "reasoning", "id": item_id, "summary": [], "content": content, "status": status}


def function_call_item(item_id: str, call_id: str, name: str, arguments: str,
                       status: str = "completed") -> dict[str, Any]:
    return {"type": "function_call", "id": item_id, "call_id": call_id, "name": name,
            "arguments": arguments, "status": status}


@dataclass(slots=True)
class ResponseShell:
    """The Response object around the output items."""

    model: str
    echo: dict[str, Any]
    id: str = field(default_factory=lambda: new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))

    def build(self, status: str, output: list[dict[str, Any]], usage: Usage | None,
              incomplete: str | None = None) -> dict[str, Any]:
        texts = [part["text"] for item in output if item["type"] == "message"
                 for part in item.get("content", []) if part.get("type") == "output_text"]
        return {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "error": None,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "model": self.model, "output": output, "output_text": "".join(texts),
            "previous_response_id": None, "store": False, "truncation": "disabled",
            **self.echo,
            "usage": encode_usage(usage) if usage is not None else None,
        }


def encode_response(result: ChatResult, shell: ResponseShell) -> dict[str, Any]:
    choice = result.choices[0]
    output: list[dict[str, Any]] = []
    if choice.reasoning_content:
        output.append(reasoning_item(new_id("rs"), choice.reasoning_content))
    if choice.content:
        output.append(message_item(new_id("msg"), choice.content, logprobs=_logprobs(choice.logprobs)))
    for call in choice.tool_calls:
        output.append(function_call_item(new_id("fc"), call.id, call.name, call.arguments))
    incomplete = "max_output_tokens" if choice.finish_reason == "length" else None
    return shell.build("incomplete" if incomplete else "completed", output, result.usage, incomplete)


@dataclass(slots=True)
class _OpenItem:
    kind: str
    item_id: str
    index: int
    text: str = ""
    call_id: str = ""
    name: str = ""
    logprobs: list[dict[str, Any]] = field(default_factory=list)


class ResponsesStreamEncoder:
    """Named Responses events; one output item per reasoning block, message or call."""

    def __init__(self, shell: ResponseShell) -> None:
        self.shell = shell
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.open: _OpenItem | None = None
        self.usage: Usage | None = None
        self.reason = "stop"

    def _event(self, kind: str, **payload: Any) -> Frame:
        data = {"type": kind, "sequence_number": self.sequence, **payload}
        self.sequence += 1
        return kind, data

    def start(self) -> list[Frame]:
        response = self.shell.build("in_progress", [], None)
        return [self._event("response.created", response=response),
                self._event("response.in_progress", response=response)]

    def _open(self, kind: str, call_id: str = "", name: str = "") -> list[Frame]:
        frames = self._close()
        prefix = {"message": "msg", "reasoning": "rs", "function_call": "fc"}[kind]
        item = _OpenItem(kind, new_id(prefix), len(self.output), call_id=call_id, name=name)
        self.open = item
        self.output.append({})
        if kind == "message":
            added = message_item(item.item_id, "", status="in_progress")
            part = text_part("")
        elif kind == "reasoning":
            added = reasoning_item(item.item_id, "", status="in_progress")
            part = {"type": "reasoning_text", "text": ""}
        else:
            added = function_call_item(item.item_id, item.call_id, item.name, "", status="in_progress")
            return [*frames, self._event("response.output_item.added", output_index=item.index, item=added)]
        return [*frames,
                self._event("response.output_item.added", output_index=item.index, item=added),
                self._event("response.content_part.added", item_id=item.item_id, output_index=item.index,
                            content_index=0, part=part)]

    def _close(self) -> list[Frame]:
        item, self.open = self.open, None
        if item is None:
            return []
        ids = {"item_id": item.item_id, "output_index": item.index}
        if item.kind == "message":
            done = message_item(item.item_id, item.text, logprobs=item.logprobs)
            frames = [self._event("response.output_text.done", **ids, content_index=0, text=item.text,
                                  logprobs=item.logprobs),
                      self._event("response.content_part.done", **ids, content_index=0,
                                  part=text_part(item.text, item.logprobs))]
        elif item.kind == "reasoning":
            done = reasoning_item(item.item_id, item.text)
            frames = [self._event("response.reasoning_text.done", **ids, content_index=0, text=item.text),
                      self._event("response.content_part.done", **ids, content_index=0,
                                  part={"type": "reasoning_text", "text": item.text})]
        else:
            done = function_call_item(item.item_id, item.call_id, item.name, item.text)
            frames = [self._event("response.function_call_arguments.done", **ids, name=item.name,
                                  arguments=item.text)]
        self.output[item.index] = done
        return [*frames, self._event("response.output_item.done", output_index=item.index, item=done)]

    def encode(self, event: Any) -> list[Frame]:
        if getattr(event, "choice", 0) != 0:
            return []
        frames: list[Frame] = []
        if isinstance(event, TextDelta):
            if self.open is None or self.open.kind != "message":
                frames += self._open("message")
            assert self.open is not None
            self.open.text += event.text
            logprobs = _logprobs(event.logprobs)
            self.open.logprobs.extend(logprobs)
            frames.append(self._event("response.output_text.delta", item_id=self.open.item_id,
                                      output_index=self.open.index, content_index=0, delta=event.text,
                                      logprobs=logprobs))
        elif isinstance(event, ReasoningDelta):
            if self.open is None or self.open.kind != "reasoning":
                frames += self._open("reasoning")
            assert self.open is not None
            self.open.text += event.text
            frames.append(self._event("response.reasoning_text.delta", item_id=self.open.item_id,
                                      output_index=self.open.index, content_index=0, delta=event.text))
        elif isinstance(event, ToolCallDelta):
            if event.id is not None or self.open is None or self.open.kind != "function_call":
                frames += self._open("function_call", call_id=event.id or new_id("call"), name=event.name or "")
            assert self.open is not None
            if event.name and not self.open.name:
                self.open.name = event.name
            if event.arguments:
                self.open.text += event.arguments
                frames.append(self._event("response.function_call_arguments.delta", item_id=self.open.item_id,
                                          output_index=self.open.index, delta=event.arguments))
        elif isinstance(event, Finish):
            frames += self._close()
            self.usage, self.reason = event.usage, event.reason
        return frames

    def finish(self) -> list[Frame]:
        frames = self._close()
        incomplete = "max_output_tokens" if self.reason == "length" else None
        response = self.shell.build("incomplete" if incomplete else "completed",
                                    [o for o in self.output if o], self.usage, incomplete)
        kind = "response.incomplete" if incomplete else "response.completed"
        return [*frames, self._event(kind, response=response)]

    def error(self, exc: BaseException) -> list[Frame]:
        body = openai_error_body(exc)
        return [self._event("error", code=spec_for(exc).code, message=body["error"]["message"],
                            param=body["error"]["param"], error=body["error"])]


async def responses(request: web.Request) -> web.StreamResponse:
    settings, kronk = request.app[SETTINGS], request.app[KRONK]
    body = Body(await read_json(request, settings.max_body_size))
    call = parse_responses(body, p.Limits.from_settings(settings))
    model = call.request.model or settings.default_model
    meter = RequestMeter(request.app[METRICS], model, "responses")
    shell = ResponseShell(model, call.echo)
    if call.stream:
        return await stream_response(request, kronk.chat_stream(call.request, explicit=call.explicit),
                                     ResponsesStreamEncoder(shell), meter)
    result = await kronk.chat(call.request, explicit=call.explicit)
    meter.on_usage(result.usage)
    shell.model = result.model
    return json_response(encode_response(result, shell), headers=tools_dropped_headers(result.tools_dropped))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/responses", responses)

