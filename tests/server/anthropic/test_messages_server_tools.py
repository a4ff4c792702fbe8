"""Anthropic Messages with server-side tools, end to end through the official `anthropic` client.

A real Kronk server with SmolLM2; `mcp_servers` point at the real streamable-HTTP MCP server of
the tool tests, web_fetch reads a local 127.0.0.1 page (allowlisted), web_search asks a local
SearXNG-shaped JSON endpoint. Every first turn's tool call is forced by the grammar (a named
tool_choice), so the flow is deterministic. Streamed requests go through the client's stream
helpers, so its own event accumulator checks the event shapes and order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kronk.sdk.requests import ChatRequest
from kronk.server.anthropic.answers import AnthropicMessage
from tests.server.conftest import RunningServer, StartServer
from tests.tools.conftest import HttpMcp, http_mcp  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.requires_libs]

FACT = "The secret llama is named Bartholomew."
TOKEN = "the-llama-is-Bartholomew"
MCP_BETA = ["mcp-client-2025-04-04"]
SAMPLING = {"temperature": 0}
"""Sent in extra_body: the client's newest signatures no longer take temperature."""
WHOAMI = {"type": "tool", "name": "whoami"}
WEATHER = {"name": "get_weather", "description": "Weather of a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
HITS = [{"title": "Llama facts", "url": "https://example.org/llamas", "content": FACT},
        {"title": "Llama shop", "url": "https://shop.example.com/llamas", "content": "Buy a llama."}]


@pytest.fixture
async def sites() -> AsyncIterator[dict[str, str]]:
    """A page for web_fetch and a SearXNG-shaped search endpoint, on 127.0.0.1; counts the searches."""
    app = web.Application()
    searches: list[str] = []

    async def fact(request: web.Request) -> web.Response:
        return web.Response(text=f"<html><head><title>Llamas</title></head><body><p>{FACT}</p></body></html>",
                            content_type="text/html")

    async def search(request: web.Request) -> web.Response:
        searches.append(request.query.get("q", ""))
        return web.json_response({"query": request.query.get("q"), "results": HITS})

    app.router.add_get("/fact", fact)
    app.router.add_get("/search", search)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield {"page": str(server.make_url("/fact")), "search": str(server.make_url("/search"))}
    await server.close()


async def _server(start_server: StartServer, smollm2: Path, **overrides: object) -> RunningServer:
    """SmolLM2 with 127.0.0.1 allowlisted. One tool turn, then the answer turn (tool_choice none): after a
    forced call SmolLM2 tends to call again, so the iteration limit keeps every flow at two turns."""
    overrides = {"agent_max_iterations": 1, **overrides}
    server = await start_server(model=str(smollm2), threads=2, ctx_size=4096, tools_allow=("127.0.0.1",),
                                **overrides)
    await server.ready()
    return server


def _client(server: RunningServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=server.url, api_key="unused", max_retries=0)


def _spy(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> list[ChatRequest]:
    """The model turns the server runs (each turn's ChatRequest), to see what the model was shown."""
    kronk, seen = server.kronk, []
    stream, chat = kronk.chat_stream, kronk.chat

    def record(request: ChatRequest) -> None:
        seen.append(dataclasses.replace(request, messages=list(request.messages)))  # the loop appends to its list

    def chat_stream(request: ChatRequest, **kwargs: Any) -> Any:
        record(request)
        return stream(request, **kwargs)

    async def plain_chat(request: ChatRequest, **kwargs: Any) -> Any:
        record(request)
        return await chat(request, **kwargs)

    monkeypatch.setattr(kronk, "chat_stream", chat_stream)
    monkeypatch.setattr(kronk, "chat", plain_chat)
    return seen


def _mcp(url: str, **config: Any) -> list[dict[str, Any]]:
    return [{"type": "url", "url": url, "name": "test", "authorization_token": TOKEN,
             "tool_configuration": {"allowed_tools": ["whoami", "add"], **config}}]


def _whoami_body(url: str) -> dict[str, Any]:
    return {"model": "", "max_tokens": 48, "extra_body": SAMPLING, "tool_choice": WHOAMI, "mcp_servers": _mcp(url),
            "messages": [{"role": "user", "content": "Who am I? Use the tool, then tell me."}]}


def _check_mcp_blocks(content: list[Any]) -> tuple[Any, Any]:
    """The first mcp_tool_use block and the result right after it, in Anthropic's shapes."""
    kinds = [block.type for block in content]
    at = kinds.index("mcp_tool_use")
    use, result = content[at], content[at + 1]
    assert use.name == "whoami" and use.server_name == "test" and use.input == {} and use.id
    assert result.type == "mcp_tool_result" and result.tool_use_id == use.id and result.is_error is False
    assert result.content[0].type == "text" and result.content[0].text == f"Bearer {TOKEN}"
    return use, result


async def test_mcp_servers_calls_come_back_as_mcp_blocks_and_reach_the_next_turn(
        start_server: StartServer, smollm2: Path, http_mcp: HttpMcp,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = await _server(start_server, smollm2)
    client = _client(server)
    body = _whoami_body(http_mcp.url)
    counted = await client.beta.messages.count_tokens(**{k: v for k, v in body.items()
                                                         if k not in ("max_tokens", "extra_body")},
                                                      betas=MCP_BETA)
    seen = _spy(server, monkeypatch)
    message = await client.beta.messages.create(**body, betas=MCP_BETA)
    _check_mcp_blocks(message.content)
    AnthropicMessage.model_validate(message.model_dump())  # what /openapi.json says the answer is
    assert message.stop_reason in ("end_turn", "max_tokens")
    # two turns: the forced call, then the answer — the iteration limit (1) made it answer (tool_choice none)
    assert [turn.tool_choice for turn in seen] == [{"type": "function", "function": {"name": "whoami"}}, "none"]
    # the model saw the result in its next turn: the tool message holds what the MCP server answered
    assert seen[1].messages[-1] == {"role": "tool", "tool_call_id": message.content[0].id, "name": "whoami",
                                    "content": f"Bearer {TOKEN}"}
    # usage sums every turn: the first turn's prompt (what count_tokens counts) and a longer second one
    usage = message.usage
    assert usage.input_tokens + (usage.cache_read_input_tokens or 0) > 2 * counted.input_tokens
    assert usage.server_tool_use is not None and usage.server_tool_use.web_search_requests == 0
    # the blocks sent back in the history are accepted and read as text
    again = await client.beta.messages.create(
        model="", max_tokens=8, betas=MCP_BETA, messages=[
            *body["messages"], {"role": "assistant", "content": [b.model_dump(exclude_none=True)
                                                                 for b in message.content]},
            {"role": "user", "content": "Thanks."}])
    assert again.stop_reason in ("end_turn", "max_tokens")
    assert f"Bearer {TOKEN}" in str(seen[-1].messages[1]["content"])


async def test_mcp_servers_stream_their_blocks_in_order(start_server: StartServer, smollm2: Path,
                                                       http_mcp: HttpMcp) -> None:  # noqa: F811
    server = await _server(start_server, smollm2)
    events: list[Any] = []
    async with _client(server).beta.messages.stream(**_whoami_body(http_mcp.url), betas=MCP_BETA) as stream:
        async for event in stream:
            events.append(event)
        message = await stream.get_final_message()
    _check_mcp_blocks(message.content)
    starts = [e for e in events if e.type == "content_block_start"]
    assert [e.index for e in starts] == list(range(len(message.content)))
    assert [e.content_block.type for e in starts] == [block.type for block in message.content]
    open_index = None
    for event in events:  # each block: start, its deltas, stop, before the next starts
        if event.type == "content_block_start":
            assert open_index is None
            open_index = event.index
        elif event.type in ("content_block_delta", "content_block_stop"):
            assert event.index == open_index
            open_index = None if event.type == "content_block_stop" else open_index
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.output_tokens > 0 and message.usage.server_tool_use is not None
    first_prompt = events[0].message.usage.input_tokens  # message_start: the first turn's prompt
    assert message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0) > 2 * first_prompt


async def test_custom_tools_still_come_back_to_the_client(start_server: StartServer, smollm2: Path,
                                                          http_mcp: HttpMcp) -> None:  # noqa: F811
    server = await _server(start_server, smollm2)
    message = await _client(server).beta.messages.create(
        model="", max_tokens=48, extra_body=SAMPLING, betas=MCP_BETA, mcp_servers=_mcp(http_mcp.url), tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Paris?"}])
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content if block.type != "text"] == ["tool_use"]
    assert message.content[-1].name == "get_weather"


async def test_web_fetch_and_web_search_run_on_the_server(start_server: StartServer, smollm2: Path,
                                                          sites: dict[str, str]) -> None:
    server = await _server(start_server, smollm2, searxng_url=sites["search"])
    client = _client(server)
    ask = [{"role": "user", "content": f"Read the page at the URL {sites['page']} (plain http, copy it exactly) "
                                       "and tell me the name of the secret llama."}]
    fetch = {"type": "web_fetch_20250910", "name": "web_fetch", "allowed_domains": ["127.0.0.1"]}
    message = await client.messages.create(model="", max_tokens=64, extra_body=SAMPLING, messages=ask, tools=[fetch],
                                           tool_choice={"type": "tool", "name": "web_fetch"})
    use, result = message.content[0], message.content[1]
    assert use.type == "server_tool_use" and use.name == "web_fetch" and "url" in use.input
    assert result.type == "web_fetch_tool_result" and result.tool_use_id == use.id
    if result.content.type == "web_fetch_result":  # the URL is the model's own writing: it may miss
        assert FACT in result.content.content.source.data and result.content.content.title == "Llamas"
    else:
        assert result.content.error_code in ("url_not_allowed", "url_not_accessible")
    assert message.usage.server_tool_use.web_fetch_requests >= (result.content.type == "web_fetch_result")

    search = {"type": "web_search_20250305", "name": "web_search", "allowed_domains": ["example.org"]}
    async with client.messages.stream(model="", max_tokens=64, extra_body=SAMPLING, tools=[search],
                                      tool_choice={"type": "tool", "name": "web_search"},
                                      messages=[{"role": "user", "content": "Search the web for llama facts."}]
                                      ) as stream:
        message = await stream.get_final_message()
    use, result = message.content[0], message.content[1]
    assert use.type == "server_tool_use" and use.name == "web_search" and use.input.get("query")
    assert result.type == "web_search_tool_result" and result.tool_use_id == use.id
    assert [(hit.title, hit.url) for hit in result.content] == [("Llama facts", "https://example.org/llamas")]
    assert message.usage.server_tool_use.web_search_requests >= 1


async def test_refusals_are_clear_400s(start_server: StartServer, smollm2: Path) -> None:
    """No search backend, a URL the SSRF guard refuses (literal addresses: no DNS, no connection)."""
    server = await _server(start_server, smollm2)
    client = _client(server)
    hi = [{"role": "user", "content": "hi"}]
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(model="", max_tokens=4, messages=hi, tool_choice={"type": "tool",
                                                                                      "name": "web_search"},
                                     tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert "--searxng-url" in info.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(model="", max_tokens=4, messages=hi, tool_choice={"type": "any"},
                                     tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert "--searxng-url" in info.value.body["error"]["message"]
    for url in ("http://169.254.169.254/mcp", "http://10.1.2.3:8000/mcp"):
        with pytest.raises(anthropic.BadRequestError) as info:
            await client.beta.messages.create(model="", max_tokens=4, messages=hi, betas=MCP_BETA,
                                              mcp_servers=[{"type": "url", "url": url, "name": "remote"}])
        error = info.value.body["error"]
        assert error["type"] == "invalid_request_error" and error["message"].startswith("mcp_servers[0].url:")


async def test_time_limit_ends_cleanly(start_server: StartServer, smollm2: Path,
                                       http_mcp: HttpMcp) -> None:  # noqa: F811
    """(The iteration limit ends every other test's loop: see _server.)"""
    server = await _server(start_server, smollm2, agent_max_time=0.001)
    async with _client(server).beta.messages.stream(**_whoami_body(http_mcp.url), betas=MCP_BETA) as stream:
        message = await stream.get_final_message()
    assert message.stop_reason == "end_turn"
    assert "tool_use" not in [block.type for block in message.content]


async def test_server_tools_need_the_tools_grant_under_full_security(start_server: StartServer) -> None:
    """A messages token alone may chat but not make the server fetch or call MCP servers (as `/mcp` needs `tools`)."""
    import time
    from datetime import timedelta

    from kronk import paths
    from kronk.security.keys import KeyStore
    from kronk.security.tokens import Grant, Window, issue_token

    server = await start_server(security="full")
    await server.ready()

    def client(*endpoints: str) -> anthropic.AsyncAnthropic:
        grants = {name: Grant(Window.UNLIMITED) for name in endpoints}
        token = issue_token(KeyStore(paths.keys_dir()), issuer="kronk", duration=timedelta(hours=1), now=time.time(),
                            subject="tester", endpoints=grants).token
        return anthropic.AsyncAnthropic(base_url=server.url, auth_token=token, api_key=None, max_retries=0)

    ask: dict[str, Any] = {"model": "", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
    fetch = [{"type": "web_fetch_20250910", "name": "web_fetch"}]
    refused = [{"type": "url", "url": "http://10.9.8.7/mcp", "name": "remote"}]
    messages_only = client("messages")
    with pytest.raises(anthropic.PermissionDeniedError):
        await messages_only.messages.create(**ask, tools=fetch)
    with pytest.raises(anthropic.PermissionDeniedError):
        await messages_only.beta.messages.create(**ask, mcp_servers=refused, betas=MCP_BETA)
    assert (await messages_only.messages.create(**ask)).stop_reason in ("end_turn", "max_tokens")
    with pytest.raises(anthropic.BadRequestError):  # past the grant: the refused URL is what fails now
        await client("messages", "tools").beta.messages.create(**ask, mcp_servers=refused, betas=MCP_BETA)
