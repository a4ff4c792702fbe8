"""Schemathesis against a real server: the document and the server must agree.

The server (tiny random chat model, real llama.cpp) runs in a thread with its own
event loop; schemathesis' CLI reads /openapi.json and sends generated requests to every
declared inference, model, health and security operation. Management calls that
download or install (pulls, catalog update, libs) are left out: they would leave this
machine. The run fails on any 5xx, any status the document does not list, a response
that does not match its schema, or an operation that mostly rejected the data its own
schema generated (schemathesis' "validation mismatch" warning).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from kronk.server.app import create_app
from kronk.server.keys import HEALTH
from kronk.server.openapi import build_document
from tests import tiny_models
from tests.server.conftest import tiny_settings

pytestmark = pytest.mark.requires_libs

schemathesis = pytest.importorskip("schemathesis")

REPO = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 12
"""Generated cases per operation and phase; the whole run stays well under two minutes here."""
EXCLUDED = [
    "/v1/kronk/models/pull", "/v1/kronk/catalog/update", "/v1/kronk/libs/pull", "/v1/kronk/libs/upgrade",
    "/v1/kronk/libs/jobs",
]
EXCLUDED_REGEX = r"^/v1/kronk/(catalog/.+/pull|libs/installs/.+|peer/uploads/.+/(commit|files/.+))$"
"""A pushed chunk must match the sha256 in its path and a commit needs every byte of an upload: generated data
can only be refused (tests/manage/test_peer_models.py drives both with real uploads)."""
CONFIG = """
[warnings]
fail-on = ["validation_mismatch"]
"""


def route_models(tiny: dict[str, Path]) -> dict[str, str]:
    """The tiny model each route is fuzzed with where the default chat model cannot serve it."""
    rerank = tiny["embed"].with_name("tiny-rerank.gguf")
    if not rerank.exists():
        tiny_models.write_llama_model(rerank, pooling_type=4, name="tiny-rerank")  # type: ignore[arg-type]
    return {"/v1/embeddings": str(tiny["embed"]), "/v1/rerank": str(rerank), "/v1/reranking": str(rerank),
            "/v1/completions": str(tiny["fim"])}


class ThreadedServer:
    """A server on its own event loop in a daemon thread, for a synchronous client (schemathesis)."""

    def __init__(self, tiny: dict[str, Path]) -> None:
        self.models = route_models(tiny)
        self.loop = asyncio.new_event_loop()
        self.app = create_app(tiny_settings(tiny))
        self.runner = web.AppRunner(self.app, handler_cancellation=True, shutdown_timeout=5)
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-server", daemon=True)
        self.url = ""

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=120)
        return self

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        while not self.app[HEALTH].ready:
            assert self.app[HEALTH].state != "failed", self.app[HEALTH].error
            await asyncio.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture
def threaded_server(lib_dir: Path, tiny: dict[str, Path]) -> Iterator[ThreadedServer]:
    with ThreadedServer(tiny) as server:
        yield server


def _run_schemathesis(server: ThreadedServer, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Any]:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    report = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
        "run", f"{server.url}/openapi.json", "--url", server.url,
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                    "response_schema_conformance,response_headers_conformance",
        "--mode", "all", "--max-examples", str(MAX_EXAMPLES), "--seed", "1", "--workers", "1",
        "--request-timeout", "60", "--no-shrink", "--suppress-health-check", "all",
        "--report", "json", "--report-json-path", str(report),
        *[arg for path in EXCLUDED for arg in ("--exclude-path", path)], "--exclude-path-regex", EXCLUDED_REGEX,
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.server.schemathesis_hooks",
           "KRONK_FUZZ_MODELS": json.dumps(server.models), "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    return done, json.loads(report.read_text()) if report.exists() else None


def test_the_document_and_the_server_agree(threaded_server: ThreadedServer, tmp_path: Path) -> None:
    done, report = _run_schemathesis(threaded_server, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-20000:]
    assert "mostly rejected generated data" not in output, output[-20000:]
    assert report is not None, output[-5000:]
    print(output[-3000:])


def test_every_route_declares_its_operation(threaded_server: ThreadedServer) -> None:
    from kronk.server.openapi import undeclared_routes

    assert undeclared_routes(threaded_server.app) == []
    schemas = build_document(threaded_server.app)["components"]["schemas"]
    assert all("-" not in name and "__" not in name for name in schemas), sorted(schemas)
