"""The aiohttp edge of security: who may call which route, checked before any handler.

Use `setup_security(app, config)` (state + middleware + cleanup context), or wire the
pieces yourself: `app[SECURITY_STATE] = SecurityState(config)`,
`create_security_middleware(config)` and `security_context` in `app.cleanup_ctx`.
A refused call gets its error response here, so the handler never runs and, for a
bad token, no counter moves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import CIMultiDictProxy

from kronk.errors import AuthenticationError, ConfigError, KronkError, PermissionDeniedError
from kronk.security.config import SecurityConfig, SecurityMode
from kronk.security.endpoints import Access, Endpoint, Route, RouteKind, classify, is_public_path, required_access
from kronk.security.responses import response_for
from kronk.security.runtime import Clock, SecurityRuntime
from kronk.security.sessions import COOKIE_NAME, SessionStore
from kronk.security.tokens import TokenClaims

log = logging.getLogger(__name__)

CLAIMS_KEY: Any = web.RequestKey("kronk.claims", TokenClaims) if hasattr(web, "RequestKey") else "kronk.claims"
"""`request[CLAIMS_KEY]`: the verified `TokenClaims`, or None when the route was public.

A typed `web.RequestKey` named "kronk.claims" (a plain string key on aiohttp < 3.14)."""


_ACCESS_ORDER = (Access.PUBLIC, Access.AUTHENTICATED, Access.GRANT, Access.ADMIN)
UI_PUBLIC_PATHS: tuple[str, ...] = ("/", "/ui/")
"""The browser UI's own files and its login route: public; the data they fetch is not."""
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(slots=True)
class SecurityState:
    """Per-app holder: the config now, the runtime once the app has started."""

    config: SecurityConfig
    clock: Clock = time.time
    runtime: SecurityRuntime | None = None
    sessions: SessionStore | None = None
    """Browser sessions (the UI's login); created with the state."""

    def __post_init__(self) -> None:
        if self.sessions is None:
            self.sessions = SessionStore(clock=self.clock)


SECURITY_STATE: web.AppKey[SecurityState] = web.AppKey("kronk.security", SecurityState)


def extract_token(headers: CIMultiDictProxy[str], max_bytes: int) -> str:
    """The bearer token from `Authorization: Bearer …`, else from `x-api-key` (Anthropic clients)."""
    authorization = headers.get("Authorization")
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        token = value.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("the Authorization header must be 'Bearer <token>'", code="token_malformed")
    else:
        token = headers.get("x-api-key", "").strip()
        if not token:
            raise AuthenticationError(
                "this route needs a token: send 'Authorization: Bearer <token>'", code="token_missing"
            )
    if len(token) > max_bytes:
        raise AuthenticationError(f"token is longer than {max_bytes} bytes", code="token_too_large")
    return token


def same_origin(request: web.Request) -> bool:
    """True when the request's Origin header names this server (scheme and host as the browser saw them)."""
    origin = request.headers.get("Origin")
    return origin is not None and origin == f"{request.scheme}://{request.host}"


def session_token(request: web.Request, state: SecurityState) -> str | None:
    """The token behind the request's session cookie, when it carries no token of its own.

    None: no cookie (the caller is asked for a token as usual). A cookie that names no live
    session is a 401; a state-changing call made with the cookie from another origin is a
    403 (the cookie is SameSite=Strict already; this is the second lock).
    """
    if "Authorization" in request.headers or "x-api-key" in request.headers:
        return None
    session_id = request.cookies.get(COOKIE_NAME)
    if not session_id or state.sessions is None:
        return None
    token = state.sessions.use(session_id)
    if token is None:
        raise AuthenticationError("the browser session has expired; log in again", code="session_expired")
    if request.method not in _SAFE_METHODS and not same_origin(request):
        raise PermissionDeniedError("a call made with the session cookie must come from this server's own pages",
                                    code="origin_mismatch")
    return token


def _stricter(first: tuple[Route, Access], second: tuple[Route, Access]) -> tuple[Route, Access]:
    return second if _ACCESS_ORDER.index(second[1]) > _ACCESS_ORDER.index(first[1]) else first


def route_access(request: web.Request, config: SecurityConfig) -> tuple[Route, Access]:
    """Classify both the raw path and the matched route's template; the stricter wins."""

    def access_of(path: str) -> tuple[Route, Access]:
        route = classify(path)
        if route.kind is RouteKind.OTHER and is_public_path(route.path, UI_PUBLIC_PATHS):
            return route, Access.PUBLIC
        if route.kind is not RouteKind.MANAGEMENT and is_public_path(route.path, config.public_paths):
            return route, Access.PUBLIC
        return route, required_access(config.mode, route)

    decided = access_of(request.path)
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else None
    if canonical and canonical != request.path:
        decided = _stricter(decided, access_of(canonical))
    return decided


def create_security_middleware(config: SecurityConfig) -> Middleware:
    """An aiohttp middleware enforcing `config.mode`; needs `SECURITY_STATE` started in the app."""

    @web.middleware
    async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if config.mode is SecurityMode.OFF:
            request[CLAIMS_KEY] = None
            return await handler(request)
        route, access = route_access(request, config)
        if access is Access.PUBLIC:
            request[CLAIMS_KEY] = None
            return await handler(request)
        try:
            claims = await _admit(request, request.config_dict.get(SECURITY_STATE), route, access)
        except KronkError as exc:
            log.info("refused %s %s: %s", request.method, route.path, getattr(exc, "code", None) or exc)
            return response_for(exc, anthropic=request.path.startswith("/v1/messages"))
        request[CLAIMS_KEY] = claims
        return await handler(request)

    return security_middleware


async def require_grant(request: web.Request, endpoint: Endpoint) -> None:
    """Check, and count against its limit, a grant a request needs beyond its route's own:
    a chat request that asks for server-side tools needs the `tools` grant as well, as `/mcp`
    does. Asked as the route `endpoint` would be in this mode (public in `management`)."""
    state = request.config_dict.get(SECURITY_STATE)
    if state is None or state.config.mode is SecurityMode.OFF:
        return
    route = Route(request.path, RouteKind.INFERENCE, endpoint)
    access = required_access(state.config.mode, route)
    if access is Access.PUBLIC:
        return
    await _admit(request, state, route, access)


async def tool_denial(request: web.Request, tool: dict[str, Any]) -> str | None:
    """Ask the policies about one server tool call of this request (its route, token, and
    `input.tool`); None when allowed or when security does not look at the request."""
    state = request.config_dict.get(SECURITY_STATE)
    if state is None or state.config.mode is SecurityMode.OFF or state.runtime is None:
        return None
    route, access = route_access(request, state.config)
    if access is Access.PUBLIC:
        return None
    token = session_token(request, state) or extract_token(request.headers, state.config.max_token_bytes)
    return await asyncio.to_thread(state.runtime.tool_denial, token, route, access, tool)


async def _admit(request: web.Request, state: SecurityState | None, route: Route, access: Access) -> TokenClaims:
    """The request's token (its session cookie's, or its header's) admitted for `route`."""
    if state is None or state.runtime is None:
        raise ConfigError("security is on but not started: call setup_security(app, config)")
    token = session_token(request, state) or extract_token(request.headers, state.config.max_token_bytes)
    return await asyncio.to_thread(state.runtime.admit, token, route, access)


async def security_context(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: open the runtime at startup (first start creates keys), close it after."""
    state = app[SECURITY_STATE]
    runtime = await asyncio.to_thread(SecurityRuntime.open, state.config, clock=state.clock)
    if runtime.bootstrapped is not None:
        # WARNING level: shown even where logging is not configured (Python's last-resort handler).
        log.warning(
            "security: first start: created signing key %s and an admin token in %s",
            runtime.bootstrapped.key.kid,
            runtime.bootstrapped.admin_token_path,
        )
    state.runtime = runtime
    try:
        yield
    finally:
        state.runtime = None
        await asyncio.to_thread(runtime.close)


def setup_security(app: web.Application, config: SecurityConfig, *, clock: Clock = time.time) -> None:
    """Wire security into an app before it starts: state, middleware, cleanup context."""
    app[SECURITY_STATE] = SecurityState(config, clock)
    app.middlewares.append(create_security_middleware(config))
    app.cleanup_ctx.append(security_context)
