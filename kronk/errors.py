"""The one exception tree of Kronk.

Every layer raises these typed errors. Each class declares, once, in its class line,
how it goes over the wire: `status` (the HTTP status; inherited when left out) and a
stable `code` (unique per class, so a client can rebuild the type from a response).
The error `type` names of the OpenAI and Anthropic bodies follow from the status
(STATUS_TYPES, shared with aiohttp's own HTTP errors) unless the class names its own.
They land as the class attributes `http_status`, `error_code`, `openai_type` and
`anthropic_type`, from which every edge (inference routes, management and security
APIs, the CLI reading answers back) derives its mapping. Never match on message text.

    KronkError
    ├── ConfigError                 bad settings or config file
    ├── NativeError                 the llama.cpp libraries
    │   ├── LibraryNotFoundError    no installed libs where we looked
    │   ├── ABIMismatchError        libs built from other headers than our declarations
    │   └── RPCUnavailableError     a ggml RPC server is unreachable or failed (HTTP 503)
    ├── LibsInstallError            `kronk libs` could not install (every source failed)
    ├── ModelLoadError              file missing, not a GGUF, or llama.cpp refused it
    ├── ModelNotFoundError          unknown model id                  (HTTP 404)
    ├── InvalidRequestError         bad request field, names `param`  (HTTP 400)
    │   ├── CapabilityError         the model cannot serve this kind of request
    │   ├── ContextOverflowError    prompt does not fit the context
    │   └── GrammarError            schema/grammar we cannot compile
    ├── RequestTooLargeError        body or input count above a limit (HTTP 413)
    ├── BusyError                   admission queue full              (HTTP 429/503)
    ├── DownloadError               a download failed
    │   └── ChecksumError           size or sha256 did not match
    ├── StoreError                  model store / catalog problem
    │   └── InsufficientStorageError not enough free disk for a pull  (HTTP 507)
    ├── ShuttingDownError           the server is draining             (HTTP 503)
    ├── ServerNotRunningError       the CLI found no server at its URL
    ├── ToolError                   a server-side tool failed          (HTTP 502)
    │   ├── ToolNotFoundError       no such tool is offered            (HTTP 404)
    │   ├── ToolRefusedError        the SSRF guard refused a URL       (HTTP 403)
    │   ├── ToolTimeoutError        the call ran past its time limit   (HTTP 504)
    │   └── ToolUnavailableError    an MCP server could not start/answer (HTTP 502)
    └── SecurityError
        ├── AuthenticationError     missing/invalid token             (HTTP 401)
        ├── PermissionDeniedError   token lacks the grant             (HTTP 403)
        └── RateLimitError          limit exceeded, has retry_after   (HTTP 429)
"""

from __future__ import annotations

from typing import Any, ClassVar

STATUS_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request_error"),
    401: ("authentication_error", "authentication_error"),
    403: ("permission_error", "permission_error"),
    404: ("invalid_request_error", "not_found_error"),
    405: ("invalid_request_error", "invalid_request_error"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_error"),
}
"""The (OpenAI, Anthropic) error type names a status implies; other statuses keep the parent's."""


class KronkError(Exception):
    """Base class of every error Kronk raises on purpose."""

    http_status: ClassVar[int] = 500
    error_code: ClassVar[str] = "internal_error"
    openai_type: ClassVar[str] = "server_error"
    anthropic_type: ClassVar[str] = "api_error"

    def __init_subclass__(cls, *, code: str, status: int | None = None, openai_type: str | None = None,
                          anthropic_type: str | None = None, **kwargs: Any) -> None:
        """Record the class line's wire declaration (see the module docstring)."""
        super().__init_subclass__(**kwargs)
        cls.error_code = code
        if status is not None:
            cls.http_status = status
            cls.openai_type, cls.anthropic_type = STATUS_TYPES.get(status, (cls.openai_type, cls.anthropic_type))
        cls.openai_type = openai_type or cls.openai_type
        cls.anthropic_type = anthropic_type or cls.anthropic_type

    @classmethod
    def from_wire(cls, message: str, param: str | None = None) -> KronkError:
        """Rebuild the error from a response body (the CLI reads server answers back)."""
        return cls(message)


class ConfigError(KronkError, status=500, code="config_error"):
    """A setting, flag or config file is invalid."""


class NativeError(KronkError, status=500, code="native_error"):
    """A problem with the llama.cpp shared libraries."""


class LibraryNotFoundError(NativeError, status=503, code="libs_not_installed"):
    """No usable llama.cpp libraries were found."""


class ABIMismatchError(NativeError, status=503, code="libs_abi_mismatch"):
    """The libraries were built from headers that differ from our declarations."""


class RPCUnavailableError(NativeError, status=503, code="rpc_unavailable"):
    """A ggml RPC server (`kronk rpc-server`, docs/rpc.md) is unreachable, busy, speaks another
    protocol version, or failed while a model used it."""


class LibsInstallError(KronkError, status=502, code="libs_install_failed"):
    """Installing the llama.cpp libraries failed from every source tried."""


class ModelLoadError(KronkError, status=503, code="model_load_failed"):
    """A model file could not be loaded."""


class ModelNotFoundError(KronkError, status=404, code="model_not_found"):
    """No model with that id is known."""

    def __init__(self, model: str, message: str | None = None) -> None:
        self.model = model
        super().__init__(message or f"model {model!r} not found")

    @classmethod
    def from_wire(cls, message: str, param: str | None = None) -> KronkError:
        return cls(param or "", message)


class PullCancelledError(KronkError, status=409, code="pull_cancelled",
                         openai_type="invalid_request_error", anthropic_type="invalid_request_error"):
    """A model pull was cancelled on request (`POST /v1/kronk/models/pull/cancel`); its partial
    files are removed."""


class JobNotFoundError(KronkError, status=404, code="job_not_found"):
    """No server-side job (e.g. a libs install) with that id; finished ones are kept only a while."""


class InvalidRequestError(KronkError, status=400, code="invalid_value"):
    """A request is malformed; `param` names the offending field when known."""

    def __init__(self, message: str, param: str | None = None) -> None:
        self.param = param
        super().__init__(message)

    @classmethod
    def from_wire(cls, message: str, param: str | None = None) -> KronkError:
        return cls(message, param)


class CapabilityError(InvalidRequestError, status=400, code="unsupported_capability"):
    """The model cannot serve this kind of request (e.g. images to a text model)."""


class ContextOverflowError(InvalidRequestError, status=400, code="context_length_exceeded"):
    """The prompt plus requested tokens do not fit the model's context."""


class GrammarError(InvalidRequestError, status=400, code="invalid_grammar"):
    """A JSON schema or GBNF grammar could not be compiled."""


class RequestTooLargeError(KronkError, status=413, code="request_too_large"):
    """A request exceeds a configured size limit."""


class BusyError(KronkError, status=429, code="server_busy", openai_type="server_busy"):
    """The model's admission queue is full; retry later."""

    def __init__(self, message: str = "server busy: too many queued requests", retry_after: float = 1.0) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class DownloadError(KronkError, status=502, code="download_failed"):
    """A download failed."""


class ChecksumError(DownloadError, status=502, code="checksum_mismatch"):
    """Downloaded bytes do not match the expected size or sha256."""


class StoreError(KronkError, status=409, code="store_conflict"):
    """The model store or catalog is in a state we cannot work with."""


class UploadChecksumError(InvalidRequestError, status=400, code="upload_checksum_mismatch"):
    """Bytes pushed by a peer do not match the sha256 sent with them; nothing was kept."""


class PeerFileNotFoundError(KronkError, status=404, code="file_not_found"):
    """A peer route was asked for a file the model or the llama.cpp build does not have."""


class UploadNotFoundError(KronkError, status=404, code="upload_not_found"):
    """No upload with that id here (never begun, committed, or swept): begin it again."""


class UploadOffsetError(StoreError, status=409, code="upload_offset_mismatch"):
    """A pushed chunk does not start where the receiver's copy ends; ask again where to resume."""


class InsufficientStorageError(StoreError, status=507, code="insufficient_storage"):
    """The disk has less free space than a pull needs; nothing was downloaded."""

    def __init__(self, message: str, needed: int, free: int) -> None:
        self.needed = needed
        self.free = free
        super().__init__(message)

    @classmethod
    def from_wire(cls, message: str, param: str | None = None) -> KronkError:
        return cls(message, needed=0, free=0)


class ShuttingDownError(KronkError, status=503, code="shutting_down", anthropic_type="overloaded_error"):
    """The server is draining: new work is refused."""


class ServerNotRunningError(KronkError, status=503, code="server_not_running"):
    """No Kronk server answered at the URL the CLI was told to use."""


class ToolError(KronkError, status=502, code="tool_error"):
    """A server-side tool (built-in or MCP) failed; the message is safe to show the model and client."""


class ToolNotFoundError(ToolError, status=404, code="tool_not_found"):
    """No tool of that name is offered (unknown name, server label or a tool not allowed)."""


class ToolRefusedError(ToolError, status=403, code="url_not_allowed"):
    """The SSRF guard refused a URL: it resolves to a private, loopback, metadata... address."""


class ToolTimeoutError(ToolError, status=504, code="tool_timeout"):
    """A tool call ran past its time limit."""


class ToolUnavailableError(ToolError, status=502, code="tool_unavailable"):
    """An MCP server could not be started or reached, or broke off mid-call."""


class SecurityError(KronkError, status=503, code="security_unavailable"):
    """Base of authentication and authorization failures.

    `code` is a stable, machine-readable reason (e.g. "token_expired") for the error body.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        self.code = code
        super().__init__(message)


class AuthenticationError(SecurityError, status=401, code="invalid_api_key"):
    """The token is missing, malformed, expired or not signed by a known key."""


class PermissionDeniedError(SecurityError, status=403, code="permission_denied"):
    """The token is valid but lacks the grant for this endpoint."""


class RateLimitError(SecurityError, status=429, code="rate_limit_exceeded"):
    """The token's limit for this endpoint and window is used up."""

    def __init__(self, message: str, retry_after: int, code: str = "rate_limit_exceeded") -> None:
        self.retry_after = retry_after
        super().__init__(message, code)

    @classmethod
    def from_wire(cls, message: str, param: str | None = None) -> KronkError:
        return cls(message, retry_after=1)


def error_classes() -> dict[str, type[KronkError]]:
    """Every KronkError class loaded so far, by its `error_code`."""
    found: dict[str, type[KronkError]] = {}
    pending: list[type[KronkError]] = [KronkError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.error_code, cls)
        pending.extend(cls.__subclasses__())
    return found
