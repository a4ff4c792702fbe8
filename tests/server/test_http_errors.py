"""Every error path over raw HTTP: status codes, each API's error shape, the offending `param`."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.server.conftest import RunningServer, StartServer

pytestmark = pytest.mark.requires_libs

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


async def _post(http: aiohttp.ClientSession, url: str, body: object) -> tuple[int, dict]:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    async with http.post(url, data=data, headers={"Content-Type": "application/json"}) as response:
        return response.status, await response.json()


async def test_bad_json_and_non_object_bodies(server: RunningServer, http: aiohttp.ClientSession) -> None:
    status, body = await _post(http, server.v1 + "/chat/completions", b"{not json")
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in body["error"]["message"]
    status, body = await _post(http, server.v1 + "/chat/completions", b"")
    assert status == 400
    status, body = await _post(http, server.v1 + "/chat/completions", [1, 2])
    assert status == 400 and "JSON object" in body["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/chat/completions", {"max_tokens": 4}, "messages"),
        ("/chat/completions", {"messages": []}, "messages"),
        ("/chat/completions", {"messages": "hi"}, "messages"),
        ("/chat/completions", {"messages": [{"content": "x"}]}, "messages[0].role"),
        ("/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ("/chat/completions", {**CHAT, "temperature": "hot"}, "temperature"),
        ("/chat/completions", {**CHAT, "top_p": 1.5}, "top_p"),
        ("/chat/completions", {**CHAT, "max_tokens": 0}, "max_tokens"),
        ("/chat/completions", {**CHAT, "max_tokens": 10**9}, "max_tokens"),
        ("/chat/completions", {**CHAT, "n": "two"}, "n"),
        ("/chat/completions", {**CHAT, "stop": 5}, "stop"),
        ("/chat/completions", {**CHAT, "logit_bias": {"abc": 1}}, "logit_bias"),
        ("/chat/completions", {**CHAT, "top_logprobs": 3}, "top_logprobs"),
        ("/chat/completions", {**CHAT, "logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ("/chat/completions", {**CHAT, "tool_choice": "required"}, "tool_choice"),
        ("/chat/completions", {**CHAT, "tools": [{"type": "function", "function": {"name": "f"}}],
                               "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
        ("/chat/completions", {**CHAT, "tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
        ("/chat/completions", {**CHAT, "response_format": {"type": "xml"}}, "response_format.type"),
        ("/chat/completions", {**CHAT, "response_format": {"type": "json_schema"}},
         "response_format.json_schema"),
        ("/chat/completions", {**CHAT, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
        ("/completions", {"max_tokens": 3}, "prompt"),
        ("/completions", {"prompt": 42}, "prompt"),
        ("/completions", {"prompt": "x", "logprobs": 99}, "logprobs"),
        ("/embeddings", {}, "input"),
        ("/embeddings", {"input": ["a", ""]}, "input[1]"),
        ("/embeddings", {"input": "a", "encoding_format": "hex"}, "encoding_format"),
        ("/rerank", {"query": "q"}, "documents"),
        ("/detokenize", {"tokens": [1, -2]}, "tokens[1]"),
        ("/responses", {"input": 7}, "input"),
        ("/responses", {"input": [{"type": "web_search_call"}]}, "input"),
        ("/responses", {"input": [{"role": "user"}]}, "input[0].content"),
        ("/responses", {"input": "x", "tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search_preview"}},
         "tool_choice"),
    ],
)
async def test_invalid_fields_name_their_param(server: RunningServer, http: aiohttp.ClientSession, path: str,
                                               body: dict, param: str) -> None:
    status, answer = await _post(http, server.v1 + path, body)
    assert status == 400, answer
    assert answer["error"]["param"] == param
    assert answer["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        ({"max_tokens": 5, "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
         "messages[0].content[0].type"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "any"}},
         "tool_choice"),
    ],
)
async def test_anthropic_errors_use_anthropic_shape(server: RunningServer, http: aiohttp.ClientSession,
                                                    body: dict, param: str) -> None:
    status, answer = await _post(http, server.v1 + "/messages", body)
    assert status == 400
    assert answer["type"] == "error"
    assert answer["error"]["type"] == "invalid_request_error"
    assert param in answer["error"]["message"]


async def test_unknown_model_is_404_in_each_shape(server: RunningServer, http: aiohttp.ClientSession) -> None:
    status, body = await _post(http, server.v1 + "/completions", {"model": "no/such-model", "prompt": "x"})
    assert status == 404
    assert body["error"]["code"] == "model_not_found"
    status, body = await _post(http, server.v1 + "/messages", {
        "model": "no/such-model", "max_tokens": 3, "messages": [{"role": "user", "content": "x"}]})
    assert status == 404
    assert body == {"type": "error", "error": {"type": "not_found_error", "message": body["error"]["message"]}}
    async with http.get(server.v1 + "/models/no/such-model") as response:
        assert response.status == 404
    for odd in ("~nobody%15", "a/%00b", "a/" + "x" * 5000, "x" * 300 + ".gguf"):  # not paths: found by schemathesis
        async with http.get(server.v1 + "/models/" + odd) as response:
            assert response.status == 404, odd


async def test_oversized_bodies_and_input_counts_are_413(start_server: StartServer,
                                                         http: aiohttp.ClientSession) -> None:
    server = await start_server(max_body_size=4096, max_inputs=3)
    await server.ready()
    status, body = await _post(http, server.v1 + "/completions", {"prompt": "x" * 10_000})
    assert status == 413
    assert body["error"]["code"] == "request_too_large"
    status, body = await _post(http, server.v1 + "/embeddings", {"input": ["a", "b", "c", "d"]})
    assert status == 413
    status, body = await _post(http, server.v1 + "/messages", b"x" * 5000)
    assert status == 413 and body["type"] == "error"


async def test_unknown_route_and_wrong_method(server: RunningServer, http: aiohttp.ClientSession) -> None:
    async with http.get(server.v1 + "/nope") as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"
    async with http.get(server.v1 + "/chat/completions") as response:
        assert response.status == 405
        assert "POST" in response.headers["Allow"]


async def test_capability_errors_are_400(server: RunningServer, http: aiohttp.ClientSession, tiny: dict) -> None:
    status, body = await _post(http, server.v1 + "/embeddings", {"input": "hello"})
    assert status == 400 and body["error"]["code"] == "unsupported_capability"
    status, body = await _post(http, server.v1 + "/completions", {"prompt": "a", "suffix": "b"})
    assert status == 400 and body["error"]["param"] == "suffix"


async def test_busy_queue_answers_429_with_retry_after(start_server: StartServer,
                                                       http: aiohttp.ClientSession) -> None:
    server = await start_server(slots=1, queue_size=1)
    await server.ready()
    long = {"prompt": "the", "max_tokens": 1900, "ignore_eos": True, "stream": True}
    async with http.post(server.v1 + "/completions", json=long) as first:
        assert first.status == 200
        await first.content.readline()
        queued = asyncio.create_task(_post(http, server.v1 + "/completions", {"prompt": "x", "max_tokens": 2}))
        while sum(s.queued for s in server.kronk.stats().values()) < 1:
            await asyncio.sleep(0.005)
        async with http.post(server.v1 + "/completions", json={"prompt": "y", "max_tokens": 2}) as third:
            assert third.status == 429
            assert third.headers["Retry-After"] == "1"
            assert (await third.json())["error"]["code"] == "server_busy"
        first.close()
        status, _ = await queued
        assert status == 200


async def test_client_disconnect_mid_stream_frees_the_slot(server: RunningServer,
                                                           http: aiohttp.ClientSession) -> None:
    body = {"prompt": "the", "max_tokens": 1900, "ignore_eos": True, "stream": True}
    response = await http.post(server.v1 + "/completions", json=body)
    assert response.status == 200
    assert (await response.content.readline()).startswith(b"data: ")
    stats = server.kronk.stats()
    assert sum(s.active_slots for s in stats.values()) == 1
    response.close()  # drop the connection mid-stream
    for _ in range(500):
        if sum(s.active_slots for s in server.kronk.stats().values()) == 0:
            break
        await asyncio.sleep(0.01)
    stats = server.kronk.stats()
    assert sum(s.active_slots for s in stats.values()) == 0
    assert sum(s.completion_tokens_total for s in stats.values()) < 1900


async def test_keepalive_comments_while_waiting_for_a_slot(start_server: StartServer,
                                                           http: aiohttp.ClientSession) -> None:
    server = await start_server(slots=1, keepalive=0.001)
    await server.ready()
    long = {"prompt": "the", "max_tokens": 1500, "ignore_eos": True, "stream": True}
    async with http.post(server.v1 + "/completions", json=long) as first:
        await first.content.readline()
        async with http.post(server.v1 + "/completions", json={**long, "max_tokens": 2}) as second:
            assert second.status == 200
            assert second.headers["X-Accel-Buffering"] == "no"
            assert second.headers["Content-Type"].startswith("text/event-stream")
            first_line = await second.content.readline()
            assert first_line == b": keep-alive\n"
        first.close()


async def test_shutdown_ends_open_streams_with_an_error_event(start_server: StartServer,
                                                              http: aiohttp.ClientSession) -> None:
    server = await start_server()
    await server.ready()
    body = {"prompt": "the", "max_tokens": 1900, "ignore_eos": True, "stream": True}
    async with http.post(server.v1 + "/completions", json=body) as response:
        await response.content.readline()
        cleanup = asyncio.create_task(server.runner.cleanup())
        text = (await response.content.read()).decode()
        await cleanup
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    assert events[-1]["error"]["code"] == "shutting_down"
