"""web_search over its two backends, each a fake of the real API served on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kronk.errors import InvalidRequestError, ToolError, ToolNotFoundError
from kronk.tools import ToolHost, ToolsConfig, ToolSelection
from kronk.tools.web_search import BraveBackend, WebSearch

SEEN: list[dict[str, Any]] = []


async def searxng(request: web.Request) -> web.Response:
    SEEN.append({"query": dict(request.query)})
    if request.query.get("q") == "broken":
        return web.Response(status=500, text="oops")
    results = [{"title": f"Llama {i}", "url": f"https://llama.test/{i}", "content": f"About llama {i}"}
               for i in range(10)]
    return web.json_response({"query": request.query["q"], "results": results})


async def brave(request: web.Request) -> web.Response:
    SEEN.append({"query": dict(request.query), "token": request.headers.get("X-Subscription-Token")})
    count = int(request.query["count"])
    return web.json_response({"web": {"results": [
        {"title": f"Alpaca {i}", "url": f"https://alpaca.test/{i}", "description": f"About alpaca {i}"}
        for i in range(count)]}})


@pytest.fixture
async def search_site() -> AsyncIterator[str]:
    SEEN.clear()
    app = web.Application()
    app.router.add_get("/search", searxng)
    app.router.add_get("/res/v1/web/search", brave)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


async def test_without_a_backend_web_search_is_not_offered() -> None:
    host = ToolHost(ToolsConfig())
    assert host.builtin_names == ("web_fetch",)
    tools = await host.list_tools(ToolSelection.of(builtins=["web_fetch", "web_search"]))
    assert [t.name for t in tools] == ["web_fetch"]
    with pytest.raises(ToolNotFoundError, match="web_search"):
        await host.call("web_search", {"query": "llamas"}, source="builtin")
    with pytest.raises(ToolNotFoundError):
        await host.call("web_search", {"query": "llamas"})


async def test_searxng_results_become_a_numbered_list(search_site: str) -> None:
    host = ToolHost(ToolsConfig(searxng_url=search_site + "/search"))
    assert [t.name for t in await host.list_tools(ToolSelection.of(builtins=["web_search"]))] == ["web_search"]
    result = await host.call("web_search", {"query": "llamas", "count": 3})
    assert result.text.splitlines()[:3] == ["1. Llama 0", "https://llama.test/0", "About llama 0"]
    assert "3. Llama 2" in result.text and "Llama 3" not in result.text
    assert result.structured is not None and len(result.structured["results"]) == 3
    assert SEEN[-1]["query"] == {"q": "llamas", "format": "json"}


async def test_brave_sends_the_key_and_the_count(search_site: str) -> None:
    tool = WebSearch(ToolsConfig(), BraveBackend("brave-key-123", url=search_site + "/res/v1/web/search"))
    result = await tool({"query": "alpacas", "count": 2})
    assert "2. Alpaca 1\nhttps://alpaca.test/1\nAbout alpaca 1" in result.text
    assert SEEN[-1] == {"query": {"q": "alpacas", "count": "2"}, "token": "brave-key-123"}
    assert "brave-key-123" not in repr(tool.backend)


async def test_backend_failures_and_bad_arguments_are_errors(search_site: str) -> None:
    host = ToolHost(ToolsConfig(searxng_url=search_site + "/search"))
    with pytest.raises(ToolError, match="HTTP 500"):
        await host.call("web_search", {"query": "broken"})
    for arguments in ({}, {"query": " "}, {"query": "x", "count": 0}, {"query": "x", "count": 99}):
        with pytest.raises(InvalidRequestError):
            await host.call("web_search", arguments)
