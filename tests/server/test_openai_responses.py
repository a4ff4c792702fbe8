"""The Responses API through the official `openai` client and as Codex CLI sends it: items, tools, named events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.server.conftest import RunningServer, StartServer
from tests.server.test_responses_protocol import codex_body

pytestmark = pytest.mark.requires_libs

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["paris", "london"]}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=server.v1, api_key="unused", max_retries=0) as client:
        yield client


async def test_text_response_and_incomplete_status(client: openai.AsyncOpenAI) -> None:
    response = await client.responses.create(model="", input="hello there", instructions="Be brief.",
                                             max_output_tokens=6, temperature=0.5)
    assert response.object == "response"
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].type == "message"
    assert response.output_text == response.output[0].content[0].text
    assert response.usage.output_tokens == 6
    assert response.instructions == "Be brief."


async def test_stream_emits_the_named_events_in_order(client: openai.AsyncOpenAI) -> None:
    # seeded: an unseeded sample may end on end-of-generation within 8 tokens (about 1 run in 15)
    stream = await client.responses.create(model="", input=[{"role": "user", "content": "hi"}],
                                           max_output_tokens=8, stream=True, extra_body={"seed": 0})
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.incomplete"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert events[-1].response.output_text == deltas


async def test_function_call_round_trip(client: openai.AsyncOpenAI) -> None:
    first = await client.responses.create(model="", input="weather in paris?", tools=[WEATHER_TOOL],
                                          tool_choice="required", parallel_tool_calls=False,
                                          max_output_tokens=300, extra_body={"seed": 0})
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    jsonschema.validate(json.loads(calls[0].arguments), WEATHER_TOOL["parameters"])
    follow_up = [
        {"role": "user", "content": "weather in paris?"},
        {"type": "function_call", "call_id": calls[0].call_id, "name": calls[0].name,
         "arguments": calls[0].arguments},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"temp_c": 21}'},
    ]
    second = await client.responses.create(model="", input=follow_up, tools=[WEATHER_TOOL], tool_choice="none",
                                           max_output_tokens=5)
    assert [item.type for item in second.output] == ["message"]


async def test_function_call_stream_events(client: openai.AsyncOpenAI) -> None:
    stream = await client.responses.create(model="", input="weather?", tools=[WEATHER_TOOL],
                                           tool_choice={"type": "function", "name": "get_weather"},
                                           parallel_tool_calls=False, max_output_tokens=300, stream=True,
                                           extra_body={"seed": 0})
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments)["city"] in ("paris", "london")
    assert kinds[-1] == "response.completed"
    assert events[-1].response.output[-1].type == "function_call"


async def test_text_format_json_schema(client: openai.AsyncOpenAI) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    response = await client.responses.create(
        model="", input="json", max_output_tokens=200,
        text={"format": {"type": "json_schema", "name": "flag", "schema": schema}})
    assert response.status == "completed"
    jsonschema.validate(json.loads(response.output_text), schema)


# --- as Codex CLI and the SDK's helpers use it ---------------------------------------------

EVENTS = TypeAdapter(ResponseStreamEvent)
NAMESPACE_TOOL = {"type": "namespace", "name": "mcp__weather__", "description": "Weather MCP server",
                  "tools": [{k: v for k, v in WEATHER_TOOL.items()}]}
PATCH_TOOL = {"type": "custom", "name": "apply_patch", "description": "Edit files with a patch",
              "format": {"type": "grammar", "syntax": "lark", "definition": "start: /[a-z ]+/"}}


async def _sse(response: aiohttp.ClientResponse) -> list[dict[str, Any]]:
    events, name = [], None
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
            assert data["type"] == name
            events.append(data)
    return events


async def test_a_codex_request_streams_typed_events(server: RunningServer, http: aiohttp.ClientSession) -> None:
    body = codex_body(model="", max_output_tokens=16)
    async with http.post(server.v1 + "/responses", json=body) as response:
        assert response.status == 200, await response.text()
        assert response.headers["X-Kronk-Tools-Ignored"] == "web_search,image_generation,tool_search"
        assert response.headers["X-Kronk-Input-Ignored"] == "web_search_call,compaction"
        events = await _sse(response)
    for event in events:
        EVENTS.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created" and events[-1]["type"] in ("response.completed",
                                                                              "response.incomplete")
    final = Response.model_validate(events[-1]["response"])
    assert final.usage is not None and final.usage.output_tokens > 0
    assert [item.id for item in final.output] == [e["item"]["id"] for e in events
                                                  if e["type"] == "response.output_item.done"]


async def test_a_namespaced_function_round_trip(client: openai.AsyncOpenAI) -> None:
    first = await client.responses.create(
        model="", input="weather in paris?", tools=[NAMESPACE_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather", "namespace": "mcp__weather__"},  # type: ignore[typeddict-unknown-key]
        parallel_tool_calls=False, max_output_tokens=300, extra_body={"seed": 0})
    call = first.output[-1]
    assert call.type == "function_call"
    assert (call.name, call.namespace) == ("get_weather", "mcp__weather__")
    jsonschema.validate(json.loads(call.arguments), WEATHER_TOOL["parameters"])
    history = [{"role": "user", "content": "weather in paris?"},
               *[item.model_dump(exclude_none=True) for item in first.output],
               {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp_c": 21}'}]
    second = await client.responses.create(model="", input=history, tools=[NAMESPACE_TOOL],  # type: ignore[arg-type, list-item]
                                           tool_choice="none", max_output_tokens=4)
    assert [item.type for item in second.output] == ["message"]


async def test_a_custom_tool_streams_its_input(client: openai.AsyncOpenAI) -> None:
    stream = await client.responses.create(
        model="", input="fix the typo", tools=[PATCH_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "custom", "name": "apply_patch"}, max_output_tokens=200, stream=True,
        extra_body={"seed": 0})
    events = [event async for event in stream]
    added = next(e for e in events if e.type == "response.output_item.added")
    assert added.item.type == "custom_tool_call" and added.item.name == "apply_patch"
    deltas = "".join(e.delta for e in events if e.type == "response.custom_tool_call_input.delta")
    done = next(e for e in events if e.type == "response.custom_tool_call_input.done")
    assert deltas == done.input and done.input
    item = events[-1].response.output[-1]
    assert item.type == "custom_tool_call" and item.input == done.input
    history = [{"role": "user", "content": "fix the typo"}, item.model_dump(exclude_none=True),
               {"type": "custom_tool_call_output", "call_id": item.call_id, "output": "Done!"}]
    again = await client.responses.create(model="", input=history, tools=[PATCH_TOOL],  # type: ignore[arg-type, list-item]
                                          tool_choice="none", max_output_tokens=4)
    assert again.output[0].type == "message"


async def test_the_sdk_stream_helper_accumulates_the_response(client: openai.AsyncOpenAI) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    async with client.responses.stream(
            model="", input="json", max_output_tokens=200, store=True,
            text={"format": {"type": "json_schema", "name": "flag", "schema": schema}}) as stream:
        deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert final.status == "completed" and final.store is False
    assert final.output_text == "".join(deltas)
    jsonschema.validate(json.loads(final.output_text), schema)


async def test_a_required_hosted_tool_is_refused_and_named(server: RunningServer,
                                                          http: aiohttp.ClientSession) -> None:
    body = {"input": "search", "tools": [{"type": "web_search_preview"}, WEATHER_TOOL],
            "tool_choice": {"type": "web_search_preview"}}
    async with http.post(server.v1 + "/responses", json=body) as response:
        assert response.status == 400
        assert response.headers["X-Kronk-Tools-Ignored"] == "web_search_preview"
        error = (await response.json())["error"]
    assert (error["param"], error["code"]) == ("tool_choice", "unsupported_capability")


@pytest.mark.parametrize("input_", ["", []])
async def test_empty_input_is_a_clear_400(client: openai.AsyncOpenAI, input_: Any) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="", input=input_)
    assert caught.value.body["param"] == "input"  # type: ignore[index]


CLIENT_FIXTURES = Path(__file__).parent / "fixtures" / "clients"


def _captured_body(path: Path) -> dict[str, Any]:
    """A captured request: the body itself, or a capture record with the body under `body`."""
    data = json.loads(path.read_text())
    body = data.get("body", data) if isinstance(data, dict) else data
    assert isinstance(body, dict), path
    return body


@pytest.mark.parametrize("path", sorted(CLIENT_FIXTURES.glob("codex_*.json")), ids=lambda p: p.stem)
async def test_captured_codex_requests_replay(start_server: StartServer, http: aiohttp.ClientSession,
                                              path: Path) -> None:
    """Real Codex CLI requests (tests/server/fixtures/clients/codex_*.json) stream typed events."""
    server = await start_server(ctx_size=32768, slots=1)  # Codex sends 15-20k tokens of instructions and tools
    await server.ready()
    body = {**_captured_body(path), "model": "", "max_output_tokens": 16}
    async with http.post(server.v1 + "/responses", json=body) as response:
        assert response.status == 200, await response.text()
        if any(t.get("type") == "web_search" for t in body.get("tools", [])):
            assert "web_search" in response.headers["X-Kronk-Tools-Ignored"].split(",")
        events = await _sse(response) if body.get("stream") else [await response.json()]
    if body.get("stream"):
        for event in events:
            EVENTS.validate_python(event)
        assert events[-1]["type"] in ("response.completed", "response.incomplete")
        final = Response.model_validate(events[-1]["response"])
    else:
        final = Response.model_validate(events[0])
    assert final.output and final.usage is not None


async def test_a_conversation_too_long_names_input(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="", input="word " * 4000, stream=True)
    assert caught.value.body["param"] == "input"  # type: ignore[index]
    assert caught.value.body["code"] == "context_length_exceeded"  # type: ignore[index]
