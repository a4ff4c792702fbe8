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
from kronk.wire import DocModel, Extra, Operation, operation


class Liveness(DocModel):
    status: str
    version: str
    pid: int
    uptime_seconds: float


class Readiness(DocModel):
    status: str
    """starting, loading, ready, failed or stopping"""
    default_model: str | None
    error: str | None = None


def kronk_version() -> str:
    try:
        return metadata.version("kronk")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@operation(Operation(summary="Liveness: the process serves HTTP", tag="Health", response=Liveness))
async def liveness(request: web.Request) -> web.Response:
    health = request.app[HEALTH]
    return web.json_response({
        "status": "ok",
        "version": kronk_version(),
        "pid": os.getpid(),
        "uptime_seconds": round(time.time() - health.started_at, 3),
    })


@operation(Operation(summary="Readiness: the default model is loaded", tag="Health", response=Readiness,
                     also={503: Extra("Not ready (loading, failed or stopping)", Readiness)}))
async def readiness(request: web.Request) -> web.Response:
    health = request.app[HEALTH]
    return web.json_response(health.as_dict(), status=200 if health.ready else 503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/liveness", liveness)
    app.router.add_get("/v1/readiness", readiness)
