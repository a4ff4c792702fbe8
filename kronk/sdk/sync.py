"""`Kronk`: the synchronous SDK — the same API as AsyncKronk, for scripts and threads.

It runs an AsyncKronk on a private event loop in a background thread; every method
blocks until its result is ready, and streams are plain iterators (closing one, or
breaking out of the loop, cancels the generation).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, Self, TypeVar

from kronk.engine.types import Event
from kronk.errors import ShuttingDownError
from kronk.sdk.client import AsyncKronk
from kronk.sdk.pool import Resolver
from kronk.sdk.requests import (
    ChatRequest,
    ChatResult,
    CompletionRequest,
    CompletionResult,
    EmbeddingRequest,
    EmbeddingResult,
    LoadedModelStatus,
    ModelInfo,
    RerankRequest,
    RerankResult,
)
from kronk.sdk.settings import PoolSettings

T = TypeVar("T")


class Kronk:
    def __init__(self, pool_settings: PoolSettings | None = None, resolver: Resolver | None = None) -> None:
        self._closed = False
        self._stopped = False
        self._lock = threading.Lock()
        self._streams: set[AsyncIterator[Event]] = set()
        """Streams handed out and not finished, closed by close()."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kronk-sdk-loop", daemon=True)
        self._thread.start()
        self._async = self._run(self._create(pool_settings, resolver))

    @staticmethod
    async def _create(pool_settings: PoolSettings | None, resolver: Resolver | None) -> AsyncKronk:
        kronk = AsyncKronk(pool_settings, resolver)
        await kronk.start()
        return kronk

    def _check_open(self) -> None:
        if self._closed:
            raise ShuttingDownError("this Kronk is closed")

    def _run(self, coro: Coroutine[Any, Any, T], *, closing_ok: bool = False) -> T:
        """Run `coro` on the loop and wait for it. Once close() has begun only open streams
        may go on (to their end, so close() need not wait for them); once the loop stops,
        nothing may (a call scheduled on a stopped loop would wait forever)."""
        with self._lock:
            if self._stopped or (self._closed and not closing_ok):
                coro.close()
                raise ShuttingDownError("this Kronk is closed")
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise ShuttingDownError("this Kronk was closed while the call ran") from None

    def _iterate(self, stream: AsyncIterator[Event]) -> Iterator[Event]:
        with self._lock:
            self._streams.add(stream)
        try:
            while True:
                try:
                    yield self._run(stream.__anext__(), closing_ok=True)
                except StopAsyncIteration:
                    return
        finally:
            with self._lock:
                self._streams.discard(stream)
            with contextlib.suppress(ShuttingDownError):  # close() finalizes the stream itself
                self._run(stream.aclose(), closing_ok=True)  # type: ignore[attr-defined]

    def close(self) -> None:
        """Unload every model and stop the event loop. Open streams end (finish reason
        "cancelled"); calls made afterwards raise ShuttingDownError. Closing again does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result()
        finally:
            with self._lock:
                self._stopped = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    async def _shutdown(self) -> None:
        try:
            await self._async.close()
        finally:
            # calls other threads still wait for: they raise ShuttingDownError
            others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            # streams nobody finished iterating let go of their models (outer generators
            # only, one by one: each closes its own inner ones in order)
            with self._lock:
                streams = list(self._streams)
            for stream in streams:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self, model: str | None = None) -> ModelInfo:
        return self._run(self._async.load(model))

    def chat(self, request: ChatRequest) -> ChatResult:
        return self._run(self._async.chat(request))

    def chat_stream(self, request: ChatRequest) -> Iterator[Event]:
        self._check_open()
        return self._iterate(self._async.chat_stream(request))

    def complete(self, request: CompletionRequest) -> CompletionResult:
        return self._run(self._async.complete(request))

    def complete_stream(self, request: CompletionRequest) -> Iterator[Event]:
        self._check_open()
        return self._iterate(self._async.complete_stream(request))

    def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        return self._run(self._async.embed(request))

    def rerank(self, request: RerankRequest) -> RerankResult:
        return self._run(self._async.rerank(request))

    def tokenize(self, model: str | None, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        return self._run(self._async.tokenize(model, text, add_special=add_special, parse_special=parse_special))

    def tokenize_chat(self, request: ChatRequest) -> list[int]:
        return self._run(self._async.tokenize_chat(request))

    def detokenize(self, model: str | None, tokens: list[int]) -> str:
        return self._run(self._async.detokenize(model, tokens))

    def list_models(self) -> list[ModelInfo]:
        return self._run(self._list_models())

    async def _list_models(self) -> list[ModelInfo]:
        return self._async.list_models()

    def model_info(self, model: str | None) -> ModelInfo:
        return self._run(self._async.model_info(model))

    def ps(self) -> list[LoadedModelStatus]:
        return self._run(self._ps())

    async def _ps(self) -> list[LoadedModelStatus]:
        return self._async.ps()

    def unload(self, model_id: str) -> bool:
        return self._run(self._async.unload(model_id))
