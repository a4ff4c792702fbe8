"""Fixtures of the SDK tests: a model pool over the tiny random chat model under several ids.

Every id resolves to the same tiny GGUF file, but the pool keys models by id, so each id
is a separate load (its own llama.cpp model, context and engine): enough to exercise
eviction, TTL unloads and streams without any real model. Contexts are small so a load
costs milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from kronk.engine.types import SamplingParams
from kronk.errors import ModelNotFoundError
from kronk.sdk import AsyncKronk, ChatRequest, ModelSettings, PoolSettings
from kronk.sdk.pool import PathResolution

MODEL_IDS = ("alpha", "beta", "gamma")


def small_settings(slots: int = 2, **pool: Any) -> PoolSettings:
    """Pool settings for tiny models: one thread, a 512-token context, two slots."""
    defaults = ModelSettings(ctx_size=512, slots=slots, threads=1, batch_size=512, ubatch_size=512,
                             prompt_cache_mb=0)
    return PoolSettings(model_defaults=defaults, **pool)


@pytest.fixture
def resolver(lib_dir: Path, tiny: dict[str, Path]) -> Callable[[str], PathResolution]:
    """Resolves the ids in MODEL_IDS to the tiny chat model; anything else is not found."""

    def resolve(model: str) -> PathResolution:
        if model not in MODEL_IDS:
            raise ModelNotFoundError(model)
        return PathResolution(id=model, path=tiny["chat"])

    return resolve


MakeKronk = Callable[..., Awaitable[AsyncKronk]]


@pytest.fixture
async def make_kronk(resolver: Callable[[str], PathResolution]) -> AsyncIterator[MakeKronk]:
    """Start SDKs whose pool has `small_settings(**overrides)`; all are closed after the test."""
    started: list[AsyncKronk] = []

    async def make(**overrides: Any) -> AsyncKronk:
        kronk = AsyncKronk(small_settings(**overrides), resolver=resolver)
        await kronk.start()
        started.append(kronk)
        return kronk

    yield make
    for kronk in started:
        await kronk.close()


def long_chat(model: str | None = None, tokens: int = 200) -> ChatRequest:
    """A greedy chat that generates exactly `tokens` tokens (EOS ignored)."""
    return ChatRequest(messages=[{"role": "user", "content": "Count the sheep."}], model=model, max_tokens=tokens,
                       ignore_eos=True, sampling=SamplingParams(temperature=0))


async def eventually(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait until `predicate()` holds (it is polled, so no assertion depends on timing)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.01)
