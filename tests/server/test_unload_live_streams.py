"""Unloading a model through the management API, or shutting the server down, while a
chat stream runs: the unload lets the stream finish first; shutdown ends it with the API's
error event. Never a cut-off stream without a final event, never a hang."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.server.conftest import RunningServer, StartServer

pytestmark = pytest.mark.requires_libs

CHAT = {"messages": [{"role": "user", "content": "Tell me a story."}], "max_tokens": 300, "ignore_eos": True,
        "temperature": 0, "stream": True}


def _chunks(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


async def test_unloading_a_model_lets_its_open_stream_finish(server: RunningServer,
                                                            http: aiohttp.ClientSession) -> None:
    (model,) = [loaded.id for loaded in server.kronk.pool.models()]
    async with http.post(server.v1 + "/chat/completions", json=CHAT) as stream:
        assert stream.status == 200
        first = await stream.content.readline()
        unload = asyncio.create_task(http.post(server.v1 + "/kronk/models/unload", json={"id": model}))
        text = first.decode() + (await stream.content.read()).decode()
    chunks = _chunks(text)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert text.rstrip().endswith("data: [DONE]")
    async with await asyncio.wait_for(unload, 60) as response:
        assert response.status == 200
        assert await response.json() == {"id": model, "unloaded": True}
    assert server.kronk.ps() == []
    # the next request loads it again
    async with http.post(server.v1 + "/chat/completions", json={**CHAT, "stream": False, "max_tokens": 3}) as again:
        assert again.status == 200
        assert (await again.json())["usage"]["completion_tokens"] == 3


async def test_shutdown_ends_an_open_chat_stream_with_an_error_event(start_server: StartServer,
                                                                    http: aiohttp.ClientSession) -> None:
    server = await start_server()
    await server.ready()
    (loaded,) = server.kronk.pool.models()
    async with http.post(server.v1 + "/chat/completions", json={**CHAT, "max_tokens": 1900}) as response:
        await response.content.readline()
        cleanup = asyncio.create_task(server.runner.cleanup())
        text = (await asyncio.wait_for(response.content.read(), 60)).decode()
        await asyncio.wait_for(cleanup, 60)
    chunks = _chunks(text)
    assert chunks[-1]["error"]["code"] == "shutting_down", chunks[-1]
    assert loaded.model.closed  # the pool was closed and freed the model
