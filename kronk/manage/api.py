"""The management HTTP API: models, catalog and libs, as an aiohttp sub-application.

The server mounts `create_management_app(ctx)` at `/v1/kronk/`. Handlers are thin:
they parse the body with its declared model (kronk.wire), run the blocking work (downloads, hashing, GGUF reading) in a
thread, and return JSON. Long jobs (pulls, libs installs) stream progress as SSE;
the stream opens only when the first real progress arrives, so a bad id, a bad URL
or a full disk is still a plain JSON error with its own status code. Errors use the
OpenAI shape `{"error": {"message", "type", "code", "param"}}`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import StringConstraints

from kronk import errors as E
from kronk.http_errors import error_response, openai_error_body
from kronk.manage.api_shared import CONTEXT, KEEPALIVE_SECONDS, SSE_HEADERS, LibsBody
from kronk.manage.context import LibsView, ManagementContext, PoolView
from kronk.manage.libs_api import add_libs_routes
from kronk.manage.peer_api import add_peer_routes
from kronk.wire import Operation, WireModel, operation, parse, pattern, read_json

__all__ = ["ManagementContext", "PoolView", "LibsView", "create_management_app"]

log = logging.getLogger(__name__)
M = TypeVar("M", bound=WireModel)

# --- operations (for /openapi.json) -----------------------------------------------------

_Text = Annotated[str, StringConstraints(strip_whitespace=True), pattern(r"\S", "must not be blank")]
"""A non-blank string, read without its surrounding blanks."""
_STORE = (E.ModelNotFoundError, E.StoreError)
_PULL = (E.InvalidRequestError, *_STORE, E.DownloadError, E.InsufficientStorageError, E.PullCancelledError)
_LIBS = (E.InvalidRequestError, E.LibsInstallError, E.DownloadError, E.StoreError)
_TAG = "Management"


class UnloadBody(WireModel):
    id: _Text
    """A model id (or a name the store resolves)."""


class PullBody(WireModel):
    model: _Text
    """A catalog id, a Hugging Face `org/repo[:file]` spec or a URL."""
    projector: _Text | None = None
    force: bool = False
    peer: _Text | None = None
    """Pull `model` from this Kronk server's store instead (its base URL; `kronk model pull --from`)."""
    peer_token: str | None = None
    """An admin token of the peer (sent to the peer only)."""


class CancelPullBody(WireModel):
    model: _Text
    """The model id (as the pull's progress events name it) or its catalog id/alias."""


class ForceBody(WireModel):
    force: bool = False


class CatalogUpdateBody(WireModel):
    url: _Text | None = None
    """Where to fetch catalog.yaml from (default: the configured source)."""


_SSE = "progress events as SSE, then `done` (or `error`)"


@web.middleware
async def _errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> web.StreamResponse:
    """Kronk errors answer as everywhere else (kronk.http_errors); anything else is the server's to log."""
    try:
        return await handler(request)
    except E.KronkError as exc:
        return error_response(exc, "openai")


def create_management_app(ctx: ManagementContext) -> web.Application:
    """The sub-application; mount it with `app.add_subapp("/v1/kronk/", ...)`."""
    app = web.Application(middlewares=[_errors])
    app[CONTEXT] = ctx
    app.router.add_get("/models", list_models)
    app.router.add_get("/models/ps", models_ps)
    app.router.add_post("/models/index", index_models)
    app.router.add_post("/models/pull", pull_model)
    app.router.add_get("/models/pulls", running_pulls)
    app.router.add_post("/models/pull/cancel", cancel_pull)
    app.router.add_post("/models/unload", unload_model)
    app.router.add_get("/models/{id:.+}", show_model)
    app.router.add_delete("/models/{id:.+}", remove_model)
    app.router.add_get("/catalog", list_catalog)
    app.router.add_post("/catalog/update", update_catalog)
    app.router.add_post("/catalog/{id:.+}/pull", pull_catalog)
    app.router.add_get("/catalog/{id:.+}", show_catalog)
    app.router.add_get("/libs", list_libs)
    app.router.add_post("/libs/pull", pull_libs)
    app.router.add_post("/libs/upgrade", upgrade_libs)
    add_peer_routes(app, ctx.service, ctx.libs_manager)
    add_libs_routes(app)
    return app


# --- helpers -------------------------------------------------------------------


def _ctx(request: web.Request) -> ManagementContext:
    return request.app[CONTEXT]


async def _body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """The JSON body validated as `model`; where the body is `optional`, an empty one is `{}`."""
    return parse(model, await read_json(request, empty={} if optional else None))


def _plain(value: Any) -> Any:
    """JSON-ready form of a result object (to_dict, dataclass, or as is)."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


async def _stream_job(
    request: web.Request,
    work: Callable[[Callable[[Any], None]], Any],
    starts_stream: Callable[[dict[str, Any]], bool],
) -> web.StreamResponse:
    """Run `work(progress)` in a thread and stream its progress events as SSE.

    Until an event passes `starts_stream`, nothing is sent: an early failure becomes a
    JSON error response. After that, a failure is an `error` event. A client that goes
    away does not stop the work (a pull finishes and is indexed for the next caller).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def progress(event: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("progress", _plain(event)))

    task = asyncio.ensure_future(asyncio.to_thread(work, progress))
    task.add_done_callback(lambda _: queue.put_nowait(("end", None)))
    response: web.StreamResponse | None = None
    pending: list[dict[str, Any]] = []
    try:
        while True:
            try:
                kind, payload = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                if response is not None:
                    await response.write(b": keep-alive\n\n")
                continue
            if kind == "progress" and response is None and not starts_stream(payload):
                pending.append(payload)
                continue
            if response is None:
                exc = task.exception() if kind == "end" else None
                if exc is not None:
                    raise exc
                response = web.StreamResponse(headers=SSE_HEADERS)
                await response.prepare(request)
                for early in pending:
                    await response.write(_sse("progress", early))
            if kind == "progress":
                await response.write(_sse("progress", payload))
                continue
            exc = task.exception()
            if exc is None:
                await response.write(_sse("done", _plain(task.result())))
            else:
                if not isinstance(exc, E.KronkError):
                    log.error("management job failed", exc_info=exc)
                await response.write(_sse("error", openai_error_body(exc)))
            await response.write_eof()
            return response
    except (ConnectionResetError, asyncio.CancelledError):
        task.add_done_callback(_log_orphan)
        raise


def _log_orphan(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("management job finished with an error after its client left: %s", task.exception())


def _pull_started(event: dict[str, Any]) -> bool:
    return event.get("status") not in ("resolving", "retrying")


# --- models --------------------------------------------------------------------


@operation(Operation(summary="Models in the store", tag=_TAG, response={"type": "object"}, errors=(E.StoreError,)))
async def list_models(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(_ctx(request).service.list_models))


@operation(Operation(summary="One stored model with its GGUF details", tag=_TAG, response={"type": "object"},
                     errors=_STORE))
async def show_model(request: web.Request) -> web.Response:
    model = request.match_info["id"]
    return web.json_response(await asyncio.to_thread(_ctx(request).service.show_model, model))


@operation(Operation(summary="Remove a stored model (unloading it first)", tag=_TAG, response={"type": "object"},
                     errors=_STORE))
async def remove_model(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    stored = await asyncio.to_thread(ctx.service.store.get, request.match_info["id"])
    unloaded = await ctx.pool.unload(stored.id) if ctx.pool is not None else False
    result = await asyncio.to_thread(ctx.service.remove_model, stored.id)
    return web.json_response({**result, "unloaded": unloaded})


@operation(Operation(summary="Rebuild the store index from the files on disk", tag=_TAG, response={"type": "object"},
                     errors=(E.StoreError,)))
async def index_models(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(_ctx(request).service.rebuild_index))


@operation(Operation(summary="Loaded models and their slots", tag=_TAG, response={"type": "object"}))
async def models_ps(request: web.Request) -> web.Response:
    pool = _ctx(request).pool
    rows = pool.ps() if pool is not None else []
    return web.json_response({"object": "list", "data": [dataclasses.asdict(r) for r in rows]})


@operation(Operation(summary="Unload a model from memory", tag=_TAG, request=UnloadBody, response={"type": "object"},
                     errors=_STORE))
async def unload_model(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    model = (await _body(request, UnloadBody)).id
    stored = await asyncio.to_thread(ctx.service.store.find, model)
    model_id = stored.id if stored is not None else model
    unloaded = await ctx.pool.unload(model_id) if ctx.pool is not None else False
    if not unloaded and ctx.pool is not None and model_id != model:
        unloaded = await ctx.pool.unload(model)
    return web.json_response({"id": model_id, "unloaded": unloaded})


@operation(Operation(summary="Download a model into the store", tag=_TAG, request=PullBody, stream=True, errors=_PULL,
                     description=_SSE))
async def pull_model(request: web.Request) -> web.StreamResponse:
    body = await _body(request, PullBody)
    service = _ctx(request).service
    return await _stream_job(
        request,
        lambda progress: service.pull(body.model, projector=body.projector, force=body.force, progress=progress,
                                      peer=body.peer, peer_token=body.peer_token),
        _pull_started,
    )


@operation(Operation(summary="The model pulls running now", tag=_TAG, response={"type": "object"}))
async def running_pulls(request: web.Request) -> web.Response:
    return web.json_response({"pulls": _ctx(request).service.pulls.running()})


@operation(Operation(summary="Cancel a running model pull", tag=_TAG, request=CancelPullBody,
                     response={"type": "object"}, errors=(E.InvalidRequestError, E.JobNotFoundError),
                     description="The pull (and every client following it) ends with a `pull_cancelled` error "
                                 "event; its partial files are removed."))
async def cancel_pull(request: web.Request) -> web.Response:
    body = await _body(request, CancelPullBody)
    if not await asyncio.to_thread(_ctx(request).service.pulls.cancel, body.model):
        raise E.JobNotFoundError(f"no pull of {body.model!r} is running")
    return web.json_response({"model": body.model, "cancelled": True})


# --- catalog -------------------------------------------------------------------


@operation(Operation(summary="The model catalog", tag=_TAG, response={"type": "object"},
                     errors=(E.InvalidRequestError, E.StoreError),
                     query={"category": "only this category"}))
async def list_catalog(request: web.Request) -> web.Response:
    category = request.query.get("category") or None
    return web.json_response(await asyncio.to_thread(_ctx(request).service.catalog_list, category))


@operation(Operation(summary="One catalog entry", tag=_TAG, response={"type": "object"}, errors=_STORE))
async def show_catalog(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(_ctx(request).service.catalog_show, request.match_info["id"]))


@operation(Operation(summary="Download a catalog model", tag=_TAG, request=ForceBody, body_required=False,
                     stream=True, errors=_PULL, description=_SSE))
async def pull_catalog(request: web.Request) -> web.StreamResponse:
    force = (await _body(request, ForceBody, optional=True)).force
    service = _ctx(request).service
    model = request.match_info["id"]
    service.catalog.get(model)  # unknown id: 404 before anything starts
    return await _stream_job(
        request, lambda progress: service.catalog_pull(model, force=force, progress=progress), _pull_started
    )


@operation(Operation(summary="Fetch a newer catalog", tag=_TAG, request=CatalogUpdateBody, body_required=False,
                     response={"type": "object"}, errors=(E.InvalidRequestError, E.DownloadError, E.StoreError)))
async def update_catalog(request: web.Request) -> web.Response:
    url = (await _body(request, CatalogUpdateBody, optional=True)).url
    return web.json_response(await asyncio.to_thread(_ctx(request).service.catalog_update, url))


# --- libs ----------------------------------------------------------------------


@operation(Operation(summary="Installed llama.cpp libraries", tag=_TAG, response={"type": "object"},
                     errors=(E.StoreError,)))
async def list_libs(request: web.Request) -> web.Response:
    libs = _ctx(request).libs_manager()
    records = await asyncio.to_thread(libs.list_installs)
    return web.json_response({"object": "list", "data": [_plain(r) for r in records]})


async def _install_libs(request: web.Request, upgrade: bool) -> web.StreamResponse:
    body = await _body(request, LibsBody, optional=True)
    libs: LibsView = _ctx(request).libs_manager()
    return await _stream_job(
        request,
        lambda progress: libs.install(version=body.version, source=body.source, with_tools=body.with_tools,
                                      upgrade=upgrade, progress=progress),
        lambda event: True,
    )


@operation(Operation(summary="Install the llama.cpp libraries", tag=_TAG, request=LibsBody, body_required=False,
                     stream=True, errors=_LIBS, description=_SSE))
async def pull_libs(request: web.Request) -> web.StreamResponse:
    return await _install_libs(request, upgrade=False)


@operation(Operation(summary="Upgrade the llama.cpp libraries", tag=_TAG, request=LibsBody, body_required=False,
                     stream=True, errors=_LIBS, description=_SSE))
async def upgrade_libs(request: web.Request) -> web.StreamResponse:
    return await _install_libs(request, upgrade=True)
