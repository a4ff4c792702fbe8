"""The model pool: at most `max_models` in memory, the least recently used idle one evicted,
idle models unloaded after their TTL, and a model serving a request never unloaded under it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from kronk.engine.types import Finish, TextDelta
from kronk.errors import BusyError, ModelNotFoundError, ShuttingDownError
from kronk.sdk import AsyncKronk
from kronk.sdk import pool as pool_module
from tests.sdk.conftest import MakeKronk, eventually, long_chat

pytestmark = pytest.mark.requires_libs


def loaded_ids(kronk: AsyncKronk) -> list[str]:
    return sorted(row.id for row in kronk.ps())


async def test_loading_past_max_evicts_the_least_recently_used_idle_model(make_kronk: MakeKronk) -> None:
    kronk = await make_kronk(max_models=2)
    alpha = await kronk.pool.get("alpha")
    beta = await kronk.pool.get("beta")
    await kronk.chat(long_chat("alpha", tokens=2))  # alpha is now the more recently used
    gamma = await kronk.pool.get("gamma")
    assert loaded_ids(kronk) == ["alpha", "gamma"]
    assert beta.model.closed and not alpha.model.closed and not gamma.model.closed
    # the evicted model comes back on demand, evicting the next least recently used (alpha)
    result = await kronk.chat(long_chat("beta", tokens=3))
    assert result.model == "beta" and result.usage.completion_tokens == 3
    assert loaded_ids(kronk) == ["beta", "gamma"]
    assert alpha.model.closed


async def test_a_model_with_an_open_stream_is_not_evicted_the_other_load_fails(make_kronk: MakeKronk) -> None:
    kronk = await make_kronk(max_models=1)
    stream = kronk.chat_stream(long_chat("alpha", tokens=40))
    first = await anext(stream)
    assert isinstance(first, TextDelta)
    with pytest.raises(BusyError, match=r"all are busy \(max_models=1\)"):
        await kronk.chat(long_chat("beta", tokens=2))
    assert loaded_ids(kronk) == ["alpha"]
    # the stream was not disturbed: it runs to its token limit
    events = [first] + [event async for event in stream]
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason == "length" and finish.usage.completion_tokens == 40
    # once it has ended, the other model may take its place
    result = await kronk.chat(long_chat("beta", tokens=2))
    assert result.usage.completion_tokens == 2 and loaded_ids(kronk) == ["beta"]


async def test_concurrent_requests_for_one_model_share_one_load(make_kronk: MakeKronk) -> None:
    kronk = await make_kronk(max_models=1)
    models = await asyncio.gather(*(kronk.pool.get("alpha") for _ in range(5)))
    assert all(model is models[0] for model in models)
    assert loaded_ids(kronk) == ["alpha"]


async def test_concurrent_loads_of_different_models_never_exceed_max_models(make_kronk: MakeKronk) -> None:
    kronk = await make_kronk(max_models=1)
    # each request holds its model while it generates, so only one of them can be served
    results = await asyncio.gather(*(kronk.chat(long_chat(name, tokens=4)) for name in ("alpha", "beta", "gamma")),
                                   return_exceptions=True)
    assert len(kronk.ps()) <= 1
    served = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(served) == 1 and served[0].usage.completion_tokens == 4
    assert len(refused) == 2 and all(isinstance(r, BusyError) for r in refused), refused
    assert all(not model.model.closed for model in kronk.pool.models())


async def test_a_request_cancelled_while_its_model_loads_leaves_no_orphan(
        make_kronk: MakeKronk, monkeypatch: pytest.MonkeyPatch) -> None:
    started = threading.Event()
    real_load = pool_module._load_blocking

    def load(*args: Any) -> Any:
        started.set()
        return real_load(*args)

    monkeypatch.setattr(pool_module, "_load_blocking", load)
    kronk = await make_kronk()
    request = asyncio.create_task(kronk.chat(long_chat("alpha", tokens=2)))
    await asyncio.to_thread(started.wait, 30)
    request.cancel()  # e.g. the client disconnected while the model loaded
    with pytest.raises(asyncio.CancelledError):
        await request
    # the load ran to its end and the pool owns the model: freed by TTL, eviction or close
    await eventually(lambda: kronk.pool.loaded("alpha") is not None, "the load completes")
    alpha = kronk.pool.loaded("alpha")
    result = await kronk.chat(long_chat("alpha", tokens=2))
    assert result.usage.completion_tokens == 2 and kronk.pool.loaded("alpha") is alpha
    await kronk.close()
    assert alpha is not None and alpha.model.closed


async def test_an_idle_model_is_unloaded_after_its_ttl(make_kronk: MakeKronk) -> None:
    kronk = await make_kronk(ttl_seconds=0.3)
    await kronk.chat(long_chat("alpha", tokens=2))
    loaded = kronk.pool.loaded("alpha")
    assert loaded is not None
    (row,) = kronk.ps()
    assert row.expires_in_seconds is not None and 0 <= row.expires_in_seconds <= 0.3
    await eventually(lambda: loaded.model.closed, "the idle model is unloaded")
    assert not kronk.ps()
    # it loads again on the next request
    assert (await kronk.chat(long_chat("alpha", tokens=2))).usage.completion_tokens == 2


async def test_a_model_in_use_outlives_its_ttl(make_kronk: MakeKronk) -> None:
    kronk = await make_kronk(ttl_seconds=0.3)
    stream = kronk.chat_stream(long_chat("alpha", tokens=30))
    await anext(stream)  # alpha is in use from here until the stream ends
    alpha = kronk.pool.loaded("alpha")
    assert alpha is not None and alpha.active == 1
    (row,) = kronk.ps()
    assert row.active_streams == 1 and row.expires_in_seconds is None
    # beta, loaded after alpha went into use, is idle: once the reaper has unloaded it, it has
    # also looked at alpha, which has been unused for longer but is busy
    await kronk.pool.get("beta")
    await eventually(lambda: kronk.pool.loaded("beta") is None, "the idle model is unloaded")
    assert loaded_ids(kronk) == ["alpha"] and not alpha.model.closed
    events = [event async for event in stream]
    assert isinstance(events[-1], Finish) and events[-1].reason == "length"
    assert events[-1].usage.completion_tokens == 30
    # idle now: its TTL counts from the end of the request
    await eventually(lambda: not kronk.ps(), "the model is unloaded once idle")


async def test_unknown_model_leaves_the_pool_as_it_was(make_kronk: MakeKronk) -> None:
    kronk = await make_kronk(max_models=1)
    await kronk.pool.get("alpha")
    with pytest.raises(ModelNotFoundError):
        await kronk.chat(long_chat("nope", tokens=2))
    assert loaded_ids(kronk) == ["alpha"]


async def test_a_closed_pool_refuses_requests(make_kronk: MakeKronk) -> None:
    kronk = await make_kronk()
    alpha = await kronk.pool.get("alpha")
    await kronk.close()
    assert alpha.model.closed and not kronk.ps()
    with pytest.raises(ShuttingDownError, match="closed"):
        await kronk.chat(long_chat("alpha", tokens=2))
