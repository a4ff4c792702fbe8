"""GET /openapi.json: an OpenAPI 3.1 document of the whole HTTP API.

The inference, health and metrics routes are described here by hand (request and
response schemas); routes mounted by other packages (management, security) are
added from the live router with their handler's docstring, so the document never
misses a route the server actually serves.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kronk.server.health import kronk_version
from kronk.server.keys import SETTINGS
from kronk.server.respond import json_response

_OBJ = {"type": "object"}
_STR = {"type": "string"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_BOOL = {"type": "boolean"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _arr(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


_STRINGS = {"oneOf": [_STR, _arr(_STR)]}
_SAMPLING: dict[str, Any] = {
    "temperature": {**_NUM, "minimum": 0}, "top_p": {**_NUM, "minimum": 0, "maximum": 1},
    "top_k": {**_INT, "minimum": 0}, "min_p": _NUM, "typical_p": _NUM, "repeat_penalty": _NUM,
    "repeat_last_n": _INT, "presence_penalty": _NUM, "frequency_penalty": _NUM, "dry_multiplier": _NUM,
    "dry_base": _NUM, "dry_allowed_length": _INT, "dry_penalty_last_n": _INT,
    "dry_sequence_breakers": _arr(_STR), "xtc_probability": _NUM, "xtc_threshold": _NUM,
    "mirostat": {**_INT, "enum": [0, 1, 2]}, "mirostat_tau": _NUM, "mirostat_eta": _NUM,
    "dynatemp_range": _NUM, "dynatemp_exponent": _NUM, "top_n_sigma": _NUM,
    "logit_bias": {"type": "object", "additionalProperties": {**_NUM, "minimum": -100, "maximum": 100},
                   "description": "token id (as a string) -> bias"},
    "seed": _INT, "grammar": {**_STR, "description": "GBNF grammar constraining the output"},
    "ignore_eos": _BOOL,
}
_USAGE = {"type": "object", "properties": {
    "prompt_tokens": _INT, "completion_tokens": _INT, "total_tokens": _INT,
    "prompt_tokens_details": {"type": "object", "properties": {"cached_tokens": _INT}},
    "completion_tokens_details": {"type": "object", "properties": {"reasoning_tokens": _INT}},
    "time_to_first_token_ms": _NUM, "tokens_per_second": _NUM}}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "properties": {"message": _STR, "type": _STR, "param": {"type": ["string", "null"]},
                                         "code": {"type": ["string", "null"]}}}}},
    "AnthropicError": {"type": "object", "properties": {"type": {"const": "error"}, "error": {
        "type": "object", "properties": {"type": _STR, "message": _STR}}}},
    "Message": {"type": "object", "required": ["role"], "properties": {
        "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {"oneOf": [_STR, _arr(_OBJ), {"type": "null"}],
                    "description": "text, or parts: text, image_url, input_audio"},
        "tool_calls": _arr(_OBJ), "tool_call_id": _STR, "reasoning_content": _STR, "name": _STR}},
    "Tool": {"type": "object", "required": ["type", "function"], "properties": {
        "type": {"const": "function"}, "function": {"type": "object", "required": ["name"], "properties": {
            "name": _STR, "description": _STR, "parameters": _OBJ, "strict": _BOOL}}}},
    "ChatCompletionRequest": {"type": "object", "required": ["messages"], "properties": {
        "model": _STR, "messages": _arr(_ref("Message")), "stream": _BOOL,
        "stream_options": {"type": "object", "properties": {"include_usage": _BOOL}},
        "max_tokens": {**_INT, "minimum": 1}, "max_completion_tokens": {**_INT, "minimum": 1},
        "n": {**_INT, "minimum": 1, "maximum": 16}, "stop": _STRINGS,
        "logprobs": _BOOL, "top_logprobs": {**_INT, "minimum": 0, "maximum": 20},
        "n_probs": {**_INT, "minimum": 0, "maximum": 20},
        "tools": _arr(_ref("Tool")),
        "tool_choice": {"oneOf": [{"enum": ["none", "auto", "required"]}, _OBJ]},
        "parallel_tool_calls": _BOOL,
        "response_format": {"type": "object", "properties": {
            "type": {"enum": ["text", "json_object", "json_schema"]}, "json_schema": _OBJ}},
        "json_schema": _OBJ, "chat_template_kwargs": _OBJ, "chat_template": _STR, "enable_thinking": _BOOL,
        "reasoning_effort": {"enum": ["none", "minimal", "low", "medium", "high"]}, **_SAMPLING}},
    "ChatCompletion": {"type": "object", "properties": {
        "id": _STR, "object": {"const": "chat.completion"}, "created": _INT, "model": _STR,
        "system_fingerprint": _STR,
        "choices": _arr({"type": "object", "properties": {
            "index": _INT, "message": _ref("Message"), "logprobs": {"type": ["object", "null"]},
            "finish_reason": {"enum": ["stop", "length", "tool_calls"]}}}),
        "usage": _USAGE}},
    "CompletionRequest": {"type": "object", "required": ["prompt"], "properties": {
        "model": _STR, "prompt": {"oneOf": [_STR, _arr(_STR), _arr(_INT), _arr(_arr(_INT))]},
        "suffix": {**_STR, "description": "fill-in-the-middle: text after the gap"}, "echo": _BOOL,
        "logprobs": {**_INT, "minimum": 0, "maximum": 20}, "max_tokens": _INT, "stream": _BOOL,
        "stream_options": _OBJ, "n": _INT, "stop": _STRINGS, **_SAMPLING}},
    "Completion": {"type": "object", "properties": {
        "id": _STR, "object": {"const": "text_completion"}, "created": _INT, "model": _STR,
        "choices": _arr({"type": "object", "properties": {"index": _INT, "text": _STR,
                                                          "logprobs": {"type": ["object", "null"]},
                                                          "finish_reason": _STR}}),
        "usage": _USAGE}},
    "EmbeddingRequest": {"type": "object", "required": ["input"], "properties": {
        "model": _STR, "input": {"oneOf": [_STR, _arr(_STR), _arr(_INT), _arr(_arr(_INT))]},
        "encoding_format": {"enum": ["float", "base64"]}, "dimensions": {**_INT, "minimum": 1},
        "truncate": _BOOL, "normalize": _BOOL}},
    "EmbeddingList": {"type": "object", "properties": {
        "object": {"const": "list"}, "model": _STR,
        "data": _arr({"type": "object", "properties": {"index": _INT, "object": {"const": "embedding"},
                                                       "embedding": {"oneOf": [_arr(_NUM), _STR]}}}),
        "usage": {"type": "object", "properties": {"prompt_tokens": _INT, "total_tokens": _INT}}}},
    "ResponsesRequest": {"type": "object", "required": ["input"], "properties": {
        "model": _STR, "input": {"oneOf": [_STR, _arr(_OBJ)],
                                 "description": "messages, function_call, function_call_output, reasoning"},
        "instructions": _STR, "tools": _arr(_OBJ), "tool_choice": {"oneOf": [_STR, _OBJ]},
        "text": {"type": "object", "properties": {"format": _OBJ}}, "reasoning": _OBJ,
        "max_output_tokens": _INT, "stream": _BOOL, "temperature": _NUM, "top_p": _NUM,
        "parallel_tool_calls": _BOOL, "metadata": _OBJ}},
    "Response": {"type": "object", "properties": {
        "id": _STR, "object": {"const": "response"}, "created_at": _INT,
        "status": {"enum": ["completed", "incomplete", "in_progress"]}, "model": _STR, "output": _arr(_OBJ),
        "output_text": _STR, "incomplete_details": {"type": ["object", "null"]}, "usage": _OBJ}},
    "MessagesRequest": {"type": "object", "required": ["max_tokens", "messages"], "properties": {
        "model": _STR, "max_tokens": {**_INT, "minimum": 1}, "system": {"oneOf": [_STR, _arr(_OBJ)]},
        "messages": _arr({"type": "object", "required": ["role", "content"], "properties": {
            "role": {"enum": ["user", "assistant"]}, "content": {"oneOf": [_STR, _arr(_OBJ)]}}}),
        "tools": _arr({"type": "object", "required": ["name", "input_schema"], "properties": {
            "name": _STR, "description": _STR, "input_schema": _OBJ}}),
        "tool_choice": {"type": "object", "properties": {"type": {"enum": ["auto", "any", "tool", "none"]},
                                                         "name": _STR, "disable_parallel_tool_use": _BOOL}},
        "stop_sequences": _arr(_STR), "stream": _BOOL, "temperature": _NUM, "top_p": _NUM, "top_k": _INT,
        "thinking": {"type": "object", "properties": {"type": {"enum": ["enabled", "disabled"]},
                                                      "budget_tokens": _INT}}}},
    "AnthropicMessage": {"type": "object", "properties": {
        "id": _STR, "type": {"const": "message"}, "role": {"const": "assistant"}, "model": _STR,
        "content": _arr(_OBJ),
        "stop_reason": {"enum": ["end_turn", "max_tokens", "stop_sequence", "tool_use"]},
        "stop_sequence": {"type": ["string", "null"]},
        "usage": {"type": "object", "properties": {"input_tokens": _INT, "output_tokens": _INT,
                                                   "cache_read_input_tokens": _INT}}}},
    "RerankRequest": {"type": "object", "required": ["query", "documents"], "properties": {
        "model": _STR, "query": _STR, "documents": _arr({"oneOf": [_STR, _OBJ]}), "top_n": _INT,
        "return_documents": _BOOL}},
    "RerankResult": {"type": "object", "properties": {"model": _STR, "results": _arr({
        "type": "object", "properties": {"index": _INT, "relevance_score": _NUM, "document": _OBJ}})}},
    "TokenizeRequest": {"type": "object", "properties": {
        "model": _STR, "input": _STR, "content": _STR, "messages": _arr(_ref("Message")),
        "add_special": _BOOL, "parse_special": _BOOL, "with_pieces": _BOOL}},
    "DetokenizeRequest": {"type": "object", "required": ["tokens"], "properties": {
        "model": _STR, "tokens": _arr(_INT)}},
    "TokenizeResult": {"type": "object", "properties": {
        "model": _STR, "count": _INT, "tokens": _arr({"oneOf": [_INT, _OBJ]})}},
    "DetokenizeResult": {"type": "object", "properties": {"model": _STR, "content": _STR}},
    "TokenCount": {"type": "object", "properties": {"input_tokens": _INT}},
    "Model": {"type": "object", "properties": {"id": _STR, "object": {"const": "model"}, "created": _INT,
                                               "owned_by": _STR, "loaded": _BOOL, "capabilities": _OBJ}},
    "ModelList": {"type": "object", "properties": {"object": {"const": "list"}, "data": _arr(_ref("Model"))}},
}

_ERRORS = {
    "400": {"description": "Invalid request (`param` names the field)"},
    "404": {"description": "Unknown model"},
    "413": {"description": "Body or input count above a limit"},
    "429": {"description": "Queue full (Retry-After)"},
    "503": {"description": "Model cannot be loaded, or shutting down"},
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _errors(error_schema: str) -> dict[str, Any]:
    return {code: {**spec, "content": _json(_ref(error_schema))} for code, spec in _ERRORS.items()}


def _post(summary: str, request: str, response: str, *, stream: bool = False,
          error: str = "Error", tag: str = "OpenAI") -> dict[str, Any]:
    content = _json(_ref(response))
    if stream:
        content["text/event-stream"] = {"schema": {**_STR, "description": "SSE events when stream is true"}}
    return {"post": {
        "summary": summary, "tags": [tag],
        "requestBody": {"required": True, "content": _json(_ref(request))},
        "responses": {"200": {"description": "OK", "content": content}, **_errors(error)},
    }}


def _get(summary: str, schema: dict[str, Any], tag: str, media: str = "application/json",
         extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"get": {"summary": summary, "tags": [tag],
                    "responses": {"200": {"description": "OK", "content": {media: {"schema": schema}}},
                                  **(extra or {})}}}


PATHS: dict[str, Any] = {
    "/v1/chat/completions": _post("Chat completion (tools, JSON schema, logprobs, reasoning)",
                                  "ChatCompletionRequest", "ChatCompletion", stream=True),
    "/v1/completions": _post("Text completion (FIM with suffix, echo, logprobs)", "CompletionRequest",
                             "Completion", stream=True),
    "/v1/embeddings": _post("Embeddings", "EmbeddingRequest", "EmbeddingList"),
    "/v1/responses": _post("Responses API (stateless)", "ResponsesRequest", "Response", stream=True),
    "/v1/messages": _post("Anthropic Messages", "MessagesRequest", "AnthropicMessage", stream=True,
                          error="AnthropicError", tag="Anthropic"),
    "/v1/messages/count_tokens": _post("Anthropic token count", "MessagesRequest", "TokenCount",
                                       error="AnthropicError", tag="Anthropic"),
    "/v1/rerank": _post("Rerank documents", "RerankRequest", "RerankResult", tag="Kronk"),
    "/v1/reranking": _post("Rerank documents (alias)", "RerankRequest", "RerankResult", tag="Kronk"),
    "/v1/tokenize": _post("Tokenize text or chat messages", "TokenizeRequest", "TokenizeResult", tag="Kronk"),
    "/v1/detokenize": _post("Detokenize", "DetokenizeRequest", "DetokenizeResult", tag="Kronk"),
    "/v1/models": _get("List models", _ref("ModelList"), "OpenAI"),
    "/v1/models/{id}": {"get": {
        "summary": "One model (ids may contain '/')", "tags": ["OpenAI"],
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": _STR}],
        "responses": {"200": {"description": "OK", "content": _json(_ref("Model"))},
                      "404": {"description": "Unknown model", "content": _json(_ref("Error"))}}}},
    "/v1/liveness": _get("Liveness", _OBJ, "Health"),
    "/v1/readiness": _get("Readiness (503 while the default model loads)", _OBJ, "Health",
                          extra={"503": {"description": "Not ready", "content": _json(_OBJ)}}),
    "/metrics": _get("Prometheus metrics", _STR, "Health", media="text/plain"),
    "/openapi.json": _get("This document", _OBJ, "Health"),
}


def _discovered_paths(app: web.Application) -> dict[str, Any]:
    """Routes of the live app (sub-apps included) that PATHS does not describe."""
    found: dict[str, Any] = {}

    def walk(router: web.UrlDispatcher) -> None:
        for resource in router.resources():
            sub_app = getattr(resource, "_app", None)
            if isinstance(sub_app, web.Application):
                walk(sub_app.router)
                continue
            path = resource.canonical.replace("{id:.+}", "{id}")
            if path in PATHS:
                continue
            for route in resource:
                method = route.method.lower()
                if method in ("head", "options", "*"):
                    continue
                doc = (getattr(route.handler, "__doc__", None) or "").strip().splitlines()
                tag = "Management" if path.startswith(("/v1/kronk", "/v1/security")) else "Other"
                found.setdefault(path, {})[method] = {
                    "summary": doc[0] if doc else f"{route.method} {path}", "tags": [tag],
                    "responses": {"200": {"description": "OK"}},
                }

    walk(app.router)
    return found


def build_document(app: web.Application) -> dict[str, Any]:
    settings = app[SETTINGS]
    return {
        "openapi": "3.1.0",
        "info": {"title": "Kronk Model Server", "version": kronk_version(),
                 "description": "OpenAI- and Anthropic-compatible local model server on llama.cpp."},
        "servers": [{"url": settings.base_url}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{}, {"bearer": []}],
        "paths": {**PATHS, **_discovered_paths(app)},
    }


async def openapi(request: web.Request) -> web.Response:
    return json_response(build_document(request.app))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi)
