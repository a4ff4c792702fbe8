"""Grants, durations, issuing and cryptographic verification of tokens."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from kronk.durations import format_duration
from kronk.errors import AuthenticationError, ConfigError, InvalidRequestError
from kronk.security.durations import parse_lifetime
from kronk.security.endpoints import ENDPOINT_NAMES
from kronk.security.keys import KeyStore
from kronk.security.tokens import (
    Grant,
    TokenClaims,
    Window,
    grants_from_json,
    issue_token,
    parse_grants,
    verify_token,
)
from tests.security import forge
from tests.security.conftest import FakeClock, mint

MAX = 16 * 1024


def test_parse_grants_spec() -> None:
    assert parse_grants("chat-completions:1000/day, embeddings:unlimited,rerank:5/Month") == {
        "chat-completions": Grant(Window.DAY, 1000),
        "embeddings": Grant(Window.UNLIMITED),
        "rerank": Grant(Window.MONTH, 5),
    }
    assert parse_grants("") == {}
    assert set(parse_grants("*:10/year")) == set(ENDPOINT_NAMES)


@pytest.mark.parametrize(
    "spec",
    [
        "chat:1/day",
        "chat-completions",
        "chat-completions:",
        "chat-completions:10",
        "chat-completions:x/day",
        "chat-completions:10/week",
        "chat-completions:-1/day",
        "chat-completions:0/day",
        "embeddings:1/day,embeddings:2/day",
        "*:unlimited,rerank:1/day",
    ],
)
def test_bad_grant_specs_are_refused(spec: str) -> None:
    with pytest.raises(InvalidRequestError):
        parse_grants(spec)


def test_grants_from_json() -> None:
    assert grants_from_json({"tokenize": {"limit": 3, "window": "year"}}) == {"tokenize": Grant(Window.YEAR, 3)}
    assert grants_from_json({"tokenize": {"window": "unlimited"}}) == {"tokenize": Grant(Window.UNLIMITED)}
    for bad in (
        [1],
        {"tokenize": 3},
        {"tokenize": {"limit": "3", "window": "day"}},
        {"tokenize": {"limit": True, "window": "day"}},
    ):
        with pytest.raises(InvalidRequestError):
            grants_from_json(bad)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h", 86400), ("90s", 90), ("1h30m", 5400), ("7d", 604800), ("2w", 1209600), ("1y", 31536000), ("45", 45),
     ("1.5h", 5400), (60, 60)],
)
def test_parse_lifetime(text: str | int, seconds: int) -> None:
    assert parse_lifetime(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0h", "0.5s", "-1h", "h", "10 parsecs", "24h junk", "101y", "9" * 400])
def test_bad_lifetimes_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_lifetime(text)


def test_format_duration_round_trips() -> None:
    for seconds in (1, 59, 3600, 86400 + 3661):
        assert parse_lifetime(format_duration(seconds)) == timedelta(seconds=seconds)


def test_issue_then_verify(keys: KeyStore, clock: FakeClock) -> None:
    issued = mint(keys, clock, endpoints={"chat-completions": Grant(Window.DAY, 5)}, subject="alice")
    header = jwt.get_unverified_header(issued.token)
    assert header["alg"] == "RS256" and header["kid"] == issued.kid
    verified = verify_token(issued.token, keys, max_bytes=MAX)
    claims = verified.claims
    assert claims.subject == "alice" and claims.issuer == "kronk" and not claims.admin
    assert claims.expires_at - claims.issued_at == 3600
    assert claims.endpoints == {"chat-completions": Grant(Window.DAY, 5)}
    assert verified.counter_id == claims.token_id and claims.token_id
    assert verified.payload["endpoints"] == {"chat-completions": {"limit": 5, "window": "day"}}


def test_two_tokens_have_distinct_ids(keys: KeyStore, clock: FakeClock) -> None:
    a, b = mint(keys, clock), mint(keys, clock)
    assert a.claims.token_id != b.claims.token_id
    assert a.claims.subject != b.claims.subject


def test_token_without_jti_is_counted_by_its_hash(keys: KeyStore, clock: FakeClock) -> None:
    kid, private = keys.signing_key()
    payload = {"iss": "kronk", "sub": "x", "iat": int(clock()), "exp": int(clock()) + 60}
    token = forge.rs256({"alg": "RS256", "kid": kid}, payload, private)
    verified = verify_token(token, keys, max_bytes=MAX)
    assert len(verified.counter_id) == 64


def _codes(token: str, keys: KeyStore) -> str | None:
    with pytest.raises(AuthenticationError) as caught:
        verify_token(token, keys, max_bytes=MAX)
    return caught.value.code


def test_hostile_tokens_fail_verification(keys: KeyStore, clock: FakeClock) -> None:
    good = mint(keys, clock).token
    kid, private = keys.signing_key()
    header = {"alg": "RS256", "kid": kid, "typ": "JWT"}
    claims = verify_token(good, keys, max_bytes=MAX).payload
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "alg none, empty signature": (forge.alg_none(header, dict(claims)), "token_malformed"),
        "alg none, fake signature": (forge.alg_none(header, dict(claims), "AAAA"), "algorithm_not_allowed"),
        "HS256 keyed with the public key": (
            forge.hs256_with_public_key(header, dict(claims), private.public_key()),
            "algorithm_not_allowed",
        ),
        "tampered payload": (forge.with_payload(good, admin=True), "signature_invalid"),
        "tampered signature": (forge.flip_signature(good), "signature_invalid"),
        "truncated by 12": (good[:-12], ("token_malformed", "signature_invalid")),
        "truncated by 4": (good[:-4], ("token_malformed", "signature_invalid")),
        "two segments": (".".join(good.split(".")[:2]), "token_malformed"),
        "garbage": ("not-a-token", "token_malformed"),
        "unknown kid": (forge.rs256({**header, "kid": "nobody"}, dict(claims), private), "key_unknown"),
        "kid with ../": (forge.rs256({**header, "kid": "../keys/" + kid}, dict(claims), private), "kid_invalid"),
        "no kid": (forge.rs256({"alg": "RS256"}, dict(claims), private), "kid_invalid"),
        "signed by a stranger": (forge.rs256(header, dict(claims), stranger), "signature_invalid"),
        "header not JSON": ("bm90IGpzb24." + good.split(".", 1)[1], "token_malformed"),
        "crit header": (forge.rs256({**header, "crit": ["exp"]}, dict(claims), private), "token_malformed"),
        "huge": ("a" * (1024 * 1024), "token_too_large"),
        "admin claim not a bool": (forge.rs256(header, {**claims, "admin": "yes"}, private), "claims_invalid"),
        "exp not a number": (forge.rs256(header, {**claims, "exp": "never"}, private), "claims_invalid"),
        "bad grant": (
            forge.rs256(header, {**claims, "endpoints": {"rerank": {"window": "week"}}}, private),
            "claims_invalid",
        ),
        "payload not an object": (forge.rs256(header, [1, 2], private), "token_malformed"),  # type: ignore[arg-type]
    }
    for name, (token, code) in cases.items():
        assert _codes(token, keys) in ((code,) if isinstance(code, str) else code), name


def test_payload_json_list_is_refused(keys: KeyStore) -> None:
    kid, private = keys.signing_key()
    token = forge.rs256({"alg": "RS256", "kid": kid}, [1], private)  # type: ignore[arg-type]
    assert _codes(token, keys) == "token_malformed"


def test_claims_round_trip() -> None:
    claims = TokenClaims("kronk", "bob", 10, 20, True, {"rerank": Grant(Window.UNLIMITED)}, "abc", 12)
    assert TokenClaims.from_payload(claims.to_payload()) == claims


def test_issue_refuses_blank_subject_and_tiny_duration(keys: KeyStore, clock: FakeClock) -> None:
    with pytest.raises(InvalidRequestError):
        issue_token(keys, issuer="kronk", duration=timedelta(hours=1), now=clock(), subject="  ")
    with pytest.raises(InvalidRequestError):
        issue_token(keys, issuer="kronk", duration=timedelta(milliseconds=10), now=clock())
