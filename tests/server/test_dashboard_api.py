"""The browser UI's server views: /v1/kronk/running, /v1/kronk/system and /v1/kronk/system/history."""

from __future__ import annotations

import json

import aiohttp
import pytest

from kronk.server.history import HISTORY
from tests.server.conftest import RunningServer

pytestmark = pytest.mark.requires_libs


async def test_running_shows_each_slot_while_a_stream_generates(server: RunningServer,
                                                                http: aiohttp.ClientSession) -> None:
    body = {"prompt": "hello there", "max_tokens": 400, "ignore_eos": True, "stream": True}
    async with http.post(server.v1 + "/completions", json=body) as stream:
        assert stream.status == 200
        await stream.content.readline()  # the first chunk: the slot is generating now
        async with http.get(server.v1 + "/kronk/running") as response:
            assert response.status == 200
            running = await response.json()
        await stream.read()
    [model] = running["data"]
    assert model["id"] == server.kronk.ps()[0].id and model["kind"] == "chat"
    assert model["kv_cells_total"] >= 2048 and model["prompt_cache_budget_bytes"] > 0
    assert [slot["seq_id"] for slot in model["slots"]] == [0, 1]
    busy = [slot for slot in model["slots"] if slot["state"] != "idle"]
    assert len(busy) == 1 and busy[0]["n_prompt"] > 0 and busy[0]["n_cached"] >= busy[0]["n_prompt"]
    assert model["kv_cells_used"] >= busy[0]["n_cached"]
    async with http.get(server.v1 + "/kronk/running") as response:
        after = (await response.json())["data"][0]
    assert all(slot["state"] == "idle" and slot["n_generated"] == 0 for slot in after["slots"])
    assert after["completion_tokens_total"] == 400 and after["prompt_tokens_total"] > 0


async def test_running_is_empty_without_models(start_server: object, http: aiohttp.ClientSession) -> None:
    server = await start_server(preload=False)  # type: ignore[operator]
    async with http.get(server.v1 + "/kronk/running") as response:
        assert response.status == 200
        assert (await response.json())["data"] == []


async def test_system_reports_llama_devices_versions_and_uptime(server: RunningServer,
                                                                http: aiohttp.ClientSession) -> None:
    async with http.get(server.v1 + "/kronk/system") as response:
        assert response.status == 200
        system = await response.json()
    assert system["devices"] and system["devices"][0]["type"] == "cpu"
    assert system["devices"][0]["memory_total"] > 0
    assert system["llama"]["build"] > 0 and system["features"].startswith("CPU")
    assert system["uptime_seconds"] >= 0 and system["memory_total"] > 0 and system["process_rss"] > 0
    assert system["security"] == "off"


async def test_history_samples_tokens_ttft_and_requests(server: RunningServer, http: aiohttp.ClientSession) -> None:
    history = server.app[HISTORY]
    history.sample()  # close the interval the server started with
    async with http.post(server.v1 + "/completions",
                         json={"prompt": "hi", "max_tokens": 8, "ignore_eos": True, "stream": True}) as response:
        await response.read()
    history.sample()
    async with http.get(server.v1 + "/kronk/system/history", params={"minutes": "5"}) as response:
        assert response.status == 200
        body = await response.json()
    assert body["interval_seconds"] == 5.0 and body["window_seconds"] == 900.0
    last = body["data"][-1]
    assert last["requests"] == 1 and last["completion_tokens_per_second"] > 0 and last["ttft_ms"] > 0
    assert body["data"][-2]["requests"] == 0 and body["data"][-2]["ttft_ms"] is None


@pytest.mark.parametrize("minutes", ["0", "-1", "61", "soon", "nan", "inf"])
async def test_history_refuses_a_bad_window(server: RunningServer, http: aiohttp.ClientSession, minutes: str) -> None:
    async with http.get(server.v1 + "/kronk/system/history", params={"minutes": minutes}) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert error["param"] == "minutes" and repr(minutes) in error["message"]


async def test_views_are_admin_only_under_security(start_server: object, http: aiohttp.ClientSession,
                                                   isolated_home: object) -> None:
    server = await start_server(security="management", preload=False)  # type: ignore[operator]
    for path in ("/kronk/running", "/kronk/system", "/kronk/system/history", "/kronk/libs/status"):
        async with http.get(server.v1 + path) as response:
            assert response.status == 401, path
            assert json.loads(await response.text())["error"]["code"]
