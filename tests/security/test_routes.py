"""The admin HTTP endpoints under /v1/security."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from kronk import paths
from kronk.durations import parse_duration
from kronk.security.config import SecurityConfig
from kronk.security.keys import KeyStore
from kronk.security.routes import TokenBody
from tests.security.conftest import FakeClock, bearer, build_app, mint


async def _admin(client: TestClient, keys: KeyStore, clock: FakeClock) -> dict[str, str]:
    return bearer(mint(keys, clock, admin=True).token)


async def test_key_lifecycle_over_http(client: TestClient, keys: KeyStore, clock: FakeClock) -> None:
    admin = await _admin(client, keys, clock)
    listed = await (await client.get("/v1/security/keys", headers=admin)).json()
    assert [k["signing"] for k in listed["data"]] == [True]
    first = listed["data"][0]["kid"]

    created = await client.post("/v1/security/keys", headers=admin)
    assert created.status == 201
    second = (await created.json())["kid"]
    listed = await (await client.get("/v1/security/keys", headers=admin)).json()
    assert [(k["kid"], k["signing"]) for k in listed["data"]] == [(first, False), (second, True)]

    # the admin token was signed by the first key: after deleting it, it is revoked
    assert (await client.delete(f"/v1/security/keys/{first}", headers=admin)).status == 200
    assert (await client.get("/v1/security/keys", headers=admin)).status == 401
    admin = await _admin(client, keys, clock)
    missing = await client.delete(f"/v1/security/keys/{first}", headers=admin)
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "key_not_found"
    last = await client.delete(f"/v1/security/keys/{second}", headers=admin)
    assert last.status == 400
    assert "only key" in (await last.json())["error"]["message"]
    assert (paths.keys_dir() / f"{second}.pem").exists()


async def test_path_characters_in_kid_are_refused(client: TestClient, keys: KeyStore, clock: FakeClock) -> None:
    admin = await _admin(client, keys, clock)
    (paths.kronk_home() / "victim.pem").write_text("x")
    for kid in ("..%2Fvictim", "victim.pem", "a.b"):
        response = await client.delete(f"/v1/security/keys/{kid}", headers=admin)
        assert response.status in (400, 404), kid
    assert (paths.kronk_home() / "victim.pem").exists()


async def test_token_creation_over_http(client: TestClient, keys: KeyStore, clock: FakeClock) -> None:
    admin = await _admin(client, keys, clock)
    body = {"duration": "2h", "subject": "svc", "endpoints": {"embeddings": {"limit": 2, "window": "day"}}}
    response = await client.post("/v1/security/tokens", headers=admin, json=body)
    assert response.status == 201
    issued = await response.json()
    assert issued["subject"] == "svc" and issued["admin"] is False
    assert issued["expires_at"] - issued["issued_at"] == 7200
    assert issued["endpoints"] == {"embeddings": {"limit": 2, "window": "day"}}
    token = bearer(issued["token"])
    assert (await client.post("/v1/embeddings", headers=token, json={})).status == 200
    assert (await client.post("/v1/chat/completions", headers=token, json={})).status == 403
    assert (await client.post("/v1/security/tokens", headers=token, json={})).status == 403

    spec = await client.post(
        "/v1/security/tokens", headers=admin, json={"endpoints": "rerank:unlimited", "duration": 60}
    )
    assert (await spec.json())["endpoints"] == {"rerank": {"limit": None, "window": "unlimited"}}
    default = await (await client.post("/v1/security/tokens", headers=admin, json={"admin": True})).json()
    assert default["expires_at"] - default["issued_at"] == 86400


async def test_bad_token_requests_are_400(client: TestClient, keys: KeyStore, clock: FakeClock) -> None:
    admin = await _admin(client, keys, clock)
    bad_bodies: list[Any] = [
        [1],
        {"duration": "forever"},
        {"duration": True},
        {"admin": "yes"},
        {"endpoints": {"chat": {"limit": 1, "window": "day"}}},
        {"endpoints": {"rerank": {"limit": 1, "window": "fortnight"}}},
        {"subject": ""},
        {"color": "blue"},
    ]
    for body in bad_bodies:
        response = await client.post("/v1/security/tokens", headers=admin, json=body)
        assert response.status == 400, body
        assert (await response.json())["error"]["type"] == "invalid_request_error"
    response = await client.post(
        "/v1/security/tokens", headers={**admin, "Content-Type": "application/json"}, data=b"{nope"
    )
    assert response.status == 400


async def test_token_body_errors_name_the_field(client: TestClient, keys: KeyStore, clock: FakeClock) -> None:
    """TokenBody (kronk.security.routes) is the only validation: its params and messages."""
    admin = await _admin(client, keys, clock)
    cases: list[tuple[Any, str, str]] = [
        ({"duration": "forever"}, "duration",
         "duration: must be a duration like 90, 30s, 5m, 1.5h, 720h, 1h30m, 7d or 1y"),
        ({"duration": "0s"}, "duration", "duration: duration '0s' must be at least one second"),
        ({"duration": "101y"}, "duration", "duration: duration '101y' is longer than 100 years"),
        ({"duration": 0}, "duration", "duration: must be >= 1, got 0"),
        ({"duration": True}, "duration", "duration: must be a duration like '24h' or a number of seconds"),
        ({"admin": "yes"}, "admin", "admin: must be a boolean, got string"),
        ({"subject": " "}, "subject", "subject: must not be blank"),
        ({"color": "blue"}, "color", "color: is not a known field"),
        ({"endpoints": {"rerank": {"window": "day"}}}, "endpoints.rerank.limit",
         "endpoints.rerank.limit: is required for a day window"),
        ({"endpoints": {"rerank": {"limit": 0, "window": "day"}}}, "endpoints.rerank.limit",
         "endpoints.rerank.limit: must be >= 1, got 0"),
        ({"endpoints": {"*": {"window": "unlimited"}, "rerank": {"window": "unlimited"}}}, "endpoints",
         "endpoints: endpoint 'rerank' is granted twice"),
        ({"endpoints": "rerank"}, "endpoints",
         "endpoints: invalid grant 'rerank': use NAME:LIMIT/WINDOW or NAME:unlimited"),
    ]
    for body, param, message in cases:
        response = await client.post("/v1/security/tokens", headers=admin, json=body)
        assert response.status == 400, body
        error = (await response.json())["error"]
        assert (error["param"], error["message"]) == (param, message), body


async def test_token_durations_follow_the_one_grammar(client: TestClient, keys: KeyStore, clock: FakeClock) -> None:
    """Every spelling kronk.durations reads is accepted, as /openapi.json's pattern says (720h and 1y too)."""
    admin = await _admin(client, keys, clock)
    for duration, seconds in [("720h", 720 * 3600), ("1y", 365 * 86400), ("1h 30m", 5400), (" 90 ", 90),
                              ("1.5h", 5400), ("2D", 2 * 86400), (3600, 3600)]:
        response = await client.post("/v1/security/tokens", headers=admin, json={"duration": duration})
        assert response.status == 201, (duration, await response.text())
        issued = await response.json()
        assert issued["expires_at"] - issued["issued_at"] == seconds, duration
    unlimited = await client.post("/v1/security/tokens", headers=admin,
                                  json={"endpoints": {"rerank": {"window": "unlimited"}}})
    assert (await unlimited.json())["endpoints"] == {"rerank": {"limit": None, "window": "unlimited"}}


async def test_config_endpoint(client: TestClient, keys: KeyStore, clock: FakeClock) -> None:
    admin = await _admin(client, keys, clock)
    info = await (await client.get("/v1/security/config", headers=admin)).json()
    assert info["mode"] == "full" and info["issuer"] == "kronk" and info["keys"] == 1
    assert info["token_duration"] == "1d"
    assert "chat-completions" in info["endpoints"] and info["windows"] == ["day", "month", "year", "unlimited"]


async def test_off_mode_routes_work_and_bootstrap_on_first_token(clock: FakeClock) -> None:
    async with TestClient(TestServer(build_app(SecurityConfig(), clock), host="127.0.0.1")) as client:
        response = await client.post("/v1/security/tokens", json={"endpoints": "tokenize:5/day"})
        assert response.status == 201
        assert (paths.keys_dir() / "admin.jwt").exists()
        keys = await (await client.get("/v1/security/keys")).json()
        assert len(keys["data"]) == 1


def test_documented_duration_pattern_is_the_parser_grammar() -> None:
    """The regex /openapi.json shows for `duration` accepts exactly the texts kronk.durations reads."""
    branches = TokenBody.model_json_schema()["properties"]["duration"]["anyOf"][0]["oneOf"]
    regex = re.compile(next(b["pattern"] for b in branches if b["type"] == "string"))
    samples = ["90", "1.5", "30s", "5m", "1.5h", "720h", "1h30m", "7d", "1y", "2W", " 1h 30m ", "5 m", "0",
               "", " ", "h", "1x", "-5", "+5", "1e3", "1.", ".5", "1h-30m", "forever", "nan", "inf", "1,5h", "5 5"]
    for text in samples:
        try:
            parse_duration(text)
            parses = True
        except ValueError:
            parses = False
        assert bool(regex.search(text)) == parses, text
