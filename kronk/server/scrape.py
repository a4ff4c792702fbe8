"""GET /metrics: Prometheus text, engine figures read from the SDK at scrape time."""

from __future__ import annotations

from aiohttp import web

from kronk.server.keys import KRONK, METRICS
from kronk.server.metrics import CONTENT_TYPE
from kronk.wire import Operation, operation


@operation(Operation(summary="Prometheus metrics", tag="Health", response={"type": "string"},
                     media="text/plain"))
async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render(request.app[KRONK].stats())
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
