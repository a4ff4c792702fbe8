"""Anthropic requests shaped like current clients send them, against a real server.

Claude Code 2.1 calls `POST /v1/messages?beta=true` with anthropic-beta headers, a
system prompt in cache_control'd blocks, `role: "system"` messages inside
`messages`, a dozen custom tools (JSON Schema draft-07 with `$schema`), sometimes
server tools, `metadata.user_id`, `thinking` and `context_management`, and streams.
These tests send that shape raw and through the official `anthropic` client
(its beta namespace adds `?beta=true`), streamed and not.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import pytest

from tests import tiny_models
from tests.server.conftest import RunningServer, StartServer

pytestmark = pytest.mark.requires_libs

SCHEMA = "http://json-schema.org/draft-07/schema#"


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"name": name, "description": description, "input_schema": {
        "type": "object", "properties": properties, "required": required, "additionalProperties": False,
        "$schema": SCHEMA}}


CLAUDE_CODE_TOOLS = [
    _tool("Bash", "Executes a bash command.", {
        "command": {"type": "string", "description": "The command to execute"},
        "timeout": {"type": "number", "description": "Optional timeout in milliseconds (max 600000)"},
        "run_in_background": {"type": "boolean"}}, ["command"]),
    _tool("Read", "Reads a file from the local filesystem.", {
        "file_path": {"type": "string"}, "offset": {"type": "number"}, "limit": {"type": "number"}}, ["file_path"]),
    _tool("Edit", "Performs exact string replacements in files.", {
        "file_path": {"type": "string"}, "old_string": {"type": "string"}, "new_string": {"type": "string"},
        "replace_all": {"type": "boolean", "default": False}}, ["file_path", "old_string", "new_string"]),
    _tool("TodoWrite", "Create and manage a structured task list.", {"todos": {"type": "array", "items": {
        "type": "object", "properties": {
            "content": {"type": "string", "minLength": 1},
            "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]}},
        "required": ["content", "status"], "additionalProperties": False}}}, ["todos"]),
    _tool("EnterPlanMode", "Switch the session's permission mode.", {
        "mode": {"type": "string", "enum": ["plan", "default"]}}, ["mode"]),
]
EPHEMERAL = {"type": "ephemeral"}


def claude_code_body(**overrides: Any) -> dict[str, Any]:
    """A first Claude Code turn: `claude -p "Say hello in five words."` (model set with ANTHROPIC_MODEL)."""
    body: dict[str, Any] = {
        "model": "",
        "max_tokens": 32000,
        "stream": True,
        "temperature": 1,
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
             "cache_control": EPHEMERAL},
            {"type": "text", "text": "You are an interactive CLI tool that helps users with software engineering "
                                     "tasks.", "cache_control": EPHEMERAL},
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>\nThis is a reminder.\n</system-reminder>"},
                {"type": "text", "text": "Say hello in five words.", "cache_control": EPHEMERAL}]},
            {"role": "system", "content": [{"type": "text", "text": "# MCP Server Instructions\nNone."}]},
        ],
        "tools": [*CLAUDE_CODE_TOOLS, {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}],
        "metadata": {"user_id": '{"device_id":"c107","account_uuid":"","session_id":"c6b2"}'},
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    }
    body.update(overrides)
    return body


BETA_HEADERS = {
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27",
    "x-api-key": "unused",
    "x-app": "cli",
    "user-agent": "claude-cli/2.1.197 (external, cli)",
}


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, JSON data) of each SSE event; checks every event's name equals its data's type."""
    events = []
    for chunk in text.split("\n\n"):
        lines = [line for line in chunk.splitlines() if line and not line.startswith(":")]
        if not lines:
            continue
        name = next(line[7:] for line in lines if line.startswith("event: "))
        data = json.loads("".join(line[6:] for line in lines if line.startswith("data: ")))
        assert data["type"] == name
        events.append((name, data))
    return events


def check_sequence(events: list[tuple[str, dict[str, Any]]]) -> None:
    """Anthropic's documented order: start, blocks (start, deltas, stop) with indexes 0..n, delta, stop."""
    names = [name for name, _ in events if name != "ping"]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    open_index, next_index = None, 0
    for name, data in events[1:-2]:
        if name == "content_block_start":
            assert open_index is None and data["index"] == next_index
            open_index, next_index = data["index"], next_index + 1
        elif name in ("content_block_delta", "content_block_stop"):
            assert data["index"] == open_index
            if name == "content_block_stop":
                open_index = None
    assert open_index is None


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=server.url, api_key="unused", max_retries=0) as client:
        yield client


# --- Claude Code's first turn ---------------------------------------------------------------


async def test_claude_code_first_turn_streams(server: RunningServer, http: aiohttp.ClientSession) -> None:
    async with http.post(server.v1 + "/messages?beta=true", json=claude_code_body(max_tokens=12),
                         headers=BETA_HEADERS) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["X-Kronk-Tools-Ignored"] == "web_search"
        events = sse_events(await response.text())
    check_sequence(events)
    start = events[0][1]["message"]
    assert start["role"] == "assistant" and start["content"] == [] and start["usage"]["input_tokens"] > 0
    assert events[1][0] == "content_block_start" and events[2][0] == "ping"
    final = events[-2][1]
    assert final["delta"]["stop_reason"] in ("end_turn", "max_tokens", "tool_use")
    assert final["usage"]["output_tokens"] > 0
    # `thinking: adaptive` keeps the model's default: this model does not think, so it answers.
    blocks = [data["content_block"]["type"] for name, data in events if name == "content_block_start"]
    assert blocks and "thinking" not in blocks


async def test_claude_code_first_turn_through_the_beta_client(client: anthropic.AsyncAnthropic) -> None:
    """The official client's beta namespace calls /v1/messages?beta=true with an anthropic-beta header."""
    body = claude_code_body(max_tokens=12)
    del body["stream"]
    extra = {"context_management": body.pop("context_management"), "temperature": body.pop("temperature")}
    async with client.beta.messages.stream(**body, betas=["claude-code-20250219"], extra_body=extra) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason in ("end_turn", "max_tokens", "tool_use")
    assert final.usage.output_tokens > 0
    message = await client.beta.messages.create(**{**body, "max_tokens": 4}, betas=["claude-code-20250219"],
                                                extra_body=extra)
    assert message.stop_reason in ("end_turn", "max_tokens", "tool_use")


async def test_count_tokens_takes_the_same_body_and_counts_the_same_prompt(
        client: anthropic.AsyncAnthropic, server: RunningServer, http: aiohttp.ClientSession) -> None:
    body = claude_code_body(max_tokens=2, stream=False, thinking={"type": "enabled", "budget_tokens": 1})
    async with http.post(server.v1 + "/messages/count_tokens?beta=true", json=body, headers=BETA_HEADERS) as response:
        assert response.status == 200, await response.text()
        assert response.headers["X-Kronk-Tools-Ignored"] == "web_search"
        counted = (await response.json())["input_tokens"]
    async with http.post(server.v1 + "/messages?beta=true", json=body, headers=BETA_HEADERS) as response:
        usage = (await response.json())["usage"]
    assert counted == usage["input_tokens"] + usage["cache_read_input_tokens"]
    without_tools = await client.messages.count_tokens(
        model="", system=body["system"], messages=body["messages"])
    assert 0 < without_tools.input_tokens < counted


async def test_later_turns_keep_the_system_message_in_place(client: anthropic.AsyncAnthropic,
                                                            server: RunningServer) -> None:
    """The next turn renders the previous prompt unchanged, so the prefix cache serves it."""
    first = claude_code_body(stream=False, max_tokens=4)
    for name in ("stream", "context_management", "temperature"):
        del first[name]
    answer = await client.messages.create(**first)
    second = {**first, "messages": [
        *first["messages"],
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in answer.content]},
        {"role": "user", "content": "Again."}]}
    prompt1 = await server.kronk.render_chat(_request(first))
    prompt2 = await server.kronk.render_chat(_request(second))
    assert prompt2.startswith(prompt1)
    again = await client.messages.create(**second)
    assert again.usage.cache_read_input_tokens >= answer.usage.input_tokens - 1


def _request(body: dict[str, Any]) -> Any:
    from kronk.server.anthropic.protocol import parse_request
    from kronk.server.openai.protocol import Limits

    return parse_request(body, Limits()).request


# --- tools --------------------------------------------------------------------------------


async def test_tool_use_and_results_round_trip_in_claude_code_shape(client: anthropic.AsyncAnthropic) -> None:
    body = claude_code_body(stream=False, max_tokens=200, tool_choice={"type": "tool", "name": "EnterPlanMode"})
    for name in ("stream", "context_management", "temperature"):
        del body[name]
    sampling = {"seed": 0, "temperature": 0}
    first = await client.messages.create(**body, extra_body=sampling)
    assert first.stop_reason == "tool_use"
    use = first.content[-1]
    assert use.type == "tool_use" and use.name == "EnterPlanMode" and use.input["mode"] in ("plan", "default")
    body["messages"] = [
        *body["messages"],
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": use.id, "content": [{"type": "text", "text": "hello"}],
             "cache_control": EPHEMERAL},
            {"type": "text", "text": "<system-reminder>todo list is empty</system-reminder>"}]},
        {"role": "system", "content": "Reminder: be brief."},
    ]
    body.update(tool_choice={"type": "auto"}, max_tokens=4)
    second = await client.messages.create(**body, extra_body=sampling)
    assert second.stop_reason in ("end_turn", "max_tokens", "tool_use")


async def test_tool_choice_naming_a_server_tool_is_a_clear_400(server: RunningServer,
                                                                http: aiohttp.ClientSession) -> None:
    body = claude_code_body(tool_choice={"type": "tool", "name": "web_search"})
    async with http.post(server.v1 + "/messages?beta=true", json=body, headers=BETA_HEADERS) as response:
        assert response.status == 400
        assert response.headers["X-Kronk-Tools-Ignored"] == "web_search"
        answer = await response.json()
    assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
    assert "'web_search'" in answer["error"]["message"]


async def test_mcp_servers_on_private_addresses_are_refused_with_a_message(client: anthropic.AsyncAnthropic) -> None:
    """(Server tools and mcp_servers end to end: tests/server/anthropic/test_messages_server_tools.py.)"""
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.beta.messages.create(
            model="", max_tokens=4, messages=[{"role": "user", "content": "hi"}],
            mcp_servers=[{"type": "url", "url": "http://10.0.0.7/mcp", "name": "remote"}],
            betas=["mcp-client-2025-04-04"])
    assert info.value.body["error"]["message"].startswith("mcp_servers[0].url: ")


# --- blocks ----------------------------------------------------------------------------------


async def test_documents_and_server_blocks_in_history(client: anthropic.AsyncAnthropic) -> None:
    text = base64.b64encode(b"The launch code is 42.").decode()
    message = await client.messages.create(model="", max_tokens=4, messages=[
        {"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "text/plain", "data": text},
             "title": "notes.txt", "cache_control": EPHEMERAL},
            {"type": "text", "text": "Search the web for it."}]},
        {"role": "assistant", "content": [
            {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {"query": "launch code"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": [
                {"type": "web_search_result", "title": "Codes", "url": "https://c.invalid", "encrypted_content": "e"}]},
            {"type": "redacted_thinking", "data": "EuYBCkQ"},
            {"type": "text", "text": "Found it."}]},
        {"role": "user", "content": "Thanks."}])
    assert message.usage.input_tokens > 0
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(model="", max_tokens=4, messages=[{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQ="}}]}])
    assert "PDF" in info.value.body["error"]["message"]


async def test_max_tokens_zero_answers_an_empty_message(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(model="", max_tokens=0, messages=[{"role": "user", "content": "hi"}])
    assert message.content == [] and message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 0


async def test_images_reach_a_model_with_a_projector(start_server: StartServer, tiny: dict[str, Path]) -> None:
    """Base64 image blocks, in a user turn and inside a tool result (a Claude Code screenshot)."""
    from kronk.models.store import ModelStore
    from kronk.paths import models_dir

    folder = models_dir() / "tiny" / "vision"
    folder.mkdir(parents=True)
    shutil.copyfile(tiny["chat"], folder / "vision.gguf")
    tiny_models.write_llava_projector(folder / "mmproj-vision.gguf")
    ModelStore().rebuild_index()
    server = await start_server(model="tiny/vision")
    await server.ready()
    client = anthropic.AsyncAnthropic(base_url=server.url, api_key="unused", max_retries=0)
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/x-portable-pixmap",
                                         "data": base64.b64encode(tiny_models.ppm_image()).decode()}}
    message = await client.messages.create(model="tiny/vision", max_tokens=2, messages=[
        {"role": "user", "content": [image, {"type": "text", "text": "what is this"}]}])
    plain = await client.messages.count_tokens(model="tiny/vision", messages=[{"role": "user", "content": "what is this"}])
    assert message.usage.input_tokens >= plain.input_tokens + 16  # the image is 16 positions
    message = await client.messages.create(model="tiny/vision", max_tokens=2, messages=[
        {"role": "user", "content": "take a screenshot"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "screenshot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [image]}]}],
        tools=[{"name": "screenshot", "input_schema": {"type": "object", "properties": {}}}])
    assert message.usage.input_tokens > 16
    await client.close()


# --- thinking --------------------------------------------------------------------------------

THINKING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n"
    "{% if m.reasoning_content %}<think>\n{{ m.reasoning_content }}\n</think>\n\n{% endif %}"
    "{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% else %}<think>\n{% endif %}"
    "{% endif %}"
)
"""A Qwen3-like template: the generation prompt opens a thinking block unless thinking is off."""


@pytest.fixture
async def thinker(start_server: StartServer, tmp_path: Path) -> RunningServer:
    path = tiny_models.write_llama_model(tmp_path / "thinker.gguf", chat_template=THINKING_TEMPLATE, name="thinker")
    server = await start_server(model=str(path))
    await server.ready()
    return server


async def test_thinking_streams_as_a_signed_thinking_block(thinker: RunningServer,
                                                           http: aiohttp.ClientSession) -> None:
    body = {"max_tokens": 8, "stream": True, "thinking": {"type": "enabled", "budget_tokens": 4},
            "messages": [{"role": "user", "content": "think"}]}
    async with http.post(thinker.v1 + "/messages", json=body) as response:
        events = sse_events(await response.text())
    check_sequence(events)
    assert events[1][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    assert {d["type"] for d in deltas[:-1]} == {"thinking_delta"} and deltas[-1]["type"] == "signature_delta"
    client = anthropic.AsyncAnthropic(base_url=thinker.url, api_key="unused", max_retries=0)
    async with client.messages.stream(model="", max_tokens=8, thinking={"type": "adaptive"},
                                      messages=[{"role": "user", "content": "think"}], extra_body={"seed": 1}) as stream:
        final = await stream.get_final_message()
    block = final.content[0]
    assert block.type == "thinking" and block.thinking and block.signature
    again = await client.messages.create(model="", max_tokens=8, thinking={"type": "adaptive"},
                                         messages=[{"role": "user", "content": "think"}], extra_body={"seed": 1})
    assert again.content[0].model_dump() == block.model_dump()
    follow_up = await client.messages.create(model="", max_tokens=2, thinking={"type": "disabled"}, messages=[
        {"role": "user", "content": "think"},
        {"role": "assistant", "content": [block.model_dump()]},
        {"role": "user", "content": "and now?"}])
    assert all(b.type != "thinking" for b in follow_up.content)
    await client.close()


async def test_omitted_thinking_display_sends_signatures_only(thinker: RunningServer) -> None:
    client = anthropic.AsyncAnthropic(base_url=thinker.url, api_key="unused", max_retries=0)
    thinking = {"type": "enabled", "budget_tokens": 4, "display": "omitted"}
    message = await client.messages.create(model="", max_tokens=8, thinking=thinking,
                                           messages=[{"role": "user", "content": "think"}])
    assert message.content[0].type == "thinking"
    assert message.content[0].thinking == "" and message.content[0].signature
    async with client.messages.stream(model="", max_tokens=8, thinking=thinking,
                                      messages=[{"role": "user", "content": "think"}]) as stream:
        kinds = [event.delta.type async for event in stream if event.type == "content_block_delta"]
    assert kinds == ["signature_delta"]
    await client.close()


# --- errors ------------------------------------------------------------------------------------


async def test_claude_model_names_are_404_with_directions(client: anthropic.AsyncAnthropic) -> None:
    for call in (client.messages.create(model="claude-sonnet-4-5-20250929", max_tokens=4,
                                        messages=[{"role": "user", "content": "hi"}]),
                 client.messages.count_tokens(model="claude-haiku-4-5-20251001",
                                              messages=[{"role": "user", "content": "hi"}])):
        with pytest.raises(anthropic.NotFoundError) as info:
            await call
        error = info.value.body["error"]
        assert error["type"] == "not_found_error" and "ANTHROPIC_MODEL" in error["message"]
    with pytest.raises(anthropic.NotFoundError) as info:
        async with client.messages.stream(model="claude-opus-4-1", max_tokens=4,
                                          messages=[{"role": "user", "content": "hi"}]) as stream:
            await stream.get_final_message()
    assert "ANTHROPIC_DEFAULT_HAIKU_MODEL" in info.value.body["error"]["message"]


async def test_a_prompt_longer_than_the_context_reads_like_anthropics(start_server: StartServer) -> None:
    """Claude Code matches `prompt is too long: N tokens > M maximum` to tell the user and compact."""
    server = await start_server(ctx_size=256, slots=1)
    await server.ready()
    context = server.kronk.ps()[0].context_size
    long = [{"role": "user", "content": "word " * 400}]
    async with anthropic.AsyncAnthropic(base_url=server.url, api_key="unused", max_retries=0) as client:
        counted = await client.messages.count_tokens(model="", messages=long)
        for stream in (False, True):
            with pytest.raises(anthropic.BadRequestError) as info:
                if stream:
                    async with client.messages.stream(model="", max_tokens=4, messages=long) as events:
                        await events.get_final_message()
                else:
                    await client.messages.create(model="", max_tokens=4, messages=long)
            message = info.value.body["error"]["message"]
            match = re.search(r"prompt is too long[^0-9]*(\d+)\s*tokens?\s*>\s*(\d+)", message)
            assert match is not None, message
            assert (int(match[1]), int(match[2])) == (counted.input_tokens, context - 1)
