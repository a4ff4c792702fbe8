"""The agent loop end to end on chat completions' `kronk_tools`: SmolLM2, the real ToolHost, web_fetch on 127.0.0.1.

The first model turn is forced to call web_fetch (a named tool_choice: the grammar makes the
call), so the flow is deterministic; the page lives on a local aiohttp site the allowlist opens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.server.conftest import RunningServer, StartServer
from tests.tools.conftest import HttpMcp

pytestmark = [pytest.mark.slow, pytest.mark.requires_libs]

FACT = "The secret llama is named Bartholomew."
FETCH = {"type": "function", "function": {"name": "web_fetch"}}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city.",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}


@pytest.fixture
async def page() -> AsyncIterator[str]:
    app = web.Application()

    async def fact(request: web.Request) -> web.Response:
        return web.Response(text=f"<html><body><p>{FACT}</p></body></html>", content_type="text/html")

    app.router.add_get("/fact", fact)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/fact"))
    await server.close()


async def _server(start_server: StartServer, smollm2: Path, **overrides: object) -> RunningServer:
    server = await start_server(model=str(smollm2), threads=2, ctx_size=4096, tools_allow=("127.0.0.1",), **overrides)
    await server.ready()
    return server


def _client(server: RunningServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.v1, api_key="unused", max_retries=0)


def _ask(url: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Read the page at the URL {url} (plain http, copy it exactly) and tell me "
                                        "the name of the secret llama."}]


async def test_web_fetch_runs_and_its_outcome_reaches_the_answer_turn(
        start_server: StartServer, smollm2: Path, page: str) -> None:
    """web_fetch through the loop. The URL is the model's own writing (SmolLM2 sometimes makes it
    https), so the fetch may fail: either way its outcome is a result the model sees, not an error."""
    server = await _server(start_server, smollm2)
    answer = await _client(server).chat.completions.create(
        model="", messages=_ask(page), tool_choice=FETCH, max_tokens=160, temperature=0,
        extra_body={"kronk_tools": {"builtin": ["web_fetch"]}})
    extension = answer.model_extra["kronk_tools"]
    first = extension["calls"][0]
    assert first["name"] == "web_fetch" and first["server"] == "builtin" and first["turn"] == 0
    assert (FACT in first["output"]) != first["is_error"], first
    assert extension["turns"] >= 1
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert not answer.choices[0].message.tool_calls


async def test_an_mcp_tool_result_reaches_the_answer_turn(start_server: StartServer, smollm2: Path,
                                                         http_mcp: HttpMcp) -> None:
    """A real streamable-HTTP MCP server named by URL; its `whoami` takes no arguments, so the call
    and its result do not depend on what the model writes."""
    server = await _server(start_server, smollm2)
    secret = "Bearer the-llama-is-Bartholomew"
    answer = await _client(server).chat.completions.create(
        model="", messages=[{"role": "user", "content": "Who am I? Use the tool, then tell me."}],
        tool_choice={"type": "function", "function": {"name": "whoami"}}, max_tokens=160, temperature=0,
        extra_body={"kronk_tools": {"mcp": [{"server_label": "test", "server_url": http_mcp.url,
                                             "headers": {"Authorization": secret}, "allowed_tools": ["whoami"]}]}})
    extension = answer.model_extra["kronk_tools"]
    first = extension["calls"][0]
    assert first["name"] == "whoami" and first["server"] == "test" and first["turn"] == 0
    assert first["output"] == secret and not first["is_error"]
    assert extension["turns"] >= 1 and not answer.choices[0].message.tool_calls
    # every model turn counted: the answer turn's prompt holds the first turn and the result
    assert answer.usage.prompt_tokens > 2 * len(secret.split())


async def test_iteration_limit_ends_with_a_last_answer(start_server: StartServer, smollm2: Path, page: str) -> None:
    server = await _server(start_server, smollm2, agent_max_iterations=1)
    answer = await _client(server).chat.completions.create(
        model="", messages=_ask(page), tool_choice=FETCH, max_tokens=120, temperature=0,
        extra_body={"kronk_tools": {"builtin": ["web_fetch"]}})
    extension = answer.model_extra["kronk_tools"]
    assert extension["stopped"] == "max_iterations" and extension["turns"] == 1
    assert len(extension["calls"]) >= 1
    assert not answer.choices[0].message.tool_calls


async def test_time_limit_ends_cleanly(start_server: StartServer, smollm2: Path, page: str) -> None:
    server = await _server(start_server, smollm2, agent_max_time=0.001)
    answer = await _client(server).chat.completions.create(
        model="", messages=_ask(page), tool_choice=FETCH, max_tokens=120, temperature=0,
        extra_body={"kronk_tools": {"builtin": ["web_fetch"]}})
    assert answer.model_extra["kronk_tools"]["stopped"] == "max_time"
    assert answer.choices[0].finish_reason == "stop"
    stream = await _client(server).chat.completions.create(
        model="", messages=_ask(page), tool_choice=FETCH, max_tokens=120, temperature=0, stream=True,
        extra_body={"kronk_tools": {"builtin": ["web_fetch"]}})
    chunks = [chunk async for chunk in stream]
    done = [c.model_extra["kronk"] for c in chunks if (c.model_extra or {}).get("kronk", {}).get("event") == "done"]
    assert done == [{"event": "done", "turns": 0, "stopped": "max_time"}]
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_client_tools_come_back_to_the_client(start_server: StartServer, smollm2: Path, page: str) -> None:
    server = await _server(start_server, smollm2)
    answer = await _client(server).chat.completions.create(
        model="", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, max_tokens=120, temperature=0,
        extra_body={"kronk_tools": {"builtin": ["web_fetch"]}})
    assert answer.choices[0].finish_reason == "tool_calls"
    assert [call.function.name for call in answer.choices[0].message.tool_calls] == ["get_weather"]
    assert answer.model_extra["kronk_tools"]["calls"] == []


async def test_unknown_mcp_label_is_a_clear_error(start_server: StartServer, smollm2: Path) -> None:
    server = await _server(start_server, smollm2)
    client = _client(server)
    for stream in (False, True):
        with pytest.raises(openai.NotFoundError, match="nope"):
            await client.chat.completions.create(model="", messages=[{"role": "user", "content": "hi"}], max_tokens=4,
                                                 stream=stream,
                                                 extra_body={"kronk_tools": {"mcp": [{"server_label": "nope"}]}})


async def test_streamed_progress_rides_in_the_kronk_field(start_server: StartServer, smollm2: Path,
                                                         http_mcp: HttpMcp) -> None:
    """Streamed: every chunk reads as a plain chat chunk; the server call's progress is in `kronk`."""
    server = await _server(start_server, smollm2)
    secret = "Bearer the-llama-is-Bartholomew"
    stream = await _client(server).chat.completions.create(
        model="", messages=[{"role": "user", "content": "Who am I? Use the tool, then tell me."}],
        tool_choice={"type": "function", "function": {"name": "whoami"}}, max_tokens=160, temperature=0,
        stream=True, stream_options={"include_usage": True},
        extra_body={"kronk_tools": {"mcp": [{"server_label": "test", "server_url": http_mcp.url,
                                             "headers": {"Authorization": secret}, "allowed_tools": ["whoami"]}]}})
    chunks = [chunk async for chunk in stream]
    ids = {chunk.id for chunk in chunks}
    assert len(ids) == 1
    progress = [(chunk.model_extra or {}).get("kronk") for chunk in chunks]
    events = [p["event"] for p in progress if p]
    assert events.index("call.started") < events.index("call.finished") < events.index("done")
    assert events.count("turn.finished") >= 2 and events[-1] == "done"
    finished = next(p for p in progress if p and p["event"] == "call.finished")
    assert finished["name"] == "whoami" and finished["server"] == "test" and finished["output"] == secret
    assert not finished["is_error"]
    # plain clients: no server call shows up as the client's tool call; one finish_reason, at the end
    body = [chunk for chunk in chunks if chunk.choices]
    assert not any(chunk.choices[0].delta.tool_calls for chunk in body)
    finishes = [chunk.choices[0].finish_reason for chunk in body if chunk.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    turns = [p["usage"] for p in progress if p and p["event"] == "turn.finished"]
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens == sum(t["prompt_tokens"] for t in turns)
    assert usage.completion_tokens == sum(t["completion_tokens"] for t in turns)


async def test_server_tools_need_the_tools_grant_under_full_security(start_server: StartServer, smollm2: Path) -> None:
    """A chat token alone may chat but not make the server fetch or call tools (as `/mcp` needs `tools`)."""
    import time
    from datetime import timedelta

    from kronk import paths
    from kronk.security.keys import KeyStore
    from kronk.security.tokens import Grant, Window, issue_token

    server = await _server(start_server, smollm2, security="full")

    def token(*endpoints: str) -> str:
        grants = {name: Grant(Window.UNLIMITED) for name in endpoints}
        return issue_token(KeyStore(paths.keys_dir()), issuer="kronk", duration=timedelta(hours=1), now=time.time(),
                           subject="tester", endpoints=grants).token

    ask = {"model": "", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
           "extra_body": {"kronk_tools": {"mcp": [{"server_label": "nope"}]}}}
    chat_only = openai.AsyncOpenAI(base_url=server.v1, api_key=token("chat-completions"), max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        await chat_only.chat.completions.create(**ask)
    plain = await chat_only.chat.completions.create(model="", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert plain.choices[0].message.content is not None
    with_tools = openai.AsyncOpenAI(base_url=server.v1, api_key=token("chat-completions", "tools"), max_retries=0)
    with pytest.raises(openai.NotFoundError):  # past the grant: the unknown label is what fails now
        await with_tools.chat.completions.create(**ask)
