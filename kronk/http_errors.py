"""Errors as HTTP answers, for every route: inference, management and security.

Each kronk.errors class declares its status, code and error type names; this module
reads those declarations (and aiohttp's own HTTP errors) and encodes them in the
OpenAI shape `{"error": {message, type, param, code}}` or Anthropic's
`{"type": "error", "error": {type, message}}`. The server middleware, the SSE
writers (errors after a stream began), the management API and the security layer
all answer through here, so one error has one status everywhere. Nothing here reads
message text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from kronk import errors as E

ApiStyle = Literal["openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """How one error goes on the wire: every HTTP error answer takes its status, types and code from one."""

    status: int
    openai_type: str
    """OpenAI's `error.type`: invalid_request_error, authentication_error, server_error, ..."""
    anthropic_type: str
    """Anthropic's `error.type`: invalid_request_error, not_found_error, overloaded_error, api_error, ..."""
    code: str | None = None
    """OpenAI's `error.code`; None only for an aiohttp HTTP error whose status has no code of ours."""


_INTERNAL = ErrorSpec(500, "server_error", "api_error", "internal_error")


def _declared(error_type: type[E.KronkError]) -> ErrorSpec:
    """The wire description the error class declares (kronk.errors)."""
    return ErrorSpec(error_type.http_status, error_type.openai_type, error_type.anthropic_type,
                     error_type.error_code)


# The codes of aiohttp's own HTTP errors (unknown route, wrong method, body too large ...);
# their type names are the ones kronk.errors.STATUS_TYPES gives every status.
_HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    429: "rate_limit_exceeded",
}


def spec_for(exc: BaseException) -> ErrorSpec:
    if isinstance(exc, E.KronkError):
        return _declared(type(exc))
    if isinstance(exc, web.HTTPException):
        kinds = E.STATUS_TYPES.get(exc.status)
        if kinds is None:
            server_side = exc.status >= 500
            return ErrorSpec(exc.status, "server_error" if server_side else "invalid_request_error",
                             "api_error" if server_side else "invalid_request_error")
        return ErrorSpec(exc.status, *kinds, _HTTP_CODES.get(exc.status))
    return _INTERNAL


def error_message(exc: BaseException) -> str:
    if isinstance(exc, web.HTTPException):
        return exc.reason if exc.status != 404 else "no such endpoint"
    if isinstance(exc, E.KronkError):
        return str(exc) or type(exc).__name__
    return "internal server error"


def error_code(exc: BaseException) -> str | None:
    """The machine-readable code: the error's own (security errors carry one) or the table's."""
    own = getattr(exc, "code", None)
    if isinstance(exc, E.SecurityError) and isinstance(own, str) and own:
        return own
    return spec_for(exc).code


def openai_error_body(exc: BaseException) -> dict[str, Any]:
    spec = spec_for(exc)
    return {
        "error": {
            "message": error_message(exc),
            "type": spec.openai_type,
            "param": getattr(exc, "param", None),
            "code": error_code(exc),
        }
    }


def anthropic_error_body(exc: BaseException) -> dict[str, Any]:
    spec = spec_for(exc)
    return {"type": "error", "error": {"type": spec.anthropic_type, "message": error_message(exc)}}


def error_body(exc: BaseException, style: ApiStyle) -> dict[str, Any]:
    return anthropic_error_body(exc) if style == "anthropic" else openai_error_body(exc)


def error_headers(exc: BaseException) -> dict[str, str]:
    """Retry-After for busy and rate-limited answers; the challenge of a 401."""
    if isinstance(exc, E.AuthenticationError):
        return {"WWW-Authenticate": 'Bearer realm="kronk"'}
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(exc, (E.BusyError, E.RateLimitError)) and retry_after is not None:
        return {"Retry-After": str(max(1, round(float(retry_after))))}
    return {}


def error_response(exc: BaseException, style: ApiStyle) -> web.Response:
    """A complete JSON error response for `exc` in the API's own shape."""
    spec = spec_for(exc)
    headers = error_headers(exc)
    if isinstance(exc, web.HTTPMethodNotAllowed):
        headers["Allow"] = ",".join(sorted(exc.allowed_methods))
    return web.json_response(error_body(exc, style), status=spec.status, headers=headers)


def api_style(path: str) -> ApiStyle:
    """Which API's error shape a path speaks."""
    return "anthropic" if path.startswith("/v1/messages") else "openai"
