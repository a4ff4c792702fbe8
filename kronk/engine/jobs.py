"""Jobs: one generation request inside the engine, and how its events leave the thread.

The engine thread never touches asyncio objects directly: each job has a `sink`
callable. `AsyncEventQueue` hands events to an asyncio.Queue through its loop's
`_LoopMailbox`, which wakes the loop once for everything posted since its last wakeup
(one `call_soon_threadsafe` per engine step, not per token per stream: each wakeup
writes to the loop's self-pipe and fights the engine thread for the GIL).
`ThreadEventQueue` serves synchronous callers. A sink receives `Event`s, then ends
with a `Finish`, or receives an exception.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
import weakref
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
        if request.media is not None:  # media positions have no token id: never a prefix match
            self.prompt = np.full(request.media.n_tokens, -1, dtype=np.int32)
        else:
            self.prompt = np.asarray(request.prompt_tokens, dtype=np.int32)
        self.sink = sink
        self.cancelled = False
        self.choice = choice
        self.submitted_at = time.perf_counter()
        self.started_at = 0.0
        self.done = False


class _LoopMailbox:
    """Events for the queues of one event loop, delivered in one wakeup per batch."""

    __slots__ = ("loop", "lock", "items", "scheduled", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.items: list[tuple[asyncio.Queue[Any], Any]] = []
        self.scheduled = False

    def post(self, target: asyncio.Queue[Any], item: Any) -> None:
        with self.lock:
            self.items.append((target, item))
            if self.scheduled:
                return
            self.scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # loop closed: nobody is listening any more
            with self.lock:
                self.items.clear()
                self.scheduled = False

    def _deliver(self) -> None:
        with self.lock:
            items, self.items = self.items, []
            self.scheduled = False
        for target, item in items:
            target.put_nowait(item)


_mailboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopMailbox] = weakref.WeakKeyDictionary()
_mailboxes_lock = threading.Lock()


def _mailbox(loop: asyncio.AbstractEventLoop) -> _LoopMailbox:
    with _mailboxes_lock:
        box = _mailboxes.get(loop)
        if box is None:
            box = _mailboxes[loop] = _LoopMailbox(loop)
        return box


class AsyncEventQueue:
    """Delivers engine events to an asyncio consumer running on `loop`."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self.queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()
        self._mailbox = _mailbox(self.loop)

    def __call__(self, item: Event | BaseException) -> None:
        self._mailbox.post(self.queue, item)

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
