"""`/mcp`: Kronk as an MCP server over streamable HTTP, inside the aiohttp app.

The official SDK's `StreamableHTTPSessionManager` speaks the protocol (an ASGI app); this
module bridges one aiohttp request to it (scope, body, streamed answer) so `/mcp` sits behind
the server's own middleware: security (the `tools` endpoint grant, rate-limited like every
grant), metrics, body-size limit. Stateless mode with JSON answers: every POST stands alone,
so no session state outlives a request and replicas behind a balancer need no stickiness.
The manager's anyio task group lives in an owner task (started and stopped with the app),
because aiohttp may run startup and cleanup in different tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from kronk import errors as E
from kronk.server.keys import SETTINGS
from kronk.tools import ToolHost
from kronk.tools.mcp_server import build_server
from kronk.wire import BODY_ERRORS, Extra, Operation, operation, read_json

PATH = "/mcp"
MANAGER = web.AppKey("mcp_manager", StreamableHTTPSessionManager)
_MESSAGE: dict[str, Any] = {
    "type": "object", "required": ["jsonrpc", "method"], "description": "An MCP JSON-RPC 2.0 request or notification",
    "properties": {"jsonrpc": {"const": "2.0"}, "id": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                   "method": {"type": "string", "description": "e.g. initialize, tools/list, tools/call"},
                   "params": {"type": "object"}}}
_ANSWER: dict[str, Any] = {"type": "object", "description": "The JSON-RPC 2.0 response (a result or an error)"}
_HOP_HEADERS = frozenset({b"transfer-encoding", b"connection", b"keep-alive"})


def _transport_security(host: str) -> TransportSecuritySettings | None:
    """DNS-rebinding protection (Host/Origin checks) when the server listens on loopback only."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        return None
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])


async def mcp_context(app: web.Application) -> AsyncIterator[None]:
    """Run the session manager in an owner task for the app's lifetime."""
    manager = app[MANAGER]
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def own() -> None:
        async with manager.run():
            ready.set_result(None)
            await stop.wait()

    task = asyncio.create_task(own(), name="mcp-session-manager")
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await task


def _scope(request: web.Request) -> dict[str, Any]:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": request.method, "scheme": request.scheme, "path": PATH, "raw_path": PATH.encode(),
        "query_string": request.query_string.encode("latin-1"), "root_path": "",
        "headers": [(name.lower(), value) for name, value in request.raw_headers],
        "client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
        "server": tuple(sock[:2]) if isinstance(sock, tuple) else None,
    }


def _message(data: object) -> bytes:
    """The body re-encoded once it is one JSON-RPC request or notification as documented (else our 400).

    Stateless: no server-to-client requests exist, so clients never POST responses here.
    """
    if not isinstance(data, dict) or data.get("jsonrpc") != "2.0":
        raise E.InvalidRequestError('the body must be one JSON-RPC 2.0 message ({"jsonrpc": "2.0", ...})',
                                    param="jsonrpc")
    if not isinstance(data.get("method"), str):
        raise E.InvalidRequestError("a JSON-RPC request needs a `method` string", param="method")
    if "id" in data and (isinstance(data["id"], bool) or not isinstance(data["id"], (int, str))):
        raise E.InvalidRequestError("a JSON-RPC `id` must be an integer or a string", param="id")
    if "params" in data and not isinstance(data["params"], dict):
        raise E.InvalidRequestError("JSON-RPC `params` must be an object", param="params")
    return json.dumps(data).encode()


@operation(Operation(
    summary="MCP (streamable HTTP): Kronk's server-side tools for MCP clients", tag="Tools", request=_MESSAGE,
    response=_ANSWER, errors=BODY_ERRORS,
    also={202: Extra("a notification was accepted (no body)", {"type": "string", "maxLength": 0}, "text/plain"),
          406: Extra("the Accept header must name application/json (and text/event-stream)", _ANSWER),
          415: Extra("the Content-Type must be application/json", _ANSWER),
          421: Extra("Host header not allowed (DNS-rebinding protection on loopback)", {"type": "string"},
                     "text/plain")},
    description="The MCP streamable-HTTP transport, stateless with JSON answers (POST only; GET and DELETE "
                "are 405 as the transport allows). Tools: web_fetch, web_search (with a configured backend) and "
                "the configured MCP servers' tools. Needs the `tools` grant when security is full. "
                "See docs/tools.md."))
async def mcp_handler(request: web.Request) -> web.StreamResponse:
    """Hand one HTTP request to the SDK's transport and stream its answer back."""
    body = _message(await read_json(request))
    delivered = False
    response: web.StreamResponse | None = None
    finished = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal response
        if message["type"] == "http.response.start":
            response = web.StreamResponse(status=message["status"])
            # 202 (a notification accepted) has an empty body: not JSON, whatever the SDK labels it.
            dropped = _HOP_HEADERS | ({b"content-type"} if response.status == 202 else set())
            for name, value in message.get("headers", []):
                if name.lower() not in dropped:
                    response.headers.add(name.decode("latin-1"), value.decode("latin-1"))
            if response.status == 202:
                response.content_type = "text/plain"
            await response.prepare(request)
        elif message["type"] == "http.response.body" and response is not None:
            chunk = message.get("body", b"")
            if chunk:
                await response.write(chunk)
            if not message.get("more_body", False):
                finished.set()

    try:
        await request.app[MANAGER].handle_request(_scope(request), receive, send)
    finally:
        finished.set()
    if response is None:
        raise E.ToolUnavailableError("the MCP transport gave no answer")
    await response.write_eof()
    return response


def add_routes(app: web.Application, host: ToolHost) -> None:
    """Mount `/mcp` serving `host`'s tools (kronk/server/tools_host.py calls this)."""
    settings = app[SETTINGS]
    app[MANAGER] = StreamableHTTPSessionManager(
        app=build_server(host), stateless=True, json_response=True,
        security_settings=_transport_security(settings.host), max_request_body_size=settings.max_body_size)
    app.cleanup_ctx.append(mcp_context)
    app.router.add_post(PATH, mcp_handler)
