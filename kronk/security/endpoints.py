"""Endpoint names (the grants a token carries) and the map from request paths to them.

`classify` says what a path is (health, inference endpoint, management, ...);
`required_access` turns that and the security mode into what the caller must show.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from kronk.security.config import SecurityMode


class Endpoint(StrEnum):
    """The grantable inference endpoints; the values are the claim keys."""

    CHAT_COMPLETIONS = "chat-completions"
    COMPLETIONS = "completions"
    RESPONSES = "responses"
    MESSAGES = "messages"
    EMBEDDINGS = "embeddings"
    RERANK = "rerank"
    TOKENIZE = "tokenize"
    TOOLS = "tools"
    """Server-side tools: `/mcp` (Kronk as an MCP server)."""


ENDPOINT_NAMES: tuple[str, ...] = tuple(endpoint.value for endpoint in Endpoint)

INFERENCE_ROUTES: dict[str, Endpoint] = {
    "/v1/chat/completions": Endpoint.CHAT_COMPLETIONS,
    "/v1/completions": Endpoint.COMPLETIONS,
    "/v1/responses": Endpoint.RESPONSES,
    "/v1/messages": Endpoint.MESSAGES,
    "/v1/messages/count_tokens": Endpoint.MESSAGES,
    "/v1/embeddings": Endpoint.EMBEDDINGS,
    "/v1/rerank": Endpoint.RERANK,
    "/v1/reranking": Endpoint.RERANK,
    "/v1/tokenize": Endpoint.TOKENIZE,
    "/v1/detokenize": Endpoint.TOKENIZE,
    "/mcp": Endpoint.TOOLS,
}
HEALTH_PATHS: frozenset[str] = frozenset({"/v1/liveness", "/v1/readiness"})
MANAGEMENT_PREFIXES: tuple[str, ...] = ("/v1/kronk", "/v1/security")
METRICS_PATHS: frozenset[str] = frozenset({"/metrics"})
DISCOVERY_PREFIX = "/v1/models"


class RouteKind(StrEnum):
    HEALTH = "health"
    INFERENCE = "inference"
    DISCOVERY = "discovery"
    MANAGEMENT = "management"
    METRICS = "metrics"
    OTHER = "other"


class Access(StrEnum):
    """What a caller must present, from least to most."""

    PUBLIC = "public"
    AUTHENTICATED = "authenticated"
    """Any valid token."""
    GRANT = "grant"
    """A valid token with a grant for the route's endpoint (or an admin token)."""
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    kind: RouteKind
    endpoint: Endpoint | None = None


def normalize_path(path: str) -> str:
    """Collapse `//`, `.` and `..` so a path cannot dodge a prefix check."""
    if not path.startswith("/"):
        path = "/" + path
    normalized = posixpath.normpath(path)
    # normpath keeps a leading "//" (POSIX allows it to mean something else); we do not.
    return "/" + normalized.lstrip("/")


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def classify(path: str) -> Route:
    """What kind of route a request path is, and its endpoint name when it has one."""
    clean = normalize_path(path)
    if clean in HEALTH_PATHS:
        return Route(clean, RouteKind.HEALTH)
    if (endpoint := INFERENCE_ROUTES.get(clean)) is not None:
        return Route(clean, RouteKind.INFERENCE, endpoint)
    if any(_under(clean, prefix) for prefix in MANAGEMENT_PREFIXES):
        return Route(clean, RouteKind.MANAGEMENT)
    if clean in METRICS_PATHS:
        return Route(clean, RouteKind.METRICS)
    if _under(clean, DISCOVERY_PREFIX):
        return Route(clean, RouteKind.DISCOVERY)
    return Route(clean, RouteKind.OTHER)


def is_public_path(path: str, public_paths: Iterable[str]) -> bool:
    """True if `path` is one of the operator's extra public paths (a trailing "/" means a prefix)."""
    clean = normalize_path(path)
    for entry in public_paths:
        if entry.endswith("/") and len(entry) > 1:
            if _under(clean, entry.rstrip("/")):
                return True
        elif clean == normalize_path(entry):
            return True
    return False


def required_access(mode: SecurityMode, route: Route) -> Access:
    """The access a route needs in a mode.

    | kind        | off    | management | full          |
    |-------------|--------|------------|---------------|
    | health      | public | public     | public        |
    | management  | public | admin      | admin         |
    | metrics     | public | public     | admin         |
    | inference   | public | public     | grant         |
    | discovery   | public | public     | authenticated |
    | other       | public | public     | authenticated |

    Unknown routes need a token in full mode, so a route added later is never open by accident.
    """
    if mode is SecurityMode.OFF or route.kind is RouteKind.HEALTH:
        return Access.PUBLIC
    if route.kind is RouteKind.MANAGEMENT:
        return Access.ADMIN
    if mode is SecurityMode.MANAGEMENT:
        return Access.PUBLIC
    if route.kind is RouteKind.METRICS:
        return Access.ADMIN
    if route.kind is RouteKind.INFERENCE:
        return Access.GRANT
    return Access.AUTHENTICATED
