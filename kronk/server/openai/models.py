"""GET /v1/models and /v1/models/{id} (ids may contain '/')."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from kronk.errors import ModelLoadError, ModelNotFoundError
from kronk.sdk.requests import ModelInfo
from kronk.server.keys import KRONK
from kronk.server.openai.answers import Model, ModelList
from kronk.server.respond import json_response
from kronk.wire import Operation, operation

_PRIVATE_FIELDS = frozenset({"path"})
"""Where the server keeps its files is none of a client's business."""


def encode_model(info: ModelInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "object": "model",
        "created": info.created,
        "owned_by": info.owned_by,
        "loaded": info.loaded,
        "capabilities": {k: v for k, v in info.capabilities.items() if k not in _PRIVATE_FIELDS},
    }


@operation(Operation(summary="List models", tag="OpenAI", response=ModelList))
async def list_models(request: web.Request) -> web.Response:
    models = await asyncio.to_thread(request.app[KRONK].list_models)  # scans the model store on disk
    return json_response({"object": "list", "data": [encode_model(m) for m in models]})


@operation(Operation(summary="One model (ids may contain '/')", tag="OpenAI", response=Model,
                     errors=(ModelNotFoundError, ModelLoadError)))
async def get_model(request: web.Request) -> web.Response:
    info = await request.app[KRONK].model_info(request.match_info["id"])
    return json_response(encode_model(info))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{id:.+}", get_model)
