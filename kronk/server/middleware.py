"""The HTTP edge: request metrics and the catch-all error mapping.

`error_middleware` is the one place a raised error becomes an HTTP answer: typed
Kronk errors and aiohttp's own HTTP errors get their status and the API's error
shape from kronk.http_errors; anything else is a bug, logged with its traceback
and answered with a 500 JSON body that leaks no internals.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from kronk.errors import KronkError, ShuttingDownError
from kronk.http_errors import api_style, error_response, spec_for
from kronk.server.keys import METRICS

log = logging.getLogger("kronk.server")


def route_label(request: web.Request) -> str:
    """The route template (`/v1/models/{id}`), never the raw path, to bound label cardinality."""
    info = request.match_info
    resource = info.route.resource if info is not None and info.route is not None else None
    if resource is None or info.http_exception is not None:
        return "unmatched"
    return resource.canonical


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.config_dict[METRICS]
    started = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = route_label(request)
        metrics.http_requests.labels(route=route, method=request.method, status=str(status)).inc()
        metrics.http_duration.labels(route=route).observe(time.monotonic() - started)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (KronkError, ShuttingDownError) as exc:
        log.info("%s %s -> %d %s: %s", request.method, request.path, spec_for(exc).status,
                 type(exc).__name__, exc)
        return _answer(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _answer(request, exc)
    except Exception as exc:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return _answer(request, exc)


def _answer(request: web.Request, exc: BaseException) -> web.Response:
    spec = spec_for(exc)
    request.config_dict[METRICS].count_error(route_label(request), spec.code or str(spec.status))
    return error_response(exc, api_style(request.path))
