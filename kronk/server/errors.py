"""The server's error answers: kronk.http_errors, under the name the server modules import."""

from kronk.errors import ShuttingDownError
from kronk.http_errors import (
    ApiStyle,
    ErrorSpec,
    anthropic_error_body,
    api_style,
    error_body,
    error_code,
    error_headers,
    error_message,
    error_response,
    openai_error_body,
    spec_for,
)

__all__ = ["ApiStyle", "ErrorSpec", "ShuttingDownError", "anthropic_error_body", "api_style", "error_body",
           "error_code", "error_headers", "error_message", "error_response", "openai_error_body", "spec_for"]
