"""GET /metrics: Prometheus text, engine gauges refreshed from the SDK at scrape time."""

from __future__ import annotations

from aiohttp import web

from kronk.server.keys import KRONK, METRICS
from kronk.server.metrics import CONTENT_TYPE


async def metrics(request: web.Request) -> web.Response:
    server_metrics = request.app[METRICS]
    server_metrics.observe_engine(request.app[KRONK].stats())
    return web.Response(body=server_metrics.render().encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
