"""Admin HTTP endpoints for keys and tokens (admin-only unless security is off).

GET    /v1/security/config        mode and settings
GET    /v1/security/keys          every key, the signing one marked
POST   /v1/security/keys          create a key (it signs from now on)
DELETE /v1/security/keys/{kid}    delete a key, revoking its tokens
POST   /v1/security/tokens        {admin?, duration?, endpoints?, subject?} -> {token, …}
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import ConfigDict, Field

from kronk.errors import ConfigError, InvalidRequestError, KronkError
from kronk.security import admin
from kronk.security.durations import parse_lifetime
from kronk.security.endpoints import ENDPOINT_NAMES
from kronk.security.keys import KeyNotFoundError
from kronk.security.middleware import SECURITY_STATE
from kronk.security.responses import response_for
from kronk.security.runtime import SecurityRuntime
from kronk.security.tokens import IssuedToken, Window, grants_from_json
from kronk.wire import Operation, WireModel, operation

PREFIX = "/v1/security"
_TOKEN_FIELDS = frozenset({"admin", "duration", "endpoints", "subject"})

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GrantBody(WireModel):
    """One endpoint's grant in a token request (kronk.security.tokens.Grant)."""

    model_config = ConfigDict(extra="forbid")
    window: Literal[tuple(w.value for w in Window)]  # type: ignore[valid-type]
    limit: Annotated[int, Field(ge=1)]
    """Calls per window (ignored for `unlimited`)."""


class TokenBody(WireModel):
    """The claims of a new token; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")
    admin: bool = False
    duration: Annotated[str, Field(pattern=r"^(?:[1-9][0-9]{0,5}|(?:[1-9][0-9]?[smhdw]){1,3})$")] | Annotated[
        int, Field(ge=1, le=3_000_000_000)] | None = None
    """Lifetime: seconds, or e.g. 90s, 30m, 24h, 7d, 1h30m (at most 100 years; default: the configured one)."""
    endpoints: dict[Literal[(*ENDPOINT_NAMES, "*")], GrantBody] | None = None  # type: ignore[misc]
    """{endpoint: {limit, window}} ('*': every endpoint, each once); or the CLI's NAME:LIMIT/WINDOW text."""
    subject: Annotated[str, Field(max_length=256, pattern=r"\S")] | None = None


_TAG = "Security"
_NOT_SET_UP = (ConfigError,)
"""What every admin route can answer when security was not set up in the app (500)."""


def _runtime(request: web.Request) -> SecurityRuntime:
    state = request.config_dict.get(SECURITY_STATE)
    if state is None or state.runtime is None:
        raise ConfigError("security is not set up in this server: call setup_security(app, config)")
    return state.runtime


def _mapped(handler: Callable[[web.Request], Awaitable[web.Response]]) -> RouteHandler:
    """Turn the typed errors of one admin handler into their JSON responses."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except KronkError as exc:
            return response_for(exc)

    wrapper.__name__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    wrapper.__dict__.update(handler.__dict__)  # the declared operation (kronk.wire) too
    return wrapper


@operation(Operation(summary="Security mode and settings", tag=_TAG, response={"type": "object"},
                     errors=_NOT_SET_UP))
async def get_config(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    keys = await asyncio.to_thread(runtime.keys.list)
    return web.json_response({**runtime.config.describe(), "keys": len(keys)})


@operation(Operation(summary="Signing keys (the current one marked)", tag=_TAG, response={"type": "object"},
                     errors=_NOT_SET_UP))
async def list_keys(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    keys = await asyncio.to_thread(runtime.keys.list)
    return web.json_response({"object": "list", "data": [key.to_dict() for key in keys]})


@operation(Operation(summary="Create a signing key (it signs from now on)", tag=_TAG, status=201,
                     response={"type": "object"}, errors=_NOT_SET_UP))
async def create_key(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    key = await asyncio.to_thread(runtime.keys.create)
    return web.json_response(key.to_dict(), status=201)


@operation(Operation(path_params={"kid": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}},
                     summary="Delete a key, revoking its tokens", tag=_TAG, response={"type": "object"},
                     errors=(*_NOT_SET_UP, InvalidRequestError, KeyNotFoundError)))
async def delete_key(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    kid = request.match_info["kid"]
    await asyncio.to_thread(runtime.keys.delete, kid)
    return web.json_response({"kid": kid, "deleted": True})


def _duration(value: Any) -> timedelta | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidRequestError("duration must be a string like '24h' or a number of seconds", param="duration")
    try:
        return parse_lifetime(value)
    except ConfigError as exc:
        raise InvalidRequestError(str(exc), param="duration") from None


def _token_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object")
    unknown = sorted(set(body) - _TOKEN_FIELDS)
    if unknown:
        raise InvalidRequestError(f"unknown field(s): {', '.join(unknown)}", param=unknown[0])
    is_admin = body.get("admin", False)
    if not isinstance(is_admin, bool):
        raise InvalidRequestError("admin must be true or false", param="admin")
    subject = body.get("subject")
    if subject is not None and (not isinstance(subject, str) or not subject.strip() or len(subject) > 256):
        raise InvalidRequestError("subject must be a non-empty string of at most 256 characters", param="subject")
    return {
        "admin": is_admin,
        "duration": _duration(body.get("duration")),
        "endpoints": grants_from_json(body.get("endpoints")),
        "subject": subject,
    }


def _token_json(issued: IssuedToken) -> dict[str, Any]:
    claims = issued.claims
    return {
        "token": issued.token,
        "kid": issued.kid,
        "subject": claims.subject,
        "admin": claims.admin,
        "issued_at": claims.issued_at,
        "expires_at": claims.expires_at,
        "endpoints": {name: grant.to_claim() for name, grant in claims.endpoints.items()},
    }


@operation(Operation(summary="Issue a token", tag=_TAG, status=201, request=TokenBody, response={"type": "object"},
                     errors=(*_NOT_SET_UP, InvalidRequestError)))
async def create_token(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidRequestError("the body is not valid JSON") from None
    fields = _token_body(body)
    issued, _ = await asyncio.to_thread(admin.create_token, runtime.keys, runtime.config, now=runtime.clock(), **fields)
    return web.json_response(_token_json(issued), status=201)


def add_security_routes(target: web.Application | web.UrlDispatcher) -> None:
    """Register the admin endpoints on an app (or its router)."""
    router = target.router if isinstance(target, web.Application) else target
    router.add_get(f"{PREFIX}/config", _mapped(get_config))
    router.add_get(f"{PREFIX}/keys", _mapped(list_keys))
    router.add_post(f"{PREFIX}/keys", _mapped(create_key))
    router.add_delete(f"{PREFIX}/keys/{{kid}}", _mapped(delete_key))
    router.add_post(f"{PREFIX}/tokens", _mapped(create_token))
