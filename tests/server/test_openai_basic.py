"""The official `openai` client against a real server: completions, FIM, embeddings, models, tokenize."""

from __future__ import annotations

import math
from pathlib import Path

import aiohttp
import numpy as np
import openai
import pytest

from tests.server.conftest import RunningServer

pytestmark = pytest.mark.requires_libs


@pytest.fixture
def client(server: RunningServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.v1, api_key="unused", max_retries=0)


async def test_completion_non_stream_with_logprobs_and_echo(client: openai.AsyncOpenAI) -> None:
    result = await client.completions.create(model="", prompt="hello world", max_tokens=6, temperature=0,
                                             logprobs=3, echo=True)
    choice = result.choices[0]
    assert result.object == "text_completion"
    assert choice.text.startswith("hello world")
    assert choice.finish_reason in ("length", "stop")
    assert result.usage is not None and result.usage.completion_tokens >= 1
    assert choice.logprobs is not None
    assert len(choice.logprobs.tokens) == len(choice.logprobs.token_logprobs) >= 1
    assert all(lp <= 0 for lp in choice.logprobs.token_logprobs)
    assert all(1 <= len(top) <= 3 for top in choice.logprobs.top_logprobs)


async def test_completion_stream_matches_non_stream_under_greedy(client: openai.AsyncOpenAI) -> None:
    kwargs = dict(model="", prompt="the cat", max_tokens=12, temperature=0)
    full = await client.completions.create(**kwargs)
    stream = await client.completions.create(**kwargs, stream=True, stream_options={"include_usage": True})
    texts, usage, finish = [], None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            texts.append(choice.text)
            finish = choice.finish_reason or finish
    assert "".join(texts) == full.choices[0].text
    assert finish == full.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == full.usage.completion_tokens


async def test_several_prompts_and_n(client: openai.AsyncOpenAI) -> None:
    result = await client.completions.create(model="", prompt=["a", "b"], max_tokens=3, n=2, seed=1)
    assert sorted(c.index for c in result.choices) == [0, 1, 2, 3]
    # usage: n choices of one prompt count it once; a list of prompts counts each of them
    alone = [await client.completions.create(model="", prompt=text, max_tokens=3, n=2, seed=1) for text in "ab"]
    assert result.usage.prompt_tokens == sum(r.usage.prompt_tokens for r in alone)
    single = await client.completions.create(model="", prompt="a", max_tokens=3, n=1, seed=1)
    assert alone[0].usage.prompt_tokens == single.usage.prompt_tokens


async def test_completion_with_suffix_uses_fim(client: openai.AsyncOpenAI, tiny: dict[str, Path]) -> None:
    result = await client.completions.create(model=str(tiny["fim"]), prompt="def add(a, b):", suffix="return c",
                                             max_tokens=5, temperature=0)
    assert result.model == str(tiny["fim"])
    assert result.usage.prompt_tokens > 5  # prefix + suffix + the three FIM tokens
    assert isinstance(result.choices[0].text, str)


async def test_embeddings_float_and_base64(client: openai.AsyncOpenAI, tiny: dict[str, Path]) -> None:
    model = str(tiny["embed"])
    as_base64 = await client.embeddings.create(model=model, input=["hello world", "the cat"])  # client asks base64
    as_float = await client.embeddings.create(model=model, input=["hello world", "the cat"], encoding_format="float")
    assert [d.index for d in as_float.data] == [0, 1]
    for a, b in zip(as_base64.data, as_float.data, strict=True):
        assert np.allclose(a.embedding, b.embedding, atol=1e-6)
        assert math.isclose(float(np.linalg.norm(b.embedding)), 1.0, rel_tol=1e-4)
    assert as_float.usage.prompt_tokens > 0
    short = await client.embeddings.create(model=model, input="hello", dimensions=8, encoding_format="float")
    assert len(short.data[0].embedding) == 8
    assert math.isclose(float(np.linalg.norm(short.data[0].embedding)), 1.0, rel_tol=1e-4)
    with pytest.raises(openai.BadRequestError) as info:
        await client.embeddings.create(model=model, input="hello", dimensions=100000)
    assert info.value.body["param"] == "dimensions"


async def test_embeddings_from_token_ids(client: openai.AsyncOpenAI, tiny: dict[str, Path]) -> None:
    result = await client.embeddings.create(model=str(tiny["embed"]), input=[[5, 6, 7], [8, 9]],
                                            encoding_format="float")
    assert len(result.data) == 2
    assert result.usage.prompt_tokens == 5


async def test_models_list_and_retrieve_with_slash_ids(client: openai.AsyncOpenAI, server: RunningServer,
                                                       tiny: dict[str, Path]) -> None:
    listing = await client.models.list()
    ids = [m.id for m in listing.data]
    assert str(tiny["chat"]) in ids
    model = await client.models.retrieve(str(tiny["chat"]))
    assert model.id == str(tiny["chat"])
    assert model.object == "model"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("nobody/nothing")


async def test_tokenize_detokenize_round_trip(server: RunningServer, http: aiohttp.ClientSession) -> None:
    async with http.post(server.v1 + "/tokenize", json={"input": "hello world", "with_pieces": True}) as response:
        body = await response.json()
    assert body["count"] == len(body["tokens"]) >= 2
    ids = [t["id"] for t in body["tokens"]]
    assert "".join(t["piece"] for t in body["tokens"][1:]).strip() == "hello world"
    async with http.post(server.v1 + "/detokenize", json={"tokens": ids}) as response:
        assert (await response.json())["content"].strip().endswith("hello world")
    async with http.post(server.v1 + "/tokenize", json={"messages": [{"role": "user", "content": "hi"}]}) as response:
        chat = await response.json()
    assert chat["count"] > 3  # the template's tokens are counted too
