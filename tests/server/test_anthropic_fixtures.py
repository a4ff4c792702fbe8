"""Real Anthropic client requests, captured (tests/server/fixtures/clients/claude_code_*.json), replayed.

Each fixture is one request a real client sent Kronk ({"client", "note", "body"},
optionally "path" and "headers"). It is replayed against the tiny model as sent
(only `max_tokens` lowered, so the run stays short): raw over HTTP, through the
official `anthropic` client's beta namespace, and to count_tokens, which must count
the prompt /v1/messages evaluated.
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
_PASSED_HEADERS = ("anthropic-", "x-app", "x-claude-code", "user-agent")


def _load(path: Path) -> dict[str, Any]:
    fixture = json.loads(path.read_text())
    body = dict(fixture["body"])
    body["model"] = ""
    body["max_tokens"] = MAX_TOKENS
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        body["thinking"] = {**thinking, "budget_tokens": MAX_TOKENS - 1}
    headers = {k: v for k, v in (fixture.get("headers") or {}).items() if k.lower().startswith(_PASSED_HEADERS)}
    return {"path": fixture.get("path", "/v1/messages?beta=true"), "headers": headers, "body": body}


@pytest.fixture
async def big_server(start_server: StartServer) -> RunningServer:
    """The tiny chat model with room for a real client's prompt (its tokenizer spends a token per byte or two)."""
    server = await start_server(ctx_size=32768, slots=1, batch_size=2048, ubatch_size=512)
    await server.ready()
    return server


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
async def test_captured_request_replays(path: Path, big_server: RunningServer, http: aiohttp.ClientSession) -> None:
    case = _load(path)
    body, headers = case["body"], case["headers"]
    url = big_server.url + case["path"]
    async with http.post(url, json=body, headers=headers) as response:
        assert response.status == 200, await response.text()
        if body.get("stream"):
            events = sse_events(await response.text())
            check_sequence(events)
            input_tokens = events[0][1]["message"]["usage"]["input_tokens"]
            stop_reason = events[-2][1]["delta"]["stop_reason"]
        else:
            answer = await response.json()
            input_tokens = answer["usage"]["input_tokens"] + answer["usage"]["cache_read_input_tokens"]
            stop_reason = answer["stop_reason"]
    assert stop_reason in ("end_turn", "max_tokens", "tool_use", "stop_sequence")
    count_url = big_server.url + case["path"].replace("/v1/messages", "/v1/messages/count_tokens", 1)
    async with http.post(count_url, json=body, headers=headers) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["input_tokens"] == input_tokens


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
async def test_captured_request_through_the_anthropic_client(path: Path, big_server: RunningServer) -> None:
    body = _load(path)["body"]
    body.pop("stream", None)
    accepted = set(inspect.signature(anthropic.AsyncAnthropic(api_key="x").beta.messages.create).parameters)
    known = {k: v for k, v in body.items() if k in accepted}
    extra = {k: v for k, v in body.items() if k not in accepted}
    async with anthropic.AsyncAnthropic(base_url=big_server.url, api_key="unused", max_retries=0) as client:
        async with client.beta.messages.stream(**known, extra_body=extra) as stream:
            final = await stream.get_final_message()
    assert final.stop_reason in ("end_turn", "max_tokens", "tool_use", "stop_sequence")
    assert final.usage.input_tokens > 0
