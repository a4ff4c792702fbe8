"""The middleware on a small real aiohttp app: grants, admin routes, bad tokens, limits, modes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from kronk import paths
from kronk.security.config import SecurityConfig, SecurityMode
from kronk.security.keys import KeyStore
from kronk.security.tokens import Grant, Window
from tests.security import forge
from tests.security.conftest import (
    INFERENCE_PATHS,
    FakeClock,
    bearer,
    build_app,
    counted_calls,
    grants,
    handler_calls,
    mint,
)

ENDPOINT_OF = {
    "/v1/chat/completions": "chat-completions",
    "/v1/completions": "completions",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
    "/v1/messages/count_tokens": "messages",
    "/v1/embeddings": "embeddings",
    "/v1/rerank": "rerank",
    "/v1/tokenize": "tokenize",
    "/v1/detokenize": "tokenize",
}


async def _error(response: Any) -> dict[str, Any]:
    body = await response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "code", "param"}
    assert body["error"]["param"] is None
    return body["error"]


async def test_token_works_on_its_endpoints_and_is_refused_on_others(
    client: TestClient, keys: KeyStore, clock: FakeClock
) -> None:
    token = mint(keys, clock, endpoints=grants(chat_completions="100/day", tokenize="unlimited"), subject="alice").token
    for path in INFERENCE_PATHS:
        response = await client.post(path, headers=bearer(token), json={})
        if ENDPOINT_OF[path] in ("chat-completions", "tokenize"):
            assert response.status == 200, path
            assert (await response.json())["subject"] == "alice"
        else:
            assert response.status == 403, path
            if path.startswith("/v1/messages"):  # Anthropic's error shape
                assert (await response.json())["error"]["type"] == "permission_error"
                continue
            error = await _error(response)
            assert error["type"] == "permission_error" and error["code"] == "endpoint_not_granted"
    called = [path for path, _ in handler_calls(client)]
    assert called == ["/v1/chat/completions", "/v1/tokenize", "/v1/detokenize"]
    assert all(claims.subject == "alice" for _, claims in handler_calls(client))


async def test_every_endpoint_name_maps_to_its_grant(client: TestClient, keys: KeyStore, clock: FakeClock) -> None:
    for path, endpoint in ENDPOINT_OF.items():
        token = mint(keys, clock, endpoints={endpoint: Grant(Window.UNLIMITED)}).token
        assert (await client.post(path, headers=bearer(token), json={})).status == 200, path


async def test_x_api_key_is_accepted(client: TestClient, keys: KeyStore, clock: FakeClock) -> None:
    token = mint(keys, clock, endpoints=grants(messages="unlimited")).token
    assert (await client.post("/v1/messages", headers={"x-api-key": token}, json={})).status == 200
    lower = {"authorization": f"bearer {token}"}
    assert (await client.post("/v1/messages", headers=lower, json={})).status == 200


async def test_admin_routes_refuse_non_admin_tokens(client: TestClient, keys: KeyStore, clock: FakeClock) -> None:
    user = mint(keys, clock, endpoints=grants(**{"chat_completions": "unlimited"})).token
    admin = mint(keys, clock, admin=True).token
    for method, path in [
        ("GET", "/v1/kronk/libs"),
        ("GET", "/v1/kronk/models/m1"),
        ("GET", "/v1/security/keys"),
        ("POST", "/v1/security/keys"),
        ("GET", "/metrics"),
    ]:
        response = await client.request(method, path, headers=bearer(user))
        assert response.status == 403, path
        assert (await _error(response))["code"] == "admin_required"
    assert handler_calls(client) == []
    assert (await client.get("/v1/kronk/libs", headers=bearer(admin))).status == 200
    assert (await client.get("/metrics", headers=bearer(admin))).status == 200
    assert (await client.get("/v1/security/keys", headers=bearer(admin))).status == 200


async def test_admin_token_may_call_every_endpoint_without_limit(
    client: TestClient, keys: KeyStore, clock: FakeClock
) -> None:
    admin = mint(keys, clock, admin=True, endpoints=grants(chat_completions="1/day")).token
    for _ in range(3):
        assert (await client.post("/v1/chat/completions", headers=bearer(admin), json={})).status == 200
    assert (await client.post("/v1/rerank", headers=bearer(admin), json={})).status == 200
    assert counted_calls() == 0


async def test_health_is_public_discovery_needs_any_token(client: TestClient, keys: KeyStore, clock: FakeClock) -> None:
    assert (await client.get("/v1/liveness")).status == 200
    assert (await client.get("/v1/readiness")).status == 200
    for path in ("/v1/models", "/v1/models/smollm", "/v1/other", "/static/index.html"):
        response = await client.get(path)
        assert response.status == 401, path
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await _error(response))["code"] == "token_missing"
    no_grants = mint(keys, clock).token
    assert (await client.get("/v1/models", headers=bearer(no_grants))).status == 200


def _hostile_tokens(keys: KeyStore, clock: FakeClock) -> dict[str, str]:
    """Every one of these must get a 401 — and nothing else may happen."""
    good = mint(keys, clock, endpoints=grants(chat_completions="100/day"))
    kid, private = keys.signing_key()
    header = {"alg": "RS256", "kid": kid, "typ": "JWT"}
    claims = good.claims.to_payload()
    now = int(clock())
    evil_home_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # a key an attacker managed to drop next to the keys folder, reachable only via "../"
    from cryptography.hazmat.primitives import serialization

    (paths.kronk_home() / "evil.pem").write_bytes(
        evil_home_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return {
        "alg none": forge.alg_none(header, claims),
        "alg none with signature": forge.alg_none(header, claims, "c2ln"),
        "HS256 keyed with the public key": forge.hs256_with_public_key(header, claims, private.public_key()),
        "expired": forge.rs256(header, {**claims, "iat": now - 7200, "exp": now - 3600}, private),
        "iat in the future": forge.rs256(header, {**claims, "iat": now + 3600, "exp": now + 7200}, private),
        "nbf in the future": forge.rs256(header, {**claims, "nbf": now + 3600}, private),
        "wrong issuer": forge.rs256(header, {**claims, "iss": "someone-else"}, private),
        "unknown kid": forge.rs256({**header, "kid": "no-such-key"}, claims, private),
        "kid with ../": forge.rs256({**header, "kid": "../evil"}, claims, evil_home_key),
        "kid absolute path": forge.rs256({**header, "kid": str(paths.kronk_home() / "evil")}, claims, evil_home_key),
        "tampered payload": forge.with_payload(good.token, admin=True),
        "tampered grants": forge.with_payload(
            good.token, endpoints={"chat-completions": {"limit": None, "window": "unlimited"}}
        ),
        "tampered signature": forge.flip_signature(good.token),
        "truncated": good.token[: len(good.token) // 2],
        "missing signature": good.token.rsplit(".", 1)[0],
        "garbage": "hello",
        "claims of the wrong type": forge.rs256(header, {**claims, "admin": 1}, private),
        "huge (1 MB)": good.token + "A" * (1024 * 1024),
    }


async def test_bad_tokens_are_refused_and_nothing_else_happens(
    full_config: SecurityConfig, clock: FakeClock, keys: KeyStore
) -> None:
    app = build_app(full_config, clock, handler_args={"max_field_size": 4 * 1024 * 1024})
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        # one good call first, so the counter exists and must stay at 1
        good = mint(keys, clock, endpoints=grants(chat_completions="100/day")).token
        assert (await client.post("/v1/chat/completions", headers=bearer(good), json={})).status == 200
        for name, token in _hostile_tokens(keys, clock).items():
            for headers in (bearer(token), {"x-api-key": token}):
                response = await client.post("/v1/chat/completions", headers=headers, json={})
                assert response.status == 401, name
                error = await _error(response)
                assert error["type"] == "authentication_error", name
        for headers in ({"Authorization": "Bearer "}, {"Authorization": "Basic dXNlcjpwdw=="}, {"Authorization": good}):
            response = await client.post("/v1/chat/completions", headers=headers, json={})
            assert response.status == 401
            assert (await _error(response))["code"] == "token_malformed"
        assert len(handler_calls(client)) == 1
        assert counted_calls() == 1


async def test_reasons_reach_the_client(client: TestClient, keys: KeyStore, clock: FakeClock) -> None:
    tokens = _hostile_tokens(keys, clock)
    expected = {
        "expired": "token_expired",
        "iat in the future": "token_not_yet_valid",
        "nbf in the future": "token_not_yet_valid",
        "wrong issuer": "issuer_mismatch",
        "unknown kid": "key_unknown",
        "kid with ../": "kid_invalid",
        "HS256 keyed with the public key": "algorithm_not_allowed",
        "tampered payload": "signature_invalid",
    }
    for name, code in expected.items():
        response = await client.post("/v1/chat/completions", headers=bearer(tokens[name]), json={})
        assert (await _error(response))["code"] == code, name


async def test_huge_token_with_default_header_limits_never_reaches_the_handler(
    client: TestClient, keys: KeyStore, clock: FakeClock
) -> None:
    token = "A" * (1024 * 1024)
    response = await client.post("/v1/chat/completions", headers=bearer(token), json={})
    assert response.status in (400, 401, 431)
    assert handler_calls(client) == []


async def test_expiry_follows_the_clock(client: TestClient, keys: KeyStore, clock: FakeClock) -> None:
    token = mint(keys, clock, endpoints=grants(embeddings="unlimited"), duration=timedelta(minutes=10)).token
    assert (await client.post("/v1/embeddings", headers=bearer(token), json={})).status == 200
    clock.advance(600 + 30)  # exp + leeway
    response = await client.post("/v1/embeddings", headers=bearer(token), json={})
    assert response.status == 401
    assert (await _error(response))["code"] == "token_expired"


async def test_deleting_a_key_revokes_its_tokens_and_rotation_keeps_old_ones(
    client: TestClient, keys: KeyStore, clock: FakeClock
) -> None:
    scope = grants(rerank="unlimited")
    old = mint(keys, clock, endpoints=scope)
    keys.create()  # rotation: new tokens are signed by the new key
    new = mint(keys, clock, endpoints=scope)
    assert new.kid != old.kid
    for token in (old.token, new.token):
        assert (await client.post("/v1/rerank", headers=bearer(token), json={})).status == 200
    keys.delete(old.kid)
    response = await client.post("/v1/rerank", headers=bearer(old.token), json={})
    assert response.status == 401
    assert (await _error(response))["code"] == "key_unknown"
    assert (await client.post("/v1/rerank", headers=bearer(new.token), json={})).status == 200


async def test_rate_limit_gives_429_with_retry_after(client: TestClient, keys: KeyStore, clock: FakeClock) -> None:
    token = mint(keys, clock, endpoints=grants(chat_completions="2/day", embeddings="1/month")).token
    for _ in range(2):
        assert (await client.post("/v1/chat/completions", headers=bearer(token), json={})).status == 200
    response = await client.post("/v1/chat/completions", headers=bearer(token), json={})
    assert response.status == 429
    error = await _error(response)
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    midnight = datetime(2031, 5, 18, tzinfo=UTC).timestamp()
    assert int(response.headers["Retry-After"]) == int(midnight - clock())
    assert (await client.post("/v1/embeddings", headers=bearer(token), json={})).status == 200
    assert (await client.post("/v1/embeddings", headers=bearer(token), json={})).status == 429
    other = mint(keys, clock, endpoints=grants(chat_completions="2/day")).token
    assert (await client.post("/v1/chat/completions", headers=bearer(other), json={})).status == 200
    assert counted_calls() == 2 + 1 + 1  # refused calls are not counted


async def test_limits_survive_a_server_restart(full_config: SecurityConfig, keys: KeyStore, clock: FakeClock) -> None:
    token = mint(keys, clock, endpoints=grants(tokenize="3/year")).token
    for expected in ([200, 200], [200, 429]):
        app = build_app(full_config, clock)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            statuses = [(await client.post("/v1/tokenize", headers=bearer(token), json={})).status for _ in expected]
            assert statuses == expected


async def test_counters_key_on_the_window(client: TestClient, keys: KeyStore, clock: FakeClock) -> None:
    token = mint(keys, clock, endpoints=grants(completions="1/day"), duration=timedelta(days=3)).token
    assert (await client.post("/v1/completions", headers=bearer(token), json={})).status == 200
    assert (await client.post("/v1/completions", headers=bearer(token), json={})).status == 429
    clock.advance(86400)
    assert (await client.post("/v1/completions", headers=bearer(token), json={})).status == 200


@pytest.mark.parametrize("mode", [SecurityMode.OFF, SecurityMode.MANAGEMENT])
async def test_modes_below_full_leave_inference_open(mode: SecurityMode, clock: FakeClock, keys: KeyStore) -> None:
    app = build_app(SecurityConfig(mode=mode), clock)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        assert (await client.post("/v1/chat/completions", json={})).status == 200
        assert (await client.get("/v1/models")).status == 200
        assert (await client.get("/metrics")).status == 200
        management = await client.get("/v1/kronk/libs")
        if mode is SecurityMode.OFF:
            assert management.status == 200
        else:
            assert management.status == 401
            user = mint(keys, clock, endpoints=grants(chat_completions="unlimited")).token
            assert (await client.get("/v1/kronk/libs", headers=bearer(user))).status == 403
            admin = mint(keys, clock, admin=True).token
            assert (await client.get("/v1/kronk/libs", headers=bearer(admin))).status == 200
        assert handler_calls(client)[0][1] is None  # public calls carry no claims


async def test_first_start_creates_keys_and_admin_token(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    assert not paths.keys_dir().exists()
    app = build_app(SecurityConfig(mode=SecurityMode.FULL), clock)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        admin_file = paths.keys_dir() / "admin.jwt"
        assert str(admin_file) in caplog.text
        token = admin_file.read_text().strip()
        assert (await client.get("/v1/security/keys", headers=bearer(token))).status == 200
        assert (await client.post("/v1/rerank", headers=bearer(token), json={})).status == 200
        assert (await client.get("/v1/security/keys")).status == 401


async def test_off_mode_creates_nothing(clock: FakeClock) -> None:
    app = build_app(SecurityConfig(), clock)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        assert (await client.get("/v1/liveness")).status == 200
    assert not paths.keys_dir().exists()


async def test_public_paths_and_path_tricks(keys: KeyStore, clock: FakeClock) -> None:
    config = SecurityConfig(mode=SecurityMode.FULL, public_paths=("/ui/",))
    async with TestClient(TestServer(build_app(config, clock), host="127.0.0.1")) as client:
        assert (await client.get("/ui/index.html")).status == 200
        user = mint(keys, clock, endpoints=grants(chat_completions="unlimited")).token
        for path in ("/v1//kronk/libs", "/v1/./kronk/libs", "/ui/../v1/kronk/libs", "/v1/kronk/models/..%2F..%2Fx"):
            response = await client.get(path, headers=bearer(user), allow_redirects=False)
            assert response.status in (403, 404), path
        assert [p for p, _ in handler_calls(client)] == ["/ui/index.html"]


async def test_security_not_started_fails_closed(full_config: SecurityConfig, keys: KeyStore, clock: FakeClock) -> None:
    from aiohttp import web

    from kronk.security.middleware import create_security_middleware
    from tests.security.conftest import CALLS, Calls, _record

    app = web.Application(middlewares=[create_security_middleware(full_config)])
    app[CALLS] = Calls()
    app.router.add_post("/v1/chat/completions", _record)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        token = mint(keys, clock, admin=True).token
        response = await client.post("/v1/chat/completions", headers=bearer(token), json={})
        assert response.status == 500
        assert (await _error(response))["code"] == "config_error"
        assert app[CALLS].seen == []


async def test_policy_override_decides(tmp_path: Path, keys: KeyStore, clock: FakeClock) -> None:
    import shutil

    from kronk.security.policy import default_policy_dir

    folder = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), folder)
    with (folder / "authentication.rego").open("a") as handle:
        handle.write('\nreasons contains "subject_blocked" if claims.sub == "mallory"\n')
    config = SecurityConfig(mode=SecurityMode.FULL, policy_dir=folder)
    async with TestClient(TestServer(build_app(config, clock), host="127.0.0.1")) as client:
        scope = grants(chat_completions="unlimited")
        ok = mint(keys, clock, endpoints=scope, subject="alice").token
        blocked = mint(keys, clock, endpoints=scope, subject="mallory").token
        assert (await client.post("/v1/chat/completions", headers=bearer(ok), json={})).status == 200
        response = await client.post("/v1/chat/completions", headers=bearer(blocked), json={})
        assert response.status == 401
        assert (await _error(response))["code"] == "subject_blocked"


def test_error_body_is_json_serialisable() -> None:
    from kronk.errors import RateLimitError
    from kronk.security.responses import response_for

    response = response_for(RateLimitError("slow down", 42))
    assert response.status == 429 and response.headers["Retry-After"] == "42"
    assert json.loads(response.text)["error"]["code"] == "rate_limit_exceeded"


async def test_anthropic_routes_get_anthropic_error_bodies(client: TestClient, keys: KeyStore, clock: FakeClock) -> None:
    missing = await client.post("/v1/messages", json={})
    assert missing.status == 401
    assert await missing.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": (await missing.json())["error"]["message"]},
    }
    chat_only = mint(keys, clock, endpoints=grants(chat_completions="unlimited")).token
    refused = await client.post("/v1/messages", headers={"x-api-key": chat_only}, json={})
    assert refused.status == 403
    body = await refused.json()
    assert body["type"] == "error" and body["error"]["type"] == "permission_error"
