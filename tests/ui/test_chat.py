"""The chat page in real Chromium against SmolLM2: streaming, stats, stop, errors mid-stream, XSS probes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from kronk.server.keys import STREAMS
from tests.server.conftest import RunningServer, StartServer
from tests.ui.conftest import Recorded, open_ui, screenshot, until

pytestmark = pytest.mark.requires_libs
PROBE = '<img src=x onerror="window.xssProbe=1">'


async def _long_replies(page: Any) -> None:
    """Ask every chat request to ignore EOS, so a reply is still streaming when the test acts."""

    async def handle(route: Any) -> None:
        body = json.loads(route.request.post_data)
        await route.continue_(post_data=json.dumps({**body, "ignore_eos": True}))

    await page.route("**/v1/chat/completions", handle)


async def _smol_server(start_server: StartServer, smollm2: Path) -> RunningServer:
    server = await start_server(model=str(smollm2), ctx_size=4096)
    await server.ready()
    return server


async def test_chat_streams_a_reply_with_stats(start_server: StartServer, smollm2: Path, page: Any,
                                               page_errors: Recorded) -> None:
    server = await _smol_server(start_server, smollm2)
    await open_ui(page, server, "chat")
    await page.wait_for_selector("#chat-model option", state="attached")
    await page.fill("#chat-max_tokens", "40")
    await page.fill("#chat-temperature", "0")
    await page.fill("#chat-input", "What is the capital of France?")
    await page.keyboard.press("Enter")
    stats = page.locator(".msg.assistant .stats")
    await stats.wait_for()
    assert "tokens/s" in await stats.inner_text() and "TTFT" in await stats.inner_text()
    reply = await page.locator(".msg.assistant .markdown").inner_text()
    assert reply.strip()
    # The conversation is kept in this browser and comes back after a reload.
    await page.reload()
    await page.wait_for_selector(".msg.assistant .markdown")
    assert (await page.locator(".msg.assistant .markdown").inner_text()).strip() == reply.strip()
    assert await page.locator(".convos li").count() == 1
    await screenshot(page, "chat")
    # Regenerate replaces the last reply with a new one.
    await page.click("text=Regenerate")
    await page.locator(".msg.assistant .stats").wait_for()
    assert await page.locator(".msg.assistant").count() == 1
    assert page_errors == []


async def test_stop_ends_the_stream(start_server: StartServer, smollm2: Path, page: Any,
                                    page_errors: Recorded) -> None:
    server = await _smol_server(start_server, smollm2)
    await _long_replies(page)
    await open_ui(page, server, "chat")
    await page.wait_for_selector("#chat-model option", state="attached")
    await page.fill("#chat-max_tokens", "3000")
    await page.fill("#chat-input", "Tell me a very long story.")
    await page.click("#chat-send")
    await until(page, "document.querySelector('.msg.assistant .markdown')?.textContent.length > 20")
    await page.click("#chat-stop")
    await page.wait_for_selector("text=(stopped)")
    assert await page.locator("#chat-send").is_visible()
    assert page_errors == []


async def test_an_error_in_the_middle_of_a_stream_is_shown(start_server: StartServer, smollm2: Path, page: Any,
                                                           page_errors: Recorded) -> None:
    server = await _smol_server(start_server, smollm2)
    await _long_replies(page)
    await open_ui(page, server, "chat")
    await page.wait_for_selector("#chat-model option", state="attached")
    await page.fill("#chat-max_tokens", "3000")
    await page.fill("#chat-input", "Tell me a very long story.")
    await page.click("#chat-send")
    await until(page, "document.querySelector('.msg.assistant .markdown')?.textContent.length > 10")
    server.app[STREAMS].stop_all()  # what a shutdown does: open streams end with the API's error event
    error = page.locator(".msg.assistant .error")
    await error.wait_for()
    assert "the server is shutting down (shutting_down)" in await error.inner_text()
    assert page_errors == []


async def test_html_in_replies_and_model_names_is_text(start_server: StartServer, smollm2: Path, tmp_path: Path,
                                                       page: Any, page_errors: Recorded) -> None:
    named = tmp_path / f"{PROBE}.gguf"
    try:
        os.link(smollm2, named)  # the server resolves symlinks; a hard link (or copy) keeps the hostile name
    except OSError:
        shutil.copyfile(smollm2, named)
    server = await start_server(model=str(named), ctx_size=4096)
    await server.ready()
    reply = f"Here: {PROBE} and <script>window.xssProbe=2</script> **bold** [x](javascript:alert(1))"
    frames = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": reply}}], "model": PROBE},
              {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
    sse = "".join(f"data: {json.dumps(frame)}\n\n" for frame in frames) + "data: [DONE]\n\n"

    async def fake_reply(route: Any) -> None:  # the model's words, as a hostile model could write them
        await route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=sse)

    await page.route("**/v1/chat/completions", fake_reply)
    await open_ui(page, server, "chat")
    await page.wait_for_selector("#chat-model option", state="attached")
    assert PROBE in await page.locator("#chat-model").inner_text()
    await page.fill("#chat-input", PROBE)
    await page.keyboard.press("Enter")
    await page.locator(".msg.assistant .actions").wait_for()
    assert PROBE in await page.locator(".msg.user .markdown").inner_text()
    text = await page.locator(".msg.assistant .markdown").inner_text()
    assert PROBE in text and "<script>" in text
    assert await page.locator(".msg img").count() == 0
    assert await page.locator(".msg script").count() == 0
    assert await page.locator(".msg strong").inner_text() == "bold"
    assert await page.locator(".msg a").count() == 0  # javascript: links stay text
    assert await page.evaluate("window.xssProbe") is None
    assert page_errors == []


async def test_json_schema_mode_gives_json(start_server: StartServer, smollm2: Path, page: Any,
                                           page_errors: Recorded) -> None:
    server = await _smol_server(start_server, smollm2)
    await open_ui(page, server, "chat")
    await page.wait_for_selector("#chat-model option", state="attached")
    await page.fill("#chat-max_tokens", "60")
    await page.check("#chat-json")
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"]}
    await page.fill("#chat-schema", json.dumps(schema))
    await page.fill("#chat-input", "Name a city in France as JSON.")
    await page.keyboard.press("Enter")
    await page.locator(".msg.assistant .stats").wait_for()
    reply = json.loads(await page.locator(".msg.assistant .markdown").inner_text())
    assert isinstance(reply["city"], str)
    # A schema that is not JSON is refused in the page, before any request.
    await page.fill("#chat-schema", "{not json")
    await page.fill("#chat-input", "again")
    await page.keyboard.press("Enter")
    await page.locator(".toast.error", has_text="not valid JSON").wait_for()
    assert await page.locator(".msg.user").count() == 1 and await page.input_value("#chat-input") == "again"
    assert page_errors == []


async def test_management_mode_chat_needs_no_sign_in(start_server: StartServer, smollm2: Path, page: Any,
                                                     page_errors: Recorded) -> None:
    server = await start_server(model=str(smollm2), ctx_size=4096, security="management")
    await server.ready()
    await open_ui(page, server, "chat")
    assert await page.locator("#nav a").all_inner_texts() == ["Chat"]
    await page.fill("#chat-max_tokens", "8")
    await page.fill("#chat-input", "Hi")
    await page.keyboard.press("Enter")
    await page.locator(".msg.assistant .stats").wait_for()
    await page.goto(f"{server.url}/#/models")
    await page.wait_for_selector("form.login")  # the management pages ask for a token
    assert page_errors == []


def _sse(frames: list[dict[str, Any]], done: bool = True) -> str:
    return "".join(f"data: {json.dumps(frame)}\n\n" for frame in frames) + ("data: [DONE]\n\n" if done else "")


async def _fake_replies(page: Any, bodies: list[str]) -> None:
    """Answer the next chat requests with these SSE bodies (shapes the server's own tests pin down)."""

    async def fulfill(route: Any) -> None:
        await route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=bodies.pop(0))

    await page.route("**/v1/chat/completions", fulfill)


async def test_reasoning_and_tool_calls_are_shown_apart_and_a_dropped_stream_says_so(
        start_server: StartServer, page: Any, page_errors: Recorded) -> None:
    server = await start_server(preload=False)
    delta = lambda **d: {"choices": [{"index": 0, "delta": d}]}  # noqa: E731
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    await _fake_replies(page, [
        _sse([delta(role="assistant", reasoning_content="The user wants "), delta(reasoning_content="the weather."),
              delta(tool_calls=[call]), delta(tool_calls=[{"index": 0, "function": {"arguments": '{"city": "Paris"}'}}]),
              {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
               "usage": {"prompt_tokens": 5, "completion_tokens": 12, "total_tokens": 17}}]),
        _sse([delta(role="assistant", content="Half a sent")], done=False),
    ])
    await open_ui(page, server, "chat")
    await page.fill("#chat-input", "Weather in Paris?")
    await page.keyboard.press("Enter")
    reply = page.locator(".msg.assistant").last
    await reply.locator(".stats").wait_for()
    assert await reply.locator(".reasoning").inner_text() == "The user wants the weather."
    assert await reply.locator(".toolcall").inner_text() == 'tool call: get_weather({"city": "Paris"})'
    assert "12 tokens" in await reply.locator(".stats").inner_text()
    await page.fill("#chat-input", "And tomorrow?")
    await page.keyboard.press("Enter")
    await reply.locator(".error").wait_for()
    assert "stream dropped" in await reply.locator(".error").inner_text()
    assert "Half a sent" in await reply.locator(".markdown").inner_text()  # what arrived is kept
    assert page_errors == []



PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cfc0"
                    "f01f0005000201e5273a920000000049454e44ae426082")


async def test_images_attach_to_a_model_with_a_projector(hub: Any, payloads: dict[str, Path], start_server: StartServer,
                                                         page: Any, page_errors: Recorded) -> None:
    import aiohttp

    repo = "tiny-org/Tiny-Vision-GGUF"
    hub.add_file(repo, "Tiny-Vision-Q4_K_M.gguf", payloads["chat"].read_bytes())
    hub.add_file(repo, "mmproj-Tiny-Vision-f16.gguf", payloads["mmproj"].read_bytes())
    server = await start_server(preload=False)
    async with aiohttp.ClientSession() as http:
        async with http.post(server.v1 + "/kronk/models/pull", json={"model": f"{repo}:Q4_K_M"}) as response:
            assert "event: done" in await response.text()
    sent: list[dict[str, Any]] = []

    async def capture(route: Any) -> None:
        sent.append(json.loads(route.request.post_data))
        await route.fulfill(status=200, headers={"Content-Type": "text/event-stream"},
                            body=_sse([{"choices": [{"index": 0, "delta": {"content": "A red pixel."}}]}]))

    await page.route("**/v1/chat/completions", capture)
    await open_ui(page, server, "chat")
    await page.select_option("#chat-model", "tiny-org/Tiny-Vision-Q4_K_M")
    assert await page.locator("#chat-image").is_visible()
    await page.set_input_files("#chat-image", files=[{"name": "pixel.png", "mimeType": "image/png", "buffer": PNG}])
    await page.locator(".composer img.thumb").wait_for()
    await page.fill("#chat-input", "What is this?")
    await page.keyboard.press("Enter")
    await page.locator(".msg.assistant .stats").wait_for()
    (text, image) = sent[0]["messages"][-1]["content"]
    assert text == {"type": "text", "text": "What is this?"}
    assert image["type"] == "image_url" and image["image_url"]["url"].startswith("data:image/png;base64,")
    assert await page.locator(".msg.user img.thumb").count() == 1
    assert page_errors == []
