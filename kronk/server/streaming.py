"""The one loop that turns an SDK event stream into an SSE response.

Each API supplies a `StreamEncoder` (its wire format); this module does the rest
the same way for all of them: keep-alives, disconnect → cancel, shutdown, metrics,
and errors (a JSON error before the first byte, an SSE error event after it).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any, Protocol

from aiohttp import web

from kronk.errors import KronkError, ShuttingDownError
from kronk.http_errors import spec_for
from kronk.sdk.requests import ToolsDropped
from kronk.server.keys import METRICS, SETTINGS, STREAMS
from kronk.server.meter import RequestMeter
from kronk.server.middleware import route_label
from kronk.server.respond import tools_dropped_headers
from kronk.server.sse import ClientGone, EventPump, SSEResponse

log = logging.getLogger("kronk.server")

Frame = tuple[str | None, Any]
"""(SSE event name or None, payload: a JSON-able object or a raw string)."""


class StreamEncoder(Protocol):
    """An API's SSE wire format for the neutral event stream."""

    def start(self) -> Iterable[Frame]:
        """Frames sent once, before the first event's frames."""

    def encode(self, event: Any) -> Iterable[Frame]:
        """Frames for one event."""

    def finish(self) -> Iterable[Frame]:
        """Frames after the last event (final usage, `[DONE]`, message_stop ...)."""

    def error(self, exc: BaseException) -> Iterable[Frame]:
        """Frames reporting an error after the stream began."""


async def _send(sse: SSEResponse, frames: Iterable[Frame]) -> None:
    await sse.send_many(frames)


async def stream_response(
    request: web.Request,
    events: AsyncIterator[Any],
    encoder: StreamEncoder,
    meter: RequestMeter,
) -> web.StreamResponse:
    """Drive `events` through `encoder` into an SSE response; always closes `events`."""
    app = request.app
    sse = SSEResponse(request)
    pump: EventPump[Any] = EventPump(events, sse, app[SETTINGS].keepalive)
    streams, metrics = app[STREAMS], app[METRICS]
    streams.add(pump)
    metrics.streams_active.inc()
    try:
        event = await pump.next()
        if isinstance(event, ToolsDropped):
            # Comes before any output: the header can still go out with the response.
            if not sse.add_headers(tools_dropped_headers(event.names)):
                log.warning("%s: tools were dropped after the stream began; no header sent", request.path)
            event = await pump.next()
        await _send(sse, encoder.start())
        while event is not None:
            meter.on_event(event)
            await _send(sse, encoder.encode(event))
            pump.mark_written()
            event = await pump.next()
        await _send(sse, encoder.finish())
        return await sse.finish()
    except ClientGone:
        log.info("client disconnected from %s; generation cancelled", request.path)
        return sse.response
    except (KronkError, ShuttingDownError) as exc:
        if not sse.prepared:
            raise
        return await _stream_error(request, sse, encoder, exc)
    except Exception as exc:
        if not sse.prepared:
            raise
        log.exception("error while streaming %s", request.path)
        return await _stream_error(request, sse, encoder, exc)
    finally:
        metrics.streams_active.dec()
        streams.discard(pump)
        await pump.aclose()


async def _stream_error(request: web.Request, sse: SSEResponse, encoder: StreamEncoder,
                        exc: BaseException) -> web.StreamResponse:
    spec = spec_for(exc)
    request.config_dict[METRICS].count_error(route_label(request), spec.code or str(spec.status))
    try:
        await _send(sse, encoder.error(exc))
    except ClientGone:
        return sse.response
    return await sse.finish()
