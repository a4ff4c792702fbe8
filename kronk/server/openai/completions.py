"""POST /v1/completions: text completion, FIM with `suffix`, echo, legacy logprobs.

`prompt` may be a string, a token list, or an array of either; several prompts run
concurrently and their choices are numbered prompt-major, as OpenAI does.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kronk.engine.types import Finish, TextDelta, TokenLogprob, Usage
from kronk.sdk.requests import CompletionChoice, CompletionRequest, CompletionResult, new_id
from kronk.server.keys import KRONK, METRICS, SETTINGS
from kronk.server.meter import RequestMeter
from kronk.server.openai import protocol as p
from kronk.server.openai.answers import Completion
from kronk.server.openai.bodies import CompletionRequest as CompletionRequestBody
from kronk.server.openai.chunks import ChunkStreamEncoder
from kronk.server.respond import json_response
from kronk.server.streaming import Frame, stream_response
from kronk.server.tasks import gather_or_cancel
from kronk.server.validate import read_json
from kronk.wire import BODY_ERRORS, MODEL_ERRORS, Operation, operation, parse


@dataclass(slots=True)
class CompletionCall:
    requests: list[CompletionRequest]
    """One per prompt."""
    stream: bool
    include_usage: bool
    explicit: set[str]


def parse_completion(data: object, limits: p.Limits) -> CompletionCall:
    """A completions body as one CompletionRequest per prompt; raises InvalidRequestError(param=...)."""
    body = parse(CompletionRequestBody, data)
    p.check_inputs("prompt", len(body.prompt), limits)
    sampling, explicit = p.sampling_params(body)
    base = CompletionRequest(
        prompt="",
        model=p.model_of(body.model),
        suffix=body.suffix or None,
        echo=body.echo,
        sampling=sampling,
        max_tokens=p.check_max_tokens(body, limits, ("max_tokens",)),
        stop=p.strings(body.stop),
        n=body.n,
        logprobs=body.logprobs is not None,
        top_logprobs=body.logprobs or 0,
        ignore_eos=body.ignore_eos,
        add_special=body.add_special,
        speculation=body.kronk_speculation.engine() if body.kronk_speculation else None,
    )
    return CompletionCall([dataclasses.replace(base, prompt=pr) for pr in body.prompt], body.stream,
                          p.include_usage(body.stream_options), explicit)


def encode_legacy_logprobs(items: list[TokenLogprob] | None, offset: int = 0) -> dict[str, Any] | None:
    """The completions API's column-wise logprobs object."""
    if items is None:
        return None
    text_offset, position = [], offset
    for lp in items:
        text_offset.append(position)
        position += len(lp.token)
    return {
        "tokens": [lp.token for lp in items],
        "token_logprobs": [lp.logprob for lp in items],
        "top_logprobs": [{t.token: t.logprob for t in lp.top_logprobs} for lp in items],
        "text_offset": text_offset,
    }


def encode_completion_results(results: list[CompletionResult], model: str) -> dict[str, Any]:
    choices: list[dict[str, Any]] = []
    usages: list[Usage] = []
    for prompt_index, result in enumerate(results):
        usages.append(result.usage)
        for choice in result.choices:
            choices.append(_encode_choice(choice, prompt_index * len(result.choices) + choice.index))
    usage = p.merge_usage(usages, shared_prompt=len(results) == 1)  # a list of prompts: each counts
    return {
        "id": results[0].id if results else new_id("cmpl"),
        "object": "text_completion",
        "created": results[0].created if results else int(time.time()),
        "model": results[0].model if results else model,
        "system_fingerprint": p.SYSTEM_FINGERPRINT,
        "choices": choices,
        "usage": p.encode_usage(usage),
    }


def _encode_choice(choice: CompletionChoice, index: int) -> dict[str, Any]:
    return {
        "index": index,
        "text": choice.text,
        "logprobs": encode_legacy_logprobs(choice.logprobs),
        "finish_reason": p.finish_reason(choice.finish_reason),
    }


class CompletionStreamEncoder(ChunkStreamEncoder):
    """`text_completion` chunks, an optional usage chunk, then `[DONE]`."""

    object = "text_completion"
    id_prefix = "cmpl"

    def __init__(self, model: str, *, include_usage: bool = False, logprobs: bool = False) -> None:
        super().__init__(model, include_usage=include_usage, logprobs=logprobs)
        self.offsets: dict[int, int] = {}
        """Characters streamed so far per choice (the legacy logprobs' text_offset)."""

    def _chunk(self, choice: int, text: str, finish: str | None = None,
               logprobs: dict[str, Any] | None = None) -> Frame:
        return self._frame({"index": choice, "text": text, "logprobs": logprobs, "finish_reason": finish})

    def start(self) -> list[Frame]:
        return []

    def encode(self, event: Any) -> list[Frame]:
        if isinstance(event, TextDelta):
            offset = self.offsets.get(event.choice, 0)
            self.offsets[event.choice] = offset + len(event.text)
            logprobs = encode_legacy_logprobs(event.logprobs, offset) if self.logprobs else None
            return [self._chunk(event.choice, event.text, logprobs=logprobs)]
        if isinstance(event, Finish):
            self.usages[event.choice] = event.usage
            return [self._chunk(event.choice, "", finish=p.finish_reason(event.reason))]
        return []


@operation(Operation(
    summary="Text completion (FIM with suffix, echo, logprobs)", tag="OpenAI",
    request=CompletionRequestBody, response=Completion, stream=True, errors=BODY_ERRORS + MODEL_ERRORS))
async def completions(request: web.Request) -> web.StreamResponse:
    settings, kronk = request.app[SETTINGS], request.app[KRONK]
    call = parse_completion(await read_json(request, settings.max_body_size), p.Limits.from_settings(settings))
    first = call.requests[0]
    model = first.model or settings.default_model
    meter = RequestMeter(request.app[METRICS], model, "completions")
    if call.stream:
        encoder = CompletionStreamEncoder(model, include_usage=call.include_usage, logprobs=first.logprobs)
        return await stream_response(request, kronk.complete_stream(first, explicit=call.explicit), encoder, meter)
    results = await gather_or_cancel(kronk.complete(r, explicit=call.explicit) for r in call.requests)
    for result in results:
        meter.on_usage(result.usage)
    return json_response(encode_completion_results(results, model))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/completions", completions)
