"""A few end-to-end checks on a real model (SmolLM2-135M-Instruct): answers, stop strings, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
import openai
import pytest

from tests.server.conftest import RunningServer, StartServer

pytestmark = [pytest.mark.slow, pytest.mark.requires_libs]


@pytest.fixture
async def real_server(start_server: StartServer, smollm2: Path) -> RunningServer:
    server = await start_server(model=str(smollm2), threads=2, ctx_size=4096)
    await server.ready()
    return server


async def test_chat_answers_and_streams_the_same_text(real_server: RunningServer) -> None:
    client = openai.AsyncOpenAI(base_url=real_server.v1, api_key="unused", max_retries=0)
    question = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    full = await client.chat.completions.create(model="", messages=question, max_tokens=12, temperature=0)
    assert "paris" in full.choices[0].message.content.lower()
    stream = await client.chat.completions.create(model="", messages=question, max_tokens=12, temperature=0,
                                                  stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == full.choices[0].message.content


async def test_stop_strings_end_the_answer(real_server: RunningServer) -> None:
    client = openai.AsyncOpenAI(base_url=real_server.v1, api_key="unused", max_retries=0)
    result = await client.chat.completions.create(
        model="", temperature=0, max_tokens=30, stop=[","],
        messages=[{"role": "user", "content": "List the numbers from 1 to 10, separated by commas."}])
    assert result.choices[0].finish_reason == "stop"
    assert "," not in result.choices[0].message.content


async def test_anthropic_stream_and_json_mode(real_server: RunningServer) -> None:
    client = anthropic.AsyncAnthropic(base_url=real_server.url, api_key="unused", max_retries=0)
    async with client.messages.stream(model="", max_tokens=12,
                                      messages=[{"role": "user", "content": "Say hello."}]) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text and final.content[0].text == text
    assert final.stop_reason in ("end_turn", "max_tokens")
    chat = openai.AsyncOpenAI(base_url=real_server.v1, api_key="unused", max_retries=0)
    result = await chat.chat.completions.create(
        model="", max_tokens=40, temperature=0, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Give a JSON object with a key name set to Ada."}])
    assert isinstance(json.loads(result.choices[0].message.content), dict)


async def test_json_mode_with_a_repeat_penalty_answers_and_the_server_lives_on(real_server: RunningServer) -> None:
    """The penalties see the prompt, the grammar must not: this request used to abort the whole
    server process inside llama.cpp's grammar code."""
    chat = openai.AsyncOpenAI(base_url=real_server.v1, api_key="unused", max_retries=0)
    for penalty in ({"repeat_penalty": 1.1}, {"frequency_penalty": 0.5, "presence_penalty": 0.5}):
        result = await chat.chat.completions.create(
            model="", max_tokens=200, temperature=0, response_format={"type": "json_object"}, extra_body=penalty,
            messages=[{"role": "user", "content": "Give a JSON object with a key name set to Ada."}])
        assert isinstance(json.loads(result.choices[0].message.content), dict), result.choices[0].message.content
    alive = await chat.chat.completions.create(
        model="", max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
    assert alive.choices[0].message.content is not None
