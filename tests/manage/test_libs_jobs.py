"""Libs installs as jobs (/v1/kronk/libs/jobs): followed from the start by any caller, one at a time, removal."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from kronk.errors import LibsInstallError
from kronk.manage.api import ManagementContext, create_management_app
from kronk.manage.libs import LibsManager, ProgressEvent, Stage
from kronk.manage.libs_jobs import LibsJob
from tests.manage.test_api import error_of, sse

pytestmark = pytest.mark.requires_libs


async def _client(aiohttp_client: Any, libs: Any) -> TestClient:
    sub_app = create_management_app(ManagementContext(libs=libs))
    app = web.Application()
    app.add_subapp("/v1/kronk/", sub_app)
    return await aiohttp_client(app)


async def test_an_install_job_is_followed_from_its_start_even_after_it_ended(
        libs_release: str, libs_env: Path, aiohttp_client: Any) -> None:
    client = await _client(aiohttp_client, LibsManager(libs_env))
    status = await (await client.get("/v1/kronk/libs/status")).json()
    assert status["platform"] == "linux/x64/cpu" and status["installs"] == [] and status["job"] is None
    assert status["pinned_build"] == 11434

    started = await client.post("/v1/kronk/libs/jobs", json={"source": "release"})
    assert started.status == 202
    job = (await started.json())["job"]
    assert job["action"] == "install" and job["request"]["source"] == "release"

    live = await sse(await client.get(f"/v1/kronk/libs/jobs/{job['id']}/events"))
    assert live[-1][0] == "done" and live[-1][1]["build"] == 11434
    stages = [data["stage"] for kind, data in live if kind == "progress"]
    assert stages[0] == "attempt" and "download" in stages and stages[-1] == "done"

    replay = await sse(await client.get(f"/v1/kronk/libs/jobs/{job['id']}/events"))  # a page that reloaded
    assert replay == live
    shown = await (await client.get(f"/v1/kronk/libs/jobs/{job['id']}")).json()
    assert shown["state"] == "done" and shown["events"] == len(live) - 1 and shown["result"]["build"] == 11434
    listed = await (await client.get("/v1/kronk/libs/jobs")).json()
    assert [j["id"] for j in listed["data"]] == [job["id"]]

    status = await (await client.get("/v1/kronk/libs/status")).json()
    assert [i["build"] for i in status["installs"]] == [11434] and status["current"]["source"] == "release"

    removed = await client.delete("/v1/kronk/libs/installs/linux/x64/cpu")
    assert removed.status == 200 and (await removed.json())["removed"]["build"] == 11434
    assert (await (await client.get("/v1/kronk/libs/status")).json())["installs"] == []
    error = await error_of(await client.delete("/v1/kronk/libs/installs/linux/x64/cpu"), 503)
    assert "no llama.cpp libraries are installed" in error["message"]


class BlockingLibs:
    """A LibsView whose install waits for the test (to hold a job running)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[dict[str, Any]] = []

    def list_installs(self) -> list[Any]:
        return []

    def install(self, version: Any = None, source: Any = None, *, with_tools: bool = False, upgrade: bool = False,
                progress: Any = None) -> Any:
        self.calls.append({"version": version, "upgrade": upgrade})
        progress(ProgressEvent(Stage.ATTEMPT, "waiting", source="release"))
        assert self.release.wait(30)
        raise LibsInstallError("the test's install broke")


async def test_one_job_at_a_time_and_a_failure_is_an_error_event(aiohttp_client: Any) -> None:
    libs = BlockingLibs()
    client = await _client(aiohttp_client, libs)
    first = await client.post("/v1/kronk/libs/jobs", json={"version": "b11434", "upgrade": True})
    assert first.status == 202
    job = (await first.json())["job"]
    assert job["action"] == "upgrade" and job["request"]["version"] == 11434
    again = await client.post("/v1/kronk/libs/jobs")
    assert again.status == 200
    assert (await again.json())["job"]["id"] == job["id"] and (await again.json())["started"] is False
    error = await error_of(await client.delete("/v1/kronk/libs/installs/linux/x64/cpu"), 400)
    assert "a libs job is running" in error["message"]

    events = await client.get(f"/v1/kronk/libs/jobs/{job['id']}/events")
    libs.release.set()
    seen = await sse(events)
    assert seen[0] == ("progress", {"stage": "attempt", "message": "waiting", "done": None, "total": None,
                                    "source": "release"})
    assert seen[-1][0] == "error" and seen[-1][1]["error"]["message"] == "the test's install broke"
    assert len(libs.calls) == 1
    shown = await (await client.get(f"/v1/kronk/libs/jobs/{job['id']}")).json()
    assert shown["state"] == "failed" and shown["error"]["error"]["code"] == "libs_install_failed"


@pytest.mark.parametrize(("method", "path", "body", "status", "needle"), [
    ("post", "/v1/kronk/libs/jobs", {"version": "b0"}, 400, "must be a build number"),
    ("post", "/v1/kronk/libs/jobs", {"upgrade": "yes"}, 400, "upgrade"),
    ("post", "/v1/kronk/libs/jobs", {"source": "dir"}, 400, "source"),
    ("post", "/v1/kronk/libs/jobs", [1], 400, "object"),
    ("get", "/v1/kronk/libs/jobs/libs-99", None, 404, "no libs job 'libs-99'"),
    ("get", "/v1/kronk/libs/jobs/libs-99/events", None, 404, "no libs job"),
    ("delete", "/v1/kronk/libs/installs/linux/x64/tpu", None, 400, "unknown platform 'linux/x64/tpu'"),
    ("delete", "/v1/kronk/libs/installs/linux/x64/metal", None, 400, "metal"),
])
async def test_bad_requests(aiohttp_client: Any, method: str, path: str, body: Any, status: int,
                            needle: str) -> None:
    libs = BlockingLibs()
    client = await _client(aiohttp_client, libs)
    error = await error_of(await getattr(client, method)(path, json=body), status)
    assert needle in error["message"]
    assert libs.calls == []


async def test_libraries_kronk_does_not_manage_are_not_removed(libs_env: Path, libs_real_bin: Path, aiohttp_client: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRONK_LIB_PATH", str(libs_real_bin))
    client = await _client(aiohttp_client, LibsManager(libs_env))
    status = await (await client.get("/v1/kronk/libs/status")).json()
    assert status["current"]["source"] == "external"
    error = await error_of(await client.delete("/v1/kronk/libs/installs/linux/x64/cpu"), 400)
    assert "does not manage" in error["message"]
    assert (libs_real_bin / "libllama.so").exists()


async def test_a_quiet_job_sends_keepalives_and_its_followers_stay() -> None:
    """A long build step sends nothing for minutes: followers get keep-alives, then the end."""
    job = LibsJob(id="libs-1", action="install", request={})
    seen: list[str] = []

    async def follow() -> None:
        async for kind, _ in job.follow(keepalive=0.01):
            seen.append(kind)
            if kind == "keepalive" and seen.count("keepalive") == 3:
                job.add_event({"stage": "build", "message": "compiling", "done": 50, "total": 100})
            if kind == "progress":
                job.finish({"build": 11434})

    await asyncio.wait_for(follow(), 30)
    assert seen == ["keepalive", "keepalive", "keepalive", "progress", "done"]
    assert job.state == "done" and job.result == {"build": 11434}
