"""How `AsyncKronk` uses the pool per request: a finished request never loads a model
again to learn its id, and a request the model cannot serve loads (and evicts) nothing."""

from __future__ import annotations

import asyncio

import pytest

from kronk.sdk import CompletionRequest
from tests.chat import templates
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


async def test_reasoning_tokens_count_the_thinking_block(make_kronk: MakeKronk) -> None:
    """The engine knows no thinking blocks; the SDK counts the tokens of the text its parser split off."""
    kronk = await make_kronk()
    thinking = long_chat("alpha", tokens=24)
    thinking.template = templates.DEEPSEEK_R1  # the generation prompt opens <think>: output starts inside it
    result = await kronk.chat(thinking)
    choice = result.choices[0]
    assert choice.reasoning_content
    vocab = kronk.pool.loaded("alpha").model.vocab  # type: ignore[union-attr]
    counted = len(vocab.tokenize(choice.reasoning_content, add_special=False, parse_special=False))
    assert 0 < result.usage.reasoning_tokens == min(counted, 24) <= result.usage.completion_tokens == 24

    plain = await kronk.chat(long_chat("alpha", tokens=8))
    assert plain.choices[0].reasoning_content is None and plain.usage.reasoning_tokens == 0
