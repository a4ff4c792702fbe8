"""Anthropic Messages through the official `anthropic` client: stream event order, tools, count_tokens."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import pytest

from tests.server.conftest import RunningServer

pytestmark = pytest.mark.requires_libs

WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["paris", "london"]}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
ASK = [{"role": "user", "content": "What is the weather in paris?"}]


@pytest.fixture
def client(server: RunningServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=server.url, api_key="unused", max_retries=0)


async def test_non_stream_message(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(model="", max_tokens=6, system="Be brief.", messages=ASK)
    assert message.type == "message" and message.role == "assistant"
    assert message.stop_reason == "max_tokens"
    assert [block.type for block in message.content] in (["text"], [])
    assert message.usage.output_tokens == 6
    assert message.usage.input_tokens > 0


async def test_stream_follows_anthropics_event_sequence(client: anthropic.AsyncAnthropic) -> None:
    events: list[Any] = []
    async with client.messages.stream(model="", max_tokens=8, messages=ASK) as stream:
        async for event in stream:
            if not event.type.startswith(("text", "input_json", "thinking", "signature", "citation")):
                events.append(event)
        final = await stream.get_final_message()
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert kinds[1] == "content_block_start"
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[0].message.usage.input_tokens > 0
    # a sampled answer (Anthropic bodies carry no seed) usually runs to max_tokens, but may
    # end on end-of-generation earlier now and then (about 1 run in 200 with the tiny model)
    if final.stop_reason == "max_tokens":
        assert final.usage.output_tokens == 8
    else:
        assert final.stop_reason == "end_turn" and 0 < final.usage.output_tokens < 8
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert final.content[0].text == text


async def test_ping_follows_the_first_content_block(server: RunningServer, http: aiohttp.ClientSession) -> None:
    body = {"max_tokens": 4, "messages": ASK, "stream": True}
    async with http.post(server.v1 + "/messages", json=body) as response:
        text = await response.text()
    names = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-1] == "message_stop"


async def test_tool_use_round_trip(client: anthropic.AsyncAnthropic) -> None:
    first = await client.messages.create(
        model="", max_tokens=300, messages=ASK, tools=[WEATHER],
        tool_choice={"type": "any", "disable_parallel_tool_use": True}, extra_body={"seed": 0})
    assert first.stop_reason == "tool_use"
    use = next(block for block in first.content if block.type == "tool_use")
    assert use.name == "get_weather" and use.input["city"] in ("paris", "london")
    second = await client.messages.create(
        model="", max_tokens=5, tools=[WEATHER], tool_choice={"type": "none"},
        messages=[
            *ASK,
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "21 C"},
                                         {"type": "text", "text": "and tomorrow?"}]},
        ])
    assert second.stop_reason in ("end_turn", "max_tokens")
    assert all(block.type == "text" for block in second.content)


async def test_tool_use_streams_input_json_deltas(client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.stream(
            model="", max_tokens=300, messages=ASK, tools=[WEATHER],
            tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            extra_body={"seed": 0}) as stream:
        partial = [event.partial_json async for event in stream if event.type == "input_json"]
        final = await stream.get_final_message()
    assert partial
    use = final.content[-1]
    assert use.type == "tool_use" and use.input["city"] in ("paris", "london")
    assert final.stop_reason == "tool_use"


async def test_count_tokens_matches_the_prompt(client: anthropic.AsyncAnthropic) -> None:
    counted = await client.messages.count_tokens(model="", messages=ASK, system="Be brief.")
    message = await client.messages.create(model="", max_tokens=1, messages=ASK, system="Be brief.")
    assert counted.input_tokens == message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0)
    with_tools = await client.messages.count_tokens(model="", messages=ASK, tools=[WEATHER])
    assert with_tools.input_tokens > counted.input_tokens


async def test_thinking_and_stop_sequences_are_accepted(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(
        model="", max_tokens=16, messages=ASK, stop_sequences=["\n\n"],
        thinking={"type": "enabled", "budget_tokens": 8})
    assert message.stop_reason in ("end_turn", "max_tokens", "stop_sequence")


async def test_errors_raise_typed_anthropic_exceptions(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.create(model="nobody/nothing", max_tokens=4, messages=ASK)
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(model="", max_tokens=4, messages=[
            {"role": "user", "content": [{"type": "image", "source": {
                "type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}])
    assert info.value.body["error"]["type"] == "invalid_request_error"
