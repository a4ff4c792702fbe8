"""Health, readiness, /metrics, /openapi.json, security and the mounted management API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kronk.server.keys import HEALTH
from tests.server.conftest import RunningServer, StartServer

pytestmark = pytest.mark.requires_libs


async def test_liveness_and_readiness(server: RunningServer, http: aiohttp.ClientSession) -> None:
    async with http.get(server.v1 + "/liveness") as response:
        body = await response.json()
        assert response.status == 200 and body["status"] == "ok" and body["pid"] > 0
    async with http.get(server.v1 + "/readiness") as response:
        assert response.status == 200
        assert (await response.json())["status"] == "ready"
    server.app[HEALTH].state = "loading"
    async with http.get(server.v1 + "/readiness") as response:
        assert response.status == 503
        assert (await response.json())["status"] == "loading"


async def test_readiness_reports_a_default_model_that_cannot_load(start_server: StartServer, tmp_path: Path,
                                                                  http: aiohttp.ClientSession) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF but not really")
    server = await start_server(model=str(broken))
    while server.app[HEALTH].state in ("starting", "loading"):
        async with http.get(server.v1 + "/readiness") as response:
            assert response.status == 503
    async with http.get(server.v1 + "/readiness") as response:
        body = await response.json()
    assert response.status == 503 and body["status"] == "failed" and body["error"]
    async with http.get(server.v1 + "/liveness") as response:
        assert response.status == 200


async def test_readiness_reports_a_load_that_fails_with_a_bug(start_server: StartServer, http: aiohttp.ClientSession,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only a KronkError: any exception in the preload ends "loading" (it used to stay there for good)."""
    from kronk.sdk.client import AsyncKronk

    async def broken_load(self: AsyncKronk, model: str | None) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(AsyncKronk, "load", broken_load)
    server = await start_server()
    while server.app[HEALTH].state in ("starting", "loading"):
        async with http.get(server.v1 + "/readiness") as response:
            assert response.status == 503
    async with http.get(server.v1 + "/readiness") as response:
        body = await response.json()
    assert response.status == 503 and body["status"] == "failed" and "RuntimeError: boom" in body["error"]


async def test_no_preload_is_ready_at_once(start_server: StartServer, http: aiohttp.ClientSession) -> None:
    server = await start_server(preload=False)
    async with http.get(server.v1 + "/readiness") as response:
        assert response.status == 200
    assert server.kronk.stats() == {}


async def test_metrics_exposition(server: RunningServer, http: aiohttp.ClientSession) -> None:
    async with http.post(server.v1 + "/completions", json={"prompt": "hi", "max_tokens": 3,
                                                           "stream": True}) as response:
        await response.read()
    async with http.post(server.v1 + "/completions", json={"prompt": 5}) as response:
        assert response.status == 400
    async with http.get(server.url + "/metrics") as response:
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await response.text()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    names = {name for name, _ in samples}
    assert samples[("kronk_http_requests_total",
                    (("method", "POST"), ("route", "/v1/completions"), ("status", "200")))] == 1
    assert samples[("kronk_http_errors_total", (("code", "invalid_value"), ("route", "/v1/completions")))] == 1
    assert [v for (name, labels), v in samples.items()
            if name == "kronk_tokens_total" and ("kind", "completion") in labels] == [3]
    for name in ("kronk_slots_active", "kronk_kv_cache_cells_total", "kronk_time_to_first_token_seconds_bucket",
                 "kronk_generation_tokens_per_second_bucket", "kronk_queue_wait_seconds_count"):
        assert name in names


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


async def test_openapi_document_covers_every_route(server: RunningServer, http: aiohttp.ClientSession) -> None:
    async with http.get(server.url + "/openapi.json") as response:
        doc = await response.json()
    assert doc["openapi"] == "3.1.0"
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages",
                 "/v1/messages/count_tokens", "/v1/rerank", "/v1/tokenize", "/v1/detokenize", "/v1/models",
                 "/v1/models/{id}", "/v1/liveness", "/v1/readiness", "/metrics"):
        assert path in doc["paths"], path
    assert any(p.startswith("/v1/kronk/") for p in doc["paths"])
    for resource in server.app.router.resources():
        canonical = resource.canonical
        if canonical.startswith("/v1/kronk"):
            continue
        assert canonical in doc["paths"], canonical


async def test_management_api_is_mounted_with_the_pool(server: RunningServer, http: aiohttp.ClientSession,
                                                       tiny: dict[str, Path]) -> None:
    async with http.get(server.v1 + "/kronk/models/ps") as response:
        assert response.status == 200
        assert str(tiny["chat"]) in await response.text()


async def test_full_security_requires_tokens(start_server: StartServer, http: aiohttp.ClientSession) -> None:
    server = await start_server(security="full", preload=False)
    async with http.post(server.v1 + "/chat/completions", json={"messages": []}) as response:
        assert response.status == 401
        assert (await response.json())["error"]["type"] == "authentication_error"
    async with http.get(server.v1 + "/models") as response:
        assert response.status == 401
    async with http.get(server.v1 + "/liveness") as response:
        assert response.status == 200
