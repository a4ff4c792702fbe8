"""The count of open streams against a real pool: the `kronk_streams_active` gauge on
/metrics, the server's stream registry and the pool's per-model `active` count all read N
while N streams run, and fall as streams end — by finishing or by the client going away."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kronk.server.keys import STREAMS
from tests import tiny_models
from tests.server.conftest import RunningServer, StartServer

pytestmark = pytest.mark.requires_libs


async def _gauge(http: aiohttp.ClientSession, server: RunningServer) -> float:
    async with http.get(server.url + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "kronk_streams_active":
                return float(sample.value)
    raise AssertionError("kronk_streams_active is missing from /metrics")


async def _counts(http: aiohttp.ClientSession, server: RunningServer) -> tuple[float, int, int, int]:
    """(gauge, registry size, pool `active`, ps() active_streams) for the one loaded model."""
    (loaded,) = server.kronk.pool.models()
    (row,) = server.kronk.ps()
    return await _gauge(http, server), len(server.app[STREAMS]), loaded.active, row.active_streams


async def _until_counts(http: aiohttp.ClientSession, server: RunningServer, n: int) -> None:
    """Wait until every count reads `n` (polled: nothing here depends on timing)."""
    for _ in range(3000):
        counts = await _counts(http, server)
        if counts == (float(n), n, n, n):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"counts stayed at {counts}, expected {n}")


async def _open(http: aiohttp.ClientSession, server: RunningServer, path: str, body: dict) -> aiohttp.ClientResponse:
    response = await http.post(server.v1 + path, json={**body, "stream": True})
    assert response.status == 200
    assert (await response.content.readline()).startswith((b"data: ", b"event: "))  # generating
    return response


async def test_stream_counts_follow_streams_that_finish_and_clients_that_leave(
        start_server: StartServer, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    # a tiny model trained for 8192 tokens: the three streams share its KV cache without pressure
    model = tiny_models.write_chat_model(tmp_path / "tiny-chat-8k.gguf", n_ctx_train=8192)
    server = await start_server(model=str(model), slots=3, ctx_size=8192)
    await server.ready()
    assert await _gauge(http, server) == 0
    # all three decode in the same batch, one token per step each: the short one ends first
    long = {"max_tokens": 3000, "ignore_eos": True, "temperature": 0}
    chat = {"messages": [{"role": "user", "content": "Tell me a story."}], **long}
    dropped = await _open(http, server, "/chat/completions", chat)
    also_dropped = await _open(http, server, "/completions", {"prompt": "once upon a time", **long})
    finishing = await _open(http, server, "/chat/completions", {**chat, "max_tokens": 600})
    assert await _counts(http, server) == (3.0, 3, 3, 3)

    # a stream that runs to its end: [DONE], then it no longer counts
    rest = (await finishing.content.read()).decode()
    assert rest.rstrip().endswith("data: [DONE]") and '"finish_reason":"length"' in rest
    finishing.close()
    await _until_counts(http, server, 2)

    # clients that disconnect mid-stream
    dropped.close()
    await _until_counts(http, server, 1)
    also_dropped.close()
    await _until_counts(http, server, 0)
    stats = server.kronk.stats()
    assert sum(s.active_slots for s in stats.values()) == 0
    assert sum(s.completion_tokens_total for s in stats.values()) < 2 * 3000 + 600
