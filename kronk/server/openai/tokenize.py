"""POST /v1/tokenize and /v1/detokenize.

Tokenize takes `input` (or llama.cpp's `content`) text, or chat `messages` to count
the prompt after the chat template; it returns the ids, their count and, with
`with_pieces`, each token's text.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kronk.sdk.requests import ChatRequest
from kronk.server.keys import KRONK, SETTINGS
from kronk.server.openai import protocol as p
from kronk.server.respond import json_response
from kronk.server.validate import Body, read_json


async def tokenize(request: web.Request) -> web.Response:
    settings, kronk = request.app[SETTINGS], request.app[KRONK]
    body = Body(await read_json(request, settings.max_body_size))
    model = p.parse_model(body)
    with_pieces = bool(body.boolean("with_pieces", default=False))
    if body.has("messages"):
        tools = p.parse_tools(body)
        chat = ChatRequest(messages=p.parse_messages(body), model=model, tools=tools)
        tokens = await kronk.tokenize_chat(chat)
    else:
        name = next((n for n in ("input", "content", "prompt") if n in body.data), "input")
        text = body.string(name, required=True)
        tokens = await kronk.tokenize(
            model, text,
            add_special=bool(body.boolean("add_special", default=True)),
            parse_special=bool(body.boolean("parse_special", default=True)),
        )
    out: dict[str, Any] = {"model": model or settings.default_model, "count": len(tokens)}
    if with_pieces:
        pieces = await kronk.token_pieces(model, tokens)
        out["tokens"] = [{"id": t, "piece": piece} for t, piece in zip(tokens, pieces, strict=True)]
    else:
        out["tokens"] = tokens
    return json_response(out)


async def detokenize(request: web.Request) -> web.Response:
    settings, kronk = request.app[SETTINGS], request.app[KRONK]
    body = Body(await read_json(request, settings.max_body_size))
    model = p.parse_model(body)
    raw = body.array("tokens", required=True) or []
    for i, token in enumerate(raw):
        if isinstance(token, bool) or not isinstance(token, int) or token < 0:
            raise body.error(f"tokens[{i}]", "must be a non-negative integer token id")
    text = await kronk.detokenize(model, list(raw))
    return json_response({"model": model or settings.default_model, "content": text})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/tokenize", tokenize)
    app.router.add_post("/v1/detokenize", detokenize)
