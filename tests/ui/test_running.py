"""Running models page: a loaded model with its slots, live while a stream generates, and unload."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.server.conftest import RunningServer
from tests.ui.conftest import Recorded, open_ui, screenshot

pytestmark = pytest.mark.requires_libs


async def _generate(server: RunningServer, started: asyncio.Event) -> None:
    """Streams back to back (the tiny model writes ~1500 tokens/s) until cancelled, so a slot stays busy."""
    body = {"prompt": "Once upon a time", "max_tokens": 1900, "ignore_eos": True, "stream": True}
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.post(server.v1 + "/completions", json=body) as response:
                async for _ in response.content:
                    started.set()


async def test_running_page_shows_slots_live_and_unloads(server: RunningServer, page: Any,
                                                         page_errors: Recorded) -> None:
    model_id = server.kronk.ps()[0].id
    await open_ui(page, server, "running")
    card = page.locator("article.ops-card", has_text=model_id)
    await card.wait_for()
    assert await card.locator("h3").inner_text() == model_id
    assert await card.locator("table tbody tr").count() == 2  # two slots
    assert "KV cache" in await card.inner_text() and "RAM prompt cache" in await card.inner_text()

    started = asyncio.Event()
    stream = asyncio.create_task(_generate(server, started))
    try:
        await asyncio.wait_for(started.wait(), 30)
        await card.locator("td.ops-state-generating").wait_for()  # the page refreshes by itself
        await screenshot(page, "running")
    finally:
        stream.cancel()
        await asyncio.gather(stream, return_exceptions=True)

    await card.get_by_role("button", name=f"Unload {model_id}").click()
    dialog = page.locator("dialog.confirm")
    assert model_id in await dialog.inner_text()
    await dialog.get_by_role("button", name="Confirm").click()
    await page.get_by_text("No models loaded").wait_for()
    assert server.kronk.ps() == []
    assert page_errors == []


async def test_a_hostile_model_name_is_shown_as_text(server: RunningServer, tiny: dict[str, Path], tmp_path: Path,
                                                     page: Any, page_errors: Recorded) -> None:
    hostile = tmp_path / '<img src=x onerror="document.title=1">&amp;.gguf'
    shutil.copyfile(tiny["chat"], hostile)
    async with aiohttp.ClientSession() as http:
        async with http.post(server.v1 + "/completions", json={"model": str(hostile), "prompt": "hi",
                                                               "max_tokens": 2}) as response:
            assert response.status == 200, await response.text()
    await open_ui(page, server, "running")
    card = page.locator("article.ops-card", has_text=str(hostile))
    await card.wait_for()
    assert await card.locator("h3").inner_text() == str(hostile)
    assert await page.locator("#page-running img").count() == 0
    assert await page.title() != "1"
    assert page_errors == []
