"""The peer routes of the management API (`/v1/kronk/peer/...`): models between servers.

Sending (`kronk model pull --from URL` on the other side reads these):
  GET  /peer/models/{id}/manifest        files with sizes and sha256, the config
  GET  /peer/models/{id}/files/{name}    one file; HTTP Range, so a cut download resumes
Receiving (`kronk push MODEL --to URL` writes these):
  POST /peer/uploads                     {manifest, force?} -> upload id + bytes already here
  GET  /peer/uploads/{upload}            the same answer, later
  PUT  /peer/uploads/{upload}/files/{name}/{offset}/{sha256}   one chunk: the body, where it starts, its sha256
  POST /peer/uploads/{upload}/commit     verify every file, install, index
Libraries (`kronk libs --from URL` reads these):
  GET  /peer/libs                        platform, build, CPU features, files with sha256, symlinks
  GET  /peer/libs/files/{name}           one file of that build
They sit under /v1/kronk, so the security layer asks for an admin token like every
management route.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from kronk import errors as E
from kronk.manage.peer import FILE_NAME, Manifest, build_manifest
from kronk.manage.peer_receive import MAX_CHUNK, UploadStore
from kronk.manage.service import ModelService
from kronk.wire import Operation, WireModel, operation, parse, read_json

_TAG = "Management"
_LOCKS = web.AppKey("kronk_peer_upload_locks", dict)
_SERVICE = web.AppKey("kronk_peer_service", ModelService)
_LIBS = web.AppKey("kronk_peer_libs", object)
_SHA = re.compile(r"^[0-9a-fA-F]{64}$")
_UPLOAD = {"upload_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}
_NAME = {"name": {"type": "string", "pattern": FILE_NAME}}
_CHUNK = {"offset": {"type": "string", "pattern": "^[0-9]{1,15}$"},
          "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}
_STATE = {"type": "object", "properties": {"upload_id": {"type": "string"}, "status": {"type": "string"},
                                           "model": {"type": "string"}, "files": {"type": "array"}}}


class UploadBody(WireModel):
    manifest: Manifest
    """The model's manifest, as `GET /peer/models/{id}/manifest` gives it."""
    force: bool = False
    """Replace an installed model of that id whose files differ."""


def add_peer_routes(app: web.Application, service: ModelService, libs: Callable[[], Any]) -> None:
    """Register the peer routes on the management sub-application: models of `service`'s
    store, and the llama.cpp build of the `libs()` manager."""
    app[_LOCKS] = {}
    app[_SERVICE] = service
    app[_LIBS] = libs
    app.router.add_get("/peer/libs", libs_manifest_route)
    app.router.add_get("/peer/libs/files/{name:.+}", libs_file_route)
    app.router.add_get("/peer/models/{id:.+}/manifest", model_manifest)
    app.router.add_get("/peer/models/{id:.+}/files/{name}", model_file)
    app.router.add_post("/peer/uploads", begin_upload)
    app.router.add_get("/peer/uploads/{upload_id}", upload_state)
    app.router.add_put("/peer/uploads/{upload_id}/files/{name}/{offset}/{sha256}", upload_chunk)
    app.router.add_post("/peer/uploads/{upload_id}/commit", commit_upload)


def _service(request: web.Request) -> ModelService:
    return request.app[_SERVICE]


def _uploads(request: web.Request) -> UploadStore:
    return UploadStore(_service(request).store)


@operation(Operation(summary="A stored model's files (sizes, sha256) and config, for a peer", tag=_TAG,
                     response=Manifest, errors=(E.ModelNotFoundError, E.StoreError, E.InvalidRequestError)))
async def model_manifest(request: web.Request) -> web.Response:
    manifest = await asyncio.to_thread(build_manifest, _service(request).store, request.match_info["id"])
    return web.json_response(manifest.model_dump(mode="json"))


@operation(Operation(summary="One file of a stored model (HTTP Range supported)", tag=_TAG,
                     response={"type": "string", "format": "binary"}, media="application/octet-stream",
                     path_params=_NAME, errors=(E.ModelNotFoundError, E.PeerFileNotFoundError, E.StoreError)))
async def model_file(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    model, name = request.match_info["id"], request.match_info["name"]
    stored = await asyncio.to_thread(service.store.get, model)
    files = list(stored.files) + ([stored.projector] if stored.projector is not None else [])
    for stored_file in files:
        path = service.store.path_of(stored_file)
        if path.name == name:
            if not path.is_file():
                raise E.PeerFileNotFoundError(f"file {name} of {stored.id} is missing; run `kronk model index`")
            return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})
    raise E.PeerFileNotFoundError(f"model {stored.id} has no file {name!r}")


@operation(Operation(summary="Begin (or resume) a push of a model into this server", tag=_TAG, request=UploadBody,
                     response=_STATE, errors=(E.InvalidRequestError, E.StoreError, E.InsufficientStorageError)))
async def begin_upload(request: web.Request) -> web.Response:
    body = parse(UploadBody, await read_json(request))
    manifest = body.manifest.checked()
    state = await asyncio.to_thread(_uploads(request).begin, manifest, force=body.force)
    return web.json_response(state.to_dict())


@operation(Operation(summary="What a push has delivered so far", tag=_TAG, response=_STATE, path_params=_UPLOAD,
                     errors=(E.InvalidRequestError, E.StoreError, E.UploadNotFoundError)))
async def upload_state(request: web.Request) -> web.Response:
    state = await asyncio.to_thread(_uploads(request).state, request.match_info["upload_id"])
    return web.json_response(state.to_dict())


@operation(Operation(summary="One chunk of a pushed file, at the offset where this server's copy ends", tag=_TAG,
                     response={"type": "object"}, path_params={**_UPLOAD, **_NAME, **_CHUNK},
                     errors=(E.InvalidRequestError, E.UploadChecksumError, E.UploadOffsetError, E.StoreError,
                             E.UploadNotFoundError, E.RequestTooLargeError),
                     description="The body is the raw bytes of the chunk; `offset` is where it starts in the file "
                                 "and `sha256` its hash (checked before anything is written)."))
async def upload_chunk(request: web.Request) -> web.Response:
    info = request.match_info
    upload, name, offset_text, sha = info["upload_id"], info["name"], info["offset"], info["sha256"]
    if not offset_text.isdigit():
        raise E.InvalidRequestError("offset must be a whole number of bytes", param="offset")
    if not _SHA.match(sha):
        raise E.InvalidRequestError("sha256 must be the chunk's sha256 (64 hex digits)", param="sha256")
    data = await _read_chunk(request)
    locks: dict[str, asyncio.Lock] = request.app[_LOCKS]
    lock = locks.setdefault(f"{upload}/{name}", asyncio.Lock())
    async with lock:
        received = await asyncio.to_thread(_uploads(request).write, upload, name, int(offset_text), data, sha)
    return web.json_response({"upload_id": upload, "name": name, "received": received})


async def _read_chunk(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_CHUNK:
        raise E.RequestTooLargeError(f"a chunk may hold at most {MAX_CHUNK} bytes, not {request.content_length}")
    data = bytearray()
    async for piece in request.content.iter_chunked(1 << 20):
        data += piece
        if len(data) > MAX_CHUNK:
            raise E.RequestTooLargeError(f"a chunk may hold at most {MAX_CHUNK} bytes")
    return bytes(data)


@operation(Operation(summary="Verify a pushed model's files, install them and index the model", tag=_TAG,
                     response={"type": "object"}, path_params=_UPLOAD, body_required=False,
                     errors=(E.InvalidRequestError, E.UploadChecksumError, E.StoreError, E.UploadNotFoundError)))
async def commit_upload(request: web.Request) -> web.Response:
    service = _service(request)
    stored = await asyncio.to_thread(_uploads(request).commit, request.match_info["upload_id"])
    return web.json_response({"status": "pushed", "model": service.describe(stored)})


# --- libs ------------------------------------------------------------------------------


@operation(Operation(summary="The llama.cpp build this server runs on: platform, CPU features, files with sha256",
                     tag=_TAG, response={"type": "object"},
                     errors=(E.LibraryNotFoundError, E.StoreError, E.NativeError)))
async def libs_manifest_route(request: web.Request) -> web.Response:
    from kronk.manage.libs_peer import libs_manifest

    return web.json_response(await asyncio.to_thread(libs_manifest, request.app[_LIBS]()))


@operation(Operation(summary="One file of this server's llama.cpp build", tag=_TAG,
                     response={"type": "string", "format": "binary"}, media="application/octet-stream",
                     errors=(E.LibraryNotFoundError, E.PeerFileNotFoundError, E.StoreError, E.NativeError)))
async def libs_file_route(request: web.Request) -> web.StreamResponse:
    from kronk.manage.libs_peer import libs_file

    path = await asyncio.to_thread(libs_file, request.app[_LIBS](), request.match_info["name"])
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})
