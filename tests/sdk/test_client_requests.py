"""How `AsyncKronk` uses the pool per request: a finished request never loads a model
again to learn its id, and a request the model cannot serve loads (and evicts) nothing."""

from __future__ import annotations

import asyncio

import pytest

from kronk.sdk import CompletionRequest
from tests.sdk.conftest import MakeKronk, eventually, long_chat

pytestmark = pytest.mark.requires_libs


async def test_chat_result_names_the_model_without_loading_it_again(make_kronk: MakeKronk) -> None:
    kronk = await make_kronk()
    chat = asyncio.create_task(kronk.chat(long_chat("alpha", tokens=400)))
    await eventually(lambda: kronk.pool.loaded("alpha") is not None, "alpha is loaded")
    alpha = kronk.pool.loaded("alpha")
    assert alpha is not None
    await eventually(lambda: alpha.engine.active > 0, "alpha is generating")
    assert await kronk.pool.unload("alpha", wait=False) is True
    result = await asyncio.wait_for(chat, 30)
    assert result.model == "alpha"
    assert not kronk.ps()  # the model the chat used is gone, and nothing loaded it again


async def test_completion_result_names_the_model_without_loading_it_again(make_kronk: MakeKronk) -> None:
    kronk = await make_kronk()
    request = CompletionRequest(prompt="Count the sheep.", model="beta", max_tokens=400, ignore_eos=True)
    completion = asyncio.create_task(kronk.complete(request))
    await eventually(lambda: kronk.pool.loaded("beta") is not None, "beta is loaded")
    beta = kronk.pool.loaded("beta")
    assert beta is not None
    await eventually(lambda: beta.engine.active > 0, "beta is generating")
    assert await kronk.pool.unload("beta", wait=False) is True
    result = await asyncio.wait_for(completion, 30)
    assert result.model == "beta"
    assert not kronk.ps()
