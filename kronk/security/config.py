"""Security settings: the mode, the token issuer and lifetime, policies, the rate store.

One `SecurityConfig` is built once (from the environment, then the server's `--security`
flag via `with_mode`) and handed to the middleware, the admin routes and the CLI.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from kronk import paths
from kronk.durations import format_duration
from kronk.errors import ConfigError
from kronk.security.durations import parse_lifetime

ENV_MODE = "KRONK_SECURITY"
ENV_ISSUER = "KRONK_SECURITY_ISSUER"
ENV_DURATION = "KRONK_TOKEN_DURATION"
ENV_POLICY_DIR = "KRONK_POLICY_DIR"
ENV_RATE_STORE = "KRONK_RATE_STORE"
ENV_PUBLIC_PATHS = "KRONK_PUBLIC_PATHS"

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_SQLITE_SCHEME = "sqlite://"


class SecurityMode(StrEnum):
    """Who must show a token: nobody, admins for management APIs, or every caller."""

    OFF = "off"
    MANAGEMENT = "management"
    FULL = "full"

    @classmethod
    def parse(cls, text: str) -> SecurityMode:
        try:
            return cls(text.strip().lower())
        except ValueError:
            choices = ", ".join(mode.value for mode in cls)
            raise ConfigError(f"invalid security mode {text!r}: choose one of {choices}") from None


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """Everything the security layer needs; immutable so one object can be shared freely."""

    mode: SecurityMode = SecurityMode.OFF
    issuer: str = "kronk"
    token_duration: timedelta = timedelta(hours=24)
    """Lifetime of tokens created without an explicit duration."""
    policy_dir: Path | None = None
    """A folder with the operator's authentication.rego and authorization.rego; None = shipped ones."""
    rate_store: str | None = None
    """`redis://…` for counters shared by replicas, `sqlite:///path`; None = $KRONK_HOME/security.db."""
    keys_dir: Path | None = None
    """Where the RSA keys live; None = $KRONK_HOME/keys at the time of use."""
    leeway_seconds: int = 30
    """Clock skew tolerated on exp / iat / nbf."""
    max_token_bytes: int = 16 * 1024
    """Longer credentials are refused before any parsing."""
    public_paths: tuple[str, ...] = ()
    """Extra paths anyone may call in every mode (e.g. a browser UI); a trailing "/" means a prefix."""

    def __post_init__(self) -> None:
        if not self.issuer.strip():
            raise ConfigError("the token issuer must not be empty")
        if self.token_duration <= timedelta(0):
            raise ConfigError("the token duration must be positive")
        if self.leeway_seconds < 0:
            raise ConfigError("the clock leeway must not be negative")
        if self.max_token_bytes < 256:
            raise ConfigError("max_token_bytes is too small for any RS256 token")
        if self.rate_store is not None:
            rate_store_kind(self.rate_store)
        for path in self.public_paths:
            if not path.startswith("/") or path.startswith(("/v1/kronk", "/v1/security")):
                raise ConfigError(f"invalid public path {path!r}: must start with / and not be a management path")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SecurityConfig:
        """Read `KRONK_SECURITY`, `KRONK_SECURITY_ISSUER`, `KRONK_TOKEN_DURATION`,
        `KRONK_POLICY_DIR`, `KRONK_RATE_STORE` and `KRONK_PUBLIC_PATHS` (comma-separated);
        unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        fields: dict[str, Any] = {}
        if value := env.get(ENV_MODE, "").strip():
            fields["mode"] = SecurityMode.parse(value)
        if value := env.get(ENV_ISSUER, "").strip():
            fields["issuer"] = value
        if value := env.get(ENV_DURATION, "").strip():
            fields["token_duration"] = parse_lifetime(value)
        if value := env.get(ENV_POLICY_DIR, "").strip():
            fields["policy_dir"] = Path(value).expanduser()
        if value := env.get(ENV_RATE_STORE, "").strip():
            fields["rate_store"] = value
        if value := env.get(ENV_PUBLIC_PATHS, "").strip():
            fields["public_paths"] = tuple(part.strip() for part in value.split(",") if part.strip())
        return cls(**fields)

    def with_mode(self, mode: str | SecurityMode) -> SecurityConfig:
        """A copy with another mode, for the server's `--security` flag."""
        parsed = mode if isinstance(mode, SecurityMode) else SecurityMode.parse(mode)
        return dataclasses.replace(self, mode=parsed)

    @property
    def keys_path(self) -> Path:
        return self.keys_dir if self.keys_dir is not None else paths.keys_dir()

    @property
    def rate_store_url(self) -> str:
        if self.rate_store is not None:
            return self.rate_store
        return _SQLITE_SCHEME + str((paths.kronk_home() / "security.db").absolute())

    def describe(self) -> dict[str, Any]:
        """A JSON-safe summary for `kronk security sec` and GET /v1/security/config."""
        return {
            "mode": self.mode.value,
            "issuer": self.issuer,
            "token_duration": format_duration(self.token_duration.total_seconds()),
            "keys_dir": str(self.keys_path),
            "policy_dir": str(self.policy_dir) if self.policy_dir else "(built-in)",
            "rate_store": redact_url(self.rate_store_url),
            "leeway_seconds": self.leeway_seconds,
            "max_token_bytes": self.max_token_bytes,
            "public_paths": list(self.public_paths),
        }


def rate_store_kind(url: str) -> str:
    """ "redis" or "sqlite" for a rate-store URL; anything else is a config error."""
    if url.startswith(_REDIS_SCHEMES):
        return "redis"
    if url.startswith(_SQLITE_SCHEME + "/") and len(url) > len(_SQLITE_SCHEME) + 1:
        return "sqlite"
    raise ConfigError(f"invalid {ENV_RATE_STORE} {url!r}: use redis://host:port/db or sqlite:///absolute/path/file.db")


def sqlite_path(url: str) -> Path:
    """The file of a `sqlite:///abs/path` URL."""
    if rate_store_kind(url) != "sqlite":
        raise ConfigError(f"{url!r} is not a sqlite:/// URL")
    return Path(url[len(_SQLITE_SCHEME) :])


def redact_url(url: str) -> str:
    """Hide a password in `redis://user:pass@host` before showing the URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':' if user else ''}***@{host}"
