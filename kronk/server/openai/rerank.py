"""POST /v1/rerank (alias /v1/reranking): score documents against a query."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kronk.errors import RequestTooLargeError
from kronk.sdk.requests import RerankRequest, RerankResult, new_id
from kronk.server.keys import KRONK, METRICS, SETTINGS
from kronk.server.openai import protocol as p
from kronk.server.respond import json_response
from kronk.server.validate import Body, read_json


def parse_rerank(body: Body, limits: p.Limits) -> tuple[RerankRequest, bool]:
    """The SDK request and whether to return the documents' text."""
    query = body.string("query", required=True, nonempty=True)
    documents: list[str] = []
    raw = body.array("documents", required=True, nonempty=True) or []
    if len(raw) > limits.max_inputs:
        raise RequestTooLargeError(f"documents has {len(raw)} entries; the limit is {limits.max_inputs}")
    for i, doc in enumerate(raw):
        if isinstance(doc, str):
            documents.append(doc)
        elif isinstance(doc, dict) and isinstance(doc.get("text"), str):
            documents.append(doc["text"])
        else:
            raise body.error(f"documents[{i}]", "must be a string or an object with text")
    top_n = body.integer("top_n", min=1)
    request = RerankRequest(query=query, documents=documents, model=p.parse_model(body), top_n=top_n)
    return request, bool(body.boolean("return_documents", default=True))


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


async def rerank(request: web.Request) -> web.Response:
    settings, kronk = request.app[SETTINGS], request.app[KRONK]
    body = Body(await read_json(request, settings.max_body_size))
    req, return_documents = parse_rerank(body, p.Limits.from_settings(settings))
    result = await kronk.rerank(req)
    metrics = request.app[METRICS]
    metrics.count_request(result.model, "rerank")
    metrics.count_tokens(result.model, "prompt", result.prompt_tokens)
    return json_response(encode_rerank(result, return_documents))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/rerank", rerank)
    app.router.add_post("/v1/reranking", rerank)
