"""Jobs: one generation request inside the engine, and how its events leave the thread.

The engine thread never touches asyncio objects directly: each job has a `sink`
callable. `AsyncEventQueue` hands events to an asyncio.Queue with one
`call_soon_threadsafe` per event; `ThreadEventQueue` serves synchronous callers.
A sink receives `Event`s, then ends with a `Finish`, or receives an exception.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from kronk.engine.types import Event, GenerateRequest

Sink = Callable[[Any], None]
_ids = itertools.count(1)


class Job:
    __slots__ = ("id", "request", "prompt", "sink", "cancelled", "choice", "submitted_at", "started_at", "done")

    def __init__(self, request: GenerateRequest, sink: Sink, choice: int = 0) -> None:
        self.id = next(_ids)
        self.request = request
        self.prompt = np.asarray(request.prompt_tokens, dtype=np.int32)
        self.sink = sink
        self.cancelled = False
        self.choice = choice
        self.submitted_at = time.perf_counter()
        self.started_at = 0.0
        self.done = False


class AsyncEventQueue:
    """Delivers engine events to an asyncio consumer running on `loop`."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self.queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()

    def __call__(self, item: Event | BaseException) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # loop closed: nobody is listening any more
            pass

    async def get(self) -> Event | BaseException:
        return await self.queue.get()


class ThreadEventQueue:
    """Delivers engine events to a blocking consumer."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[Event | BaseException] = queue.SimpleQueue()

    def __call__(self, item: Event | BaseException) -> None:
        self.queue.put(item)

    def get(self, timeout: float | None = None) -> Event | BaseException:
        return self.queue.get(timeout=timeout)
