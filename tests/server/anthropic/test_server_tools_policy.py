"""Anthropic server tools without a model: the request's limits, the error codes, the blocks' shapes.

RequestTools runs the real ToolHost (web_fetch on a local 127.0.0.1 site, web_search on a local
SearXNG-shaped endpoint); every block is validated by the `anthropic` package's own types.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic.types as t
import anthropic.types.beta as b
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kronk.errors import InvalidRequestError
from kronk.server.agent import ServerCall
from kronk.server.anthropic import schema as s
from kronk.server.anthropic.protocol import parse_request
from kronk.server.anthropic.server_blocks_out import result_block, use_block
from kronk.server.anthropic.server_tools import OfferedTool, offered_tools
from kronk.server.anthropic.tool_policy import RequestTools
from kronk.server.openai.protocol import Limits
from kronk.tools import ToolHost, ToolsConfig
from kronk.tools.types import ToolResult
from tests.tools.conftest import HttpMcp, http_mcp  # noqa: F401  (fixture)

FACT = "The secret llama is named Bartholomew."
HITS = [{"title": "Llama facts", "url": "https://example.org/llamas", "content": FACT},
        {"title": "Llama shop", "url": "https://shop.example.com/llamas", "content": "Buy one."}]
RUNNABLE = frozenset({"web_search_20250305", "web_fetch_20250910"})


@pytest.fixture
async def site() -> AsyncIterator[str]:
    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=f"<html><head><title>Llamas</title></head><body><p>{FACT}</p></body></html>",
                            content_type="text/html")

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG", content_type="image/png")

    async def search(request: web.Request) -> web.Response:
        return web.json_response({"results": HITS})

    app.router.add_get("/fact", page)
    app.router.add_get("/image", image)
    app.router.add_get("/search", search)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def host(site: str) -> AsyncIterator[ToolHost]:
    tools = ToolHost(ToolsConfig(allow=("127.0.0.1",), searxng_url=f"{site}/search", timeout=10))
    yield tools
    await tools.aclose()


def _call(name: str, arguments: str, result: ToolResult, call_id: str = "srvtoolu_1") -> ServerCall:
    return ServerCall(call_id, name, arguments, "builtin", result, 0)


async def test_web_fetch_result_and_its_errors_in_anthropics_shapes(host: ToolHost, site: str) -> None:
    fetch = OfferedTool("server", max_uses=4, allowed_domains=("127.0.0.1",), max_length=10_000)
    tools = RequestTools(host, {"web_fetch": fetch})
    ok = await tools.call("web_fetch", {"url": f"{site}/fact"}, source="builtin")
    block = t.WebFetchToolResultBlock.model_validate(result_block(_call("web_fetch", "{}", ok), fetch))
    assert isinstance(block.content, t.WebFetchBlock) and block.content.url == f"{site}/fact"
    assert block.content.content.source.data == FACT and block.content.content.title == "Llamas"
    assert block.content.retrieved_at
    codes = []
    for url in (f"{site}/image", f"{site}/missing", "http://elsewhere.example/x"):
        result = await tools.call("web_fetch", {"url": url}, source="builtin")
        codes.append(t.WebFetchToolResultBlock.model_validate(
            result_block(_call("web_fetch", "{}", result), fetch)).content.error_code)  # type: ignore[union-attr]
    # the third was refused by the domain list before any connection (not a request); the fifth is past max_uses
    assert codes == ["unsupported_content_type", "url_not_accessible", "url_not_allowed"]
    past = await tools.call("web_fetch", {"url": f"{site}/fact"}, source="builtin")
    assert past.is_error and result_block(_call("web_fetch", "{}", past), fetch)["content"] == {
        "type": "web_fetch_tool_result_error", "error_code": "max_uses_exceeded"}
    assert tools.requests == {"web_search": 0, "web_fetch": 3}
    bad = await tools.call("web_fetch", {"url": 7}, source="builtin")
    assert bad.is_error  # max_uses first: the sixth call is not made either
    use = t.ServerToolUseBlock.model_validate(use_block(_call("web_fetch", '{"url": "x"}', ok), fetch))
    assert use.input == {"url": "x"} and use.name == "web_fetch"


async def test_web_search_hits_are_filtered_by_domain(host: ToolHost) -> None:
    search = OfferedTool("server", blocked_domains=("example.com",))
    tools = RequestTools(host, {"web_search": search})
    result = await tools.call("web_search", {"query": "llamas"}, source="builtin")
    block = t.WebSearchToolResultBlock.model_validate(result_block(_call("web_search", "{}", result), search))
    assert isinstance(block.content, list)
    assert [(hit.title, hit.url, hit.encrypted_content) for hit in block.content] == [
        ("Llama facts", "https://example.org/llamas", FACT)]
    assert "shop.example.com" not in result.text and tools.requests["web_search"] == 1
    bad = await tools.call("web_search", {}, source="builtin")
    error = t.WebSearchToolResultBlock.model_validate(result_block(_call("web_search", "{}", bad), search))
    assert error.content.error_code == "invalid_tool_input"  # type: ignore[union-attr]


def test_mcp_blocks_in_anthropics_shapes() -> None:
    tool = OfferedTool("mcp", server_name="docs")
    call = ServerCall("mcptoolu_1", "add", '{"a": 1, "b": 2}', "docs#abc", ToolResult(text="3"), 0)
    use = b.BetaMCPToolUseBlock.model_validate(use_block(call, tool))
    assert (use.name, use.server_name, use.input) == ("add", "docs", {"a": 1, "b": 2})
    call.result = ToolResult(text="boom", is_error=True)
    result = b.BetaMCPToolResultBlock.model_validate(result_block(call, tool))
    assert result.is_error and result.tool_use_id == "mcptoolu_1" and result.content[0].text == "boom"  # type: ignore


async def test_unavailable_and_unknown_tools_are_error_results(site: str) -> None:
    host = ToolHost(ToolsConfig(allow=("127.0.0.1",), searxng_url=f"{site}/nothing-here", timeout=10))
    try:
        search = OfferedTool("server")
        tools = RequestTools(host, {"web_search": search})
        down = await tools.call("web_search", {"query": "x"}, source="builtin")
        assert result_block(_call("web_search", "{}", down), search)["content"]["error_code"] == "unavailable"
        assert (await tools.call("nope", {})).is_error
    finally:
        await host.aclose()


def _parse(**body: Any) -> Any:
    return parse_request({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}], **body},
                         Limits(), runnable=RUNNABLE)


def test_definitions_are_checked_and_kept_for_the_loop() -> None:
    call = _parse(tools=[{"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 2,
                          "allowed_domains": ["example.org"]}], tool_choice={"type": "tool", "name": "web_fetch"})
    assert call.agent and call.server_tools[0].max_uses == 2 and call.request.tools is None
    assert call.request.tool_choice == {"type": "function", "function": {"name": "web_fetch"}}
    with pytest.raises(InvalidRequestError) as info:
        _parse(tools=[{"type": "web_fetch_20250910", "name": "fetch"}])
    assert info.value.param == "tools[0].name"
    with pytest.raises(InvalidRequestError) as info:
        _parse(tools=[{"type": "web_search_20250305", "name": "web_search", "allowed_domains": ["a.org"],
                       "blocked_domains": ["b.org"]}])
    assert info.value.param == "tools[0].allowed_domains"
    # a named tool_choice may name an MCP server's tool: the loop checks it once the tools are listed
    call = _parse(mcp_servers=[{"type": "url", "url": "http://127.0.0.1:1/mcp", "name": "m"}],
                  tool_choice={"type": "tool", "name": "anything"})
    assert call.request.tool_choice == {"type": "function", "function": {"name": "anything"}}
    # web_search without a backend (not runnable): skipped, and refused where required
    plain = parse_request({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}],
                           "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, Limits())
    assert not plain.agent and plain.ignored_tools == ["web_search"]


async def test_mcp_servers_resolve_by_name_url_or_not_at_all() -> None:
    host = ToolHost(ToolsConfig())
    try:
        disabled = s.McpServerDefinition.model_validate({"type": "url", "url": "http://10.0.0.1/mcp", "name": "x",
                                                         "tool_configuration": {"enabled": False}})
        assert (await offered_tools(host, [], [disabled])).specs == []  # not connected, not even checked
        for url in ("http://127.0.0.1:9/mcp", "http://[::1]:9/mcp", "http://169.254.169.254/mcp"):
            refused = s.McpServerDefinition.model_validate({"type": "url", "url": url, "name": "x"})
            with pytest.raises(InvalidRequestError) as info:
                await offered_tools(host, [], [refused])
            assert info.value.param == "mcp_servers[0].url"
        twice = [s.McpServerDefinition.model_validate({"type": "url", "url": "http://10.0.0.1/", "name": "x"})] * 2
        with pytest.raises(InvalidRequestError) as info:
            await offered_tools(host, [], twice)
        assert info.value.param == "mcp_servers[1].name"
    finally:
        await host.aclose()


def test_mcp_toolsets_are_kept_for_their_servers() -> None:
    server = {"type": "url", "url": "http://127.0.0.1:1/mcp", "name": "m"}
    toolset = {"type": "mcp_toolset", "mcp_server_name": "m", "default_config": {"enabled": False},
               "configs": {"add": {"enabled": True}}}
    call = _parse(mcp_servers=[server], tools=[toolset])
    assert call.mcp_toolsets[0].configs["add"].enabled is True and call.ignored_tools == []  # type: ignore[index]
    with pytest.raises(InvalidRequestError) as info:
        _parse(mcp_servers=[server], tools=[{**toolset, "mcp_server_name": "other"}])
    assert info.value.param == "tools[0].mcp_server_name"
    with pytest.raises(InvalidRequestError) as info:
        _parse(mcp_servers=[server], tools=[toolset, toolset])
    assert info.value.param == "tools[1].mcp_server_name"
    assert _parse(tools=[toolset]).ignored_tools == ["m"]  # without mcp_servers: skipped as before


async def test_which_mcp_tools_are_offered(http_mcp: HttpMcp) -> None:  # noqa: F811
    """tool_configuration.allowed_tools and an mcp_toolset's configs, on the real streamable-HTTP MCP server."""
    host = ToolHost(ToolsConfig(allow=("127.0.0.1",), timeout=20))
    try:
        server = s.McpServerDefinition.model_validate({"type": "url", "url": http_mcp.url, "name": "calc",
                                                       "tool_configuration": {"allowed_tools": ["add", "shout"]}})
        offered = await offered_tools(host, [], [server])
        assert sorted(spec.name for spec in offered.specs) == ["add", "shout"]
        assert offered.tools["add"] == OfferedTool("mcp", server_name="calc")
        toolset = s.ToolDefinition.model_validate({"type": "mcp_toolset", "mcp_server_name": "calc",
                                                   "default_config": {"enabled": False},
                                                   "configs": {"shout": {"enabled": True}}})
        offered = await offered_tools(host, [], [server], [toolset])
        assert [spec.name for spec in offered.specs] == ["shout"]
        fetch = s.ToolDefinition.model_validate({"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 2})
        offered = await offered_tools(host, [fetch], [server], [toolset])
        assert [spec.name for spec in offered.specs] == ["web_fetch", "shout"]
        assert offered.tools["web_fetch"].max_uses == 2 and offered.tools["web_fetch"].kind == "server"
    finally:
        await host.aclose()
