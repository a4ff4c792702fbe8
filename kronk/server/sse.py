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
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any, Generic, TypeVar

from aiohttp import web

from kronk.server.errors import ShuttingDownError

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

    `next()` returns the next event or None at the end. While it waits, it sends a
    keep-alive comment every `keepalive` seconds and raises ClientGone as soon as
    the client disconnects; `stop()` (server shutdown) makes it raise
    ShuttingDownError. `aclose()` always closes the SDK stream.

    One producer task drains the SDK stream into a buffer for the stream's whole
    life, so `next()` costs a buffer pop when events are waiting and one future
    when not (no task and no `asyncio.wait` per token).
    """

    def __init__(self, events: AsyncIterator[T], sse: SSEResponse, keepalive: float) -> None:
        self._events = events
        self._sse = sse
        self._keepalive = keepalive
        self._buffer: deque[T] = deque()
        self._producer: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._failure: BaseException | None = None
        self._stopped = False
        self._last_write = time.monotonic()
        self.closed = False

    def mark_written(self) -> None:
        self._last_write = time.monotonic()

    def stop(self) -> None:
        self._stopped = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _produce(self) -> None:
        try:
            async for event in self._events:
                self._buffer.append(event)
                self._wake()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._failure = exc
        finally:
            self._ended = True
            self._wake()

    async def next(self) -> T | None:
        loop = asyncio.get_running_loop()
        if self._producer is None:
            self._producer = loop.create_task(self._produce())
        while True:
            if self._buffer:
                return self._buffer.popleft()
            if self._stopped:
                raise ShuttingDownError("the server is shutting down")
            if self._ended:
                if self._failure is not None:
                    failure, self._failure = self._failure, None
                    raise failure
                return None
            tick = min(_DISCONNECT_POLL, max(0.0, self._keepalive - (time.monotonic() - self._last_write)))
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(tick, _resolve, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
            if self._buffer or self._ended or self._stopped:
                continue
            if self._sse.prepared and self._sse.client_gone():
                raise ClientGone()
            if time.monotonic() - self._last_write >= self._keepalive:
                await self._sse.comment()
                self.mark_written()

    async def aclose(self) -> None:
        """Stop the producer and close the SDK stream (cancels the generation)."""
        if self.closed:
            return
        self.closed = True
        producer = self._producer
        if producer is not None and not producer.done():
            producer.cancel()
            with contextlib.suppress(BaseException):
                await producer
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


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
