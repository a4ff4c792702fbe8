"""POST /v1/embeddings: strings or token lists in, float or base64 vectors out."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from aiohttp import web

from kronk.sdk.requests import EmbeddingRequest, EmbeddingResult
from kronk.server.keys import KRONK, METRICS, SETTINGS
from kronk.server.meter import count_prompt_only
from kronk.server.openai import protocol as p
from kronk.server.openai.answers import EmbeddingList
from kronk.server.openai.bodies import EmbeddingRequest as EmbeddingRequestBody
from kronk.server.respond import json_response
from kronk.server.validate import read_json
from kronk.wire import BODY_ERRORS, MODEL_ERRORS, Operation, operation, parse


def parse_embeddings(data: object, limits: p.Limits) -> tuple[EmbeddingRequest, str]:
    """The SDK request and the encoding format (float | base64)."""
    body = parse(EmbeddingRequestBody, data)
    p.check_inputs("input", len(body.input), limits)
    request = EmbeddingRequest(input=body.input, model=p.model_of(body.model), normalize=body.normalize,
                               truncate=body.truncate, dimensions=body.dimensions)
    return request, body.encoding_format


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


@operation(Operation(summary="Embeddings", tag="OpenAI", request=EmbeddingRequestBody, response=EmbeddingList,
                     errors=BODY_ERRORS + MODEL_ERRORS))
async def embeddings(request: web.Request) -> web.Response:
    settings, kronk = request.app[SETTINGS], request.app[KRONK]
    req, fmt = parse_embeddings(await read_json(request, settings.max_body_size), p.Limits.from_settings(settings))
    result = await kronk.embed(req)
    count_prompt_only(request.app[METRICS], result.model, "embeddings", result.prompt_tokens)
    return json_response(encode_embeddings(result, fmt))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/embeddings", embeddings)
