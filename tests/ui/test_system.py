"""System page: llama.cpp's devices, versions, uptime, and charts drawn from the metrics history."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from kronk.server.history import HISTORY
from tests.server.conftest import RunningServer
from tests.ui.conftest import Recorded, open_ui, screenshot

pytestmark = pytest.mark.requires_libs


async def test_system_page_shows_devices_versions_and_charts(server: RunningServer, page: Any,
                                                             page_errors: Recorded) -> None:
    history = server.app[HISTORY]
    now = time.time()
    clock = iter(now - 5.0 * k for k in range(9, -1, -1))  # ten sample times, 5 s apart, the last one now
    history.clock = lambda: next(clock, time.time())  # intervals are closed by hand below: no waiting for the sampler
    history.sample()
    async with aiohttp.ClientSession() as http:
        for requests in (1, 3, 0, 2, 4, 1, 0, 2, 1):
            for _ in range(requests):
                async with http.post(server.v1 + "/completions", json={"prompt": "hello", "max_tokens": 64,
                                                                       "ignore_eos": True}) as response:
                    assert response.status == 200
            history.sample()
    history.clock = time.time

    await open_ui(page, server, "system")
    await page.get_by_text("b11434").first.wait_for()
    text = await page.locator("#page-system").inner_text()
    assert "CPU" in text and "Uptime" in text and "CPU features" in text
    devices = page.locator("section", has_text="Devices (llama.cpp)").locator("tbody tr")
    assert await devices.count() >= 1 and "CPU" in await devices.first.inner_text()

    charts = page.locator("figure.ops-chart")
    await charts.first.locator("svg path.ops-line").first.wait_for()
    assert await charts.count() == 4
    tokens = charts.filter(has_text="Tokens per second")
    assert await tokens.locator("path.ops-line").count() == 2  # generated and prompt
    label = await tokens.locator("svg title").text_content()
    assert label.startswith("Tokens per second: latest generated")
    assert await charts.filter(has_text="Time to first token").locator("path.ops-line").count() == 1
    await charts.first.scroll_into_view_if_needed()
    await screenshot(page, "system")
    assert page_errors == []
