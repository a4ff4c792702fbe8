"""Security page under `--security full`: settings, key create/delete, and a token made in the UI that works."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.server.conftest import StartServer
from tests.ui.conftest import Recorded, admin_token, open_ui, screenshot

pytestmark = pytest.mark.requires_libs


async def _sign_in(page: Any, token: str) -> None:
    await page.locator("#token").fill(token)
    await page.get_by_role("button", name="Sign in").click()


async def test_keys_and_a_token_made_in_the_ui_that_works(start_server: StartServer, page: Any,
                                                          page_errors: Recorded) -> None:
    from playwright.async_api import expect  # here: without playwright the `browser` fixture says so

    server = await start_server(security="full")
    await server.ready()
    await open_ui(page, server, "security")
    await _sign_in(page, admin_token())
    root = page.locator("#page-security")
    await root.get_by_text("full — every call needs a token").wait_for()
    keys = root.locator("section", has_text="Signing keys").locator("tbody tr")
    await keys.filter(has_text="signing").wait_for()
    assert await keys.count() == 1

    await root.get_by_role("button", name="Create key").click()
    await expect(keys).to_have_count(2)
    newest = await keys.filter(has_text="signing").locator("td").first.inner_text()

    await root.get_by_label("Subject").fill("ui-made <script>alert(1)</script>")
    await root.get_by_label("Duration").fill("2h")
    await root.get_by_label("chat-completions", exact=True).check()
    await root.get_by_label("chat-completions window").select_option("day")
    await root.get_by_label("chat-completions limit").fill("5")
    await root.get_by_role("button", name="Create token").click()
    box = root.locator(".ops-secret")
    await box.wait_for()
    token = await box.get_by_label("The new token").input_value()
    text = await box.inner_text()
    assert "shown only once" in text and "chat-completions 5/day" in text
    assert "ui-made <script>alert(1)</script>" in text  # the subject comes back as text
    assert await root.locator("script").count() == 0
    await screenshot(page, "security")

    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    async with aiohttp.ClientSession() as http:
        async with http.post(server.v1 + "/chat/completions", json=body) as response:
            assert response.status == 401
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post(server.v1 + "/chat/completions", json=body, headers=headers) as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["choices"][0]["message"]["role"] == "assistant"
        async with http.post(server.v1 + "/embeddings", json={"input": "x"}, headers=headers) as response:
            assert response.status == 403  # granted chat-completions only

        await root.get_by_role("button", name="Done — hide it").click()
        assert await box.count() == 0
        await root.get_by_role("button", name=f"Delete key {newest}").click()
        dialog = page.locator("dialog.confirm")
        assert "stops working" in await dialog.inner_text()
        await dialog.get_by_role("button", name="Confirm").click()
        await expect(keys).to_have_count(1)
        async with http.post(server.v1 + "/chat/completions", json=body, headers=headers) as response:
            assert response.status == 401  # its key is gone: the token is revoked
    assert page_errors == []
