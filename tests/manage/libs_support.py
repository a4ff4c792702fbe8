"""Helpers for the `kronk libs` tests: real release-style archives and a local HTTP server.

The archives hold the real llama.cpp b11434 libraries built on this machine, laid out
the way ggml-org's release tarballs are (`build/bin/`), flat, or under `llama-bN/`.
The server is a real HTTP server on 127.0.0.1 that records every path asked for.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def release_path(root: Path, prefix: str, build: int, asset: str) -> Path:
    """Where the server must hold `asset` for base URL `<server>/<prefix>`."""
    return root / prefix / "releases" / "download" / f"b{build}" / asset


def linux_asset(build: int = REAL_BUILD) -> str:
    return f"llama-b{build}-bin-ubuntu-x64.tar.gz"


class LocalServer:
    """A static file server on 127.0.0.1 over `root`, recording request paths."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                server.requests.append(self.path)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

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
