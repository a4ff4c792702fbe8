"""Real Anthropic client requests, captured (tests/server/fixtures/clients/claude_code_*.json), replayed.

A fixture is the body a real client sent Kronk (or `{"client", "note", "body"}` with
optional "path" and "headers"). It is replayed as sent, on the tiny model, with only
`max_tokens` lowered so the run stays short: raw over HTTP to `/v1/messages?beta=true`
with the client's beta headers, to count_tokens (which must count the prompt
/v1/messages evaluated), and through the official `anthropic` client's beta
namespace (the prefix cache makes that second evaluation cheap).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import pytest

from tests.server.conftest import RunningServer, StartServer
from tests.server.test_anthropic_clients import check_sequence, sse_events

pytestmark = pytest.mark.requires_libs

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "clients").glob("claude_code_*.json"))
MAX_TOKENS = 8
CLAUDE_CODE_HEADERS = {
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,thinking-token-count-2026-05-13,"
                      "context-management-2025-06-27,prompt-caching-scope-2026-01-05,"
                      "mid-conversation-system-2026-04-07,effort-2025-11-24",
    "user-agent": "claude-cli/2.1.197 (external, sdk-cli)",
    "x-app": "cli",
}
"""What Claude Code 2.1.197 sent with the captured bodies (the fixtures keep bodies only)."""
STOP_REASONS = ("end_turn", "max_tokens", "tool_use", "stop_sequence")


def _load(path: Path) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(path, headers, body) of a fixture, its model emptied (the server's default) and max_tokens lowered."""
    fixture = json.loads(path.read_text())
    wrapped = "messages" not in fixture and isinstance(fixture.get("body"), dict)
    body = dict(fixture["body"] if wrapped else fixture)
    body["model"] = ""
    body["max_tokens"] = MAX_TOKENS
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        body["thinking"] = {**thinking, "budget_tokens": MAX_TOKENS - 1}
    headers = {**CLAUDE_CODE_HEADERS, **(fixture.get("headers") or {} if wrapped else {})}
    headers = {k: v for k, v in headers.items() if k.lower() not in ("x-api-key", "authorization", "content-length")}
    return (fixture.get("path", "/v1/messages?beta=true") if wrapped else "/v1/messages?beta=true"), headers, body


@pytest.fixture
async def big_server(start_server: StartServer) -> RunningServer:
    """The tiny chat model with room for a real client's prompt (its tokenizer spends a token per byte or two)."""
    server = await start_server(ctx_size=32768, slots=1, batch_size=2048, ubatch_size=512)
    await server.ready()
    return server


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
async def test_captured_request_replays(path: Path, big_server: RunningServer, http: aiohttp.ClientSession) -> None:
    route, headers, body = _load(path)
    async with http.post(big_server.url + route, json=body, headers=headers) as response:
        assert response.status == 200, await response.text()
        if body.get("stream"):
            events = sse_events(await response.text())
            check_sequence(events)
            input_tokens = events[0][1]["message"]["usage"]["input_tokens"]
            stop_reason = events[-2][1]["delta"]["stop_reason"]
            blocks = [data["content_block"]["type"] for name, data in events if name == "content_block_start"]
        else:
            answer = await response.json()
            input_tokens = answer["usage"]["input_tokens"] + answer["usage"]["cache_read_input_tokens"]
            stop_reason, blocks = answer["stop_reason"], [block["type"] for block in answer["content"]]
    assert stop_reason in STOP_REASONS
    if body.get("thinking", {}).get("type") == "adaptive":
        assert "thinking" not in blocks  # the tiny model does not think: adaptive leaves it answering
    count_route = route.replace("/v1/messages", "/v1/messages/count_tokens", 1)
    async with http.post(big_server.url + count_route, json=body, headers=headers) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["input_tokens"] == input_tokens

    body.pop("stream", None)
    accepted = set(inspect.signature(anthropic.AsyncAnthropic(api_key="x").beta.messages.create).parameters)
    known = {k: v for k, v in body.items() if k in accepted}
    extra = {k: v for k, v in body.items() if k not in accepted}
    client = anthropic.AsyncAnthropic(base_url=big_server.url, api_key="unused", max_retries=0)
    async with client, client.beta.messages.stream(**known, extra_body=extra) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason in STOP_REASONS
    assert final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0) == input_tokens
