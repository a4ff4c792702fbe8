"""Security errors as HTTP responses, through the one mapping in kronk.http_errors.

OpenAI's shape, or Anthropic's for the Anthropic routes, with 401 (+ WWW-Authenticate),
403 and 429 (+ Retry-After); a security error's own `code` (e.g. "token_expired")
takes the place of its class's code.
"""

from __future__ import annotations

from aiohttp import web

from kronk.errors import KronkError
from kronk.http_errors import error_response


def response_for(exc: KronkError, *, anthropic: bool = False) -> web.Response:
    """The error response for `exc` in the caller's API shape."""
    return error_response(exc, "anthropic" if anthropic else "openai")
