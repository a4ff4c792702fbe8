"""Fixtures of the server tests: a real server (create_app + AppRunner + TCPSite) on a free port.

Each test gets its own server over tiny random GGUF models, so tests never share
slots, metrics or the prompt cache. Tests that need the llama.cpp libs use
`server` (which depends on `lib_dir` and skips without the libs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from kronk.sdk import AsyncKronk
from kronk.server.app import create_app
from kronk.server.keys import HEALTH, KRONK, METRICS
from kronk.settings import ServerSettings


@dataclass(slots=True)
class RunningServer:
    app: web.Application
    runner: web.AppRunner
    url: str
    """Base URL without the /v1 suffix, e.g. http://127.0.0.1:40123."""

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    @property
    def kronk(self) -> AsyncKronk:
        return self.app[KRONK]

    @property
    def metrics_text(self) -> str:
        return self.app[METRICS].render({}).decode()

    async def ready(self) -> None:
        """Wait until the default model is loaded (readiness 200)."""
        import asyncio

        while not self.app[HEALTH].ready:
            assert self.app[HEALTH].state != "failed", self.app[HEALTH].error
            await asyncio.sleep(0.01)


StartServer = Callable[..., Awaitable[RunningServer]]


def tiny_settings(tiny: dict[str, Path], **overrides: Any) -> ServerSettings:
    base = ServerSettings(
        host="127.0.0.1",
        port=0,
        model=str(tiny["chat"]),
        slots=2,
        threads=1,
        ctx_size=2048,
        batch_size=512,
        ubatch_size=512,
        model_ttl=0,
        max_models=4,
        keepalive=15.0,
        model_paths=True,  # tests name their other tiny models by path
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture
async def start_server(lib_dir: Path, tiny: dict[str, Path]) -> AsyncIterator[StartServer]:
    """Start servers with `tiny_settings(**overrides)`; all are cleaned up after the test."""
    runners: list[web.AppRunner] = []

    async def start(**overrides: Any) -> RunningServer:
        settings = tiny_settings(tiny, **overrides)
        app = create_app(settings)
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=5)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        server = RunningServer(app, runner, f"http://127.0.0.1:{port}")
        return server

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    """A server whose default model is the tiny ChatML model, loaded and ready."""
    running = await start_server()
    await running.ready()
    return running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
