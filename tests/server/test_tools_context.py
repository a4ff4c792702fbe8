"""Tools that do not fit the context, as Open WebUI meets them (issue 10).

Open WebUI sends its 36 built-in tools (`tests/chat/fixtures/open_webui_tools.json`)
with every chat, `tool_choice` auto. With tool_choice auto the server answers without
the tools the context cannot hold and names them in `X-Kronk-Tools-Dropped` (and a
warning); with `required` it is a 400 that says why. The tiny random model (one token
per byte, context 2048) checks every API quickly; SmolLM2-135M-Instruct (the default
model, whose template knows no tools) checks Open WebUI's real requests at 4096 and
8192, background tasks included.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from tests.chat.helpers import OPEN_WEBUI_TOOLS, tool_names
from tests.server.conftest import RunningServer, StartServer

pytestmark = pytest.mark.requires_libs

HEADER = "X-Kronk-Tools-Dropped"
SAY_HELLO = [{"role": "user", "content": "Say hello"}]
TOOL_NAMES = tool_names(OPEN_WEBUI_TOOLS)


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, Any, str]:
    """(status, headers, body text) of one POST."""
    async with http.post(url, json=body) as response:
        return response.status, response.headers, await response.text()


def dropped(headers: Any, kept: str | None = None) -> list[str]:
    """The header's names: the last tools of the request in order (but a `kept` named tool)."""
    value = headers.get(HEADER)
    assert value, f"no {HEADER} header"
    listed = value.split(", ")
    assert listed == [name for name in TOOL_NAMES[TOOL_NAMES.index(listed[0]):] if name != kept]
    return listed


def sse_data(text: str) -> list[str]:
    return [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]


def anthropic_tools() -> list[dict[str, Any]]:
    return [{"name": t["function"]["name"], "description": t["function"]["description"],
             "input_schema": t["function"]["parameters"]} for t in OPEN_WEBUI_TOOLS]


def responses_tools() -> list[dict[str, Any]]:
    return [{"type": "function", **t["function"]} for t in OPEN_WEBUI_TOOLS]


# --- every API, on the tiny model ------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_chat_completions_drop_what_does_not_fit_and_say_so(
    server: RunningServer, http: aiohttp.ClientSession, stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"messages": SAY_HELLO, "tools": OPEN_WEBUI_TOOLS, "max_tokens": 8, "stream": stream}
    with caplog.at_level(logging.WARNING, "kronk.sdk"):
        status, headers, text = await post(http, server.v1 + "/chat/completions", body)
    assert status == 200, text
    gone = dropped(headers)
    assert 0 < len(gone) < 36
    assert f"serving the chat without {', '.join(gone)}" in caplog.text
    if stream:
        data = sse_data(text)
        assert data[-1] == "[DONE]" and json.loads(data[0])["object"] == "chat.completion.chunk"
    else:
        assert json.loads(text)["choices"][0]["finish_reason"] in ("stop", "length", "tool_calls")


@pytest.mark.parametrize("stream", [False, True])
async def test_messages_and_responses_say_so_too(server: RunningServer, http: aiohttp.ClientSession, stream: bool) -> None:
    messages = {"model": "", "max_tokens": 8, "messages": SAY_HELLO, "tools": anthropic_tools(), "stream": stream}
    status, headers, text = await post(http, server.url + "/v1/messages", messages)
    assert status == 200, text
    assert dropped(headers)
    responses = {"input": "Say hello", "tools": responses_tools(), "max_output_tokens": 16, "stream": stream}
    status, headers, text = await post(http, server.v1 + "/responses", responses)
    assert status == 200, text
    assert dropped(headers)


async def test_tools_that_fit_leave_no_header(server: RunningServer, http: aiohttp.ClientSession) -> None:
    body = {"messages": SAY_HELLO, "tools": OPEN_WEBUI_TOOLS[:1], "max_tokens": 4}
    status, headers, text = await post(http, server.v1 + "/chat/completions", body)
    assert status == 200, text
    assert HEADER not in headers


async def test_required_tools_that_do_not_fit_are_a_400(server: RunningServer, http: aiohttp.ClientSession) -> None:
    for stream in (False, True):
        body = {"messages": SAY_HELLO, "tools": OPEN_WEBUI_TOOLS, "tool_choice": "required", "max_tokens": 8,
                "stream": stream}
        status, headers, text = await post(http, server.v1 + "/chat/completions", body)
        assert status == 400, text
        error = json.loads(text)["error"]
        assert error["param"] == "tools" and error["code"] == "context_length_exceeded"
        assert error["message"].startswith("the 36 tools do not fit the context")
        assert "tool_choice 'auto'" in error["message"]
    named = {"messages": SAY_HELLO, "tools": OPEN_WEBUI_TOOLS, "max_tokens": 8,
             "tool_choice": {"type": "function", "function": {"name": "run_terminal_command"}}}
    status, headers, text = await post(http, server.v1 + "/chat/completions", named)
    assert status == 200, text
    assert "run_terminal_command" not in dropped(headers, kept="run_terminal_command")


# --- SmolLM2 as Open WebUI uses it -------------------------------------------------------------

PAGE = "\n\n".join(
    f"## Part {n}\n\nKronk serves local models through an OpenAI-compatible API. Part {n} of this guide "
    f"covers {topic}: how to set it up, which settings matter, and what to check when something goes "
    "wrong. Each model runs in its own engine thread with a fixed number of slots, and requests wait "
    "in a queue when every slot is busy. The context size bounds the prompt and the reply together."
    for n, topic in enumerate(
        ["installing", "the model store", "the server", "slots and queues", "the prompt cache", "tools",
         "structured output", "reasoning models", "metrics", "security", "embeddings", "reranking",
         "the CLI", "the SDK", "Open WebUI", "troubleshooting", "upgrades", "benchmarks", "the catalog",
         "images and audio"],
        start=1,
    )
)
FOLLOW_UP = [
    {"role": "user", "content": "What does https://kronk.example/guide say about slots? Keep it short."},
    {"role": "assistant", "content": "", "tool_calls": [{
        "id": "call_1", "type": "function",
        "function": {"name": "fetch_url", "arguments": json.dumps({"url": "https://kronk.example/guide"})}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": PAGE},
]


async def smollm2_server(start_server: StartServer, smollm2: Path, ctx_size: int) -> RunningServer:
    server = await start_server(model=str(smollm2), threads=2, ctx_size=ctx_size, slots=1)
    await server.ready()
    return server


@pytest.mark.slow
async def test_open_webui_say_hello_fits_smollm2_at_4096(
    start_server: StartServer, smollm2: Path, http: aiohttp.ClientSession
) -> None:
    """The reported failure: 36 tools, "Say hello". All of them fit now, with the
    default room for the reply (1024 tokens) still free."""
    server = await smollm2_server(start_server, smollm2, 4096)
    body = {"messages": SAY_HELLO, "tools": OPEN_WEBUI_TOOLS, "tool_choice": "auto", "temperature": 0}
    count = await post(http, server.url + "/v1/messages/count_tokens",
                       {"model": "", "messages": SAY_HELLO, "tools": anthropic_tools()})
    assert count[0] == 200 and json.loads(count[2])["input_tokens"] <= 4096 - 1024
    status, headers, text = await post(http, server.v1 + "/chat/completions", {**body, "max_tokens": 64})
    assert status == 200, text
    assert HEADER not in headers
    result = json.loads(text)
    message = result["choices"][0]["message"]
    assert message["content"] or message.get("tool_calls")
    assert 2500 < result["usage"]["prompt_tokens"] <= 4096 - 1024


@pytest.mark.slow
async def test_the_turn_after_a_tool_call_fits_smollm2_at_8192(
    start_server: StartServer, smollm2: Path, http: aiohttp.ClientSession
) -> None:
    """The turn that overflowed 8192 before: the tools and a fetched page, all kept."""
    server = await smollm2_server(start_server, smollm2, 8192)
    body = {"messages": FOLLOW_UP, "tools": OPEN_WEBUI_TOOLS, "temperature": 0, "max_tokens": 32}
    status, headers, text = await post(http, server.v1 + "/chat/completions", body)
    assert status == 200, text
    assert HEADER not in headers
    assert 4096 < json.loads(text)["usage"]["prompt_tokens"] < 8192 - 1024


@pytest.mark.slow
async def test_the_turn_after_a_tool_call_at_4096_drops_tools_and_says_so(
    start_server: StartServer, smollm2: Path, http: aiohttp.ClientSession
) -> None:
    server = await smollm2_server(start_server, smollm2, 4096)
    required = {"messages": FOLLOW_UP, "tools": OPEN_WEBUI_TOOLS, "tool_choice": "required", "max_tokens": 32}
    status, _headers, text = await post(http, server.v1 + "/chat/completions", required)
    assert status == 400 and json.loads(text)["error"]["param"] == "tools", text
    body = {"messages": FOLLOW_UP, "tools": OPEN_WEBUI_TOOLS, "temperature": 0, "max_tokens": 32, "stream": True,
            "stream_options": {"include_usage": True}}
    status, headers, text = await post(http, server.v1 + "/chat/completions", body)
    assert status == 200, text
    assert 0 < len(dropped(headers)) < 36
    data = sse_data(text)
    assert data[-1] == "[DONE]"
    usage = json.loads(data[-2])["usage"]
    assert usage["prompt_tokens"] + 32 <= 4096


# Open WebUI's background tasks: plain chat completions with a long instruction prompt
# (the chat so far inside it), no tools, sometimes asking for a JSON shape.
CHAT_SO_FAR = (
    "USER: How do I keep my sourdough starter alive while I am away for two weeks?\n"
    "ASSISTANT: Feed it, let it rise for an hour, then put it in the fridge in a closed jar. "
    "When you are back, discard half and feed it twice a day until it doubles again."
)


def task_prompt(task: str, output: str) -> str:
    return (
        f"### Task:\n{task}\n### Rules:\n- Answer in the language of the chat.\n"
        "- Reply with the JSON object only: no code fences, no words before or after it.\n"
        f"### Output:\nJSON shaped like: {output}\n"
        f"### Chat history:\n<chat_history>\n{CHAT_SO_FAR}\n</chat_history>"
    )


TITLE = task_prompt("Write a 3-5 word title, with one emoji, for the chat history.", '{"title": "the title"}')
TAGS = task_prompt("Pick 1-3 broad tags and 1-3 specific tags for the chat history.", '{"tags": ["tag1", "tag2"]}')
FOLLOW_UPS = task_prompt("Suggest 3 short questions the user might ask next.", '{"follow_ups": ["question?"]}')
FOLLOW_UPS_SCHEMA = {
    "type": "object",
    "properties": {"follow_ups": {"type": "array", "items": {"type": "string", "maxLength": 80}, "minItems": 1, "maxItems": 3}},
    "required": ["follow_ups"],
    "additionalProperties": False,
}


@pytest.mark.slow
@pytest.mark.parametrize("ctx_size", [4096, 8192])
async def test_open_webui_background_tasks_on_smollm2(
    start_server: StartServer, smollm2: Path, http: aiohttp.ClientSession, ctx_size: int
) -> None:
    server = await smollm2_server(start_server, smollm2, ctx_size)
    url = server.v1 + "/chat/completions"

    def task(prompt: str, **extra: Any) -> dict[str, Any]:
        return {"model": "", "messages": [{"role": "user", "content": prompt}], "stream": False,
                "temperature": 0, "max_tokens": 60, "metadata": {"task": "background"}, **extra}

    status, _, text = await post(http, url, task(TITLE))
    assert status == 200, text
    assert json.loads(text)["choices"][0]["message"]["content"].strip()
    status, _, text = await post(http, url, task(TAGS, response_format={"type": "json_object"}))
    assert status == 200, text
    choice = json.loads(text)["choices"][0]
    if choice["finish_reason"] == "stop":
        assert isinstance(json.loads(choice["message"]["content"]), dict)
    fmt = {"type": "json_schema", "json_schema": {"name": "follow_ups", "schema": FOLLOW_UPS_SCHEMA}}
    status, _, text = await post(http, url, task(FOLLOW_UPS, response_format=fmt, max_tokens=200))
    assert status == 200, text
    choice = json.loads(text)["choices"][0]
    assert choice["finish_reason"] == "stop", choice
    jsonschema.validate(json.loads(choice["message"]["content"]), FOLLOW_UPS_SCHEMA)
