"""The one table from error types to HTTP status and each API's error body.

Handlers raise kronk.errors types; the middleware (and the SSE writers, for errors
after the stream began) ask `describe()` once, by type, and encode the answer in
the OpenAI shape `{"error": {message, type, param, code}}` or Anthropic's
`{"type": "error", "error": {type, message}}`. Nothing here reads message text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from kronk import errors as E

ApiStyle = Literal["openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    status: int
    openai_type: str
    anthropic_type: str
    code: str | None = None


# Most specific first: the first isinstance match wins.
_TABLE: tuple[tuple[type[BaseException], ErrorSpec], ...] = (
    (E.CapabilityError, ErrorSpec(400, "invalid_request_error", "invalid_request_error", "unsupported_capability")),
    (E.ContextOverflowError, ErrorSpec(400, "invalid_request_error", "invalid_request_error",
                                       "context_length_exceeded")),
    (E.GrammarError, ErrorSpec(400, "invalid_request_error", "invalid_request_error", "invalid_grammar")),
    (E.InvalidRequestError, ErrorSpec(400, "invalid_request_error", "invalid_request_error", "invalid_value")),
    (E.ModelNotFoundError, ErrorSpec(404, "invalid_request_error", "not_found_error", "model_not_found")),
    (E.RequestTooLargeError, ErrorSpec(413, "invalid_request_error", "request_too_large", "request_too_large")),
    (E.BusyError, ErrorSpec(429, "server_busy", "rate_limit_error", "server_busy")),
    (E.AuthenticationError, ErrorSpec(401, "authentication_error", "authentication_error", "invalid_api_key")),
    (E.PermissionDeniedError, ErrorSpec(403, "permission_error", "permission_error", "permission_denied")),
    (E.RateLimitError, ErrorSpec(429, "rate_limit_error", "rate_limit_error", "rate_limit_exceeded")),
    (E.ModelLoadError, ErrorSpec(503, "server_error", "api_error", "model_load_failed")),
    (E.DownloadError, ErrorSpec(502, "server_error", "api_error", "download_failed")),
    (E.ConfigError, ErrorSpec(500, "server_error", "api_error", "config_error")),
    (E.InsufficientStorageError, ErrorSpec(507, "server_error", "api_error", "insufficient_storage")),
    (E.StoreError, ErrorSpec(500, "server_error", "api_error", "store_error")),
    (E.LibraryNotFoundError, ErrorSpec(503, "server_error", "api_error", "libs_not_installed")),
    (E.NativeError, ErrorSpec(500, "server_error", "api_error", "native_error")),
    (E.KronkError, ErrorSpec(500, "server_error", "api_error", "internal_error")),
)
_INTERNAL = ErrorSpec(500, "server_error", "api_error", "internal_error")
_SHUTTING_DOWN = ErrorSpec(503, "server_error", "overloaded_error", "shutting_down")

# aiohttp's own HTTP errors (unknown route, wrong method, body too large ...).
_HTTP_TYPES: dict[int, tuple[str, str, str]] = {
    400: ("invalid_request_error", "invalid_request_error", "bad_request"),
    401: ("authentication_error", "authentication_error", "unauthorized"),
    403: ("permission_error", "permission_error", "forbidden"),
    404: ("invalid_request_error", "not_found_error", "not_found"),
    405: ("invalid_request_error", "invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_error", "rate_limit_exceeded"),
}


class ShuttingDownError(E.KronkError):
    """The server is draining: new work is refused with 503."""


def spec_for(exc: BaseException) -> ErrorSpec:
    if isinstance(exc, ShuttingDownError):
        return _SHUTTING_DOWN
    if isinstance(exc, web.HTTPException):
        kinds = _HTTP_TYPES.get(exc.status)
        if kinds is None:
            server_side = exc.status >= 500
            return ErrorSpec(exc.status, "server_error" if server_side else "invalid_request_error",
                             "api_error" if server_side else "invalid_request_error")
        return ErrorSpec(exc.status, *kinds)
    for error_type, spec in _TABLE:
        if isinstance(exc, error_type):
            return spec
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
    """Retry-After for busy and rate-limited answers."""
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
