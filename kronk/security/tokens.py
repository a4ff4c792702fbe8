"""RS256 tokens: grants, claims, issuing, and signature verification.

Verification here is only cryptographic (structure, alg, KID, signature, claim types);
whether a verified token is acceptable (expiry, issuer) and allowed (grants) is decided
by the Rego policies in `kronk.security.policy`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

import jwt

from kronk.errors import AuthenticationError, InvalidRequestError
from kronk.security.endpoints import ENDPOINT_NAMES
from kronk.security.keys import KeyStore, is_valid_kid

ALGORITHM = "RS256"
ALL_ENDPOINTS = "*"
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}")
_MAX_JTI = 128


class Window(StrEnum):
    """Calendar windows (UTC) a limit counts in."""

    DAY = "day"
    MONTH = "month"
    YEAR = "year"
    UNLIMITED = "unlimited"


_WINDOWS: dict[str, Window] = {window.value: window for window in Window}


@dataclass(frozen=True, slots=True)
class Grant:
    """Permission to call one endpoint: `limit` calls per `window` (no limit when unlimited)."""

    window: Window
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.window is Window.UNLIMITED:
            object.__setattr__(self, "limit", None)
        elif not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 0:
            raise InvalidRequestError(f"a {self.window.value} grant needs a limit >= 0, got {self.limit!r}")

    def to_claim(self) -> dict[str, Any]:
        return {"limit": self.limit, "window": self.window.value}

    def describe(self) -> str:
        return "unlimited" if self.limit is None else f"{self.limit}/{self.window.value}"

    @classmethod
    def from_claim(cls, value: Any) -> Grant:
        if not isinstance(value, Mapping):
            raise InvalidRequestError(f"a grant must be an object {{limit, window}}, got {value!r}")
        window = value.get("window")
        parsed = _WINDOWS.get(window) if isinstance(window, str) else None
        if parsed is None:
            choices = ", ".join(_WINDOWS)
            raise InvalidRequestError(f"invalid window {window!r}: choose one of {choices}")
        return cls(parsed, None if parsed is Window.UNLIMITED else value.get("limit"))


def _endpoint_names(name: str) -> tuple[str, ...]:
    if name == ALL_ENDPOINTS:
        return ENDPOINT_NAMES
    if name not in ENDPOINT_NAMES:
        raise InvalidRequestError(
            f"unknown endpoint {name!r}: choose from {', '.join(ENDPOINT_NAMES)} or '*'", param="endpoints"
        )
    return (name,)


def parse_grants(spec: str) -> dict[str, Grant]:
    """Parse `chat-completions:1000/day,embeddings:unlimited` (`*` = every endpoint)."""
    grants: dict[str, Grant] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, sep, rule = (s.strip() for s in item.partition(":"))
        if not sep or not rule:
            raise InvalidRequestError(f"invalid grant {item!r}: use NAME:LIMIT/WINDOW or NAME:unlimited", "endpoints")
        if rule.lower() == Window.UNLIMITED.value:
            grant = Grant(Window.UNLIMITED)
        else:
            limit, slash, window = rule.partition("/")
            if not slash or not limit.strip().isdigit():
                raise InvalidRequestError(f"invalid grant {item!r}: use NAME:LIMIT/WINDOW, e.g. 1000/day", "endpoints")
            grant = Grant.from_claim({"limit": int(limit), "window": window.strip().lower()})
        _add_grant(grants, name, grant)
    return grants


def grants_from_json(value: Any) -> dict[str, Grant]:
    """Grants from a JSON object `{name: {limit, window}}` (an HTTP body), strictly checked."""
    if value is None:
        return {}
    if isinstance(value, str):
        return parse_grants(value)
    if not isinstance(value, Mapping):
        raise InvalidRequestError("endpoints must be an object {name: {limit, window}}", param="endpoints")
    grants: dict[str, Grant] = {}
    for name, rule in value.items():
        _add_grant(grants, str(name), Grant.from_claim(rule))
    return grants


def _add_grant(grants: dict[str, Grant], name: str, grant: Grant) -> None:
    if grant.limit == 0:
        raise InvalidRequestError(f"grant {name!r} has limit 0; leave the endpoint out instead", "endpoints")
    for endpoint in _endpoint_names(name):
        if endpoint in grants:
            raise InvalidRequestError(f"endpoint {endpoint!r} is granted twice", param="endpoints")
        grants[endpoint] = grant


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The claims of a verified (or freshly issued) token."""

    issuer: str
    subject: str
    issued_at: int
    expires_at: int
    admin: bool = False
    endpoints: Mapping[str, Grant] = field(default_factory=dict)
    token_id: str | None = None
    not_before: int | None = None

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.subject,
            "iat": self.issued_at,
            "exp": self.expires_at,
            "admin": self.admin,
            "endpoints": {name: grant.to_claim() for name, grant in self.endpoints.items()},
        }
        if self.token_id is not None:
            payload["jti"] = self.token_id
        if self.not_before is not None:
            payload["nbf"] = self.not_before
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> TokenClaims:
        """Type-check signed claims; unknown endpoint names are kept (they match no route)."""
        try:
            endpoints_raw = payload.get("endpoints", {})
            if not isinstance(endpoints_raw, Mapping):
                raise InvalidRequestError("endpoints is not an object")
            jti = payload.get("jti")
            if jti is not None and (not isinstance(jti, str) or not 0 < len(jti) <= _MAX_JTI):
                raise InvalidRequestError("jti is not a short string")
            admin = payload.get("admin", False)
            if not isinstance(admin, bool):
                raise InvalidRequestError("admin is not a boolean")
            return cls(
                issuer=_string(payload, "iss"),
                subject=_string(payload, "sub"),
                issued_at=_numeric_date(payload, "iat"),
                expires_at=_numeric_date(payload, "exp"),
                admin=admin,
                endpoints={str(name): Grant.from_claim(rule) for name, rule in endpoints_raw.items()},
                token_id=jti,
                not_before=_numeric_date(payload, "nbf") if "nbf" in payload else None,
            )
        except InvalidRequestError as exc:
            raise AuthenticationError(f"token claims are invalid: {exc}", code="claims_invalid") from None


def _string(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"{name} is missing or not a string")
    return value


def _numeric_date(payload: Mapping[str, Any], name: str) -> int:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidRequestError(f"{name} is missing or not a number")
    return math.floor(value)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    kid: str
    claims: TokenClaims


def issue_token(
    keys: KeyStore,
    *,
    issuer: str,
    duration: timedelta,
    now: float,
    subject: str | None = None,
    admin: bool = False,
    endpoints: Mapping[str, Grant] | None = None,
) -> IssuedToken:
    """Sign a token with the current signing key."""
    if duration.total_seconds() < 1:
        raise InvalidRequestError("token duration must be at least one second", param="duration")
    if subject is not None and not subject.strip():
        raise InvalidRequestError("subject must not be empty", param="subject")
    issued_at = math.floor(now)
    claims = TokenClaims(
        issuer=issuer,
        subject=subject.strip() if subject else str(uuid.uuid4()),
        issued_at=issued_at,
        expires_at=issued_at + math.floor(duration.total_seconds()),
        admin=admin,
        endpoints=dict(endpoints or {}),
        token_id=uuid.uuid4().hex,
    )
    kid, private_key = keys.signing_key()
    token = jwt.encode(claims.to_payload(), private_key, algorithm=ALGORITHM, headers={"kid": kid, "typ": "JWT"})
    return IssuedToken(token, kid, claims)


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token whose RS256 signature checked out against the key its KID names."""

    kid: str
    header: Mapping[str, Any]
    payload: Mapping[str, Any]
    claims: TokenClaims
    counter_id: str
    """Identifies the token in rate counters: its jti, else a sha256 of the token."""


def _reject(message: str, code: str) -> AuthenticationError:
    return AuthenticationError(message, code=code)


def verify_token(token: str, keys: KeyStore, *, max_bytes: int) -> VerifiedToken:
    """Check size, shape, alg, KID and signature, then claim types. Raises AuthenticationError."""
    if len(token) > max_bytes:
        raise _reject(f"token is longer than {max_bytes} bytes", "token_too_large")
    if not _COMPACT_JWS.fullmatch(token):
        raise _reject("token is not a compact JWS (header.payload.signature)", "token_malformed")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise _reject("token header is not valid base64url JSON", "token_malformed") from None
    if header.get("alg") != ALGORITHM:
        raise _reject(f"token algorithm must be {ALGORITHM}", "algorithm_not_allowed")
    if "crit" in header:
        raise _reject("token has critical header extensions we do not support", "token_malformed")
    kid = header.get("kid")
    if not is_valid_kid(kid):
        raise _reject("token has no valid key id (kid)", "kid_invalid")
    assert isinstance(kid, str)
    public_key = keys.public_key(kid)
    if public_key is None:
        raise _reject("token was signed by an unknown or deleted key", "key_unknown")
    try:
        decoded = jwt.PyJWS().decode_complete(token, public_key, algorithms=[ALGORITHM])
    except jwt.InvalidTokenError:
        raise _reject("token signature is invalid", "signature_invalid") from None
    try:
        payload = json.loads(decoded["payload"])
    except (ValueError, UnicodeDecodeError):
        raise _reject("token payload is not JSON", "token_malformed") from None
    if not isinstance(payload, dict):
        raise _reject("token payload is not a JSON object", "token_malformed")
    claims = TokenClaims.from_payload(payload)
    counter_id = claims.token_id or hashlib.sha256(token.encode("ascii")).hexdigest()
    return VerifiedToken(kid, header, payload, claims, counter_id)
