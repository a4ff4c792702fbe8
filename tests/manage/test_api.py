"""The management API as a real aiohttp app (pytest-aiohttp client), against the fake hub."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from kronk.manage.api import ManagementContext, PoolView, create_management_app
from kronk.manage.libs import LibsManager
from kronk.models.catalog import Catalog, shipped_catalog_text
from kronk.models.store import ModelStore
from kronk.paths import models_dir
from kronk.sdk.requests import LoadedModelStatus
from tests.manage.fakehub import FakeHub, sha256

REPO = "tiny-org/Tiny-Chat-GGUF"
EXTRA = """
  - id: test/tiny-chat
    alias: tinychat
    category: text-generation
    capabilities: [chat, completion]
    files: [tiny-chat.gguf]
    sources: [{hf: tiny-org/Tiny-Chat-GGUF, files: [Tiny-Chat-Q8_0.gguf]}]
    config: {context_size: 1024, slots: 2}
"""


class StaticPool:
    """A PoolView with fixed rows: the engine's pool is another package; this is its contract."""

    def __init__(self) -> None:
        self.unloaded: list[str] = []

    def ps(self) -> list[LoadedModelStatus]:
        return [LoadedModelStatus(id="tiny-org/Tiny-Chat-Q8_0", path="/m/x.gguf", size_bytes=1234, context_size=2048,
                                  slots=4, active_streams=1, queued=0, idle_seconds=2.5, expires_in_seconds=297.5)]

    async def unload(self, model_id: str) -> bool:
        self.unloaded.append(model_id)
        return model_id == "tiny-org/Tiny-Chat-Q8_0"


@pytest.fixture
def pool() -> StaticPool:
    assert isinstance(StaticPool(), PoolView)
    return StaticPool()


@pytest.fixture
async def client(aiohttp_client: Any, hub: FakeHub, pool: StaticPool, isolated_home: Path) -> TestClient:
    catalog = Catalog.from_yaml(shipped_catalog_text() + EXTRA)
    ctx = ManagementContext(store=ModelStore(catalog=catalog), catalog=catalog, pool=pool,
                            libs=LibsManager(isolated_home))
    app = web.Application()
    app.add_subapp("/v1/kronk/", create_management_app(ctx))
    return await aiohttp_client(app)


async def sse(response: Any) -> list[tuple[str, dict[str, Any]]]:
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = []
    for block in (await response.text()).split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


async def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body = await response.json()
    assert set(body["error"]) == {"message", "type", "code", "param"}
    return body["error"]


def serve_chat(hub: FakeHub, payloads: dict[str, Path], **options: Any) -> bytes:
    data = payloads["chat"].read_bytes()
    hub.add_file(REPO, "Tiny-Chat-Q8_0.gguf", data, **options)
    return data


async def test_pull_streams_progress_then_lists_shows_and_deletes(client: TestClient, hub: FakeHub,
                                                                 payloads: dict[str, Path], pool: StaticPool) -> None:
    data = serve_chat(hub, payloads)
    assert (await (await client.get("/v1/kronk/models")).json()) == {"object": "list", "data": []}

    events = await sse(await client.post("/v1/kronk/models/pull", json={"model": f"{REPO}:Q8_0"}))
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done" and "progress" in kinds
    assert any(e["status"] == "downloading" and e["completed"] == len(data) for k, e in events if k == "progress")
    done = events[-1][1]
    assert done["status"] == "pulled" and done["model"]["id"] == "tiny-org/Tiny-Chat-Q8_0"

    listed = await (await client.get("/v1/kronk/models")).json()
    assert [m["id"] for m in listed["data"]] == ["tiny-org/Tiny-Chat-Q8_0"]
    shown = await (await client.get("/v1/kronk/models/tiny-org/Tiny-Chat-Q8_0")).json()
    assert shown["files"][0]["sha256"] == sha256(data)
    assert shown["metadata"]["architecture"] == "llama" and shown["capabilities"]["chat"]
    by_alias = await (await client.get("/v1/kronk/models/tiny-chat-q8_0")).json()
    assert by_alias["id"] == shown["id"]

    deleted = await (await client.delete("/v1/kronk/models/tiny-org/Tiny-Chat-Q8_0")).json()
    assert deleted == {"id": "tiny-org/Tiny-Chat-Q8_0", "object": "model", "deleted": True,
                       "size": len(data), "unloaded": True}
    assert pool.unloaded == ["tiny-org/Tiny-Chat-Q8_0"]
    await error_of(await client.delete("/v1/kronk/models/tiny-org/Tiny-Chat-Q8_0"), 404)


async def test_pull_errors_before_streaming_have_status_codes(client: TestClient, hub: FakeHub,
                                                              payloads: dict[str, Path]) -> None:
    error = await error_of(await client.post("/v1/kronk/models/pull", json={"model": "ftp://x/y.gguf"}), 400)
    assert error["param"] == "model" and error["code"] == "invalid_value"
    error = await error_of(await client.post("/v1/kronk/models/pull", json={"model": "nobody/nothing:Q4_K_M"}), 404)
    assert error["code"] == "model_not_found"
    await error_of(await client.post("/v1/kronk/models/pull", json={}), 400)
    await error_of(await client.post("/v1/kronk/models/pull", json={"model": 5}), 400)
    bad_json = await client.post("/v1/kronk/models/pull", data=b"{oops", headers={"Content-Type": "application/json"})
    await error_of(bad_json, 400)
    await error_of(await client.post("/v1/kronk/models/pull", json=["list"]), 400)

    serve_chat(hub, payloads, pointer_size=shutil.disk_usage("/").free * 2)
    error = await error_of(await client.post("/v1/kronk/models/pull", json={"model": f"{REPO}:Q8_0"}), 507)
    assert error["code"] == "insufficient_storage"
    assert hub.gets("/resolve/") == []


async def test_checksum_failure_after_download_is_an_sse_error(client: TestClient, hub: FakeHub,
                                                              payloads: dict[str, Path]) -> None:
    serve_chat(hub, payloads, pointer_sha="f" * 64)
    events = await sse(await client.post("/v1/kronk/models/pull", json={"model": f"{REPO}:Q8_0"}))
    kind, body = events[-1]
    assert kind == "error" and body["error"]["code"] == "checksum_mismatch"
    assert (await (await client.get("/v1/kronk/models")).json())["data"] == []


async def test_concurrent_api_pulls_coalesce(client: TestClient, hub: FakeHub, payloads: dict[str, Path]) -> None:
    serve_chat(hub, payloads)
    hub.gate = threading.Event()
    url = hub.file_url(REPO, "Tiny-Chat-Q8_0.gguf")
    first = asyncio.ensure_future(client.post("/v1/kronk/models/pull", json={"model": url}))
    while not hub.gets("/resolve/"):
        await asyncio.sleep(0.01)
    second = asyncio.ensure_future(client.post("/v1/kronk/models/pull", json={"model": url}))
    await asyncio.sleep(0.3)  # let the second request reach the in-flight pull (the gate holds the first)
    hub.gate.set()
    results = [(await sse(await task))[-1][1] for task in (first, second)]
    assert len(hub.gets("/resolve/")) == 1
    assert {r["model"]["id"] for r in results} == {"tiny-org/Tiny-Chat-Q8_0"}


async def test_a_running_pull_can_be_cancelled(client: TestClient, hub: FakeHub, payloads: dict[str, Path],
                                             isolated_home: Path) -> None:
    serve_chat(hub, payloads)
    hub.gate = threading.Event()
    pull = asyncio.ensure_future(client.post("/v1/kronk/models/pull", json={"model": f"{REPO}:Q8_0"}))
    while not hub.gets("/resolve/"):
        await asyncio.sleep(0.01)
    assert (await (await client.get("/v1/kronk/models/pulls")).json()) == {"pulls": ["tiny-org/Tiny-Chat-Q8_0"]}
    cancelled = await client.post("/v1/kronk/models/pull/cancel", json={"model": "tiny-org/Tiny-Chat-Q8_0"})
    assert cancelled.status == 200 and (await cancelled.json())["cancelled"] is True
    hub.gate.set()  # the body flows; the next progress report ends the pull
    kind, body = (await sse(await pull))[-1]
    assert kind == "error" and body["error"]["code"] == "pull_cancelled"
    assert (await (await client.get("/v1/kronk/models")).json())["data"] == []
    assert not [p for p in isolated_home.rglob("*.gguf*") if p.is_file()]  # no partial file
    assert (await (await client.get("/v1/kronk/models/pulls")).json()) == {"pulls": []}
    error = await error_of(await client.post("/v1/kronk/models/pull/cancel", json={"model": "tiny-org/x"}), 404)
    assert error["code"] == "job_not_found"
    await error_of(await client.post("/v1/kronk/models/pull/cancel", json={}), 400)
    # nothing was left half-done: the same pull now completes
    hub.gate = None
    assert (await sse(await client.post("/v1/kronk/models/pull", json={"model": f"{REPO}:Q8_0"})))[-1][0] == "done"


async def test_index_ps_and_unload(client: TestClient, payloads: dict[str, Path], pool: StaticPool) -> None:
    target = models_dir() / "acme" / "by-hand" / "by-hand.gguf"
    target.parent.mkdir(parents=True)
    shutil.copyfile(payloads["embed"], target)
    indexed = await (await client.post("/v1/kronk/models/index")).json()
    assert [m["id"] for m in indexed["data"]] == ["acme/by-hand"] and indexed["problems"] == []
    assert indexed["data"][0]["capabilities"]["embedding"]

    ps = await (await client.get("/v1/kronk/models/ps")).json()
    assert ps["data"][0]["id"] == "tiny-org/Tiny-Chat-Q8_0" and ps["data"][0]["active_streams"] == 1
    unloaded = await (await client.post("/v1/kronk/models/unload", json={"id": "tiny-org/Tiny-Chat-Q8_0"})).json()
    assert unloaded == {"id": "tiny-org/Tiny-Chat-Q8_0", "unloaded": True}
    await error_of(await client.post("/v1/kronk/models/unload", json={}), 400)
    await error_of(await client.get("/v1/kronk/models/nobody/nothing"), 404)


async def test_catalog_routes(client: TestClient, hub: FakeHub, payloads: dict[str, Path]) -> None:
    listed = await (await client.get("/v1/kronk/catalog")).json()
    ids = [e["id"] for e in listed["data"]]
    assert "HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1" in ids and "test/tiny-chat" in ids
    embedding = await (await client.get("/v1/kronk/catalog", params={"category": "embedding"})).json()
    assert {e["category"] for e in embedding["data"]} == {"embedding"}
    await error_of(await client.get("/v1/kronk/catalog", params={"category": "music"}), 400)

    shown = await (await client.get("/v1/kronk/catalog/smollm2")).json()
    assert shown["id"] == "HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1" and shown["installed"] is False
    await error_of(await client.get("/v1/kronk/catalog/no-such-model"), 404)
    await error_of(await client.post("/v1/kronk/catalog/no-such-model/pull"), 404)

    serve_chat(hub, payloads)
    events = await sse(await client.post("/v1/kronk/catalog/tinychat/pull"))
    assert events[-1][0] == "done" and events[-1][1]["model"]["id"] == "test/tiny-chat"
    assert (await (await client.get("/v1/kronk/catalog/tinychat")).json())["installed"] is True
    shown = await (await client.get("/v1/kronk/models/tinychat")).json()
    assert shown["catalog"] == "test/tiny-chat" and shown["config"] == {"ctx_size": 1024, "slots": 2}


async def test_catalog_update(client: TestClient, hub: FakeHub) -> None:
    hub.catalog_text = "version: 1\nmodels:\n" + EXTRA.replace("test/tiny-chat", "test/fetched").replace(
        "tinychat", "fetched")
    updated = await (await client.post("/v1/kronk/catalog/update")).json()
    assert updated["url"] == f"{hub.url}/catalog.yaml" and updated["models"] > 15
    assert (await client.get("/v1/kronk/catalog/fetched")).status == 200
    hub.catalog_text = "models: ["
    error = await error_of(await client.post("/v1/kronk/catalog/update"), 409)
    assert "YAML" in error["message"]
    await error_of(await client.post("/v1/kronk/catalog/update", json={"url": f"{hub.url}/nope.yaml"}), 502)


async def test_libs_routes(libs_env: Path, client: TestClient) -> None:
    """libs_env first: the manager must not see the real libs through KRONK_LIB_PATH."""
    assert await (await client.get("/v1/kronk/libs")).json() == {"object": "list", "data": []}
    error = await error_of(await client.post("/v1/kronk/libs/pull", json={"version": "bogus"}), 400)
    assert "bogus" in error["message"]
    await error_of(await client.post("/v1/kronk/libs/upgrade", json={"version": [1]}), 400)


async def test_bodies_are_validated_by_their_declared_models(client: TestClient, pool: StaticPool) -> None:
    """The models in kronk.manage.api are the only validation: their messages, params and defaults."""
    pull = "/v1/kronk/models/pull"
    cases: list[tuple[str, Any, str, str]] = [
        (pull, {}, "model", "model: is required"),
        (pull, {"model": 5}, "model", "model: must be a string, got integer"),
        (pull, {"model": "  "}, "model", "model: must not be blank"),
        (pull, {"model": "a/b", "force": "yes"}, "force", "force: must be a boolean, got string"),
        (pull, {"model": "a/b", "projector": ""}, "projector", "projector: must not be blank"),
        ("/v1/kronk/models/unload", {"id": None}, "id", "id: is required"),
        ("/v1/kronk/catalog/update", {"url": 3}, "url", "url: must be a string, got integer"),
        ("/v1/kronk/libs/pull", {"version": "b0"}, "version", "version: must be a build number like b11434, got 'b0'"),
        ("/v1/kronk/libs/pull", {"version": 12345678}, "version",
         "version: must be a build number like b11434, got 12345678"),
        ("/v1/kronk/libs/pull", {"source": "dir"}, "source",
         "source: must be one of 'release', 'sdist' or 'source', got 'dir'"),
        ("/v1/kronk/libs/upgrade", {"with_tools": 1}, "with_tools", "with_tools: must be a boolean, got integer"),
        ("/v1/kronk/catalog/test/tiny-chat/pull", {"force": []}, "force", "force: must be a boolean, got array"),
    ]
    for path, body, param, message in cases:
        error = await error_of(await client.post(path, json=body), 400)
        assert (error["param"], error["message"]) == (param, message), (path, body)
    empty = await error_of(await client.post(pull), 400)
    assert empty["message"] == "request body is empty; expected a JSON object"

    # Blanks around a name are dropped (as before); an extra field is kept, not refused.
    unloaded = await (await client.post("/v1/kronk/models/unload", json={"id": "  ghost  ", "note": 1})).json()
    assert unloaded == {"id": "ghost", "unloaded": False}


async def test_too_large_management_body_is_a_json_413(aiohttp_client: Any, isolated_home: Path) -> None:
    app = web.Application(client_max_size=1024)
    app.add_subapp("/v1/kronk/", create_management_app(ManagementContext(libs=LibsManager(isolated_home))))
    client = await aiohttp_client(app)
    body = json.dumps({"model": "x" * 2048}).encode()
    error = await error_of(await client.post("/v1/kronk/models/pull", data=body,
                                             headers={"Content-Type": "application/json"}), 413)
    assert error["code"] and "1024" in error["message"]
