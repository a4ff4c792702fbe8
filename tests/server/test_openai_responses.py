"""The Responses API through the official `openai` client: items, tools, named stream events."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.server.conftest import RunningServer

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
def client(server: RunningServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.v1, api_key="unused", max_retries=0)


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
    stream = await client.responses.create(model="", input=[{"role": "user", "content": "hi"}],
                                           max_output_tokens=8, stream=True)
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
