"""`/ui/session`: the browser UI's login. A token is traded once for an HttpOnly cookie.

- `POST /ui/session {"token": ...}` checks the token (signature, policy, expiry) and answers
  with a `kronk_session` cookie: HttpOnly (script never sees it), SameSite=Strict, Path=/,
  no Max-Age (gone when the browser closes), Secure over https. The server keeps the token
  beside the session, so cookie calls carry exactly the token's grants and limits.
- `GET /ui/session` says what this browser may use (`grants`) so the UI hides what it may not.
- `DELETE /ui/session` logs out.

Login and logout must come from this server's own pages (Origin), failed logins are limited
per client address (429), and the token never appears in a URL or a log line.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from kronk import errors as E
from kronk.security.config import SecurityMode
from kronk.security.endpoints import ENDPOINT_NAMES, Access, Route, RouteKind
from kronk.security.middleware import SECURITY_STATE, SecurityState, same_origin
from kronk.security.sessions import COOKIE_NAME
from kronk.security.tokens import TokenClaims
from kronk.wire import Operation, WireModel, operation, parse, read_json

ADMIN_GRANT = "admin"
"""The pseudo-grant of the management pages (models, catalog, libs, running, security, system)."""
_ROUTE = Route("/ui/session", RouteKind.OTHER)
_TAG = "Browser UI"


class LoginBody(WireModel):
    """A token to trade for a browser session."""

    token: Annotated[str, Field(min_length=1, max_length=16384)]


def _status(mode: str, claims: TokenClaims | None, has_session: bool) -> dict[str, Any]:
    """What the browser may use: endpoint names plus `admin` for the management pages."""
    everything = [*ENDPOINT_NAMES, ADMIN_GRANT]
    if mode == SecurityMode.OFF.value:
        grants = everything
    elif claims is not None and claims.admin:
        grants = everything
    else:
        granted = set(claims.endpoints) if claims is not None else set()
        public = set(ENDPOINT_NAMES) if mode == SecurityMode.MANAGEMENT.value else set()
        grants = [name for name in ENDPOINT_NAMES if name in granted | public]
    return {
        "security": mode,
        "session": has_session,
        "login_required": mode != SecurityMode.OFF.value and not has_session,
        "admin": ADMIN_GRANT in grants,
        "subject": claims.subject if claims is not None else None,
        "expires_at": claims.expires_at if claims is not None else None,
        "grants": grants,
    }


def _state(request: web.Request) -> SecurityState | None:
    state = request.config_dict.get(SECURITY_STATE)
    if state is None or state.runtime is None or state.config.mode is SecurityMode.OFF:
        return None
    return state


def _check(state: SecurityState, token: str) -> TokenClaims:
    assert state.runtime is not None
    return state.runtime.admit(token, _ROUTE, Access.AUTHENTICATED)


def _require_same_origin(request: web.Request) -> None:
    if not same_origin(request):
        raise E.PermissionDeniedError("log in and out from this server's own pages (Origin must match)",
                                      code="origin_mismatch")


@operation(Operation(summary="What this browser session may use", tag=_TAG, response={"type": "object"}))
async def session_status(request: web.Request) -> web.Response:
    state = _state(request)
    if state is None:
        return web.json_response(_status(SecurityMode.OFF.value, None, False))
    assert state.sessions is not None
    session_id = request.cookies.get(COOKIE_NAME, "")
    token = state.sessions.use(session_id) if session_id else None
    claims: TokenClaims | None = None
    if token is not None:
        try:
            claims = await asyncio.to_thread(_check, state, token)
        except E.SecurityError:
            state.sessions.end(session_id)
    response = web.json_response(_status(state.config.mode.value, claims, claims is not None))
    if session_id and claims is None:
        response.del_cookie(COOKIE_NAME, path="/")
    return response


@operation(Operation(summary="Log in: trade a token for an HttpOnly session cookie", tag=_TAG, request=LoginBody,
                     response={"type": "object"},
                     errors=(E.AuthenticationError, E.PermissionDeniedError, E.RateLimitError)))
async def login(request: web.Request) -> web.Response:
    _require_same_origin(request)
    body = parse(LoginBody, await read_json(request))
    state = _state(request)
    if state is None:
        return web.json_response(_status(SecurityMode.OFF.value, None, False))
    assert state.sessions is not None
    client = request.remote or "unknown"
    state.sessions.check_login_allowed(client)
    try:
        claims = await asyncio.to_thread(_check, state, body.token.strip())
    except (E.AuthenticationError, E.PermissionDeniedError):
        state.sessions.record_failure(client)
        raise
    session_id = state.sessions.create(body.token.strip(), float(claims.expires_at))
    response = web.json_response(_status(state.config.mode.value, claims, True))
    response.set_cookie(COOKIE_NAME, session_id, path="/", httponly=True, samesite="Strict", secure=request.secure)
    response.headers["Cache-Control"] = "no-store"
    return response


@operation(Operation(summary="Log out: end this browser session", tag=_TAG, response={"type": "object"},
                     errors=(E.PermissionDeniedError,)))
async def logout(request: web.Request) -> web.Response:
    _require_same_origin(request)
    state = _state(request)
    session_id = request.cookies.get(COOKIE_NAME)
    if state is not None and state.sessions is not None and session_id:
        state.sessions.end(session_id)
    mode = state.config.mode.value if state is not None else SecurityMode.OFF.value
    response = web.json_response(_status(mode, None, False))
    response.del_cookie(COOKIE_NAME, path="/")
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ui/session", session_status)
    app.router.add_post("/ui/session", login)
    app.router.add_delete("/ui/session", logout)
