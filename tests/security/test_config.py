"""SecurityConfig from the environment, and the route map."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from kronk.errors import ConfigError
from kronk.security.config import SecurityConfig, SecurityMode, redact_url, sqlite_path
from kronk.security.endpoints import Access, Endpoint, RouteKind, classify, is_public_path, required_access


def test_defaults_are_off_and_local() -> None:
    config = SecurityConfig.from_env({})
    assert config.mode is SecurityMode.OFF
    assert config.issuer == "kronk" and config.token_duration == timedelta(hours=24)
    assert config.rate_store_url.startswith("sqlite:///") and config.rate_store_url.endswith("security.db")


def test_from_env_reads_every_setting(tmp_path: Path) -> None:
    config = SecurityConfig.from_env(
        {
            "KRONK_SECURITY": "Full",
            "KRONK_SECURITY_ISSUER": "acme",
            "KRONK_TOKEN_DURATION": "7d",
            "KRONK_POLICY_DIR": str(tmp_path),
            "KRONK_RATE_STORE": "redis://127.0.0.1:6379/2",
            "KRONK_PUBLIC_PATHS": "/ui/, /favicon.ico",
        }
    )
    assert config.mode is SecurityMode.FULL
    assert config.issuer == "acme" and config.token_duration == timedelta(days=7)
    assert config.policy_dir == tmp_path and config.rate_store_url == "redis://127.0.0.1:6379/2"
    assert config.public_paths == ("/ui/", "/favicon.ico")
    assert config.with_mode("management").mode is SecurityMode.MANAGEMENT


@pytest.mark.parametrize(
    "env",
    [
        {"KRONK_SECURITY": "on"},
        {"KRONK_TOKEN_DURATION": "forever"},
        {"KRONK_RATE_STORE": "postgres://x"},
        {"KRONK_PUBLIC_PATHS": "/v1/security/"},
        {"KRONK_PUBLIC_PATHS": "ui"},
    ],
)
def test_bad_env_is_a_config_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        SecurityConfig.from_env(env)


def test_url_helpers() -> None:
    assert sqlite_path("sqlite:///var/lib/kronk/r.db") == Path("/var/lib/kronk/r.db")
    assert redact_url("redis://:pw@h:1/0") == "redis://***@h:1/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"


@pytest.mark.parametrize(
    ("path", "kind", "endpoint"),
    [
        ("/v1/chat/completions", RouteKind.INFERENCE, Endpoint.CHAT_COMPLETIONS),
        ("/v1/messages/count_tokens", RouteKind.INFERENCE, Endpoint.MESSAGES),
        ("/v1/detokenize", RouteKind.INFERENCE, Endpoint.TOKENIZE),
        ("/v1/chat/completions/", RouteKind.INFERENCE, Endpoint.CHAT_COMPLETIONS),
        ("//v1//embeddings", RouteKind.INFERENCE, Endpoint.EMBEDDINGS),
        ("/v1/liveness", RouteKind.HEALTH, None),
        ("/v1/kronk/models/pull", RouteKind.MANAGEMENT, None),
        ("/v1/security", RouteKind.MANAGEMENT, None),
        ("/v1/models/../kronk/libs", RouteKind.MANAGEMENT, None),
        ("/v1/kronkish", RouteKind.OTHER, None),
        ("/metrics", RouteKind.METRICS, None),
        ("/v1/models/abc", RouteKind.DISCOVERY, None),
        ("/", RouteKind.OTHER, None),
    ],
)
def test_classify(path: str, kind: RouteKind, endpoint: Endpoint | None) -> None:
    route = classify(path)
    assert (route.kind, route.endpoint) == (kind, endpoint)


def test_access_table() -> None:
    table = {
        RouteKind.HEALTH: (Access.PUBLIC, Access.PUBLIC, Access.PUBLIC),
        RouteKind.MANAGEMENT: (Access.PUBLIC, Access.ADMIN, Access.ADMIN),
        RouteKind.METRICS: (Access.PUBLIC, Access.PUBLIC, Access.ADMIN),
        RouteKind.INFERENCE: (Access.PUBLIC, Access.PUBLIC, Access.GRANT),
        RouteKind.DISCOVERY: (Access.PUBLIC, Access.PUBLIC, Access.AUTHENTICATED),
        RouteKind.OTHER: (Access.PUBLIC, Access.PUBLIC, Access.AUTHENTICATED),
    }
    samples = {
        RouteKind.HEALTH: "/v1/readiness",
        RouteKind.MANAGEMENT: "/v1/kronk/x",
        RouteKind.METRICS: "/metrics",
        RouteKind.INFERENCE: "/v1/rerank",
        RouteKind.DISCOVERY: "/v1/models",
        RouteKind.OTHER: "/v1/audio/transcriptions",
    }
    for kind, expected in table.items():
        got = tuple(required_access(mode, classify(samples[kind])) for mode in SecurityMode)
        assert got == expected, kind


def test_public_paths() -> None:
    assert is_public_path("/ui/app.js", ["/ui/"])
    assert is_public_path("/ui", ["/ui/"])
    assert not is_public_path("/uix", ["/ui/"])
    assert is_public_path("/favicon.ico", ["/favicon.ico"])
    assert not is_public_path("/anything", ["/"])
