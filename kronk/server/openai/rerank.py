"""POST /v1/rerank (alias /v1/reranking): score documents against a query."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kronk.sdk.requests import RerankRequest, RerankResult, new_id
from kronk.server.keys import KRONK, METRICS, SETTINGS
from kronk.server.meter import count_prompt_only
from kronk.server.openai import protocol as p
from kronk.server.openai.answers import RerankResult as RerankAnswer
from kronk.server.openai.bodies import RerankRequest as RerankRequestBody
from kronk.server.respond import json_response
from kronk.server.validate import read_json
from kronk.wire import BODY_ERRORS, MODEL_ERRORS, Operation, operation, parse


def parse_rerank(data: object, limits: p.Limits) -> tuple[RerankRequest, bool]:
    """The SDK request and whether to return the documents' text."""
    body = parse(RerankRequestBody, data)
    p.check_inputs("documents", len(body.documents), limits)
    documents = [doc if isinstance(doc, str) else doc.text for doc in body.documents]
    request = RerankRequest(query=body.query, documents=documents, model=p.model_of(body.model), top_n=body.top_n)
    return request, body.return_documents


def encode_rerank(result: RerankResult, return_documents: bool) -> dict[str, Any]:
    results = []
    for item in result.results:
        entry: dict[str, Any] = {"index": item.index, "relevance_score": item.relevance_score}
        if return_documents:
            entry["document"] = {"text": item.document}
        results.append(entry)
    return {
        "id": new_id("rerank"),
        "object": "list",
        "model": result.model,
        "results": results,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }


@operation(Operation(summary="Rerank documents against a query (also at /v1/reranking)", tag="Kronk",
                     request=RerankRequestBody, response=RerankAnswer, errors=BODY_ERRORS + MODEL_ERRORS))
async def rerank(request: web.Request) -> web.Response:
    settings, kronk = request.app[SETTINGS], request.app[KRONK]
    req, return_documents = parse_rerank(await read_json(request, settings.max_body_size),
                                         p.Limits.from_settings(settings))
    result = await kronk.rerank(req)
    count_prompt_only(request.app[METRICS], result.model, "rerank", result.prompt_tokens)
    return json_response(encode_rerank(result, return_documents))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/rerank", rerank)
    app.router.add_post("/v1/reranking", rerank)
