"""`kronk chat` with piped input: against a real server (in a background thread) and with --local."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from kronk.cli.main import cli
from kronk.server.app import create_app
from kronk.server.keys import HEALTH, METRICS
from tests.server.conftest import tiny_settings

pytestmark = pytest.mark.requires_libs


class ThreadedServer:
    """A real server on its own event loop, so the CLI (which runs asyncio.run) can talk to it."""

    def __init__(self, tiny: dict[str, Path]) -> None:
        self.loop = asyncio.new_event_loop()
        self.app = create_app(tiny_settings(tiny))
        self.runner = web.AppRunner(self.app, handler_cancellation=True)
        self.url = ""
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        while not self.app[HEALTH].ready:
            await asyncio.sleep(0.01)

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(60)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()

    def chat_requests(self) -> float:
        labels = {"route": "/v1/chat/completions", "method": "POST", "status": "200"}
        return self.app[METRICS].registry.get_sample_value("kronk_http_requests_total", labels) or 0.0


@pytest.fixture
def threaded_server(lib_dir: Path, tiny: dict[str, Path]) -> Iterator[ThreadedServer]:
    with ThreadedServer(tiny) as server:
        yield server


def chat(*args: str, input: str) -> Result:
    return CliRunner().invoke(cli, ["chat", *args], input=input, catch_exceptions=False)


def test_piped_conversation_against_a_server(threaded_server: ThreadedServer) -> None:
    script = "hello\n\n/reset\nsecond question\n/exit\nnever sent\n"
    result = chat("--url", threaded_server.url + "/v1", "--max-tokens", "6", "--system", "Be brief.", input=script)
    assert result.exit_code == 0, result.output
    assert "(conversation reset)" in result.output
    assert threaded_server.chat_requests() == 2  # blank line skipped, nothing after /exit


def test_end_of_input_ends_the_chat(threaded_server: ThreadedServer) -> None:
    result = chat("--url", threaded_server.url, "--max-tokens", "3", input="one\ntwo\n")
    assert result.exit_code == 0
    assert threaded_server.chat_requests() == 2


def test_server_errors_are_shown_and_the_chat_goes_on(threaded_server: ThreadedServer) -> None:
    result = chat("--url", threaded_server.url, "--model", "nobody/nothing", input="hi\n/help\n")
    assert result.exit_code == 0
    assert "error: model 'nobody/nothing' not found" in result.output
    assert "/reset" in result.output  # /help still answered after the error


def test_no_server_is_a_clear_error() -> None:
    result = chat("--url", "http://127.0.0.1:9", input="hi\n")
    assert result.exit_code == 1
    assert "no Kronk server at http://127.0.0.1:9" in result.output
    assert "Traceback" not in result.output


def test_local_chat_runs_the_model_in_process(lib_dir: Path, tiny: dict[str, Path]) -> None:
    result = chat("--local", "--model", str(tiny["chat"]), "--max-tokens", "4", "--ctx-size", "512",
                  "--threads", "1", input="hello\n/reset\nagain\n")
    assert result.exit_code == 0, result.output
    assert "(conversation reset)" in result.output


def test_local_only_flags_need_local() -> None:
    result = chat("--ctx-size", "512", input="")
    assert result.exit_code == 2
    assert "--local" in result.output
