"""Image input end to end on a tiny random model + a tiny random LLaVA-style projector.

The weights are random, so the answers are noise; what is checked is the plumbing: the
engine's output for a multimodal prompt equals a direct libmtmd evaluation followed by
greedy decoding, concurrent text streams are undisturbed, and bad media give clear errors.
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kronk.engine.types import GenerateRequest, SamplingParams
from kronk.errors import CapabilityError, InvalidRequestError
from kronk.llama import Batch, Context, MediaPrompt, Model, Projector, SamplerChain
from kronk.sdk import AsyncKronk, ChatRequest, PoolSettings
from kronk.sdk.pool import PathResolution
from tests import tiny_models
from tests.engine.conftest import collect, greedy_request, make_engine

pytestmark = pytest.mark.requires_libs

PROMPT = "<|im_start|>user\n{marker}\nWhat is in the picture?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def projector_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.write_llava_projector(tmp_path_factory.mktemp("mmproj") / "mmproj-tiny.gguf")


@pytest.fixture(scope="module")
def projector(tiny_model: Model, projector_path: Path) -> Iterator[Projector]:
    proj = Projector(projector_path, tiny_model, use_gpu=False)
    yield proj
    proj.close()


def _reference(model: Model, projector: Projector, image: bytes, n: int) -> list[int]:
    """Greedy tokens from a direct libmtmd evaluation into a fresh context (EOG banned, as
    the engine does for ignore_eos)."""
    ctx = Context(model, n_ctx=512, n_batch=512, n_threads=2)
    banned = {int(t): -math.inf for t in np.flatnonzero(model.vocab.eog_mask())}
    chain = SamplerChain.from_params(model, SamplingParams(temperature=0, logit_bias=banned))
    batch = Batch(8)
    try:
        chunks = projector.tokenize(PROMPT.format(marker=projector.marker), [image])
        n_past = projector.evaluate(ctx, chunks, n_past=0, seq_id=0)
        chunks.close()
        tokens = [chain.sample(ctx, -1)]
        while len(tokens) < n:
            batch.clear()
            row = batch.add(tokens[-1], n_past, 0, True)
            ctx.decode(batch)
            n_past += 1
            tokens.append(chain.sample(ctx, row))
        return tokens
    finally:
        chain.close()
        ctx.close()


def test_engine_output_equals_direct_evaluation(tiny_model: Model, projector: Projector) -> None:
    image = tiny_models.ppm_image(seed=3)
    expected = _reference(tiny_model, projector, image, 12)
    with make_engine(tiny_model, slots=2) as engine:
        media = MediaPrompt.build(projector, PROMPT.format(marker=projector.marker), [image])
        n_tokens = media.n_tokens
        request = GenerateRequest([], SamplingParams(temperature=0), max_tokens=12, ignore_eos=True,
                                  logprobs=True, media=media)
        # a text stream runs beside it and must produce what it produces alone
        text = greedy_request(tiny_model, "hello world the cat and the dog", 16, ignore_eos=True)
        alone, _ = collect(engine, text)
        from tests.engine.test_engine import run_concurrently

        results = run_concurrently(engine, [request, text])
    deltas, finish = results[0]
    assert [lp.token_id for d in deltas for lp in (d.logprobs or [])] == expected
    assert finish.usage.prompt_tokens == n_tokens and finish.usage.completion_tokens == 12
    assert "".join(d.text for d in results[1][0]) == "".join(d.text for d in alone)


def test_different_images_give_different_prompts_no_cache_mixup(tiny_model: Model, projector: Projector) -> None:
    with make_engine(tiny_model, slots=1) as engine:
        answers = []
        for seed in (1, 2, 1):
            image = tiny_models.ppm_image(seed=seed)
            media = MediaPrompt.build(projector, PROMPT.format(marker=projector.marker), [image])
            deltas, finish = collect(engine, GenerateRequest([], SamplingParams(temperature=0), max_tokens=8,
                                                             ignore_eos=True, logprobs=True, media=media))
            assert finish.usage.cached_tokens == 0
            answers.append([lp.token_id for d in deltas for lp in (d.logprobs or [])])
    assert answers[0] == answers[2] == _reference(tiny_model, projector, tiny_models.ppm_image(seed=1), 8)


def _data_url(image: bytes) -> str:
    return "data:image/x-portable-pixmap;base64," + base64.b64encode(image).decode()


def _image_message(url: str) -> list[dict[str, object]]:
    return [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}},
        {"type": "text", "text": "What is in the picture?"},
    ]}]


async def test_sdk_chat_with_an_image(lib_dir: Path, tiny: dict[str, Path], projector_path: Path) -> None:
    def resolver(model: str) -> PathResolution:
        if model == "tiny-vision":
            return PathResolution(id=model, path=tiny["chat"], projector=projector_path)
        return PathResolution(id=model, path=tiny["chat"])

    async with AsyncKronk(PoolSettings(default_model="tiny-vision"), resolver=resolver) as kronk:
        request = ChatRequest(messages=_image_message(_data_url(tiny_models.ppm_image(seed=5))), max_tokens=6,
                              ignore_eos=True, sampling=SamplingParams(temperature=0))
        result = await kronk.chat(request)
        assert result.usage.completion_tokens == 6
        tokens = await kronk.tokenize_chat(request)
        assert result.usage.prompt_tokens == len(tokens) and tokens.count(-1) == 16  # 4x4 patches

        with pytest.raises(InvalidRequestError, match="remote media URLs are not fetched"):
            await kronk.chat(ChatRequest(messages=_image_message("https://example.com/cat.png"), max_tokens=4))
        with pytest.raises(InvalidRequestError, match="base64"):
            await kronk.chat(ChatRequest(messages=_image_message("data:image/png;base64,@@@"), max_tokens=4))
        with pytest.raises(InvalidRequestError, match="could not be decoded"):
            await kronk.chat(ChatRequest(messages=_image_message(_data_url(b"not an image")), max_tokens=4))
        with pytest.raises(CapabilityError, match="projector"):
            await kronk.chat(ChatRequest(model="text-only", messages=_image_message(_data_url(b"x")), max_tokens=4))
        # the model still serves after the errors
        again = await asyncio.wait_for(kronk.chat(request), 60)
        assert again.choices[0].content == result.choices[0].content
