"""The one exception tree of Kronk.

Every layer raises these typed errors. Each class declares, once, how it goes over
the wire: `http_status`, a stable `error_code` (unique per class, so a client can
rebuild the type from a response), and the error `type` names of the OpenAI and
Anthropic bodies. Every edge (inference routes, management and security APIs, the
CLI reading answers back) derives its mapping from these attributes. Never match on
message text.

    KronkError
    ├── ConfigError                 bad settings or config file
    ├── NativeError                 the llama.cpp libraries
    │   ├── LibraryNotFoundError    no installed libs where we looked
    │   └── ABIMismatchError        libs built from other headers than our declarations
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

from typing import ClassVar


class KronkError(Exception):
    """Base class of every error Kronk raises on purpose."""

    http_status: ClassVar[int] = 500
    error_code: ClassVar[str] = "internal_error"
    openai_type: ClassVar[str] = "server_error"
    anthropic_type: ClassVar[str] = "api_error"

    @classmethod
    def from_wire(cls, message: str, param: str | None = None) -> KronkError:
        """Rebuild the error from a response body (the CLI reads server answers back)."""
        return cls(message)


class ConfigError(KronkError):
    """A setting, flag or config file is invalid."""

    http_status = 500
    error_code = "config_error"


class NativeError(KronkError):
    """A problem with the llama.cpp shared libraries."""

    http_status = 500
    error_code = "native_error"


class LibraryNotFoundError(NativeError):
    """No usable llama.cpp libraries were found."""

    http_status = 503
    error_code = "libs_not_installed"


class ABIMismatchError(NativeError):
    """The libraries were built from headers that differ from our declarations."""

    http_status = 503
    error_code = "libs_abi_mismatch"


class LibsInstallError(KronkError):
    """Installing the llama.cpp libraries failed from every source tried."""

    http_status = 502
    error_code = "libs_install_failed"


class ModelLoadError(KronkError):
    """A model file could not be loaded."""

    http_status = 503
    error_code = "model_load_failed"


class ModelNotFoundError(KronkError):
    """No model with that id is known."""

    http_status = 404
    error_code = "model_not_found"
    openai_type = "invalid_request_error"
    anthropic_type = "not_found_error"

    def __init__(self, model: str, message: str | None = None) -> None:
        self.model = model
        super().__init__(message or f"model {model!r} not found")

    @classmethod
    def from_wire(cls, message: str, param: str | None = None) -> KronkError:
        return cls(param or "", message)


class PullCancelledError(KronkError):
    """A model pull was cancelled on request (`POST /v1/kronk/models/pull/cancel`); its partial
    files are removed."""

    http_status = 409
    error_code = "pull_cancelled"
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class JobNotFoundError(KronkError):
    """No server-side job (e.g. a libs install) with that id; finished ones are kept only a while."""

    http_status = 404
    error_code = "job_not_found"
    openai_type = "invalid_request_error"
    anthropic_type = "not_found_error"


class InvalidRequestError(KronkError):
    """A request is malformed; `param` names the offending field when known."""

    http_status = 400
    error_code = "invalid_value"
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"

    def __init__(self, message: str, param: str | None = None) -> None:
        self.param = param
        super().__init__(message)

    @classmethod
    def from_wire(cls, message: str, param: str | None = None) -> KronkError:
        return cls(message, param)


class CapabilityError(InvalidRequestError):
    """The model cannot serve this kind of request (e.g. images to a text model)."""

    http_status = 400
    error_code = "unsupported_capability"


class ContextOverflowError(InvalidRequestError):
    """The prompt plus requested tokens do not fit the model's context."""

    http_status = 400
    error_code = "context_length_exceeded"


class GrammarError(InvalidRequestError):
    """A JSON schema or GBNF grammar could not be compiled."""

    http_status = 400
    error_code = "invalid_grammar"


class RequestTooLargeError(KronkError):
    """A request exceeds a configured size limit."""

    http_status = 413
    error_code = "request_too_large"
    openai_type = "invalid_request_error"
    anthropic_type = "request_too_large"


class BusyError(KronkError):
    """The model's admission queue is full; retry later."""

    http_status = 429
    error_code = "server_busy"
    openai_type = "server_busy"
    anthropic_type = "rate_limit_error"

    def __init__(self, message: str = "server busy: too many queued requests", retry_after: float = 1.0) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class DownloadError(KronkError):
    """A download failed."""

    http_status = 502
    error_code = "download_failed"


class ChecksumError(DownloadError):
    """Downloaded bytes do not match the expected size or sha256."""

    http_status = 502
    error_code = "checksum_mismatch"


class StoreError(KronkError):
    """The model store or catalog is in a state we cannot work with."""

    http_status = 409
    error_code = "store_conflict"


class UploadChecksumError(InvalidRequestError):
    """Bytes pushed by a peer do not match the sha256 sent with them; nothing was kept."""

    http_status = 400
    error_code = "upload_checksum_mismatch"


class PeerFileNotFoundError(KronkError):
    """A peer route was asked for a file the model or the llama.cpp build does not have."""

    http_status = 404
    error_code = "file_not_found"
    openai_type = "invalid_request_error"
    anthropic_type = "not_found_error"


class UploadNotFoundError(KronkError):
    """No upload with that id here (never begun, committed, or swept): begin it again."""

    http_status = 404
    error_code = "upload_not_found"
    openai_type = "invalid_request_error"
    anthropic_type = "not_found_error"


class UploadOffsetError(StoreError):
    """A pushed chunk does not start where the receiver's copy ends; ask again where to resume."""

    http_status = 409
    error_code = "upload_offset_mismatch"


class InsufficientStorageError(StoreError):
    """The disk has less free space than a pull needs; nothing was downloaded."""

    http_status = 507
    error_code = "insufficient_storage"

    def __init__(self, message: str, needed: int, free: int) -> None:
        self.needed = needed
        self.free = free
        super().__init__(message)

    @classmethod
    def from_wire(cls, message: str, param: str | None = None) -> KronkError:
        return cls(message, needed=0, free=0)


class ShuttingDownError(KronkError):
    """The server is draining: new work is refused."""

    http_status = 503
    error_code = "shutting_down"
    anthropic_type = "overloaded_error"


class ServerNotRunningError(KronkError):
    """No Kronk server answered at the URL the CLI was told to use."""

    http_status = 503
    error_code = "server_not_running"


class ToolError(KronkError):
    """A server-side tool (built-in or MCP) failed; the message is safe to show the model and client."""

    http_status = 502
    error_code = "tool_error"


class ToolNotFoundError(ToolError):
    """No tool of that name is offered (unknown name, server label or a tool not allowed)."""

    http_status = 404
    error_code = "tool_not_found"
    openai_type = "invalid_request_error"
    anthropic_type = "not_found_error"


class ToolRefusedError(ToolError):
    """The SSRF guard refused a URL: it resolves to a private, loopback, metadata... address."""

    http_status = 403
    error_code = "url_not_allowed"
    openai_type = "permission_error"
    anthropic_type = "permission_error"


class ToolTimeoutError(ToolError):
    """A tool call ran past its time limit."""

    http_status = 504
    error_code = "tool_timeout"


class ToolUnavailableError(ToolError):
    """An MCP server could not be started or reached, or broke off mid-call."""

    http_status = 502
    error_code = "tool_unavailable"


class SecurityError(KronkError):
    """Base of authentication and authorization failures.

    `code` is a stable, machine-readable reason (e.g. "token_expired") for the error body.
    """

    http_status = 503
    error_code = "security_unavailable"

    def __init__(self, message: str, code: str | None = None) -> None:
        self.code = code
        super().__init__(message)


class AuthenticationError(SecurityError):
    """The token is missing, malformed, expired or not signed by a known key."""

    http_status = 401
    error_code = "invalid_api_key"
    openai_type = "authentication_error"
    anthropic_type = "authentication_error"


class PermissionDeniedError(SecurityError):
    """The token is valid but lacks the grant for this endpoint."""

    http_status = 403
    error_code = "permission_denied"
    openai_type = "permission_error"
    anthropic_type = "permission_error"


class RateLimitError(SecurityError):
    """The token's limit for this endpoint and window is used up."""

    http_status = 429
    error_code = "rate_limit_exceeded"
    openai_type = "rate_limit_error"
    anthropic_type = "rate_limit_error"

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
