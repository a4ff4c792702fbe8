"""A request that sets no max_tokens stops at the server's documented output cap, not at a full context."""

from __future__ import annotations

import aiohttp

from kronk.sdk.settings import ModelSettings
from tests.server.conftest import StartServer


def test_the_built_in_cap() -> None:
    assert ModelSettings().max_tokens_default == 4096


async def test_the_cap_applies_only_when_the_request_sets_none(start_server: StartServer) -> None:
    server = await start_server(max_tokens_default=7)
    async with aiohttp.ClientSession() as http:
        for body, expected in (({}, 7), ({"max_tokens": 3}, 3)):
            request = {"messages": [{"role": "user", "content": "hi"}], "ignore_eos": True, **body}
            async with http.post(server.v1 + "/chat/completions", json=request) as response:
                answer = await response.json()
            assert answer["usage"]["completion_tokens"] == expected
            assert answer["choices"][0]["finish_reason"] == "length"


async def test_zero_means_until_the_context_is_full(start_server: StartServer) -> None:
    server = await start_server(max_tokens_default=0, ctx_size=256, slots=1)
    async with aiohttp.ClientSession() as http:
        request = {"messages": [{"role": "user", "content": "hi"}], "ignore_eos": True}
        async with http.post(server.v1 + "/chat/completions", json=request) as response:
            answer = await response.json()
    assert answer["usage"]["prompt_tokens"] + answer["usage"]["completion_tokens"] >= 250
