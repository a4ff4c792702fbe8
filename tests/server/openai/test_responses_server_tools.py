"""Responses `mcp` and `web_search` tools run by Kronk, end to end through the official `openai` package.

SmolLM2 on a real in-process server; the first model turn's call is forced by the grammar
(tool_choice naming the MCP tool, or required), so the flow is deterministic. The MCP server is
the real streamable-HTTP one of the tool tests (tests/tools/mcp_http_server.py) on 127.0.0.1;
its `whoami` takes no arguments and answers the Authorization header, so the call's result does
not depend on what the model writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.server.conftest import RunningServer, StartServer
from tests.tools.conftest import HttpMcp

pytestmark = [pytest.mark.slow, pytest.mark.requires_libs]

SECRET = "Bearer the-llama-is-Bartholomew"
ASK = "Who am I? Use the tool, then tell me."


def mcp_tool(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "test", "server_url": url, "headers": {"Authorization": SECRET},
            "allowed_tools": ["whoami"], "require_approval": "never", **extra}


FORCE_WHOAMI = {"type": "mcp", "server_label": "test", "name": "whoami"}


async def _server(start_server: StartServer, smollm2: Path, **overrides: Any) -> RunningServer:
    overrides.setdefault("tools_allow", ("127.0.0.1",))
    server = await start_server(model=str(smollm2), threads=2, ctx_size=4096, **overrides)
    await server.ready()
    return server


def _client(server: RunningServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.v1, api_key="unused", max_retries=0)


def _types(output: list[Any]) -> list[str]:
    return [item.type for item in output]


async def test_an_mcp_call_non_streamed_and_streamed(start_server: StartServer, smollm2: Path,
                                                     http_mcp: HttpMcp) -> None:
    server = await _server(start_server, smollm2, agent_max_iterations=2)
    client = _client(server)
    answer = await client.responses.create(model="", input=ASK, tools=[mcp_tool(http_mcp.url)],  # type: ignore[list-item]
                                           tool_choice=FORCE_WHOAMI, max_output_tokens=160, temperature=0)  # type: ignore[arg-type]
    assert answer.status in ("completed", "incomplete"), answer  # incomplete: the last text hit max_output_tokens
    kinds = _types(answer.output)
    assert kinds[0] == "mcp_list_tools" and "mcp_call" in kinds
    assert all(item.status == "completed" for item in answer.output if item.type == "mcp_call")
    listed = answer.output[0]
    assert listed.server_label == "test" and [t.name for t in listed.tools] == ["whoami"]
    call = next(item for item in answer.output if item.type == "mcp_call")
    assert (call.name, call.server_label, call.output, call.error, call.status) == (
        "whoami", "test", SECRET, None, "completed")
    # Every model turn counted: the same first turn alone (the tool as a client function) is one prompt.
    tool = listed.tools[0]
    single = await client.responses.create(
        model="", input=ASK, max_output_tokens=160, temperature=0, tool_choice={"type": "function", "name": "whoami"},
        tools=[{"type": "function", "name": "whoami", "description": tool.description,
                "parameters": tool.input_schema}])  # type: ignore[list-item]
    assert single.output[-1].type == "function_call"
    assert answer.usage is not None and single.usage is not None
    assert answer.usage.input_tokens >= 2 * single.usage.input_tokens
    assert answer.usage.output_tokens > single.usage.output_tokens

    stream = await client.responses.create(model="", input=ASK, tools=[mcp_tool(http_mcp.url)],  # type: ignore[list-item]
                                           tool_choice=FORCE_WHOAMI, max_output_tokens=160, temperature=0,  # type: ignore[arg-type]
                                           stream=True)
    events = [event async for event in stream]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    names = [e.type for e in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[-1] in ("response.completed", "response.incomplete")
    listing = names.index("response.mcp_list_tools.in_progress")
    assert names[listing - 1:listing + 3] == ["response.output_item.added", "response.mcp_list_tools.in_progress",
                                              "response.mcp_list_tools.completed", "response.output_item.done"]
    started = names.index("response.mcp_call.in_progress")
    assert names[started - 1] == "response.output_item.added"
    order = [started, names.index("response.mcp_call_arguments.done"), names.index("response.mcp_call.completed")]
    assert order == sorted(order)
    done = events[order[-1] + 1]
    assert done.type == "response.output_item.done" and done.item.type == "mcp_call"
    assert done.item.output == SECRET
    final = events[-1].response
    assert _types(final.output)[0] == "mcp_list_tools" and "mcp_call" in _types(final.output)
    assert final.usage is not None and final.usage.input_tokens >= 2 * single.usage.input_tokens


async def test_refusals_are_clear_400s_before_any_connection(start_server: StartServer, smollm2: Path,
                                                            http_mcp: HttpMcp) -> None:
    """Approvals, a non-allowlisted server_url (the loopback guard would fail the test on a connection
    elsewhere), an unknown label, an MCP tool choice the server does not offer."""
    server = await _server(start_server, smollm2)
    client = _client(server)

    async def ask(tool: dict[str, Any], **extra: Any) -> Any:
        return await client.responses.create(model="", input="hi", tools=[tool], max_output_tokens=4, **extra)

    with pytest.raises(openai.BadRequestError, match="approvals are not supported") as caught:
        await ask(mcp_tool(http_mcp.url, require_approval="always"))
    assert caught.value.body["param"] == "tools[0].require_approval"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError, match="whoami would need one"):
        await ask(mcp_tool(http_mcp.url, require_approval={"never": {"tool_names": ["add"]}}))
    for url in ("http://10.0.0.1/mcp", "http://169.254.169.254/latest", "http://[::1]:9/mcp"):
        with pytest.raises(openai.BadRequestError, match="server_url") as caught:
            await ask(mcp_tool(url))
        assert caught.value.body["param"] == "tools[0].server_url"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError, match="nope"):
        await ask({"type": "mcp", "server_label": "nope", "require_approval": "never"})
    with pytest.raises(openai.BadRequestError, match="connector"):
        await ask({"type": "mcp", "server_label": "gmail", "connector_id": "connector_gmail"})
    # max_tool_calls 0: the server is listed, the model answers without calling it
    answer = await ask(mcp_tool(http_mcp.url), max_tool_calls=0, tool_choice="required")
    assert _types(answer.output)[0] == "mcp_list_tools" and "mcp_call" not in _types(answer.output)


async def test_iteration_and_time_limits_end_the_loop_cleanly(start_server: StartServer, smollm2: Path,
                                                             http_mcp: HttpMcp) -> None:
    server = await _server(start_server, smollm2, agent_max_iterations=1)
    answer = await _client(server).responses.create(
        model="", input=ASK, tools=[mcp_tool(http_mcp.url)], tool_choice=FORCE_WHOAMI,  # type: ignore[list-item, arg-type]
        max_output_tokens=120, temperature=0)
    assert answer.status in ("completed", "incomplete")
    # one tool turn, then a last turn offered no tools: its answer (if any) is text, never another call
    assert _types(answer.output).count("mcp_call") == 1 and answer.output[-1].type in ("mcp_call", "message")
    assert all(getattr(item, "status", "completed") in ("completed", "incomplete") for item in answer.output)

    quick = await _server(start_server, smollm2, agent_max_time=0.001)
    stream = await _client(quick).responses.create(
        model="", input=ASK, tools=[mcp_tool(http_mcp.url)], tool_choice=FORCE_WHOAMI,  # type: ignore[list-item, arg-type]
        max_output_tokens=120, temperature=0, stream=True)
    events = [event async for event in stream]
    assert events[-1].type in ("response.completed", "response.incomplete")
    assert not [item for item in events[-1].response.output if item.type == "mcp_call" and item.status == "completed"]


FACT = "The secret llama is named Bartholomew."


@pytest.fixture
async def site() -> AsyncIterator[str]:
    """A page and a SearXNG-shaped search endpoint on 127.0.0.1 (the search backend is the operator's)."""
    app = web.Application()
    base = ""

    async def fact(request: web.Request) -> web.Response:
        return web.Response(text=f"<html><body><p>{FACT}</p></body></html>", content_type="text/html")

    async def search(request: web.Request) -> web.Response:
        return web.json_response({"query": request.query.get("q", ""), "results": [
            {"title": "The secret llama", "url": f"{base}/fact", "content": FACT}]})

    app.router.add_get("/fact", fact)
    app.router.add_get("/search", search)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    base = f"http://127.0.0.1:{server.port}"
    yield base
    await server.close()


async def test_web_search_tool_runs_search_or_open_page(start_server: StartServer, smollm2: Path, site: str) -> None:
    """`web_search`: the model is made to call a tool (tool_choice required); whether it searches or
    opens the page is its choice — either way the item is a web_search_call with that action."""
    server = await _server(start_server, smollm2, searxng_url=f"{site}/search", agent_max_iterations=2)
    stream = await _client(server).responses.create(
        model="", input=f"Open the page {site}/fact (plain http, copy it exactly) and tell me the secret llama's name.",
        tools=[{"type": "web_search"}], tool_choice="required", max_output_tokens=160, temperature=0, stream=True)
    events = [event async for event in stream]
    names = [e.type for e in events]
    assert names.index("response.web_search_call.in_progress") < names.index("response.web_search_call.searching") \
        < names.index("response.web_search_call.completed")
    final = events[-1].response
    calls = [item for item in final.output if item.type == "web_search_call"]
    assert calls and calls[0].action.type in ("search", "open_page") and calls[0].status in ("completed", "failed")
    if calls[0].status == "completed":  # the arguments are the model's: bad ones are a failed call, not an error
        assert calls[0].action.url if calls[0].action.type == "open_page" else calls[0].action.query
    # incomplete: the last turn ran into max_output_tokens (SmolLM2 may ramble); the loop still ended
    assert final.status in ("completed", "incomplete") and final.usage is not None and final.usage.input_tokens > 0
