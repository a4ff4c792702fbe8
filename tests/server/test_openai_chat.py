"""Chat completions through the official `openai` client: stream, tools, JSON schema, logprobs."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from tests.server.conftest import RunningServer

pytestmark = pytest.mark.requires_libs

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["paris", "london"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in paris?"}]


@pytest.fixture
def client(server: RunningServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.v1, api_key="unused", max_retries=0)


async def test_non_stream_chat(client: openai.AsyncOpenAI, server: RunningServer) -> None:
    result = await client.chat.completions.create(model="", messages=ASK, max_tokens=8, seed=3)
    assert result.object == "chat.completion"
    assert result.system_fingerprint == "fp_kronk"
    choice = result.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert result.usage.prompt_tokens > 0
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


async def test_stream_equals_non_stream_and_reports_usage(client: openai.AsyncOpenAI,
                                                          server: RunningServer) -> None:
    kwargs: dict[str, Any] = dict(model="", messages=ASK, max_tokens=16, temperature=0)
    full = await client.chat.completions.create(**kwargs)
    stream = await client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [full.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    metrics = server.metrics_text
    assert "kronk_time_to_first_token_seconds_count" in metrics
    assert 'kind="completion"' in metrics


async def test_tool_call_round_trip(client: openai.AsyncOpenAI) -> None:
    first = await client.chat.completions.create(
        model="", messages=ASK, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False,
        max_tokens=300, seed=0)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER["function"]["parameters"])
    messages = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 21})},
    ]
    answer = await client.chat.completions.create(model="", messages=messages, tools=[WEATHER],
                                                  tool_choice="none", max_tokens=8, seed=0)
    assert answer.choices[0].message.tool_calls in (None, [])
    assert answer.choices[0].finish_reason in ("stop", "length")
    plain = await client.chat.completions.create(model="", messages=ASK, tools=[WEATHER], tool_choice="none",
                                                 max_tokens=1)
    assert answer.usage.prompt_tokens > plain.usage.prompt_tokens  # the call and its result are in the prompt


async def test_named_tool_choice_streams_call_deltas(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="", messages=ASK, tools=[WEATHER], parallel_tool_calls=False, max_tokens=300, seed=0,
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, stream=True)
    name, arguments, finish, ids = None, "", None, []
    async for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                if delta.id:
                    ids.append(delta.id)
                if delta.function and delta.function.name:
                    name = delta.function.name
                if delta.function and delta.function.arguments:
                    arguments += delta.function.arguments
            finish = choice.finish_reason or finish
    assert len(ids) == 1 and name == "get_weather"
    assert json.loads(arguments)["city"] in ("paris", "london")
    assert finish == "tool_calls"


async def test_response_format_json_schema(client: openai.AsyncOpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "enum": ["cat", "dog"]}, "ok": {"type": "boolean"},
                       "n": {"type": "integer", "minimum": 0, "maximum": 99}},
        "required": ["name", "ok", "n"],
        "additionalProperties": False,
    }
    result = await client.chat.completions.create(
        model="", messages=[{"role": "user", "content": "json please"}], max_tokens=300, seed=0,
        response_format={"type": "json_schema", "json_schema": {"name": "pet", "schema": schema}})
    assert result.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(result.choices[0].message.content), schema)


async def test_logprobs_and_n(client: openai.AsyncOpenAI) -> None:
    result = await client.chat.completions.create(model="", messages=ASK, max_tokens=5, logprobs=True,
                                                  top_logprobs=3, n=2, seed=5)
    assert [c.index for c in result.choices] == [0, 1]
    for choice in result.choices:
        entries = choice.logprobs.content
        assert entries and all(len(e.top_logprobs) == 3 for e in entries)
        assert all(e.logprob <= 0 for e in entries)
        assert all(e.top_logprobs[0].logprob >= e.top_logprobs[-1].logprob for e in entries)


async def test_history_with_reasoning_content_and_multipart_text(client: openai.AsyncOpenAI) -> None:
    messages = [
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": "hello", "reasoning_content": "greet back"},
        {"role": "user", "content": "again"},
    ]
    result = await client.chat.completions.create(model="", messages=messages, max_tokens=4)  # type: ignore[arg-type]
    assert result.choices[0].finish_reason in ("stop", "length")


async def test_image_parts_are_rejected_without_a_projector(client: openai.AsyncOpenAI) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="", max_tokens=4,
            messages=[{"role": "user", "content": [{"type": "text", "text": "what is this"}, image]}])
    assert info.value.status_code == 400
    assert info.value.body["code"] == "unsupported_capability"
    assert info.value.body["param"] == "messages[0].content"


async def test_image_parts_reach_a_model_with_a_projector(start_server: Any, tiny: dict[str, Path],
                                                          tmp_path: Path) -> None:
    """A store model with an mmproj file answers image prompts through the official client."""
    from kronk.models.store import ModelStore
    from kronk.paths import models_dir
    from tests import tiny_models

    folder = models_dir() / "tiny" / "vision"
    folder.mkdir(parents=True)
    shutil.copyfile(tiny["chat"], folder / "vision.gguf")
    tiny_models.write_llava_projector(folder / "mmproj-vision.gguf")
    ModelStore().rebuild_index()
    server = await start_server(model="tiny/vision")
    await server.ready()
    client = openai.AsyncOpenAI(base_url=server.v1, api_key="unused", max_retries=0)
    image = base64.b64encode(tiny_models.ppm_image()).decode()
    content = [{"type": "text", "text": "what is this"},
               {"type": "image_url", "image_url": {"url": f"data:image/x-portable-pixmap;base64,{image}"}}]
    result = await client.chat.completions.create(
        model="tiny/vision", max_tokens=4, temperature=0, messages=[{"role": "user", "content": content}])
    assert result.choices[0].finish_reason in ("stop", "length")
    assert result.usage is not None and result.usage.prompt_tokens > 16  # the image is 16 positions
    stream = await client.chat.completions.create(
        model="tiny/vision", max_tokens=4, temperature=0, stream=True, messages=[{"role": "user", "content": content}])
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == (result.choices[0].message.content or "")
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="tiny/vision", max_tokens=4, messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "http://169.254.169.254/latest"}}]}])
    assert "not fetched" in info.value.body["message"]
    await client.close()
