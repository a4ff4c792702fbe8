"""Liveness and readiness.

Liveness answers while the process serves HTTP. Readiness is 503 until the
default model has loaded (or always ready when preloading is off), so a
supervisor or `kronk server start -d` knows when requests will be served quickly.
"""

from __future__ import annotations

import os
import time
from importlib import metadata

from aiohttp import web

from kronk.server.keys import HEALTH


def kronk_version() -> str:
    try:
        return metadata.version("kronk")
    except metadata.PackageNotFoundError:
        return "0+unknown"


async def liveness(request: web.Request) -> web.Response:
    health = request.app[HEALTH]
    return web.json_response({
        "status": "ok",
        "version": kronk_version(),
        "pid": os.getpid(),
        "uptime_seconds": round(time.time() - health.started_at, 3),
    })


async def readiness(request: web.Request) -> web.Response:
    health = request.app[HEALTH]
    return web.json_response(health.as_dict(), status=200 if health.ready else 503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/liveness", liveness)
    app.router.add_get("/v1/readiness", readiness)
