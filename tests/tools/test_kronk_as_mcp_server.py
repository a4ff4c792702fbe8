"""Kronk as an MCP server, driven by the official SDK's client: `kronk mcp` (stdio) and `/mcp` (HTTP)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import httpx2
import pytest
from aiohttp.test_utils import TestServer
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from kronk import paths
from kronk.security.keys import KeyStore
from kronk.security.tokens import Grant, Window, issue_token
from kronk.server.app import create_app
from kronk.settings import load_settings
from tests.tools.conftest import ROOT, HttpMcp, Site


def mcp_config(tmp_path: Path, http_mcp: HttpMcp) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"calc": {"url": http_mcp.url}}}))
    return path


async def test_kronk_mcp_over_stdio(tmp_path: Path, site: Site, http_mcp: HttpMcp, isolated_home: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable, cwd=str(ROOT),
        args=["-m", "kronk", "mcp", "--tools-allow", "127.0.0.1", "--mcp-config", str(mcp_config(tmp_path, http_mcp))],
        env={"KRONK_HOME": str(isolated_home)})
    async with Client(params) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"web_fetch", "add", "fail", "slow"} <= names and "web_search" not in names
        page = await client.call_tool("web_fetch", {"url": site.url("/page")})
        assert not page.is_error and "# Llamas" in page.content[0].text
        refused = await client.call_tool("web_fetch", {"url": "http://169.254.169.254/latest/meta-data/"})
        assert refused.is_error and "metadata" in refused.content[0].text
        added = await client.call_tool("add", {"a": 20, "b": 22})
        assert added.content[0].text == "42" and added.structured_content == {"result": 42}
        failed = await client.call_tool("fail", {"reason": "no llamas"})
        assert failed.is_error and "no llamas" in failed.content[0].text


@pytest.fixture
async def kronk_server(tmp_path: Path, http_mcp: HttpMcp) -> AsyncIterator[TestServer]:
    settings = load_settings({"preload": False, "tools_allow": "127.0.0.1",
                              "mcp_config": str(mcp_config(tmp_path, http_mcp))}, environ={})
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


async def test_mcp_endpoint_serves_the_same_tools(kronk_server: TestServer, site: Site) -> None:
    async with Client(f"http://127.0.0.1:{kronk_server.port}/mcp") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"web_fetch", "add", "shout"} <= names
        page = await client.call_tool("web_fetch", {"url": site.url("/page"), "max_length": 2000})
        assert "# Llamas" in page.content[0].text
        assert (await client.call_tool("add", {"a": 1, "b": 2})).content[0].text == "3"


async def test_mcp_endpoint_rejects_bad_requests_cleanly(kronk_server: TestServer) -> None:
    url = f"http://127.0.0.1:{kronk_server.port}/mcp"
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=b"{not json", headers=headers) as response:
            assert 400 <= response.status < 500
        async with http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                             headers={"Accept": "text/html"}) as response:
            assert response.status == 406
        async with http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                             headers={**headers, "Host": "evil.test"}) as response:
            assert response.status in (403, 421)


async def _client_with(url: str, token: str | None) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers) as http, \
            Client(streamable_http_client(url, http_client=http)) as client:
        return [tool.name for tool in (await client.list_tools()).tools]


async def test_mcp_endpoint_behind_full_security(isolated_home: Path) -> None:
    settings = load_settings({"preload": False, "security": "full"}, environ={})
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    url = f"http://127.0.0.1:{server.port}/mcp"
    try:
        keys = KeyStore(paths.keys_dir())
        allowed = issue_token(keys, issuer="kronk", duration=timedelta(hours=1), now=time.time(),
                              endpoints={"tools": Grant(Window.UNLIMITED)})
        limited = issue_token(keys, issuer="kronk", duration=timedelta(hours=1), now=time.time(),
                              endpoints={"tools": Grant(Window.DAY, 2)})
        other = issue_token(keys, issuer="kronk", duration=timedelta(hours=1), now=time.time(),
                            endpoints={"chat-completions": Grant(Window.UNLIMITED)})
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        headers = {"Accept": "application/json, text/event-stream"}
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=body, headers=headers) as response:
                assert response.status == 401
            async with http.post(url, json=body, headers={**headers, "Authorization": f"Bearer {other.token}"}
                                 ) as response:
                assert response.status == 403
        assert "web_fetch" in await _client_with(url, allowed.token)
        statuses = []
        async with aiohttp.ClientSession() as http:  # rate-limited like every grant: 2 a day
            for _ in range(3):
                async with http.post(url, json=body, headers={**headers, "Authorization": f"Bearer {limited.token}"}
                                     ) as response:
                    statuses.append(response.status)
        assert statuses == [200, 200, 429]
    finally:
        await server.close()


def test_kronk_mcp_with_a_bad_config_says_so_and_exits(tmp_path: Path) -> None:
    bad = tmp_path / "mcp.json"
    bad.write_text('{"mcpServers": {"x": {"command": "a", "url": "http://b"}}}')
    done = subprocess.run([sys.executable, "-m", "kronk", "mcp", "--mcp-config", str(bad)], cwd=ROOT,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode == 1 and "needs exactly one of `command` (stdio) or `url`" in done.stderr
    assert done.stdout == ""
