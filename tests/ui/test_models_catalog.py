"""The Models and Catalog pages in real Chromium, pulling from a fake hub on 127.0.0.1."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from kronk.models.catalog import shipped_catalog_text
from tests.manage.fakehub import FakeHub
from tests.server.conftest import StartServer
from tests.ui.conftest import Recorded, open_ui, screenshot, until

REPO = "tiny-org/Tiny-Chat-GGUF"
MODEL = "tiny-org/Tiny-Chat-Q8_0"
EXTRA = """
  - id: test/tiny-chat
    alias: tinychat
    name: Tiny <b>chat</b> <img src=x onerror="window.xssProbe=1">
    description: A tiny model <script>window.xssProbe=2</script>
    category: text-generation
    capabilities: [chat, completion]
    files: [tiny-chat.gguf]
    sources: [{hf: tiny-org/Tiny-Chat-GGUF, files: [Tiny-Chat-Q8_0.gguf]}]
    config: {context_size: 1024, slots: 2}
"""
WATCH = """() => {
  window.progressSeen = [];
  new MutationObserver(() => document.querySelectorAll('.pull p').forEach((p) => window.progressSeen.push(p.textContent)))
    .observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


async def test_pull_progress_survives_a_reload_then_show_and_remove(
        hub: FakeHub, payloads: dict[str, Path], start_server: StartServer, page: Any, page_errors: Recorded) -> None:
    hub.add_file(REPO, "Tiny-Chat-Q8_0.gguf", payloads["chat"].read_bytes())
    hub.gate = threading.Event()  # the download holds after its headers until the test lets it go
    server = await start_server(preload=False)
    await open_ui(page, server, "models")
    await page.get_by_text("No models yet").wait_for()
    await page.fill("#pull-spec", f"{REPO}:Q8_0")
    await page.click("#pull-button")
    row = page.locator(".pull", has_text=f"{REPO}:Q8_0")
    progress = row.locator("p", has_text=re.compile(r"downloading .* of "))
    await progress.wait_for()
    assert re.search(r"0 B of [\d.]+ KB · – · ETA –", await progress.inner_text())  # bytes, speed, ETA
    await screenshot(page, "models-pull")
    await page.reload()  # the pull runs on in the server; the page follows it again (joining the same download)
    await row.wait_for()
    await page.evaluate(WATCH)
    hub.gate.set()
    await page.locator(f'tr[data-model="{MODEL}"]').wait_for()
    seen = await page.evaluate("window.progressSeen")
    assert any("installed" in line for line in seen), seen
    await screenshot(page, "models")
    await page.click(f'tr[data-model="{MODEL}"] a')
    detail = page.locator("#model-detail")
    await detail.wait_for()
    assert "GGUF metadata" in await detail.inner_text() and "architecture" in await detail.inner_text()
    await screenshot(page, "model")
    await detail.locator("button", has_text="Remove").click()
    await page.locator("dialog button", has_text="Remove").click()
    await page.get_by_text("No models yet").wait_for()
    assert page_errors == []


async def test_a_pull_is_cancelled_on_the_server(
        hub: FakeHub, payloads: dict[str, Path], start_server: StartServer, page: Any, page_errors: Recorded) -> None:
    hub.add_file(REPO, "Tiny-Chat-Q8_0.gguf", payloads["chat"].read_bytes())
    hub.gate = threading.Event()
    server = await start_server(preload=False)
    await open_ui(page, server, "models")
    await page.fill("#pull-spec", f"{REPO}:Q8_0")
    await page.click("#pull-button")
    row = page.locator(".pull", has_text=f"{REPO}:Q8_0")
    await row.locator("p", has_text=re.compile(r"downloading .* of ")).wait_for()
    await row.locator("button", has_text="Cancel pull").click()
    async with page.expect_response(lambda response: response.url.endswith("/models/pull/cancel")) as answer:
        await page.locator("dialog button", has_text="Cancel pull").click()
    assert (await answer.value).status == 200
    hub.gate.set()  # the body flows; the server's next progress report ends the pull
    await row.locator("p", has_text="cancelled").wait_for()
    await page.reload()  # the cancelled pull is not followed again, and no model appeared
    await page.get_by_text("No models yet").wait_for()
    assert await page.locator(".pull").count() == 0
    assert page_errors == []


async def test_catalog_update_filter_and_pull(hub: FakeHub, payloads: dict[str, Path], start_server: StartServer,
                                              page: Any, page_errors: Recorded) -> None:
    hub.add_file(REPO, "Tiny-Chat-Q8_0.gguf", payloads["chat"].read_bytes())
    hub.catalog_text = shipped_catalog_text() + EXTRA
    server = await start_server(preload=False)
    await open_ui(page, server, "catalog")
    await page.locator("#catalog-table").wait_for()
    assert await page.locator('tr[data-entry="test/tiny-chat"]').count() == 0
    await page.click("#catalog-update")
    entry = page.locator('tr[data-entry="test/tiny-chat"]')
    await entry.wait_for()
    # Hostile names and descriptions in a catalog are text, never markup.
    assert '<img src=x onerror="window.xssProbe=1">' in await entry.inner_text()
    assert await page.locator("#catalog-table img, #catalog-table b, #catalog-table script").count() == 0
    await page.select_option("#catalog-category", "embedding")
    assert await entry.count() == 0
    await page.select_option("#catalog-category", "text-generation")
    await page.select_option("#catalog-capability", "chat")
    await entry.wait_for()
    await page.fill("#catalog-search", "tinychat")
    assert await page.locator("#catalog-table tbody tr").count() == 1
    await screenshot(page, "catalog")
    await entry.locator("button", has_text="Pull").click()
    await entry.locator("text=installed").wait_for()
    await page.click('tr[data-entry="test/tiny-chat"] a')
    await page.locator("#catalog-detail").wait_for()
    assert "tiny-chat.gguf" in await page.locator("#catalog-detail").inner_text()
    await until(page, "!window.xssProbe")
    assert page_errors == []
