"""Server-sent events: a lazily prepared SSE response and a pump that keeps it alive.

Headers go out only when the first event (or the first keep-alive) is written, so
an error raised while the request is admitted (unknown model, context overflow,
queue full) is still a plain JSON error with the right status code. While the
model is busy (long prefill, queue wait) the pump writes a `: keep-alive` comment
every `keepalive` seconds, which also detects a client that went away: a failed
write, a closed transport, or the handler's cancellation all close the SDK stream,
which cancels the generation and frees its slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import weakref
from collections.abc import AsyncIterator, Iterable
from typing import Any, Generic, TypeVar

from aiohttp import web

from kronk.errors import ShuttingDownError

T = TypeVar("T")

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}
_DISCONNECT_POLL = 0.5
"""How often an idle stream checks whether its client is still connected (seconds)."""


class ClientGone(Exception):
    """The client closed the connection; the stream must stop."""


def encode_json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def format_event(data: str, event: str | None = None) -> str:
    """One SSE event: an optional `event:` line, a `data:` line per line of data, a blank line."""
    if "\n" not in data:
        return f"event: {event}\ndata: {data}\n\n" if event else f"data: {data}\n\n"
    lines = [f"event: {event}"] if event else []
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return "\n".join(lines) + "\n\n"


class SSEResponse:
    """One `text/event-stream` response, prepared on the first write."""

    def __init__(self, request: web.Request, headers: dict[str, str] | None = None) -> None:
        self._request = request
        self._headers = {**SSE_HEADERS, **(headers or {})}
        self._response: web.StreamResponse | None = None

    @property
    def prepared(self) -> bool:
        return self._response is not None

    def add_headers(self, headers: dict[str, str] | None) -> bool:
        """Headers for the response; False (and nothing added) once it went out."""
        if self._response is not None:
            return False
        self._headers.update(headers or {})
        return True

    @property
    def response(self) -> web.StreamResponse:
        if self._response is None:
            raise RuntimeError("SSE response not prepared")
        return self._response

    def client_gone(self) -> bool:
        transport = self._request.transport
        return transport is None or transport.is_closing()

    async def prepare(self) -> web.StreamResponse:
        if self._response is None:
            response = web.StreamResponse(status=200, headers=self._headers)
            try:
                await response.prepare(self._request)
            except (ConnectionError, RuntimeError) as exc:
                raise ClientGone() from exc
            self._response = response
        return self._response

    async def _write(self, payload: str) -> None:
        response = await self.prepare()
        try:
            await response.write(payload.encode("utf-8"))
        except (ConnectionError, RuntimeError) as exc:
            raise ClientGone() from exc

    async def send(self, data: str, event: str | None = None) -> None:
        await self._write(format_event(data, event))

    async def send_json(self, obj: Any, event: str | None = None) -> None:
        await self.send(encode_json(obj), event)

    async def send_many(self, events: Iterable[tuple[str | None, Any]]) -> None:
        """Several events (name, str or JSON-able payload) in one write: one syscall."""
        payload = "".join(
            format_event(data if isinstance(data, str) else encode_json(data), name) for name, data in events
        )
        if payload:
            await self._write(payload)

    async def comment(self, text: str = "keep-alive") -> None:
        await self._write(f": {text}\n\n")

    async def finish(self) -> web.StreamResponse:
        response = await self.prepare()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response


class EventPump(Generic[T]):
    """Pulls events from an SDK stream while keeping the SSE connection alive.

    `next()` returns the next event or None at the end. The handler awaits the SDK
    stream directly (no task, future or timer per token). A watchdog callback, run
    every `_DISCONNECT_POLL` seconds (or `keepalive`, if shorter), acts only while
    the handler waits for an event: it writes a keep-alive comment every `keepalive`
    seconds, and when the client has gone it cancels the wait, so `next()` raises
    ClientGone; `stop()` (server shutdown) cancels it at once, so `next()` raises
    ShuttingDownError. Cancelling the wait cancels the generation inside the SDK
    stream. `aclose()` always closes the SDK stream.
    """

    def __init__(self, events: AsyncIterator[T], sse: SSEResponse, keepalive: float) -> None:
        self._events = events
        self._sse = sse
        self._keepalive = keepalive
        self._period = min(_DISCONNECT_POLL, keepalive)
        self._waiter_task: asyncio.Task[Any] | None = None
        self._abort: BaseException | None = None
        self._stopped = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._keepalive_write: asyncio.Task[None] | None = None
        self._last_write = time.monotonic()
        self.closed = False

    def mark_written(self) -> None:
        self._last_write = time.monotonic()

    def stop(self) -> None:
        self._stopped = True
        self._interrupt(ShuttingDownError("the server is shutting down"))

    async def next(self) -> T | None:
        if self._stopped:
            raise ShuttingDownError("the server is shutting down")
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_later(self._period, self._check)
        task = self._waiter_task = asyncio.current_task()
        try:
            event = await self._events.__anext__()
        except StopAsyncIteration:
            return None
        except asyncio.CancelledError:
            abort = self._abort
            if abort is None or task is None:
                raise
            task.uncancel()
            raise abort from None
        finally:
            self._waiter_task = None
        writing = self._keepalive_write
        if writing is not None and not writing.done():
            await writing  # the first write may still be preparing the response
        return event

    def _interrupt(self, exc: BaseException) -> None:
        task = self._waiter_task
        if task is not None and self._abort is None:
            self._abort = exc
            task.cancel()

    def _check(self) -> None:
        """Watchdog: keep-alive and disconnect checks while the handler waits (`stop()` acts at once)."""
        if self.closed:
            return
        loop = asyncio.get_running_loop()
        self._watchdog = loop.call_later(self._period, self._check)
        if self._waiter_task is None:
            return
        if self._sse.prepared and self._sse.client_gone():
            self._interrupt(ClientGone())
        elif time.monotonic() - self._last_write >= self._keepalive and (
                self._keepalive_write is None or self._keepalive_write.done()):
            self._keepalive_write = loop.create_task(self._write_keepalive())

    async def _write_keepalive(self) -> None:
        try:
            await self._sse.comment()
        except ClientGone:
            self._interrupt(ClientGone())
            return
        self.mark_written()

    async def aclose(self) -> None:
        """Stop the watchdog and close the SDK stream (cancels the generation)."""
        if self.closed:
            return
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        writing = self._keepalive_write
        if writing is not None and not writing.done():
            writing.cancel()
            with contextlib.suppress(BaseException):
                await writing
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


class StreamRegistry:
    """Open pumps, so shutdown can end every stream cleanly instead of waiting for it."""

    def __init__(self) -> None:
        self._pumps: weakref.WeakSet[EventPump[Any]] = weakref.WeakSet()
        self.draining = False

    def add(self, pump: EventPump[Any]) -> None:
        if self.draining:
            pump.stop()
        self._pumps.add(pump)

    def discard(self, pump: EventPump[Any]) -> None:
        self._pumps.discard(pump)

    def __len__(self) -> int:
        return len(self._pumps)

    def stop_all(self) -> None:
        self.draining = True
        for pump in list(self._pumps):
            pump.stop()
