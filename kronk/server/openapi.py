"""GET /openapi.json: an OpenAPI 3.1 document of the whole HTTP API, built from the live router.

Every route declares its operation once, beside its handler (`kronk.wire.operation`):
the request model (the same model that validates the body), the response model, whether
it streams, and the error classes it can raise. This module walks the router (mounted
management and security routes included), turns the models into JSON Schema under
components/schemas, and documents each status: the success, every declared error
class's `http_status` with the API's error schema, 400/413 for any route with a body,
401/403/429 for routes that security guards, and 500 (a bug) everywhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from kronk import errors as E
from kronk.server.health import kronk_version
from kronk.server.keys import SETTINGS
from kronk.server.respond import json_response
from kronk.settings import ServerSettings
from kronk.wire import (
    BODY_ERRORS,
    AnthropicErrorBody,
    OpenAIErrorBody,
    Operation,
    WireSchema,
    declared,
    operation,
)

_REF = "#/components/schemas/{model}"
_SSE_EVENT: dict[str, Any] = {"type": "object", "required": ["data"], "properties": {
    "event": {"type": "string"}, "data": {"type": "string", "description": "a JSON object, or [DONE] at the end"}}}
"""One event of a stream (each event's `data` is the JSON of a chunk)."""
_SECURITY_ERRORS: tuple[type[E.KronkError], ...] = (
    E.AuthenticationError, E.PermissionDeniedError, E.RateLimitError)


def _routes(app: web.Application) -> Iterator[tuple[str, str, Any]]:
    """(path template, method, handler) of every route, sub-apps included; `{id:.+}` written `{id}`."""
    for resource in app.router.resources():
        sub_app = getattr(resource, "_app", None)
        if isinstance(sub_app, web.Application):
            yield from _routes(sub_app)
            continue
        path = resource.canonical
        for route in resource:
            if route.method in ("HEAD", "OPTIONS", "*"):
                continue
            yield _plain_template(path), route.method.lower(), route.handler


def _plain_template(path: str) -> str:
    """`/v1/models/{id:.+}` as OpenAPI writes it: `/v1/models/{id}`."""
    out, depth, skipping = [], 0, False
    for char in path:
        if char == "{":
            depth += 1
            skipping = False
        elif char == "}":
            depth -= 1
            skipping = False
        elif char == ":" and depth == 1:
            skipping = True
            continue
        if not skipping:
            out.append(char)
    return "".join(out)


def _path_parameters(path: str, op: Operation) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
    out: list[dict[str, Any]] = []
    for name in names:
        parameter = {"name": name, "in": "path", "required": True,
                     "schema": dict(op.path_params.get(name, {"type": "string", "minLength": 1}))}
        if name == "id":
            parameter["description"] = "may contain '/'"
        out.append(parameter)
    return out


def _guarded(path: str, app: web.Application) -> tuple[bool, bool]:
    """(needs a token, counts against a rate limit) under this app's security mode."""
    try:
        from kronk.security.endpoints import Access, RouteKind, classify, is_public_path, required_access
        from kronk.security.middleware import SECURITY_STATE
    except ModuleNotFoundError:
        return False, False
    state = app.get(SECURITY_STATE)
    if state is None:
        return False, False
    config, route = state.config, classify(path)
    if route.kind is not RouteKind.MANAGEMENT and is_public_path(path, config.public_paths):
        return False, False
    access = required_access(config.mode, route)
    return access is not Access.PUBLIC, access is Access.GRANT


class _Document:
    """Collects schemas (by model) and operations, then renders the document."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.models: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
        self.literal: dict[str, Any] = {}
        for model in (OpenAIErrorBody, AnthropicErrorBody):
            self.models[(model, "serialization")] = None

    def schema(self, value: Any, mode: JsonSchemaMode) -> dict[str, Any]:
        """A $ref to a model (collected) or a literal schema as is."""
        if isinstance(value, type) and issubclass(value, BaseModel):
            self.models[(value, mode)] = None
            return {"$ref": _REF.format(model=value.__name__)}
        return dict(value)

    def responses(self, op: Operation, extra_errors: tuple[type[E.KronkError], ...]) -> dict[str, Any]:
        content: dict[str, Any] = {}
        if op.response is not None:
            content[op.media] = {"schema": self.schema(op.response, "serialization")}
        if op.stream:
            when = " (with `\"stream\": true`)" if op.response is not None else ""
            content["text/event-stream"] = {"schema": {**_SSE_EVENT, "description": f"server-sent events{when}"}}
        success: dict[str, Any] = {"description": op.summary}
        if content:
            success["content"] = content
        out: dict[str, Any] = {str(op.status): success}
        for status, extra in op.also.items():
            out[str(status)] = {"description": extra.description,
                                "content": {extra.media: {"schema": self.schema(extra.schema, "serialization")}}}
        by_status: dict[int, list[type[E.KronkError]]] = defaultdict(list)
        for error in (*op.errors, *extra_errors):
            for cls in _with_subclasses(error):
                if cls not in by_status[cls.http_status]:
                    by_status[cls.http_status].append(cls)
        error_schema = self.schema(AnthropicErrorBody if op.error_style == "anthropic" else OpenAIErrorBody,
                                   "serialization")
        for status in sorted(by_status):
            if str(status) not in out:
                reasons = "; ".join(f"{cls.error_code}: {_first_line(cls.__doc__)}" for cls in by_status[status])
                out[str(status)] = {"description": reasons,
                                    "content": {"application/json": {"schema": error_schema}}}
        out.setdefault("500", {"description": "internal_error: a bug in the server (logged with its traceback)",
                               "content": {"application/json": {"schema": error_schema}}})
        return out

    def operation(self, path: str, op: Operation, app: web.Application) -> dict[str, Any]:
        guarded, limited = _guarded(path, app)
        extra = (BODY_ERRORS if op.request is not None else ()) + (
            _SECURITY_ERRORS[:2] + (_SECURITY_ERRORS[2:] if limited else ()) if guarded else ())
        doc: dict[str, Any] = {"summary": op.summary, "tags": [op.tag],
                               "responses": self.responses(op, extra)}
        if op.description:
            doc["description"] = op.description
        parameters = _path_parameters(path, op)
        parameters += [{"name": name, "in": "query", "required": False, "schema": {"type": "string"},
                        "description": text} for name, text in op.query.items()]
        if parameters:
            doc["parameters"] = parameters
        if op.request is not None:
            doc["requestBody"] = {"required": op.body_required,
                                  "content": {"application/json": {"schema": self.schema(op.request, "validation")}}}
        if guarded:
            doc["security"] = [{"bearer": []}]
        return doc

    def components(self) -> dict[str, Any]:
        names: dict[str, type[BaseModel]] = {}
        for model, _ in self.models:
            if names.setdefault(model.__name__, model) is not model:
                raise TypeError(f"two models are named {model.__name__}: {model.__module__}, "
                                f"{names[model.__name__].__module__}; schema names must be unique")
        _, defs = models_json_schema(list(self.models), ref_template=_REF, schema_generator=WireSchema)
        schemas = defs.get("$defs", {})
        _apply_limits(schemas, self.settings)
        return schemas


def _with_subclasses(error: type[E.KronkError]) -> list[type[E.KronkError]]:
    """The class and its loaded subclasses that answer with the same status (their codes differ)."""
    found, pending = [], [error]
    while pending:
        cls = pending.pop(0)
        if cls.http_status == error.http_status:
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0].rstrip(".") if doc else ""


def _apply_limits(node: Any, settings: ServerSettings) -> None:
    """Fill `maximum` where a model marked a field with the server setting that bounds it."""
    if isinstance(node, dict):
        limit = node.pop("x-kronk-limit", None)
        if limit == "max_tokens":
            node["maximum"] = settings.max_tokens_limit
        for value in node.values():
            _apply_limits(value, settings)
    elif isinstance(node, list):
        for value in node:
            _apply_limits(value, settings)


def _fallback(path: str, method: str, handler: Any) -> Operation:
    """A route nobody declared: its docstring and a bare success (a test keeps such routes out)."""
    lines = (getattr(handler, "__doc__", None) or "").strip().splitlines()
    return Operation(summary=lines[0] if lines else f"{method.upper()} {path}", tag="Other")


def undeclared_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, path) of the routes that declare no operation."""
    return [(method, path) for path, method, handler in _routes(app) if declared(handler) is None]


def build_document(app: web.Application) -> dict[str, Any]:
    settings = app[SETTINGS]
    document = _Document(settings)
    paths: dict[str, dict[str, Any]] = {}
    for path, method, handler in _routes(app):
        op = declared(handler) or _fallback(path, method, handler)
        paths.setdefault(path, {})[method] = document.operation(path, op, app)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Kronk Model Server", "version": kronk_version(),
                 "description": "OpenAI- and Anthropic-compatible local model server on llama.cpp."},
        "servers": [{"url": settings.base_url}],
        "components": {
            "schemas": document.components(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "paths": paths,
    }


@operation(Operation(summary="This document (OpenAPI 3.1)", tag="Health", response={"type": "object"}))
async def openapi(request: web.Request) -> web.Response:
    return json_response(build_document(request.app))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi)
