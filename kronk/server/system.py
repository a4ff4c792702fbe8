"""GET /v1/kronk/system and /v1/kronk/system/history: what the browser UI's System page shows.

The devices and versions come from llama.cpp itself (the ggml backend device list), the
uptime from the health state, the charts from the in-memory MetricsHistory. Mounted on
the management sub-application, so security treats them as management routes (admin).
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from dataclasses import asdict
from typing import Any

from aiohttp import web

from kronk import errors as E
from kronk.llama import devices, system_info, versions
from kronk.llama.system import Device
from kronk.server.health import kronk_version
from kronk.server.history import HISTORY, Sample
from kronk.server.keys import HEALTH, SETTINGS
from kronk.wire import DocModel, Operation, operation

_TAG = "Management"
MAX_MINUTES = 60


class SystemInfo(DocModel):
    version: str
    """Kronk's version."""
    llama: dict[str, Any]
    """llama.cpp's build number, library versions and folder."""
    features: str
    """llama.cpp's feature line (SIMD, backends)."""
    devices: list[Device]
    """The ggml backend devices (type: cpu, gpu, igpu or accel)."""
    python: str
    platform: str
    pid: int
    started_at: float
    uptime_seconds: float
    cpu_count: int | None
    memory_total: int | None
    """Bytes of RAM on the host (None where the OS does not say)."""
    process_rss: int | None
    """Bytes of RAM this process uses now (None where the OS does not say)."""
    security: str
    default_model: str | None


class History(DocModel):
    interval_seconds: float
    window_seconds: float
    data: list[Sample]


def _memory_total() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _process_rss() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _native_facts() -> dict[str, Any]:
    """llama.cpp's own view (blocking: asks every backend device for its memory)."""
    return {"llama": versions(), "features": system_info().strip(),
            "devices": [asdict(d) for d in devices()]}


@operation(Operation(summary="Devices, versions and uptime", tag=_TAG, response=SystemInfo))
async def system(request: web.Request) -> web.Response:
    health, settings = request.config_dict[HEALTH], request.config_dict[SETTINGS]
    native = await asyncio.to_thread(_native_facts)
    return web.json_response({
        "version": kronk_version(),
        **native,
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
        "pid": os.getpid(),
        "started_at": health.started_at,
        "uptime_seconds": round(time.time() - health.started_at, 3),
        "cpu_count": os.cpu_count(),
        "memory_total": _memory_total(),
        "process_rss": _process_rss(),
        "security": settings.security,
        "default_model": settings.default_model,
    })


def _minutes(request: web.Request) -> float:
    text = request.query.get("minutes")
    if text is None or text == "":
        return 15.0
    try:
        minutes = float(text)
    except ValueError:
        minutes = float("nan")
    if not 0 < minutes <= MAX_MINUTES:  # NaN fails too
        raise E.InvalidRequestError(f"minutes must be a number above 0 and at most {MAX_MINUTES}, got {text!r}",
                                    param="minutes")
    return minutes


@operation(Operation(summary="Recent tokens/s, TTFT and request counts (sampled in memory)", tag=_TAG,
                     response=History, errors=(E.InvalidRequestError,),
                     query={"minutes": f"how far back (default 15, at most {MAX_MINUTES})"}))
async def history(request: web.Request) -> web.Response:
    minutes = _minutes(request)
    samples = request.config_dict[HISTORY]
    return web.json_response({"interval_seconds": samples.interval_seconds,
                              "window_seconds": samples.window_seconds,
                              "data": samples.since(minutes * 60.0)})


def add_routes(app: web.Application) -> None:
    """Register on the management sub-application (paths relative to /v1/kronk/)."""
    app.router.add_get("/system", system)
    app.router.add_get("/system/history", history)
