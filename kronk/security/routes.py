"""Admin HTTP endpoints for keys and tokens (admin-only unless security is off).

GET    /v1/security/config        mode and settings
GET    /v1/security/keys          every key, the signing one marked
POST   /v1/security/keys          create a key (it signs from now on)
DELETE /v1/security/keys/{kid}    delete a key, revoking its tokens
POST   /v1/security/tokens        {admin?, duration?, endpoints?, subject?} -> {token, …}
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AfterValidator, ConfigDict, Field, PrivateAttr, model_validator

from kronk.durations import EXAMPLES
from kronk.errors import ConfigError, InvalidRequestError, KronkError
from kronk.security import admin
from kronk.security.durations import MAX_LIFETIME, parse_lifetime
from kronk.security.endpoints import ENDPOINT_NAMES
from kronk.security.keys import KeyNotFoundError
from kronk.security.middleware import SECURITY_STATE
from kronk.security.responses import response_for
from kronk.security.runtime import SecurityRuntime
from kronk.security.tokens import ALL_ENDPOINTS, Grant, IssuedToken, Window, grants_from_json, parse_grants
from kronk.wire import FieldError, Int, Operation, WireModel, by_json_type, operation, parse, pattern, read_json

PREFIX = "/v1/security"

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_DURATION_TEXT = rf"^\s*(?:{_NUMBER}\s*|(?:{_NUMBER}\s*[smhdwySMHDWY]\s*)+)$"
"""kronk.durations' grammar as one regex (for the document); parse_lifetime still reads the value."""
_MAX_SECONDS = int(MAX_LIFETIME.total_seconds())


def _lifetime(value: str | int) -> timedelta:
    """The bounds (one second to 100 years) the grammar's regex cannot state."""
    try:
        return parse_lifetime(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


class GrantBody(WireModel):
    """One endpoint's grant in a token request (kronk.security.tokens.Grant)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "anyOf": [{"properties": {"window": {"const": Window.UNLIMITED.value}}}, {"required": ["limit"]}]})
    window: Literal[tuple(w.value for w in Window)]  # type: ignore[valid-type]
    limit: Annotated[Int, Field(ge=1)] | None = None
    """Calls per window (required, except for `unlimited` where it is ignored)."""

    @model_validator(mode="after")
    def _limit_unless_unlimited(self) -> GrantBody:
        if self.limit is None and self.window != Window.UNLIMITED.value:
            raise FieldError("limit", f"is required for a {self.window} window")
        return self


class TokenBody(WireModel):
    """The claims of a new token; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")
    admin: bool = False
    duration: by_json_type(  # type: ignore[valid-type]
        "a duration like '24h' or a number of seconds",
        string=Annotated[str, pattern(_DURATION_TEXT, f"must be a duration like {EXAMPLES}"),
                         AfterValidator(_lifetime)],
        integer=Annotated[Int, Field(ge=1, le=_MAX_SECONDS), AfterValidator(_lifetime)],
    ) | None = None
    """Seconds, or kronk.durations' text (90s, 1.5h, 720h, 1h30m, 1y); 1 s to 100 years; read as a timedelta."""
    endpoints: by_json_type(  # type: ignore[valid-type]
        "an object {name: {limit, window}} or a text like 'chat-completions:1000/day,embeddings:unlimited'",
        object=dict[Literal[(*ENDPOINT_NAMES, ALL_ENDPOINTS)], GrantBody],  # type: ignore[misc]
        string=str,
    ) | None = None
    """{endpoint: {limit, window}} ('*': every endpoint, each once); or the CLI's NAME:LIMIT/WINDOW text."""
    subject: Annotated[str, Field(max_length=256), pattern(r"\S", "must not be blank")] | None = None
    _grants: dict[str, Grant] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _read_grants(self) -> TokenBody:
        """Expand `*` and the text form once; an endpoint granted twice is refused here."""
        try:
            if isinstance(self.endpoints, str):
                self._grants = parse_grants(self.endpoints)
            elif self.endpoints:
                self._grants = grants_from_json({name: rule.model_dump() for name, rule in self.endpoints.items()})
        except InvalidRequestError as exc:
            raise FieldError("endpoints", str(exc)) from None
        return self

    @property
    def grants(self) -> dict[str, Grant]:
        return self._grants


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


@operation(Operation(summary="Security mode and settings (with the grantable endpoints and windows)", tag=_TAG, response={"type": "object"},
                     errors=_NOT_SET_UP))
async def get_config(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    keys = await asyncio.to_thread(runtime.keys.list)
    return web.json_response({**runtime.config.describe(), "keys": len(keys), "endpoints": list(ENDPOINT_NAMES),
                              "windows": [window.value for window in Window]})


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
    body = parse(TokenBody, await read_json(request))
    issued, _ = await asyncio.to_thread(
        admin.create_token, runtime.keys, runtime.config, now=runtime.clock(), admin=body.admin,
        duration=body.duration, endpoints=body.grants, subject=body.subject)
    return web.json_response(_token_json(issued), status=201)


def add_security_routes(target: web.Application | web.UrlDispatcher) -> None:
    """Register the admin endpoints on an app (or its router)."""
    router = target.router if isinstance(target, web.Application) else target
    router.add_get(f"{PREFIX}/config", _mapped(get_config))
    router.add_get(f"{PREFIX}/keys", _mapped(list_keys))
    router.add_post(f"{PREFIX}/keys", _mapped(create_key))
    router.add_delete(f"{PREFIX}/keys/{{kid}}", _mapped(delete_key))
    router.add_post(f"{PREFIX}/tokens", _mapped(create_token))
