"""POST /v1/embeddings: strings or token lists in, float or base64 vectors out."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from aiohttp import web

from kronk.errors import RequestTooLargeError
from kronk.sdk.requests import EmbeddingRequest, EmbeddingResult
from kronk.server.keys import KRONK, METRICS, SETTINGS
from kronk.server.openai import protocol as p
from kronk.server.respond import json_response
from kronk.server.validate import Body, read_json


def _is_tokens(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in value)


def parse_inputs(body: Body, limits: p.Limits) -> list[str] | list[list[int]]:
    raw = body.raw("input")
    if raw is None:
        raise body.error("input", "is required")
    inputs: list[Any]
    if isinstance(raw, str) or _is_tokens(raw):
        inputs = [raw]
    elif isinstance(raw, list) and raw:
        inputs = raw
    else:
        raise body.error("input", "must be a string, an array of strings, or token arrays")
    if len(inputs) > limits.max_inputs:
        raise RequestTooLargeError(f"input has {len(inputs)} entries; the limit is {limits.max_inputs}")
    if all(isinstance(x, str) for x in inputs):
        for i, text in enumerate(inputs):
            if not text:
                raise body.error(f"input[{i}]" if len(inputs) > 1 or isinstance(raw, list) else "input",
                                 "must not be empty")
        return list(inputs)
    if all(_is_tokens(x) for x in inputs):
        return [list(x) for x in inputs]
    raise body.error("input", "must be all strings or all token arrays")


def parse_embeddings(body: Body, limits: p.Limits) -> tuple[EmbeddingRequest, str]:
    """The SDK request and the encoding format (float | base64)."""
    fmt = body.string("encoding_format", default="float", choices=("float", "base64"))
    request = EmbeddingRequest(
        input=parse_inputs(body, limits),
        model=p.parse_model(body),
        normalize=bool(body.boolean("normalize", default=True)),
        truncate=bool(body.boolean("truncate", default=True)),
        dimensions=body.integer("dimensions", min=1),
    )
    return request, str(fmt)


def encode_vector(vector: list[float], fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector


def encode_embeddings(result: EmbeddingResult, fmt: str) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encode_vector(v, fmt)}
                 for i, v in enumerate(result.embeddings)],
        "model": result.model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }


async def embeddings(request: web.Request) -> web.Response:
    settings, kronk = request.app[SETTINGS], request.app[KRONK]
    body = Body(await read_json(request, settings.max_body_size))
    req, fmt = parse_embeddings(body, p.Limits.from_settings(settings))
    result = await kronk.embed(req)
    metrics = request.app[METRICS]
    metrics.count_request(result.model, "embeddings")
    metrics.count_tokens(result.model, "prompt", result.prompt_tokens)
    return json_response(encode_embeddings(result, fmt))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/embeddings", embeddings)
