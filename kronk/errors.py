"""The one exception tree of Kronk.

Every layer raises these typed errors; each edge (HTTP server, CLI) maps them once,
by type, to a status code or an exit code. Never match on message text.

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
    ├── ServerNotRunningError       the CLI found no server at its URL
    └── SecurityError
        ├── AuthenticationError     missing/invalid token             (HTTP 401)
        ├── PermissionDeniedError   token lacks the grant             (HTTP 403)
        └── RateLimitError          limit exceeded, has retry_after   (HTTP 429)
"""

from __future__ import annotations


class KronkError(Exception):
    """Base class of every error Kronk raises on purpose."""


class ConfigError(KronkError):
    """A setting, flag or config file is invalid."""


class NativeError(KronkError):
    """A problem with the llama.cpp shared libraries."""


class LibraryNotFoundError(NativeError):
    """No usable llama.cpp libraries were found."""


class ABIMismatchError(NativeError):
    """The libraries were built from headers that differ from our declarations."""


class LibsInstallError(KronkError):
    """Installing the llama.cpp libraries failed from every source tried."""


class ModelLoadError(KronkError):
    """A model file could not be loaded."""


class ModelNotFoundError(KronkError):
    """No model with that id is known."""

    def __init__(self, model: str, message: str | None = None) -> None:
        self.model = model
        super().__init__(message or f"model {model!r} not found")


class InvalidRequestError(KronkError):
    """A request is malformed; `param` names the offending field when known."""

    def __init__(self, message: str, param: str | None = None) -> None:
        self.param = param
        super().__init__(message)


class CapabilityError(InvalidRequestError):
    """The model cannot serve this kind of request (e.g. images to a text model)."""


class ContextOverflowError(InvalidRequestError):
    """The prompt plus requested tokens do not fit the model's context."""


class GrammarError(InvalidRequestError):
    """A JSON schema or GBNF grammar could not be compiled."""


class RequestTooLargeError(KronkError):
    """A request exceeds a configured size limit."""


class BusyError(KronkError):
    """The model's admission queue is full; retry later."""

    def __init__(self, message: str = "server busy: too many queued requests", retry_after: float = 1.0) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class DownloadError(KronkError):
    """A download failed."""


class ChecksumError(DownloadError):
    """Downloaded bytes do not match the expected size or sha256."""


class StoreError(KronkError):
    """The model store or catalog is in a state we cannot work with."""


class InsufficientStorageError(StoreError):
    """The disk has less free space than a pull needs; nothing was downloaded."""

    def __init__(self, message: str, needed: int, free: int) -> None:
        self.needed = needed
        self.free = free
        super().__init__(message)


class ServerNotRunningError(KronkError):
    """No Kronk server answered at the URL the CLI was told to use."""


class SecurityError(KronkError):
    """Base of authentication and authorization failures.

    `code` is a stable, machine-readable reason (e.g. "token_expired") for the error body.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        self.code = code
        super().__init__(message)


class AuthenticationError(SecurityError):
    """The token is missing, malformed, expired or not signed by a known key."""


class PermissionDeniedError(SecurityError):
    """The token is valid but lacks the grant for this endpoint."""


class RateLimitError(SecurityError):
    """The token's limit for this endpoint and window is used up."""

    def __init__(self, message: str, retry_after: int, code: str = "rate_limit_exceeded") -> None:
        self.retry_after = retry_after
        super().__init__(message, code)
