"""Talking to another Kronk server's peer routes: pull a model from it, push one to it.

Pull (`kronk model pull MODEL --from URL`): the peer's manifest becomes an ordinary
pull plan whose files are the peer's `/peer/models/{id}/files/{name}` URLs, so the
one downloader does the rest — `.part` files resumed with Range after a cut, size
and sha256 checked, staging, atomic install, index — exactly as from Hugging Face.

Push (`kronk push MODEL --to URL`): begin the upload (the receiver says how many
bytes of each file it already holds), send the rest in chunks with their sha256,
then commit. A cut connection or a receiver restart is resumed by asking again
where to continue; a chunk the receiver refuses as corrupt is sent again; the
receiver verifies each whole file before anything reaches its index.
Blocking: call from a thread.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from kronk import errors as E
from kronk.manage.download import TIMEOUT, failure_reason
from kronk.manage.endpoints import make_session
from kronk.manage.peer import PEER_API, Manifest, build_manifest, local_paths, read_manifest
from kronk.manage.progress import TransferCallback, TransferEvent
from kronk.manage.sources import PullPlan, RemoteFile
from kronk.models.store import ModelStore

DEFAULT_CHUNK = 8 << 20
COMMIT_TIMEOUT = (15.0, 3600.0)
"""Commit hashes every file on the receiver: allow it an hour of silence for big models."""
_RETRYABLE = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class _Retry(Exception):
    """The connection was lost: ask the receiver where to resume."""


class PeerClient:
    """Requests to one peer's `/v1/kronk/peer` routes, with its admin token."""

    def __init__(self, base_url: str, token: str | None = None, *, session: requests.Session | None = None,
                 timeout: tuple[float, float] = TIMEOUT) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise E.InvalidRequestError(f"peer URL {base_url!r} must start with http:// or https://", param="peer")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.session = session or make_session()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def url(self, path: str) -> str:
        return f"{self.base_url}{PEER_API}{path}"

    def file_url(self, model_id: str, name: str) -> str:
        return self.url(f"/models/{quote(model_id, safe='/')}/files/{quote(name)}")

    def _call(self, method: str, path: str, *, timeout: Any = None, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.session.request(method, self.url(path), headers={**self.headers, **kwargs.pop(
                "headers", {})}, timeout=timeout or self.timeout, **kwargs)
        except _RETRYABLE as exc:
            raise _Retry(failure_reason(exc)) from exc
        except requests.RequestException as exc:
            raise E.DownloadError(f"peer {self.base_url}: {failure_reason(exc)}") from exc
        with response:
            try:
                body = response.json()
            except ValueError:
                body = None
        if response.status_code >= 400:
            raise _error(self.base_url, response.status_code, body)
        if not isinstance(body, dict):
            raise E.DownloadError(f"peer {self.base_url} answered {path} with something other than a JSON object")
        return body

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One request; a lost connection is a DownloadError (callers that resume catch `_Retry` instead)."""
        try:
            return self._call(method, path, **kwargs)
        except _Retry as exc:
            raise E.DownloadError(f"peer {self.base_url} is unreachable: {exc}") from None

    def manifest(self, model: str) -> Manifest:
        return read_manifest(self.call("GET", f"/models/{quote(model, safe='/')}/manifest"))


def _error(where: str, status: int, body: Any) -> E.KronkError:
    """The peer's error JSON as the typed error it stands for (its code names the class)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return E.DownloadError(f"peer {where} answered HTTP {status}")
    message = f"peer {where}: {error.get('message') or f'HTTP {status}'}"
    if status in (401, 403):  # the peer's token, not the caller's own: a failed transfer, not a local auth error
        return E.DownloadError(f"{message} (HTTP {status}; the peer routes need an admin token of that server)")
    code = error.get("code")
    cls = E.error_classes().get(code) if isinstance(code, str) else None
    if cls is None:
        cls = E.DownloadError
    param = error.get("param") if isinstance(error.get("param"), str) else None
    return cls.from_wire(message, param)


# --- pull from a peer --------------------------------------------------------------


def peer_plan(client: PeerClient, manifest: Manifest) -> PullPlan:
    """A pull plan whose files come from the peer (its token goes to that peer only)."""
    headers = tuple(client.headers.items())

    def remote(name: str, size: int, sha: str) -> RemoteFile:
        return RemoteFile(url=client.file_url(manifest.id, name), name=name, size=size, sha256=sha, headers=headers)

    projector = manifest.projector()
    return PullPlan(
        model_id=manifest.id,
        files=tuple(remote(f.name, f.size, f.sha256) for f in manifest.model_files()),
        projector=remote(projector.name, projector.size, projector.sha256) if projector else None,
        source={"kind": "peer", "url": client.base_url, "origin": manifest.source},
        config=dict(manifest.config),
    )


# --- push to a peer ----------------------------------------------------------------


def chunk_path(upload: str, name: str, offset: int, data: bytes) -> str:
    """Where a chunk goes: the file, the offset it starts at and its sha256 (the receiver checks both)."""
    return f"/uploads/{upload}/files/{quote(name)}/{offset}/{hashlib.sha256(data).hexdigest()}"


class Pusher:
    """Push one stored model to a peer, resuming whatever the peer already holds."""

    def __init__(self, client: PeerClient, *, chunk_size: int = DEFAULT_CHUNK, retries: int = 5,
                 backoff: float = 0.5) -> None:
        self.client = client
        self.chunk_size = chunk_size
        self.retries = retries
        self.backoff = backoff

    def push(self, store: ModelStore, model: str, *, force: bool = False,
             progress: TransferCallback | None = None) -> dict[str, Any]:
        emit = progress or (lambda event: None)
        manifest = build_manifest(store, model)
        emit(TransferEvent("resolving", manifest.id, message=f"pushing {manifest.id} to {self.client.base_url}"))
        body = {"manifest": manifest.model_dump(mode="json"), "force": force}
        state = self._with_retries(lambda: self.client._call("POST", "/uploads", json=body))
        if state.get("status") == "exists":
            emit(TransferEvent("exists", manifest.id, message=f"{manifest.id} is already on {self.client.base_url}"))
            return {"status": "exists", "model": manifest.id, "upload_id": state.get("upload_id")}
        upload = str(state["upload_id"])
        started = time.monotonic()
        sent = 0
        for attempt in range(2):
            received = {f["name"]: int(f["received"]) for f in state["files"]}
            for entry in manifest.files:
                sent += self._send_file(store, manifest, upload, entry.name, received[entry.name], emit)
            emit(TransferEvent("verifying", manifest.id, message="the receiver verifies and installs the files"))
            try:
                result = self._with_retries(lambda: self.client._call("POST", f"/uploads/{upload}/commit",
                                                                      timeout=COMMIT_TIMEOUT))
            except E.UploadChecksumError:
                if attempt:
                    raise
                state = self._with_retries(lambda: self.client._call("POST", "/uploads", json=body))
                continue
            seconds = time.monotonic() - started
            emit(TransferEvent("done", manifest.id, message=f"pushed {manifest.id}"))
            return {**result, "upload_id": upload, "sent_bytes": sent, "seconds": round(seconds, 3)}
        raise AssertionError("unreachable")

    def _send_file(self, store: ModelStore, manifest: Manifest, upload: str, name: str, offset: int,
                   emit: TransferCallback) -> int:
        entry = next(f for f in manifest.files if f.name == name)
        path = local_paths(store, store.get(manifest.id))[name]
        emit(TransferEvent("uploading", manifest.id, name, offset, entry.size))
        sent = 0
        failures = 0
        with path.open("rb") as handle:
            while offset < entry.size:
                handle.seek(offset)
                data = handle.read(min(self.chunk_size, entry.size - offset))
                try:
                    answer = self.client._call(
                        "PUT", chunk_path(upload, name, offset, data), data=data,
                        headers={"Content-Type": "application/octet-stream"})
                    offset = int(answer["received"])
                    sent += len(data)
                    failures = 0
                except (_Retry, E.UploadOffsetError, E.UploadChecksumError) as exc:
                    failures += 1
                    if failures > self.retries:
                        raise E.DownloadError(f"push of {name} to {self.client.base_url} failed after "
                                              f"{failures} attempts: {exc}") from None
                    emit(TransferEvent("retrying", manifest.id, name, offset, entry.size,
                                   message=f"{name}: {exc}; resuming"))
                    time.sleep(min(self.backoff * 2 ** (failures - 1), 5.0))
                    offset = self._where(upload, name)
                emit(TransferEvent("uploading", manifest.id, name, offset, entry.size))
        return sent

    def _where(self, upload: str, name: str) -> int:
        """How many bytes of `name` the receiver holds now (after a cut or a restart)."""
        state = self._with_retries(lambda: self.client._call("GET", f"/uploads/{upload}"))
        return next(int(f["received"]) for f in state["files"] if f["name"] == name)

    def _with_retries(self, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        for attempt in range(self.retries + 1):
            try:
                return call()
            except _Retry as exc:
                if attempt == self.retries:
                    raise E.DownloadError(f"peer {self.client.base_url} is unreachable: {exc}") from None
                time.sleep(min(self.backoff * 2 ** attempt, 5.0))
        raise AssertionError("unreachable")
