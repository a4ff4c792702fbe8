"""POST /v1/tokenize and /v1/detokenize.

Tokenize takes `input` (or llama.cpp's `content`, or `prompt`) text, or chat
`messages` to count the prompt after the chat template; it returns the ids, their
count and, with `with_pieces`, each token's text.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kronk.sdk.requests import ChatRequest
from kronk.server.keys import KRONK, SETTINGS
from kronk.server.openai import protocol as p
from kronk.server.openai.answers import DetokenizeResult, TokenizeResult
from kronk.server.openai.bodies import DetokenizeRequest, TokenizeRequest
from kronk.server.respond import json_response
from kronk.server.validate import read_json
from kronk.wire import BODY_ERRORS, MODEL_ERRORS, Operation, operation, parse


@operation(Operation(summary="Tokenize text, or count the prompt of chat messages", tag="Kronk",
                     request=TokenizeRequest, response=TokenizeResult, errors=BODY_ERRORS + MODEL_ERRORS))
async def tokenize(request: web.Request) -> web.Response:
    settings, kronk = request.app[SETTINGS], request.app[KRONK]
    body = parse(TokenizeRequest, await read_json(request, settings.max_body_size))
    model = p.model_of(body.model)
    if body.messages is not None:
        chat = ChatRequest(messages=[p.message_dict(m) for m in body.messages], model=model,
                           tools=p.tools_of(body.tools))
        tokens = await kronk.tokenize_chat(chat)
    else:
        tokens = await kronk.tokenize(model, body.text or "", add_special=body.add_special,
                                      parse_special=body.parse_special)
    out: dict[str, Any] = {"model": model or settings.default_model, "count": len(tokens)}
    if body.with_pieces:
        pieces = await kronk.token_pieces(model, tokens)
        out["tokens"] = [{"id": t, "piece": piece} for t, piece in zip(tokens, pieces, strict=True)]
    else:
        out["tokens"] = tokens
    return json_response(out)


@operation(Operation(summary="Detokenize token ids", tag="Kronk", request=DetokenizeRequest,
                     response=DetokenizeResult, errors=BODY_ERRORS + MODEL_ERRORS))
async def detokenize(request: web.Request) -> web.Response:
    settings, kronk = request.app[SETTINGS], request.app[KRONK]
    body = parse(DetokenizeRequest, await read_json(request, settings.max_body_size))
    model = p.model_of(body.model)
    text = await kronk.detokenize(model, body.tokens)
    return json_response({"model": model or settings.default_model, "content": text})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/tokenize", tokenize)
    app.router.add_post("/v1/detokenize", detokenize)
