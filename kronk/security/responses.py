"""Security errors as HTTP responses, mapped once by type.

OpenAI's shape `{"error": {"message", "type", "code", "param"}}`, or Anthropic's
`{"type": "error", "error": {"type", "message"}}` for the Anthropic routes, with
401 / 403 / 429 (+ Retry-After). The type names are valid in both APIs.
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from kronk.errors import (
    AuthenticationError,
    ConfigError,
    InvalidRequestError,
    KronkError,
    PermissionDeniedError,
    RateLimitError,
    SecurityError,
)
from kronk.security.keys import KeyNotFoundError


def _error_response(
    status: int,
    message: str,
    *,
    type: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
    anthropic: bool = False,
) -> web.Response:
    body: dict[str, Any]
    if anthropic:
        body = {"type": "error", "error": {"type": type, "message": message}}
    else:
        body = {"error": {"message": message, "type": type, "code": code, "param": param}}
    return web.json_response(body, status=status, headers=headers)


def response_for(exc: KronkError, *, anthropic: bool = False) -> web.Response:
    """The one mapping from the errors the security layer raises to a response."""
    error_response = functools.partial(_error_response, anthropic=anthropic)
    if isinstance(exc, RateLimitError):
        return error_response(
            429, str(exc), type="rate_limit_error", code=exc.code, headers={"Retry-After": str(exc.retry_after)}
        )
    if isinstance(exc, AuthenticationError):
        return error_response(
            401,
            str(exc),
            type="authentication_error",
            code=exc.code or "invalid_token",
            headers={"WWW-Authenticate": 'Bearer realm="kronk"'},
        )
    if isinstance(exc, PermissionDeniedError):
        return error_response(403, str(exc), type="permission_error", code=exc.code or "permission_denied")
    if isinstance(exc, SecurityError):
        return error_response(503, str(exc), type="api_error", code=exc.code or "security_unavailable")
    if isinstance(exc, KeyNotFoundError):
        return error_response(404, str(exc), type="not_found_error", code="key_not_found", param=exc.param)
    if isinstance(exc, InvalidRequestError):
        return error_response(400, str(exc), type="invalid_request_error", code="invalid_request", param=exc.param)
    if isinstance(exc, ConfigError):
        return error_response(500, str(exc), type="api_error", code="security_misconfigured")
    return error_response(500, str(exc), type="api_error", code="internal_error")
