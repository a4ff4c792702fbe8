"""Libs routes for the browser UI: platform and installs at a glance, installs as jobs, removal.

    GET    /libs/status                              platform detected, pinned build, installs, running job
    POST   /libs/jobs                                start an install/upgrade job (202), or answer the running one (200)
    GET    /libs/jobs                                recent jobs
    GET    /libs/jobs/{id}                           one job
    GET    /libs/jobs/{id}/events                    SSE: every event so far, then live ones, then done/error
    DELETE /libs/installs/{os}/{arch}/{processor}    remove one install

Paths are relative to the management sub-application (`/v1/kronk/`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from aiohttp import web
from pydantic import ValidationError

from kronk import errors as E
from kronk.manage.api_shared import CONTEXT, KEEPALIVE_SECONDS, SSE_HEADERS, LibsBody
from kronk.manage.libs_jobs import LibsJobs
from kronk.wire import Extra, Operation, WireModel, operation, parse, read_json

_TAG = "Management"
JOBS = web.AppKey("kronk_libs_jobs", LibsJobs)
_OSES = ("linux", "darwin", "windows")
_ARCHES = ("x64", "arm64")
_PROCESSORS = ("cpu", "cuda", "rocm", "vulkan", "metal")


class LibsJobBody(LibsBody):
    """An install (`upgrade` false: keep a build that already fits) or an upgrade."""

    upgrade: bool = False


class PlatformPath(WireModel):
    os: Literal[_OSES]  # type: ignore[valid-type]
    arch: Literal[_ARCHES]  # type: ignore[valid-type]
    processor: Literal[_PROCESSORS]  # type: ignore[valid-type]


def _libs(request: web.Request) -> Any:
    return request.app[CONTEXT].libs_manager()


def _plain(value: Any) -> Any:
    return value.to_dict() if hasattr(value, "to_dict") else value


def _status(libs: Any) -> dict[str, Any]:
    """Blocking: detection may run the vendor tools (nvidia-smi, ...)."""
    platform = libs.detect()
    current = libs.current()
    return {
        "platform": str(platform),
        "platform_parts": dict(zip(("os", "arch", "processor"), platform.parts(), strict=True)),
        "pinned_build": libs.pin.build,
        "installs": [_plain(r) for r in libs.list_installs()],
        "current": _plain(current) if current is not None else None,
    }


@operation(Operation(summary="The detected platform, pinned build and installed llama.cpp builds", tag=_TAG,
                     response={"type": "object"}, errors=(E.StoreError, E.ConfigError)))
async def libs_status(request: web.Request) -> web.Response:
    status = await asyncio.to_thread(_status, _libs(request))
    running = request.app[JOBS].running()
    return web.json_response({**status, "job": running.summary() if running is not None else None})


@operation(Operation(summary="Start installing or upgrading llama.cpp as a job others can follow", tag=_TAG,
                     request=LibsJobBody, body_required=False, status=202, response={"type": "object"},
                     errors=(E.InvalidRequestError,),
                     also={200: Extra("A libs job already runs: that one, with started false", {"type": "object"})},
                     description="202 with the new job; 200 with the running one when a libs job already runs"))
async def start_job(request: web.Request) -> web.Response:
    body = parse(LibsJobBody, await read_json(request, empty={}))
    libs = _libs(request)
    job, started = request.app[JOBS].start(
        "upgrade" if body.upgrade else "install",
        body.model_dump(),
        lambda progress: libs.install(version=body.version, source=body.source, with_tools=body.with_tools,
                                      upgrade=body.upgrade, progress=progress),
    )
    return web.json_response({"job": job.summary(), "started": started}, status=202 if started else 200)


@operation(Operation(summary="Recent libs jobs", tag=_TAG, response={"type": "object"}))
async def list_jobs(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [job.summary() for job in request.app[JOBS].list()]})


@operation(Operation(summary="One libs job", tag=_TAG, response={"type": "object"}, errors=(E.JobNotFoundError,)))
async def show_job(request: web.Request) -> web.Response:
    return web.json_response(request.app[JOBS].get(request.match_info["id"]).summary())


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


@operation(Operation(summary="Follow a libs job: its events so far, then live ones", tag=_TAG, stream=True,
                     errors=(E.JobNotFoundError,),
                     description="`progress` events, then `done` (the install record) or `error`"))
async def job_events(request: web.Request) -> web.StreamResponse:
    job = request.app[JOBS].get(request.match_info["id"])
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    async for kind, data in job.follow(KEEPALIVE_SECONDS):
        await response.write(b": keep-alive\n\n" if kind == "keepalive" else _sse(kind, data))
    await response.write_eof()
    return response


@operation(Operation(summary="Remove one installed llama.cpp build", tag=_TAG, response={"type": "object"},
                     errors=(E.InvalidRequestError, E.LibraryNotFoundError, E.LibsInstallError),
                     path_params={"os": {"enum": list(_OSES)}, "arch": {"enum": list(_ARCHES)},
                                  "processor": {"enum": list(_PROCESSORS)}}))
async def remove_install(request: web.Request) -> web.Response:
    try:
        where = PlatformPath.model_validate(dict(request.match_info))
    except ValidationError:
        raise E.InvalidRequestError(
            f"unknown platform {'/'.join(request.match_info.values())!r}: expected OS/ARCH/PROCESSOR with OS in "
            f"{', '.join(_OSES)}, ARCH in {', '.join(_ARCHES)}, PROCESSOR in {', '.join(_PROCESSORS)}",
            param="platform") from None
    if request.app[JOBS].running() is not None:
        raise E.InvalidRequestError("a libs job is running; remove the install when it has finished")
    from kronk.manage.libs import Platform

    libs = _libs(request)
    try:
        platform = Platform(where.os, where.arch, where.processor)
    except E.ConfigError as exc:  # metal off darwin
        raise E.InvalidRequestError(str(exc), param="platform") from None
    try:
        record = await asyncio.to_thread(libs.remove, platform)
    except E.ConfigError as exc:  # KRONK_LIB_PATH: someone else's libraries
        raise E.InvalidRequestError(str(exc), param="platform") from None
    return web.json_response({"removed": _plain(record)})


def add_libs_routes(app: web.Application) -> None:
    """Register on the management sub-application (before it is mounted)."""
    app[JOBS] = LibsJobs()
    app.router.add_get("/libs/status", libs_status)
    app.router.add_post("/libs/jobs", start_job)
    app.router.add_get("/libs/jobs", list_jobs)
    app.router.add_get("/libs/jobs/{id}", show_job)
    app.router.add_get("/libs/jobs/{id}/events", job_events)
    app.router.add_delete("/libs/installs/{os}/{arch}/{processor}", remove_install)
