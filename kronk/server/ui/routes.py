"""`GET /` and `GET /ui/<version>/<file>`: the browser UI, public, no build step.

index.html is never cached (it names the current asset version); assets under the
versioned prefix are immutable for a year. Both go gzipped when the browser accepts it,
with an ETag (304 on a match) and a strict Content-Security-Policy: scripts and styles only
from this server, no inline script, so a reply or a model name can never run as code.
"""

from __future__ import annotations

from aiohttp import web

from kronk.server.ui import session
from kronk.server.ui.assets import INDEX, Asset, Bundle
from kronk.settings import ServerSettings
from kronk.wire import Extra, Operation, operation

BUNDLE: web.AppKey[Bundle] = web.AppKey("kronk.ui.bundle", Bundle)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_IMMUTABLE = "public, max-age=31536000, immutable"
_TAG = "Browser UI"
_NOT_MODIFIED = {304: Extra("Not modified (the ETag matched)", {"type": "string", "maxLength": 0}, "text/plain")}
_MISSING = {404: Extra("No such file (plain text, or the API error JSON when the path is not a file path)", {}, "*/*")}


def _accepts_gzip(request: web.Request) -> bool:
    return any(part.split(";")[0].strip().lower() == "gzip"
               for part in request.headers.get("Accept-Encoding", "").split(","))


def _serve(request: web.Request, asset: Asset, cache_control: str) -> web.Response:
    headers = {
        "Cache-Control": cache_control,
        "ETag": asset.etag,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CSP,
        "Referrer-Policy": "no-referrer",
    }
    if asset.etag in {tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")}:
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = asset.content_type
    body = asset.body
    if asset.gzipped is not None and _accepts_gzip(request):
        headers["Content-Encoding"] = "gzip"
        body = asset.gzipped
    return web.Response(body=body, headers=headers)


@operation(Operation(summary="The browser UI (index page)", tag=_TAG, response={"type": "string"},
                     media="text/html", also=_NOT_MODIFIED))
async def index(request: web.Request) -> web.Response:
    return _serve(request, request.app[BUNDLE].assets[INDEX], "no-cache")


@operation(Operation(summary="A file of the browser UI (immutable under its version; HTML, JS, CSS or an image)", tag=_TAG,
                     response={"type": "string"}, media="*/*", also={**_NOT_MODIFIED, **_MISSING}))
async def asset(request: web.Request) -> web.Response:
    bundle = request.app[BUNDLE]
    found = bundle.assets.get(request.match_info["path"])
    if found is None or request.match_info["path"] == INDEX:
        return web.Response(status=404, text="no such file", headers={"X-Content-Type-Options": "nosniff"})
    # An old page asking for another version gets today's file, uncached, rather than a broken page.
    cache = _IMMUTABLE if request.match_info["version"] == bundle.version else "no-cache"
    return _serve(request, found, cache)


def install(app: web.Application, settings: ServerSettings) -> None:
    """Add the UI's routes (unless `--no-ui`) and its session routes."""
    if not settings.ui:
        return
    app[BUNDLE] = Bundle.load()
    app.router.add_get("/", index)
    app.router.add_get("/ui/{version}/{path:.+}", asset)
    session.add_routes(app)
