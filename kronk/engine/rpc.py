"""`RPCEngine`: the engine of a model whose layers live partly on RPC servers.

When an RPC server dies mid-decode, ggml-rpc parks the engine thread inside llama_decode
for good (kronk.llama.rpc explains why). This engine hears of it from ggml-rpc's thread,
fails every queued and running job with RPCUnavailableError (503) at once, refuses new
ones with the same error, and on close abandons its context instead of freeing it
(freeing would wait on the dead server). The server's other models are not affected;
this one answers 503 until it is unloaded and loaded again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from kronk.engine.jobs import Job, Sink
from kronk.engine.loop import Engine, EngineConfig
from kronk.engine.types import GenerateRequest
from kronk.errors import BusyError, RPCUnavailableError
from kronk.llama import Model
from kronk.llama import rpc as rpc_backend

logger = logging.getLogger("kronk.engine")


class RPCEngine(Engine):
    """An Engine that fails cleanly when one of its model's RPC servers dies."""

    def __init__(self, model: Model, config: EngineConfig | None = None) -> None:
        self.failure: RPCUnavailableError | None = None
        super().__init__(model, config)
        self._rpc_watch: int | None = rpc_backend.watch(model.rpc, self._rpc_failed)

    def submit(self, request: GenerateRequest, sink: Sink, choice: int = 0) -> Job:
        try:
            return super().submit(request, sink, choice)
        except BusyError:
            if self.failure is not None:
                raise self.failure from None
            raise

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        try:
            return super().call(fn)
        except BusyError:
            if self.failure is not None:
                raise self.failure from None
            raise

    def close(self) -> None:
        if self._rpc_watch is not None:
            rpc_backend.unwatch(self._rpc_watch)
            self._rpc_watch = None
        if self.failure is not None:
            return  # the engine thread is parked inside llama.cpp: abandon the context
        super().close()

    def _rpc_failed(self, reason: str) -> None:
        """On ggml-rpc's thread: the engine thread will never return from its decode."""
        error = RPCUnavailableError(f"{reason}; the model answers 503 until it is unloaded and loaded again")
        with self._cond:
            self.failure = error
            self._closing = True
            jobs = list(self._pending) + [slot.job for slot in self.slots if slot.job is not None]
            self._pending.clear()
            calls = list(self._calls)
            self._calls.clear()
            self._cond.notify()
        for _fn, future in calls:
            future.set_exception(error)
        for job in jobs:
            job.done = True
            try:
                job.sink(error)
            except Exception:  # a consumer's bug must not stop the other jobs' errors
                logger.exception("an event sink raised")
