"""Fixtures of the tool tests: a local web site, a stub resolver, real MCP servers.

Everything listens on 127.0.0.1 and every URL a test hands a tool points there (or is
refused by the guard before any connection). mcp-server-fetch fetches by itself, outside
the suite's loopback guard: it is only ever given 127.0.0.1 URLs.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler

from kronk.tools.types import McpServerConfig

ROOT = Path(__file__).resolve().parents[2]

PAGE = """<!doctype html><html><head><title>Kronk Test Page</title><style>body{color:red}</style>
<script>var secret = "do not show";</script></head>
<body><nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<main><h1>Llamas</h1><p>Llamas are <strong>domesticated</strong> South American camelids.</p>
<ul><li>Wool</li><li>Pack animals</li></ul><p>See <a href="https://example.org/llama">more</a>.</p></main>
<footer>footer text</footer></body></html>"""


@dataclass
class Site:
    """The local web site: its base URL and how many times each path was asked for."""

    base: str
    hits: Counter[str] = field(default_factory=Counter)

    def url(self, path: str) -> str:
        return self.base + path


def _site_app(hits: Counter[str]) -> web.Application:
    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        hits[request.path] += 1
        return await handler(request)

    app = web.Application(middlewares=[count])

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def big(request: web.Request) -> web.Response:
        paragraphs = "".join(f"<p>Paragraph {i} about llamas and alpacas.</p>" for i in range(20000))
        return web.Response(text=f"<html><body>{paragraphs}</body></html>", content_type="text/html")

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="plain words", content_type="text/plain")

    async def data(request: web.Request) -> web.Response:
        return web.json_response({"animal": "llama"})

    async def odd_charset(request: web.Request) -> web.Response:
        return web.Response(body="caf\u00e9".encode(), headers={"Content-Type": "text/plain; charset=klingon"})

    async def binary(request: web.Request) -> web.Response:
        return web.Response(body=b"\x00\x01\x02", content_type="application/octet-stream")

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404, text="<h1>not here</h1>", content_type="text/html")

    def redirect(location: str, status: int = 302):  # type: ignore[no-untyped-def]
        async def handler(request: web.Request) -> web.Response:
            return web.Response(status=status, headers={"Location": location})
        return handler

    async def chain(request: web.Request) -> web.Response:
        left = int(request.match_info["n"])
        location = "/page" if left <= 1 else f"/chain/{left - 1}"
        return web.Response(status=301, headers={"Location": location})

    app.router.add_get("/page", page)
    app.router.add_get("/big", big)
    app.router.add_get("/text", text)
    app.router.add_get("/data", data)
    app.router.add_get("/binary", binary)
    app.router.add_get("/odd-charset", odd_charset)
    app.router.add_get("/missing", missing)
    app.router.add_get("/robots.txt", text)
    app.router.add_get("/redirect", redirect("/page"))
    app.router.add_get("/redirect-307", redirect("page", 307))
    app.router.add_get("/chain/{n}", chain)
    app.router.add_get("/loop", redirect("/loop"))
    app.router.add_get("/to-private", redirect("http://10.0.0.1/secret"))
    app.router.add_get("/to-metadata", redirect("http://169.254.169.254/latest/meta-data/"))
    app.router.add_get("/to-v6-loopback", redirect("http://[::1]/"))
    return app


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    hits: Counter[str] = Counter()
    server = TestServer(_site_app(hits), host="127.0.0.1")
    await server.start_server()
    try:
        yield Site(base=f"http://127.0.0.1:{server.port}", hits=hits)
    finally:
        await server.close()


@dataclass
class StubResolver:
    """A resolver answering from a table; records every name it was asked for."""

    table: dict[str, list[str]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.table[host])


@pytest.fixture
def resolver() -> StubResolver:
    return StubResolver()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    """Until something accepts on 127.0.0.1:port (or the process died)."""
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"the test MCP server exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError("the test MCP server did not start listening")


@dataclass
class HttpMcp:
    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture
async def http_mcp() -> AsyncIterator[HttpMcp]:
    """tests/tools/mcp_http_server.py on a free 127.0.0.1 port (a real streamable-HTTP MCP server)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.tools.mcp_http_server", str(port)], cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        await wait_for_port(port, process)
        yield HttpMcp(url=f"http://127.0.0.1:{port}/mcp", process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def fetch_server(name: str = "fetch") -> McpServerConfig:
    """mcp-server-fetch over stdio, allowed to fetch loopback (tests give it 127.0.0.1 URLs only)."""
    return McpServerConfig(name=name, command=sys.executable,
                           args=("-m", "mcp_server_fetch", "--ignore-robots-txt", "--allow-private-ips"),
                           env={"KRONK_TEST_SECRET": "s3cr3t-value"})


def children_of(pid: int) -> Iterator[int]:
    """Process ids whose parent is `pid` (Linux /proc)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                yield int(entry.name)
