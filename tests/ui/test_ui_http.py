"""The UI over plain HTTP: files, caching, gzip, --no-ui, and the cookie session's rules."""

from __future__ import annotations

import gzip
import logging
import re

import aiohttp
import pytest
from yarl import URL

from kronk.security.sessions import COOKIE_NAME, LOGIN_ATTEMPTS
from tests.server.conftest import StartServer
from tests.ui.conftest import admin_token, user_token


def _asset_base(index_html: str) -> str:
    match = re.search(r'src="(/ui/[0-9a-f]{12}/)app\.js"', index_html)
    assert match, index_html
    return match.group(1)


async def test_index_and_versioned_assets(start_server: StartServer) -> None:
    server = await start_server(preload=False)
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        async with http.get(server.url + "/", headers={"Accept-Encoding": "gzip"}) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
            assert response.headers["Cache-Control"] == "no-cache"
            assert response.headers["Content-Encoding"] == "gzip"
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
            html = gzip.decompress(await response.read()).decode()
        base = _asset_base(html)
        for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css"), ("lib/ctx.js", "text/javascript"),
                           ("favicon.svg", "image/svg+xml")):
            async with http.get(server.url + base + name, headers={"Accept-Encoding": "gzip, br"}) as response:
                assert response.status == 200, name
                assert response.headers["Content-Type"].startswith(kind)
                assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
                assert response.headers["Vary"] == "Accept-Encoding"
                etag = response.headers["ETag"]
            async with http.get(server.url + base + name, headers={"If-None-Match": etag}) as response:
                assert response.status == 304
        async with http.get(server.url + base + "app.js", headers={"Accept-Encoding": "identity"}) as response:
            assert "Content-Encoding" not in response.headers
            assert b"import" in await response.read()
        async with http.get(server.url + "/ui/000000000000/app.js") as response:  # an old version: served, not cached
            assert response.status == 200 and response.headers["Cache-Control"] == "no-cache"
        for missing in (base + "nope.js", base + "..%2F..%2Fpyproject.toml", base + "index.html"):
            async with http.get(URL(server.url + missing, encoded=True)) as response:
                assert response.status == 404, missing


async def test_no_ui_turns_it_off(start_server: StartServer, http: aiohttp.ClientSession) -> None:
    server = await start_server(preload=False, ui=False)
    for path in ("/", "/ui/session"):
        async with http.get(server.url + path) as response:
            assert response.status == 404


async def test_session_off_mode_grants_everything(start_server: StartServer, http: aiohttp.ClientSession) -> None:
    server = await start_server(preload=False)
    async with http.get(server.url + "/ui/session") as response:
        body = await response.json()
    assert body["security"] == "off" and body["admin"] and not body["login_required"]
    assert "chat-completions" in body["grants"] and "admin" in body["grants"]


async def test_full_mode_cookie_session(start_server: StartServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = await start_server(security="full", preload=False)
    origin = {"Origin": server.url}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # cookies for an IP
        # The UI's files are public; the data is not.
        async with http.get(server.url + "/") as response:
            assert response.status == 200
        async with http.get(server.url + "/v1/kronk/models") as response:
            assert response.status == 401
        for dodge in ("/ui/..%2Fv1%2Fkronk%2Fmodels", "/ui/x/..%2F..%2Fv1/kronk/models", "/uix"):
            async with http.get(URL(server.url + dodge, encoded=True)) as response:
                assert response.status in (401, 404), dodge
        async with http.get(server.url + "/ui/session") as response:
            body = await response.json()
            assert body["login_required"] and body["grants"] == []
        # Login must come from the server's own page and with a good token.
        async with http.post(server.url + "/ui/session", json={"token": admin_token()}) as response:
            assert response.status == 403
            assert (await response.json())["error"]["code"] == "origin_mismatch"
        async with http.post(server.url + "/ui/session", json={"token": "nonsense"}, headers=origin) as response:
            assert response.status == 401
            assert COOKIE_NAME not in response.cookies
        async with http.post(server.url + "/ui/session", json={"token": admin_token()}, headers=origin) as response:
            assert response.status == 200
            assert (await response.json())["admin"] is True
            cookie = response.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
            assert admin_token() not in cookie
        # The cookie now stands for the token: reads pass; writes need a matching Origin.
        async with http.get(server.url + "/v1/kronk/models") as response:
            assert response.status == 200
        async with http.post(server.url + "/v1/kronk/models/index") as response:
            assert response.status == 403
            assert (await response.json())["error"]["code"] == "origin_mismatch"
        async with http.post(server.url + "/v1/kronk/models/index", headers={"Origin": "http://evil.example"}) as resp:
            assert resp.status == 403
        async with http.post(server.url + "/v1/kronk/models/index", headers=origin) as response:
            assert response.status == 200
        # Logout ends it; the old cookie is refused as an expired session.
        stale = {COOKIE_NAME: http.cookie_jar.filter_cookies(URL(server.url))[COOKIE_NAME].value}
        async with http.delete(server.url + "/ui/session", headers=origin) as response:
            assert response.status == 200
        async with http.get(server.url + "/v1/kronk/models", cookies=stale) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "session_expired"
    assert admin_token() not in caplog.text and stale[COOKIE_NAME] not in caplog.text  # never in a log line


async def test_non_admin_session_gets_its_grants_only(start_server: StartServer) -> None:
    server = await start_server(security="full", preload=False)
    origin = {"Origin": server.url}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # cookies for an IP
        async with http.get(server.url + "/ui/session"):
            pass  # the first start wrote the keys
        token = user_token(chat_completions="unlimited")
        async with http.post(server.url + "/ui/session", json={"token": token}, headers=origin) as response:
            body = await response.json()
            assert body["grants"] == ["chat-completions"] and body["admin"] is False
        async with http.get(server.url + "/v1/kronk/models") as response:
            assert response.status == 403
        async with http.get(server.url + "/v1/models") as response:
            assert response.status == 200


async def test_failed_logins_are_rate_limited(start_server: StartServer, http: aiohttp.ClientSession) -> None:
    server = await start_server(security="management", preload=False)
    origin = {"Origin": server.url}
    for _ in range(LOGIN_ATTEMPTS):
        async with http.post(server.url + "/ui/session", json={"token": "bad"}, headers=origin) as response:
            assert response.status == 401
    async with http.post(server.url + "/ui/session", json={"token": admin_token()}, headers=origin) as response:
        assert response.status == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert (await response.json())["error"]["code"] == "login_rate_limited"


async def test_management_mode_grants_inference_without_login(start_server: StartServer,
                                                              http: aiohttp.ClientSession) -> None:
    server = await start_server(security="management", preload=False)
    async with http.get(server.url + "/ui/session") as response:
        body = await response.json()
    assert body["login_required"] and "chat-completions" in body["grants"] and "admin" not in body["grants"]
