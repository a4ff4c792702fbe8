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
from typing import Any

from aiohttp import web

from kronk.errors import ConfigError, InvalidRequestError, KronkError
from kronk.security import admin
from kronk.security.durations import parse_duration
from kronk.security.middleware import SECURITY_STATE
from kronk.security.responses import response_for
from kronk.security.runtime import SecurityRuntime
from kronk.security.tokens import IssuedToken, grants_from_json

PREFIX = "/v1/security"
_TOKEN_FIELDS = frozenset({"admin", "duration", "endpoints", "subject"})

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    return wrapper


async def get_config(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    keys = await asyncio.to_thread(runtime.keys.list)
    return web.json_response({**runtime.config.describe(), "keys": len(keys)})


async def list_keys(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    keys = await asyncio.to_thread(runtime.keys.list)
    return web.json_response({"object": "list", "data": [key.to_dict() for key in keys]})


async def create_key(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    key = await asyncio.to_thread(runtime.keys.create)
    return web.json_response(key.to_dict(), status=201)


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
        return parse_duration(str(value))
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
