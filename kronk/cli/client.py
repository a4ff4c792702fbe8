"""The small HTTP client CLI commands use to talk to a running Kronk server.

Base URL: `KRONK_URL`, else `http://$KRONK_HOST:$KRONK_PORT` (127.0.0.1:11435).
`KRONK_TOKEN` is sent as a bearer token. No server → `ServerNotRunningError` (one
line at the CLI edge); error bodies (`{"error": {...}}`) become the same typed
errors the server raised, chosen by code (else status), never by message text.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import requests

from kronk import errors as E
from kronk.cli.sse import SSEDecoder

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11435

# Status -> type for answers whose code names no class (e.g. a security error's own reason).
_BY_STATUS: dict[int, type[E.KronkError]] = {
    400: E.InvalidRequestError, 401: E.AuthenticationError, 403: E.PermissionDeniedError,
    404: E.ModelNotFoundError, 429: E.RateLimitError, 507: E.InsufficientStorageError,
}


def server_url(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if env.get("KRONK_URL"):
        return env["KRONK_URL"].rstrip("/")
    host = env.get("KRONK_HOST") or DEFAULT_HOST
    if host in ("0.0.0.0", "::", ""):
        host = DEFAULT_HOST
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{env.get('KRONK_PORT') or DEFAULT_PORT}"


def error_from_body(status: int, body: Any) -> E.KronkError:
    """The typed error an error response stands for."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return E.KronkError(f"server answered HTTP {status}")
    message = str(error.get("message") or f"HTTP {status}")
    code = error.get("code")
    param = error.get("param")
    param = param if isinstance(param, str) else None
    error_type = E.error_classes().get(code) if isinstance(code, str) else None
    error_type = error_type or _BY_STATUS.get(status)
    if error_type is None:
        return E.KronkError(f"server error (HTTP {status}): {message}")
    return error_type.from_wire(message, param)


class KronkClient:
    """JSON and SSE requests to one server."""

    def __init__(self, base_url: str | None = None, *, token: str | None = None, timeout: float = 30.0,
                 environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.base_url = (base_url or server_url(env)).rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        token = token if token is not None else env.get("KRONK_TOKEN")
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def _url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def _request(self, method: str, path: str, *, stream: bool = False, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self._url(path), stream=stream,
                                            timeout=(5.0, None if stream else self.timeout), **kwargs)
        except requests.ConnectionError as exc:
            raise E.ServerNotRunningError(f"no Kronk server at {self.base_url} (start one with `kronk server "
                                          "start`, set KRONK_URL, or use --local)") from exc
        except requests.RequestException as exc:
            raise E.KronkError(f"request to {self.base_url} failed: {exc}") from exc
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = None
            response.close()
            raise error_from_body(response.status_code, body)
        return response

    def is_running(self) -> bool:
        """Whether a server answers at the base URL (its liveness route)."""
        try:
            self.session.get(self._url("/v1/liveness"), timeout=(2.0, 5.0)).close()
        except requests.RequestException:
            return False
        return True

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return _object(self._request("GET", path, params=params))

    def post(self, path: str, body: Any = None) -> dict[str, Any]:
        return _object(self._request("POST", path, json=body))

    def delete(self, path: str) -> dict[str, Any]:
        return _object(self._request("DELETE", path))

    def stream(self, path: str, body: Any = None) -> Iterator[tuple[str, Any]]:
        """POST and read the SSE answer as (event name, JSON data) pairs."""
        response = self._request("POST", path, json=body, stream=True)
        with response:
            if not response.headers.get("Content-Type", "").startswith("text/event-stream"):
                yield "done", response.json()
                return
            decoder = SSEDecoder()
            for raw in response.iter_lines(decode_unicode=True):
                if raw is None:
                    continue
                event = decoder.feed(raw.decode() if isinstance(raw, bytes) else raw)
                if event is not None:
                    yield event.name, event.data
            last = decoder.flush()
            if last is not None:
                yield last.name, last.data


def _object(response: requests.Response) -> dict[str, Any]:
    """The JSON object a management route answers with (anything else is a clear error)."""
    try:
        data = response.json()
    except ValueError as exc:
        raise E.KronkError(f"{response.url} did not answer with JSON") from exc
    if not isinstance(data, dict):
        raise E.KronkError(f"{response.url} answered with unexpected JSON")
    return data
